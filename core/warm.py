"""Pay torch's one-time lazy import when the server starts its first session, not on a visitor's click.

The first time a process enters a torch dispatch mode (FlopCounterMode, which every page that counts FLOPs
uses), torch imports its compiler package, `torch._dynamo`: 1.5-2.7 s on this 2-core machine. Without this,
whoever first opened the Memory planner or Inside MLA paid it (first runs of 2.55 and 1.81 s, against 1.04
and 0.43 s once it is imported); now the server's first session pays it once, whatever page it opens (for a
workshop: the presenter, before the room arrives).

It runs in the calling thread on purpose: imported from a background thread while a page imported numpy, it
left a page with a partially initialised numpy (AttributeError), Python's import locks do not prevent that.
"""

from __future__ import annotations

import functools
import importlib
import time

MODULES = ("torch._dynamo",)


@functools.cache
def imports() -> float:
    """Import MODULES once per process; the seconds it took (0 when a module is missing: the pages import
    what they need themselves)."""
    start = time.perf_counter()
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            return 0.0
    return time.perf_counter() - start
