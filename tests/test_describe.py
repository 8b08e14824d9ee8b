"""The attention design said in words matches the config: the numbers in the sentences are the
config's, hybrids name every layer type, and MLA says why num_key_value_heads is ignored."""

from core.accounting.describe import describe
from core.model.presets import load_preset, preset_names


def test_every_preset_is_described():
    for name in preset_names():
        lines = describe(load_preset(name))
        assert lines and all(isinstance(x, str) and x for x in lines)


def test_gqa_numbers():
    (line,) = describe(load_preset("llama-3.1-70b"))
    assert "64 query heads share 8 key/value heads of 128" in line and "2,048 numbers" in line


def test_mla_says_latent_and_why_kv_heads_are_ignored():
    text = " ".join(describe(load_preset("deepseek-v3")))
    assert "512-wide latent plus a 64-wide rope key" in text
    assert "num_key_value_heads (128) is ignored" in text


def test_hybrids_name_every_layer_type():
    gemma = " ".join(describe(load_preset("gemma-3-27b")))
    assert "52 of 62 layers keep only the last 1,024 tokens" in gemma and "10 of 62 layers attend" in gemma
    flash = " ".join(describe(load_preset("deepseek-v4-flash")))
    assert "CSA (21 of 43 layers)" in flash and "HCA (20 of 43 layers)" in flash and "Sliding-only (2 of 43" in flash
    assert "top 512 entries" in flash


def test_release_formats_are_reported():
    assert any("routed experts mxfp4" in x for x in describe(load_preset("gpt-oss-120b")))
    assert not any("released weights" in x for x in describe(load_preset("llama-3.1-8b")))
