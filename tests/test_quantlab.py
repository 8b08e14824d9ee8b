"""core/lab/quantlab.py: the latent-quantization results the Quantized page ships cover every layer, text
and rank it offers, and equal what latent_errors computes now."""

import pandas as pd
import pytest

from core.lab import minilm, quantlab
from core.lab.passages import load_passages


def test_shipped_latents_cover_every_view():
    shipped = quantlab.shipped_latents()
    n_texts = len(load_passages())
    want = {
        f"{layer}|{p}|{r}" for layer in range(quantlab.LAYERS) for p in range(n_texts) for r in quantlab.LATENT_RANKS
    }
    assert set(shipped) == want


@pytest.mark.parametrize("key", ["0|0|8", "3|2|64", "5|3|384"])
def test_shipped_latents_equal_a_fresh_run(key):
    layer, passage, rank = map(int, key.split("|"))
    text = load_passages()[passage].text
    fresh = quantlab.latent_errors(minilm.load_minilm(), layer, minilm.tokenize(text, 512), rank)
    pd.testing.assert_frame_equal(pd.DataFrame(quantlab.shipped_latents()[key]), fresh, rtol=1e-4, check_dtype=False)
