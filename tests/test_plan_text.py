"""The planner's headlines and its sentences about its pool (core/view/plan_text.py) carry the plan's own numbers.

Proves:
- Llama-4-Scout on 8 x H200 at 1,048,576 tokens: 1,016,741 blocks of 16 hold 15,199,164 tokens (not blocks x
  16), because its 48 layers form 4 KV-cache groups (1 full, 3 chunked) and a request takes 65,536 + 3 x 1,536
  blocks; the longest request, (1,016,740 - 4,608) x 16 = 16,194,112 tokens, is longer than that count because
  the chunked groups stop at their chunk; the sentences say so with these numbers;
- a full-attention model whose tokens are blocks x 16 gets no sentence, one at a context off the block grid gets
  the ceil, and an estimated plan none;
- the headlines (concurrency, longest request, decode step) are the plan's numbers, an estimate said so;
- on every preset planned block by block, the blocks each group takes add up to the plan's blocks per request,
  the tokens named are the plan's, and a longest-request sentence names the plan's longest request.
"""

import re

from core.accounting import planner as pl
from core.model.gpus import GPUS
from core.model.presets import load_preset, preset_names
from core.view.plan_text import headlines, pool_arithmetic

H200X8 = pl.Hardware("H200", GPUS["H200"].memory_bytes, 4.8e12, 8, 0.9, 0)


def test_llama_4_scout_tokens_and_longest_request_are_explained():
    p = pl.plan(load_preset("llama-4-scout"), H200X8, 1_048_576)
    assert (p.num_blocks, p.kv_cache_tokens, p.pool_max_context) == (1_016_741, 15_199_164, 16_194_112)
    why, longest = pool_arithmetic(p)
    assert why.startswith("Why 15,199,164 tokens and not 1,016,741 blocks x 16 = 16,267,856: ")
    assert "1,016,741 / 70,144 blocks per request x 1,048,576" in why
    assert "4 KV-cache groups of 12 layers (1 full-attention, 3 chunked-attention)" in why
    assert "65,536 blocks in the full-attention group and 1,536 blocks in each of the 3 chunked-attention groups" in why
    assert "(its 8,192-token chunk plus 16,384 tokens in flight, at most): 70,144 blocks." in why
    assert "(1,016,740 - 4,608) x 16 = 16,194,112 tokens, more than the 15,199,164 above." in longest


def test_full_attention_on_the_block_grid_needs_no_sentence_and_off_it_gets_the_ceil():
    v3 = load_preset("deepseek-v3")
    p = pl.plan(v3, H200X8, 131_072, weight_dtype="native")
    assert p.kv_cache_tokens == p.num_blocks * 16 and pool_arithmetic(p) == []
    off = pl.plan(v3, H200X8, 1000, weight_dtype="native")
    (why,) = pool_arithmetic(off)
    assert f"Why {off.kv_cache_tokens:,} tokens" in why and "ceil(1,000 / 16) = 63 blocks (1,008 positions)" in why
    assert pool_arithmetic(pl.plan(load_preset("kimi-linear-48b-a3b"), H200X8, 131_072)) == []  # an estimate


def test_every_exact_preset_plan_is_explained_with_its_own_numbers():
    for name in preset_names():
        for context, batch in ((131_072, 1), (1_000, 3)):
            try:
                p = pl.plan(load_preset(name), H200X8, context, batch, weight_dtype="native")
            except (ValueError, pl.acc.ParamsUnknown):
                continue
            lines = pool_arithmetic(p)
            if not p.exact:
                assert lines == [], name
                continue
            if p.kv_cache_tokens != p.num_blocks * 16:
                assert lines[0].startswith(f"Why {p.kv_cache_tokens:,} tokens"), name
                taken = re.findall(r"([\d,]+) blocks in (?:the|each of the (\d+))", lines[0])
                if taken:
                    total = sum(int(b.replace(",", "")) * int(k or 1) for b, k in taken)
                    assert total == p.blocks_per_request, (name, lines[0])
            for line in lines[1:]:
                assert f"= {p.pool_max_context:,} tokens" in line, (name, line)


def test_headlines_are_the_plans_numbers():
    """Concurrency at the context, the longest request and the decode-step bound: the plan's own numbers, with
    where each comes from in the help."""
    p = pl.plan(load_preset("deepseek-v3"), H200X8, 131_072, weight_dtype="native")
    (c, longest, step) = headlines(p)
    assert (c.label, c.value) == ("Concurrency at 128K tokens", f"{p.max_concurrency:,.2f}x")
    assert "37,236 blocks per GPU / 8,192 blocks per request" in c.help
    assert (longest.label, longest.value) == ("Max context per request (tokens)", f"{p.max_context:,}")
    assert f"the cache alone could hold {p.pool_max_context:,} tokens" in longest.help
    assert (step.label, step.value) == ("Decode step ≥", f"{p.step_seconds * 1e3:,.2f} ms")
    assert f"{p.tokens_per_second:,.0f} tokens/s" in step.help
    est = headlines(pl.plan(load_preset("kimi-linear-48b-a3b"), H200X8, 131_072))
    assert est[0].help.startswith("An estimate in bytes")
