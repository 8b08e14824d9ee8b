"""Two speed-ups of Altair's chart construction through its private internals, installed by apply() (app.py
calls it; nothing happens at import) only where those internals are there and shaped as expected.

Measured gain (Altair 6.3, `python -m bench.charts --rounds 3`: CPU ms of the app's chart_spec per new view,
median, each mode in fresh interpreters):

    per view            overview   planner (3 charts)   compute (roofline)
    Altair's own          52.1          107.5                 84.9
    class table only      27.1           51.0                 60.0
    deep copy only        43.4           88.4                 75.6
    both (the app)        18.9           38.5                 50.9

The deep copy saves 8-12 ms a view on top of the class table (15-30% of what is left). On the served app
(`python -m bench.pages --pages overview,planner --moves 2 --repeat 3`, server CPU, median of two runs each) a
move to a view the server has not drawn yet cost 0.10 s on the Planner with them and 0.18-0.21 s without, 0.06-0.09 s
and 0.09-0.14 s on the Overview; a view already drawn comes from figure()'s cache either way (about 0.03 s).

`tests/test_altair_speedups.py` fails when an installed Altair no longer has what they rely on, and checks that
real charts' specs are the same with and without them.
"""

from __future__ import annotations

import inspect
import threading

import altair as alt
from altair.utils import schemapi

_lock = threading.Lock()
_installed: dict[str, object] = {}  # what apply() replaced, for remove(): {name: Altair's own}


def _source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


def missing() -> list[str]:
    """What the speed-ups need of Altair's internals and do not find as expected: [] when all is there."""
    out = []
    base, vl = getattr(schemapi, "SchemaBase", None), getattr(alt, "VegaLiteSchema", None)
    from_dict = getattr(schemapi, "_FromDict", None)
    if base is None or vl is None or from_dict is None:
        return ["schemapi.SchemaBase, alt.VegaLiteSchema or schemapi._FromDict"]
    init = from_dict.__dict__.get("__init__")
    if init is None or list(inspect.signature(init).parameters) != ["self", "wrapper_classes"]:
        out.append("_FromDict.__init__(self, wrapper_classes)")
    elif not isinstance(getattr(from_dict([]), "class_dict", None), dict):
        out.append("_FromDict(...).class_dict, a dict")
    if "_FromDict(cls._default_wrapper_classes())" not in _source(base.__dict__.get("from_dict")):
        out.append("SchemaBase.from_dict building _FromDict(cls._default_wrapper_classes())")
    if not callable(getattr(schemapi, "_subclasses", None)):
        out.append("schemapi._subclasses")
    else:
        own = [c for c in (base, *schemapi._subclasses(base)) if "_default_wrapper_classes" in c.__dict__]
        if own != [base, vl] or not all(isinstance(c.__dict__["_default_wrapper_classes"], classmethod) for c in own):
            out.append("_default_wrapper_classes: classmethods of SchemaBase and VegaLiteSchema only")
    if "__init_subclass__" in base.__dict__:
        out.append("SchemaBase without an __init_subclass__ of its own")
    deep_copy = getattr(schemapi, "_deep_copy", None)
    if deep_copy is None or list(inspect.signature(deep_copy).parameters) != ["obj", "by_ref"]:
        out.append("schemapi._deep_copy(obj, by_ref)")
    if "_deep_copy(self" not in _source(base.__dict__.get("copy")):
        out.append("SchemaBase.copy calling _deep_copy")
    if not hasattr(schemapi, "Undefined") or not callable(getattr(schemapi, "debug_mode", None)):
        out.append("schemapi.Undefined and schemapi.debug_mode")
    axis = alt.Axis(title="t")
    if not (isinstance(getattr(axis, "_args", None), tuple) and isinstance(getattr(axis, "_kwds", None), dict)):
        out.append("a schema object's _args (tuple) and _kwds (dict)")
    return out


def applied() -> bool:
    """Whether the speed-ups are installed now."""
    return bool(_installed)


def apply() -> bool:
    """Install both speed-ups (once; later calls only answer). False, and Altair left as it is, where missing()
    finds anything or a small layered, styled chart's spec comes out different with them."""
    with _lock:
        if _installed:
            return True
        if missing():
            return False
        before = _probe()
        _memoize_class_table()
        _faster_deep_copy()
        if _probe() != before:
            _remove()
            return False
        return True


def remove() -> None:
    """Altair's own class table, class listing and deep copy again (for tests and benchmarks)."""
    with _lock:
        _remove()


