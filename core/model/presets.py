"""Preset models: the real config.json files shipped in assets/configs (sources in the README there)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from core.model.hf_config import from_hf_config, load_config_file
from core.model.specs import ModelSpec

CONFIG_DIR = Path(__file__).resolve().parents[2] / "assets" / "configs"


def preset_names() -> list[str]:
    """Lower-case preset names, e.g. 'llama-3.1-70b', 'deepseek-v3', 'deepseek-v4-pro'."""
    return list(_preset_names())


@cache
def _preset_names() -> tuple[str, ...]:  # the shipped configs do not change while the app runs: list them once
    return tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))


@cache
def load_preset(name: str) -> ModelSpec:
    path = CONFIG_DIR / f"{name.lower()}.json"
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}.")
    return from_hf_config(load_config_file(path), name=name.lower())


def resolve(spec: str) -> ModelSpec:
    """A preset name, or a path to a config.json."""
    if (CONFIG_DIR / f"{spec.lower()}.json").is_file():
        return load_preset(spec.lower())
    p = Path(spec)
    if p.suffix == ".json" or p.exists():
        return from_hf_config(
            load_config_file(p), name=p.stem if p.name != "config.json" else p.parent.name or "config"
        )
    raise ValueError(f"{spec!r} is neither a preset nor a config.json file; presets: {', '.join(preset_names())}.")
