"""KV Cache Lab engine, in layers that import downwards only:

    core.model       specs, config parsing, presets, storage formats, GPUs, units   (no torch)
    core.accounting  exact cache, state, FLOPs, parameters; one module per design   (no torch)
    core.layers      real torch layers with explicit caches and states
    core.lab         the runs behind each lesson
    core.view        what the pages show: charts, URL state, safe text, the glossary, takeaways
    core.workshop    the workshop proper: guided paths, the engine's answers, the room's predictions
    core.report      the command line (model + accounting only, so it answers without torch)

Nothing in this package imports streamlit.
"""

__version__ = "0.3.0"
