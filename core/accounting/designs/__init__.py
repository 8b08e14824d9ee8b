"""One module per attention design, each registering its accounting with `core.accounting.base.register`.

Every module in this folder is imported here, so a new design is one new file: nothing else in the
accounting has to know its name.
"""

from __future__ import annotations

import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
