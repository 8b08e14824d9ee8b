"""core/warm.py: torch's compiler package is imported once per process, in the calling thread, and a missing
module is not an error."""

import sys

from core import warm


def test_imports_once_in_this_thread(monkeypatch):
    warm.imports.cache_clear()
    warm.imports()
    assert all(m in sys.modules for m in warm.MODULES)
    monkeypatch.setattr(warm, "MODULES", ("no_such_module_for_kvlab",))
    assert warm.imports() >= 0  # cached: not imported again


def test_a_missing_module_is_not_an_error(monkeypatch):
    monkeypatch.setattr(warm, "MODULES", ("no_such_module_for_kvlab",))
    warm.imports.cache_clear()
    assert warm.imports() == 0.0  # says nothing, raises nothing: the pages import what they need themselves
    warm.imports.cache_clear()