def _remove() -> None:
    if "__init_subclass__" in _installed:
        del schemapi.SchemaBase.__init_subclass__
    for root in (schemapi.SchemaBase, alt.VegaLiteSchema):
        if (key := f"{root.__name__}._default_wrapper_classes") in _installed:
            root._default_wrapper_classes = _installed[key]
    if "_FromDict.__init__" in _installed:
        schemapi._FromDict.__init__ = _installed["_FromDict.__init__"]
    if "_deep_copy" in _installed:
        schemapi._deep_copy = _installed["_deep_copy"]
    _installed.clear()


def _probe() -> dict:
    """A layered, styled chart with shorthand encodings and a condition: what either speed-up touches."""
    data = alt.InlineData(values=[{"x": 1, "y": 2, "m": "a"}, {"x": 2, "y": 1, "m": "b"}])
    line = alt.Chart(data).mark_line().encode(x="x:Q", y=alt.Y("y:Q", title="y"), color="m:N", tooltip=["x:Q", "y:Q"])
    pts = line.mark_point().encode(fill=alt.condition("datum.x > 1", alt.value("red"), alt.value("blue")))
    return alt.layer(line, pts).configure_axis(labelFontSize=15).properties(title="probe").to_dict()


def _memoize_class_table() -> None:
    """Altair builds, on every `from_dict` (each shorthand encoding such as "gib:Q", each alt.value), a table of
    all its ~600 schema classes keyed by a JSON hash of each schema: 6 ms a time, over half of what building a
    chart costs. The table depends only on the set of classes, so it is built once per set. Listing that set
    walks the whole class tree (4 ms per chart at six lookups), so the list is kept too, and made again
    whenever a new schema class is defined (SchemaBase.__init_subclass__ counts them)."""
    base, original = schemapi.SchemaBase, schemapi._FromDict.__init__
    tables: dict[tuple, dict] = {}
    classes: dict[type, tuple[int, tuple]] = {}  # root -> (version it was listed at, its subclasses)
    version = [0]

    def count_subclass(cls, **kwargs) -> None:
        version[0] += 1
        super(base, cls).__init_subclass__(**kwargs)

    def listed(root: type) -> tuple:
        if classes.get(root, (None,))[0] != version[0]:
            classes[root] = (version[0], tuple(schemapi._subclasses(root)))
        return classes[root][1]

    def init(self, wrapper_classes, /) -> None:
        key = wrapper_classes if isinstance(wrapper_classes, tuple) else tuple(wrapper_classes)
        if key not in tables:
            original(self, key)
            tables[key] = self.class_dict
        self.class_dict = tables[key]

    _installed["_FromDict.__init__"] = original
    _installed["__init_subclass__"] = None
    base.__init_subclass__ = classmethod(count_subclass)
    for root in (base, alt.VegaLiteSchema):  # the two classes Altair lists wrapper classes from
        _installed[f"{root.__name__}._default_wrapper_classes"] = root.__dict__["_default_wrapper_classes"]
        root._default_wrapper_classes = classmethod(lambda cls, root=root: listed(root))
    schemapi._FromDict.__init__ = init


def _faster_deep_copy() -> None:
    """Altair deep-copies every subchart when charts are layered and when a chart is styled, walking each schema
    object's every property: a mark or an axis has about a hundred, nearly all Undefined, so one chart here made
    about 9,000 calls that returned Undefined as it was. This copy returns Undefined, strings and numbers without
    a call and is otherwise Altair's own: the same objects, the same spec."""
    SchemaBase, Undefined, debug_mode = schemapi.SchemaBase, schemapi.Undefined, schemapi.debug_mode
    plain = (str, int, float, bool, type(None))

    def copy(obj, by_ref: set[str]):
        if obj is Undefined or isinstance(obj, plain):
            return obj
        if isinstance(obj, SchemaBase):
            if copier := getattr(obj, "__deepcopy__", None):
                with debug_mode(False):
                    return copier(obj)
            args = [copy(arg, by_ref) for arg in obj._args]
            kwds = {
                k: v if (v is Undefined or k in by_ref or isinstance(v, plain)) else copy(v, by_ref)
                for k, v in obj._kwds.items()
            }
            with debug_mode(False):
                return obj.__class__(*args, **kwds)
        if isinstance(obj, list):
            return [copy(v, by_ref) for v in obj]
        if isinstance(obj, dict):
            return {k: (copy(v, by_ref) if k not in by_ref else v) for k, v in obj.items()}
        return obj

    _installed["_deep_copy"] = schemapi._deep_copy
    schemapi._deep_copy = copy
