"""A corpus of 112 real config.json files (tests/data/configs, each with its source in SOURCES.md), read
as a stranger's upload would be: exact, or refused with one sentence that says why.

Proves:
- the corpus is large and every file has a source row with a commit (never written by hand);
- every file still ends as recorded in outcomes.json (`python -m scripts.config_corpus --write` rewrites
  it): a parser change that makes a config exact or refuses it fails here until the change is looked at;
- every refusal is one line that says the architecture or config is not supported and names why;
- the figures of at least 20 exact configs equal a computation written here from the file's own fields,
  without the parser (plain attention and MLA families, whose rule fits in a few lines);
- every key of every exact config is read by the parser or on the harmless table (the allowlist has no
  hole: removing any one harmless key that a corpus file uses refuses that file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.accounting import totals as acc
from core.model import config_keys
from core.model import hf_config as hf
from core.model.hf_config import from_hf_config, load_config_file
from scripts.config_corpus import CONTEXT, OUTCOMES, outcome

CORPUS = Path(__file__).resolve().parent / "data" / "configs"
FILES = sorted(p for p in CORPUS.glob("*.json") if p != OUTCOMES)
RECORDED = json.loads(OUTCOMES.read_text())
BF16 = 2


def test_the_corpus_is_large_and_every_file_has_its_source():
    assert len(FILES) >= 100
    sources = (CORPUS / "SOURCES.md").read_text()
    for p in FILES:
        row = next((line for line in sources.splitlines() if line.startswith(f"| `{p.name}`")), None)
        assert row is not None, f"{p.name} has no row in SOURCES.md"
        assert re.search(r"`[0-9a-f]{40}`", row), f"{p.name}: no commit in its source row"
    assert set(RECORDED) == {p.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_config_ends_as_recorded(path):
    assert outcome(path) == RECORDED[path.name]


def test_refusals_are_one_line_saying_not_supported():
    refused = {n: r["reason"] for n, r in RECORDED.items() if r["outcome"] == "refused"}
    assert refused, "the corpus should hold configs this engine cannot read"
    for name, reason in refused.items():
        assert "\n" not in reason and "not supported" in reason, name


def test_most_of_the_corpus_is_exact():
    """Over-refusal, measured: the share of real configs read exactly (recorded in the closing note)."""
    exact = sum(r["outcome"] == "exact" for r in RECORDED.values())
    assert exact / len(RECORDED) >= 0.9


# ----------------------------------------------------------------------------- by hand, without the parser

PLAIN = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "glm4_moe", "phi3", "cohere", "baichuan"}


def by_hand(raw: dict, n: int) -> int | None:
    """KV bytes at context n in bf16 for families whose cache rule fits here; None for the others.
    Plain attention with every layer full: 2 l n_kv d_h b n. MLA: l (d_c + d_h^R) b n."""
    c = raw.get("text_config") or raw
    mt = c.get("model_type") or raw.get("model_type")
    if c.get("kv_lora_rank") and mt in ("deepseek_v2", "deepseek_v3", "kimi_k2") and not c.get("index_topk"):
        return c["num_hidden_layers"] * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * BF16 * n
    if mt not in PLAIN:
        return None
    if c.get("sliding_window") and c.get("use_sliding_window", True) and mt != "qwen2":
        return None  # windows: not the simple rule
    if any(t != "full_attention" for t in c.get("layer_types") or []):
        return None
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    return 2 * c["num_hidden_layers"] * kv * head_dim * BF16 * n


def test_at_least_20_exact_configs_equal_the_hand_computation():
    checked = []
    for p in FILES:
        raw = json.loads(p.read_text())
        expected = by_hand(raw, CONTEXT)
        if expected is None or RECORDED[p.name]["outcome"] != "exact":
            continue
        spec = from_hf_config(load_config_file(p))
        for n in (1, 1000, CONTEXT):
            assert acc.kv_cache_bytes(spec, n) == by_hand(raw, n), p.name
        assert acc.state_bytes(spec) == 0, p.name
        checked.append(p.name)
    assert len(checked) >= 20, checked


def test_no_harmless_key_is_a_hole():
    """Each harmless key that an exact corpus file carries (with a value) and that the parser leaves unread:
    dropped from the table, that file is refused and the key is named. So the table is what lets those
    keys by, and nothing else does."""
    tried = set()
    for p in FILES:
        if RECORDED[p.name]["outcome"] != "exact":
            continue
        cfg = load_config_file(p)
        r = hf._Reader(hf._flatten(cfg))
        hf._parse(r, cfg, None)
        hf._unaccounted(r)  # marks GPT-2 style names read when their standard names were
        for key in sorted(
            k for k, v in r.cfg.items() if v is not None and k not in r.used and k in config_keys.HARMLESS
        ):
            if key in tried:
                continue
            tried.add(key)
            reason = config_keys.HARMLESS.pop(key)
            try:
                with pytest.raises(ValueError, match=re.escape(key)):
                    from_hf_config(cfg)
            finally:
                config_keys.HARMLESS[key] = reason
    assert len(tried) >= 40


def test_every_harmless_key_has_a_reason():
    for key, reason in config_keys.HARMLESS.items():
        assert isinstance(reason, str) and len(reason) >= 10, key
