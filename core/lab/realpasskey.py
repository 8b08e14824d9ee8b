"""A passkey in real text, retrieved by SmolLM2-135M from a compressed cache.

A trial hides "The pass key is 58213. Remember it. 58213 is the pass key." at some depth of a stretch of
held-out text (Hamlet) of N tokens in all, then asks "What is the pass key? The pass key is " and reads the
model's greedy answer. As everywhere in core.lab.realquality, the context (text with the needle) is prefilled
uncompressed, compressed once by the method, and the question and answer read that compressed cache. The
answer is teacher-forced, which gives the greedy decode exactly: a trial succeeds when the most likely token
at each of the five digit positions is the right digit (SmolLM's tokenizer gives every digit its own token).
The question ends with the space before the digits, so the model is not scored on choosing to answer at all.

The cache is compressed before the question arrives (query-agnostic, as a server compressing a long document
once for many questions would): the hard case for SnapKV, whose paper compresses with the question inside its
observation window, so that its votes point at the needle. Here its votes come from the last 32 tokens of text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from core.lab import real_methods, realquality, smollm

CONTEXTS = (1024, 2048)  # N: tokens of text + needle before the question
TRIALS = 12  # per context; trial i puts the needle at depth (i + 0.5) / TRIALS
QUESTION = "\nWhat is the pass key? The pass key is "


@dataclass(frozen=True)
class Trial:
    context: int
    index: int
    key: str
    depth: float  # where the needle starts, as a share of the text before it
    ids: Tensor  # (1, N + question + answer)
    answer_at: int  # position of the first answer digit in ids


def trial(lm: smollm.SmolLM, context: int, index: int, trials: int = TRIALS) -> Trial:
    """Trial `index` of `trials` at context N: a random 5-digit key (seeded by N and index), a stretch of text
    starting at a seeded offset, the needle at depth (index + 0.5) / trials."""
    rng = random.Random(f"{context}:{index}")
    key = "".join(rng.choice("0123456789") for _ in range(5))
    needle = lm.encode(f"\nThe pass key is {key}. Remember it. {key} is the pass key.\n")
    text = smollm.text_ids(lm)[0].tolist()
    if len(text) < context:
        raise ValueError(f"the held-out text has {len(text):,} tokens, fewer than a context of {context:,}.")
    start = rng.randrange(0, len(text) - context + 1)
    filler = text[start : start + context - len(needle)]
    depth = (index + 0.5) / trials
    at = round(depth * len(filler))
    ctx = filler[:at] + needle + filler[at:]
    question, answer = lm.encode(QUESTION), lm.encode(key)
    ids = torch.tensor([ctx + question + answer], dtype=torch.long)
    return Trial(context, index, key, depth, ids, len(ctx) + len(question))


def answers(lm: smollm.SmolLM, t: Trial, pre: realquality.Prefill, method: real_methods.Method) -> tuple[str, int]:
    """The model's greedy five digits reading the method's compressed context, and the bytes it stored."""
    caches, attn, nbytes = realquality.compress(lm, pre, method)
    rest = t.ids[:, t.context :]
    logits = lm.model(rest, caches, attn=attn).logits  # (1, question + answer, V)
    first = t.answer_at - t.context - 1  # the logit that predicts the first digit
    pred = logits[0, first : first + len(t.key)].argmax(-1).tolist()
    return lm.decode(pred), nbytes


def prefill(lm: smollm.SmolLM, t: Trial) -> realquality.Prefill:
    return realquality.prefill(lm, t.ids[:, : t.context])
