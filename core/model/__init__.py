"""Model description: specs, real config.json parsing, presets, storage formats, GPUs, units. No torch."""
