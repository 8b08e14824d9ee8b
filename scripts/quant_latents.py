"""Precompute the Quantized page's MLA-latent section: every layer of all-MiniLM-L6-v2, every shipped text
and every latent rank the page offers, each scheme's error (core.lab.quantlab.latent_errors). The page then
answers a rank move at once instead of converting and quantizing the layer (about 0.3 s of CPU);
tests/test_quant.py recomputes some entries and checks they agree.

    .venv/bin/python scripts/quant_latents.py     # about a minute
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.lab import minilm, quantlab  # noqa: E402
from core.lab.passages import load_passages  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    mini = minilm.load_minilm()
    texts = [p.text for p in load_passages()]
    out = {}
    for layer in range(quantlab.LAYERS):
        for passage, text in enumerate(texts):
            ids = minilm.tokenize(text, 512)
            for rank in quantlab.LATENT_RANKS:
                out[f"{layer}|{passage}|{rank}"] = quantlab.latent_errors(mini, layer, ids, rank).to_dict("records")
        print("layer", layer, flush=True)
    quantlab.LATENTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    quantlab.LATENTS_FILE.write_text(json.dumps(out, indent=0))
    print(quantlab.LATENTS_FILE, len(out))


if __name__ == "__main__":
    main()
