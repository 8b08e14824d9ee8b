"""core/inside.py: MHA, GQA and MLA (materialised and absorbed) built from one InsideConfig, run and measured.

What it proves, for several configurations (defaults; MHA = GQA when n_kv_heads == n_heads; MQA with one
kv head; no rope dims; a low-rank query; odd and tiny sequence lengths; a batch of 2; fp32):
- every design's measured cache `nbytes` equals core.accounting's formula and a hand count
  (MHA 2 H T D, GQA 2 G T D, MLA materialised H T (2 D + R), MLA absorbed T (C + R) numbers per sequence);
- the FLOPs FlopCounterMode counts for a prefill of T tokens and one decode step equal the formula
  beside them and a hand count (projections + T x T dense pairs at prefill, T + 1 pairs at decode);
- the cached tensors have the documented shapes: K, V (B, G, T, D); materialised K (B, H, T, D + R), V (B, H, T, D);
  absorbed c_KV (B, T, C), k_R (B, T, R);
- materialised and absorbed MLA, from the same weights, agree to ~1e-12 relative in float64 (outputs and
  attention probabilities), and `agreement` reports it;
- the attention probabilities are (H, T, T), each row sums to 1, and the upper triangle is zero (causal);
- rope_experiment: with the decoupled rope key absorbed == materialised (< 1e-10); with RoPE on the key rebuilt
  from the latent, folding W_UK into the query is wrong (> 1e-3), on random and on real-text input;
- InsideConfig refuses bad values with a ValueError that names the problem;
- dataflow_dot is well-formed DOT with the live shapes of every node, and the nodes it marks as cached
  are exactly the tensors run_designs measures in the cache, with the same shapes;
- text_input gives (1, T, E) float64 features standardised per feature, deterministic, any length.
"""

from __future__ import annotations

import re
from functools import cache

import pytest
import torch

from core.lab.inside import (
    MAX_ELEMENTS,
    PARTS,
    InsideConfig,
    agreement,
    dataflow_dot,
    part_config,
    random_input,
    rope_experiment,
    run_designs,
    text_input,
)

DESIGNS = ("MHA", "GQA", "MLA materialised", "MLA absorbed")

CONFIGS = {
    "defaults": InsideConfig(),
    "mha-eq-gqa": InsideConfig(n_heads=4, n_kv_heads=4),
    "mqa": InsideConfig(n_kv_heads=1),
    "no-rope": InsideConfig(rope_dim=0),
    "q-lora": InsideConfig(q_lora_rank=24),
    "odd-small": InsideConfig(d_model=48, n_heads=6, n_kv_heads=3, head_dim=12, kv_lora_rank=20, rope_dim=6, seq_len=5),
    "one-token": InsideConfig(d_model=16, n_heads=2, n_kv_heads=1, head_dim=4, kv_lora_rank=4, rope_dim=2, seq_len=1),
    "wide-latent": InsideConfig(d_model=32, n_heads=3, n_kv_heads=3, head_dim=8, kv_lora_rank=96, seq_len=7, seed=5),
}
BATCH = {"q-lora": 2}  # one configuration runs a batch of two sequences
FP32 = ("defaults", "odd-small")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: with the 2 cores shared by other jobs, torch's 2-thread pool spin-waits and the
    layers run 10-100x slower; results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@cache
def runs(name: str, dtype: torch.dtype = torch.float64):
    cfg = CONFIGS[name]
    x = random_input(cfg, batch=BATCH.get(name, 1))
    return cfg, x, run_designs(cfg, x, dtype)


def hand_cache_numbers(cfg: InsideConfig, design: str) -> int:
    """Numbers cached per sequence after a prefill of T tokens."""
    H, G, D, C, R, T = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.kv_lora_rank, cfg.rope_dim, cfg.seq_len
    return {
        "MHA": 2 * H * T * D,
        "GQA": 2 * G * T * D,
        "MLA materialised": H * T * (D + R) + H * T * D,
        "MLA absorbed": T * (C + R),
    }[design]


def hand_flops(cfg: InsideConfig, design: str) -> tuple[int, int]:
    """(prefill of T tokens, one decode step) for one sequence: 2 x weights per token for the projections,
    plus the dense T x T (prefill) or T + 1 (decode) query-key pairs of the attention core."""
    E, H, G, D, C, R, T = (
        cfg.d_model,
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.head_dim,
        cfg.kv_lora_rank,
        cfg.rope_dim,
        cfg.seq_len,
    )
    if design in ("MHA", "GQA"):
        g = H if design == "MHA" else G
        proj = 2 * (E * H * D + 2 * E * g * D + H * D * E)
        pair = 2 * H * (D + D)  # q.k and p.v
    else:
        q = E * cfg.q_lora_rank + cfg.q_lora_rank * H * (D + R) if cfg.q_lora_rank else E * H * (D + R)
        proj = 2 * (q + E * (C + R) + C * H * (D + D) + H * D * E)  # W_Q, W_DKV + W_KR, W_UK + W_UV, W_O
        pair = 2 * H * (D + R + D) if design == "MLA materialised" else 2 * H * (C + R + C)
    return T * proj + T * T * pair, proj + (T + 1) * pair


# ----------------------------------------------------------------------------- caches and FLOPs


@pytest.mark.parametrize("name", CONFIGS)
def test_cache_bytes_measured_equal_formula_and_hand_count(name):
    cfg, x, res = runs(name)
    assert list(res) == list(DESIGNS)
    B = x.shape[0]
    for design, r in res.items():
        assert r.design == design
        assert r.cache_nbytes == sum(c.nbytes for c in r.cached)
        assert r.cache_nbytes == r.cache_formula, design
        assert r.cache_nbytes == B * hand_cache_numbers(cfg, design) * 8, design  # float64


@pytest.mark.parametrize("name", FP32)
def test_fp32_cache_is_half_of_fp64_and_still_matches(name):
    cfg = CONFIGS[name]
    _, _, r64 = runs(name)
    _, _, r32 = runs(name, torch.float32)
    for design in DESIGNS:
        assert r32[design].cache_nbytes == r32[design].cache_formula == r64[design].cache_nbytes // 2
        assert r32[design].cache_nbytes == hand_cache_numbers(cfg, design) * 4
        assert (r32[design].prefill_flops, r32[design].decode_flops) == (
            r64[design].prefill_flops,
            r64[design].decode_flops,
        )


@pytest.mark.parametrize("name", CONFIGS)
def test_flops_measured_equal_formula_and_hand_count(name):
    cfg, x, res = runs(name)
    B = x.shape[0]
    for design, r in res.items():
        assert r.prefill_flops == r.prefill_formula, (design, r.prefill_flops, r.prefill_formula)
        assert r.decode_flops == r.decode_formula, (design, r.decode_flops, r.decode_formula)
        prefill, decode = hand_flops(cfg, design)
        assert (r.prefill_flops, r.decode_flops) == (B * prefill, B * decode), design


def test_mha_and_gqa_coincide_when_kv_heads_equal_heads():
    _, _, res = runs("mha-eq-gqa")
    mha, gqa = res["MHA"], res["GQA"]
    assert [c.shape for c in mha.cached] == [c.shape for c in gqa.cached]
    assert (mha.cache_nbytes, mha.prefill_flops, mha.decode_flops) == (
        gqa.cache_nbytes,
        gqa.prefill_flops,
        gqa.decode_flops,
    )
    assert torch.equal(mha.out, gqa.out)  # same seed, same shapes: the same layer


def test_mqa_caches_one_head_and_a_quarter_of_gqa():
    _, _, mqa = runs("mqa")
    _, _, gqa = runs("defaults")  # 2 kv heads
    assert mqa["GQA"].cached[0].shape[1] == 1
    assert mqa["GQA"].cache_nbytes * 8 == mqa["MHA"].cache_nbytes
    assert mqa["GQA"].cache_nbytes * 2 == gqa["GQA"].cache_nbytes


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", CONFIGS)
def test_cached_tensors_have_the_documented_shapes(name):
    cfg, x, res = runs(name)
    B, T = x.shape[0], cfg.seq_len
    H, G, D, C, R = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.kv_lora_rank, cfg.rope_dim
    expected = {
        "MHA": [("K", (B, H, T, D)), ("V", (B, H, T, D))],
        "GQA": [("K", (B, G, T, D)), ("V", (B, G, T, D))],
        "MLA materialised": [("K", (B, H, T, D + R)), ("V", (B, H, T, D))],
        "MLA absorbed": [("c_KV (latent)", (B, T, C)), ("k_R (rope key)", (B, T, R))],
    }
    for design, r in res.items():
        assert [(c.name, c.shape) for c in r.cached] == expected[design], design
        assert r.out.shape == (B, T, cfg.d_model)
        assert r.probs.shape == (H, T, T)


# ----------------------------------------------------------------------------- materialised vs absorbed


@pytest.mark.parametrize("name", CONFIGS)
def test_materialised_and_absorbed_agree_in_float64(name):
    _, _, res = runs(name)
    n, a = res["MLA materialised"], res["MLA absorbed"]
    assert n.out.dtype == torch.float64
    rel = float((n.out - a.out).norm() / n.out.norm())
    assert rel < 1e-12, rel
    assert float((n.probs - a.probs).abs().max()) < 1e-6  # probs are handed out as float32
    ag = agreement(n.out, a.out)
    assert ag.max_abs_diff < 1e-12 * float(n.out.abs().max()) + 1e-300
    assert abs(1 - ag.cosine) < 1e-12


def test_agreement_of_different_tensors():
    a = torch.tensor([1.0, 0.0])
    ag = agreement(a, torch.tensor([0.0, 2.0]))
    assert ag.max_abs_diff == 2.0 and abs(ag.cosine) < 1e-15
    assert agreement(a, -a).cosine == pytest.approx(-1.0)


def test_fp32_materialised_and_absorbed_agree_to_single_precision():
    _, _, res = runs("defaults", torch.float32)
    n, a = res["MLA materialised"].out, res["MLA absorbed"].out
    assert n.dtype == torch.float32
    assert 0 < float((n - a).norm() / n.norm()) < 1e-5


# ----------------------------------------------------------------------------- attention probabilities


@pytest.mark.parametrize("name", CONFIGS)
def test_probabilities_are_causal_rows_that_sum_to_one(name):
    cfg, _, res = runs(name)
    T = cfg.seq_len
    upper = torch.ones(T, T, dtype=torch.bool).triu(1)
    for design, r in res.items():
        p = r.probs.double()
        assert torch.allclose(p.sum(-1), torch.ones(cfg.n_heads, T, dtype=torch.float64), atol=1e-6), design
        assert (p[:, upper] == 0).all(), design
        assert (p >= 0).all() and torch.isfinite(p).all()
        assert torch.allclose(p[:, 0, 0], torch.ones(cfg.n_heads, dtype=torch.float64))  # the first token sees itself


def test_decode_step_matches_a_full_forward():
    """The decode after the prefill continues the same sequence: its output is the full forward's last row."""
    from core.layers.attention import GQAttention, MLAttention

    cfg, x, res = runs("defaults")
    specs = cfg.specs()
    with torch.no_grad():
        for design, layer, kw in (
            ("GQA", GQAttention(specs["GQA"], cfg.d_model, seed=cfg.seed, dtype=torch.float64), {}),
            ("MLA absorbed", MLAttention(specs["MLA"], cfg.d_model, seed=cfg.seed, dtype=torch.float64), {}),
        ):
            full, _ = layer(x, None, **kw)
            assert torch.allclose(full[:, :-1], res[design].out, atol=1e-12, rtol=0)
            _, cache = layer(x[:, :-1], None, **kw)
            step, _ = layer(x[:, -1:], cache, **kw)
            assert torch.allclose(step, full[:, -1:], atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- why RoPE is decoupled


@pytest.mark.parametrize("name", CONFIGS)
def test_rope_experiment_on_random_input(name):
    cfg = CONFIGS[name]
    x = random_input(cfg, extra=0)
    r = rope_experiment(cfg, x)
    assert r.decoupled_error < 1e-10, r
    if cfg.seq_len > 1:  # one token: position 0, the rotation is the identity
        assert r.coupled_error > 1e-3, r
    assert r.rope_key_bytes_per_token == cfg.rope_dim * 8
    assert r.latent_bytes_per_token == cfg.kv_lora_rank * 8


@pytest.mark.parametrize("name", ["defaults", "odd-small", "no-rope"])
def test_rope_experiment_on_text_input(name):
    cfg = CONFIGS[name]
    r = rope_experiment(cfg, text_input(cfg.seq_len, cfg.d_model))
    assert r.decoupled_error < 1e-10, r
    assert r.coupled_error > 1e-3, r


def test_rope_experiment_in_fp32():
    cfg = CONFIGS["defaults"]
    r = rope_experiment(cfg, random_input(cfg, extra=0), torch.float32)
    assert r.decoupled_error < 1e-5 and r.coupled_error > 1e-3
    assert r.rope_key_bytes_per_token == cfg.rope_dim * 4 and r.latent_bytes_per_token == cfg.kv_lora_rank * 4


# ----------------------------------------------------------------------------- bad configurations


@pytest.mark.parametrize(
    "kwargs,words",
    [
        (dict(n_heads=8, n_kv_heads=3), ["query heads (8)", "multiple of kv heads (3)"]),
        (dict(n_heads=6, n_kv_heads=4), ["query heads (6)", "kv heads (4)"]),
        (dict(rope_dim=3), ["rope dimension (3)", "even"]),
        (dict(rope_dim=-2), ["rope dimension (-2)"]),
        (dict(d_model=0), ["d_model", "at least 1"]),
        (dict(n_heads=0), ["n_heads", "at least 1"]),
        (dict(n_kv_heads=0), ["n_kv_heads", "at least 1"]),
        (dict(head_dim=-4), ["head_dim", "at least 1"]),
        (dict(kv_lora_rank=0), ["kv_lora_rank", "at least 1"]),
        (dict(seq_len=0), ["seq_len", "at least 1"]),
        (dict(n_heads=64, n_kv_heads=1, seq_len=1025), ["67,240,000", "limit", "fewer heads or a shorter sequence"]),
        (dict(n_heads=8, n_kv_heads=1, seq_len=4096, kv_lora_rank=4096), ["134,217,728", "limit"]),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_bad_configs_raise_value_error_naming_the_problem(kwargs, words):
    with pytest.raises(ValueError) as e:
        InsideConfig(**kwargs)
    msg = str(e.value)
    for w in words:
        assert w in msg, msg


def test_the_largest_sliders_are_refused_by_the_budgets():
    """64 heads x 1024 tokens (64M scores, 512 MiB per fp64 copy; a link of that size once left the server
    holding 1-2 GB) is over the tensor-size limit of 8M numbers; 8 heads x 1024 tokens is exactly at it.
    The compute budget refuses what is under the size limit but would take minutes (an all-maximum run
    took 109 s and 11 GB before the budgets existed)."""
    assert 8 * 1024 * 1024 == MAX_ELEMENTS
    with pytest.raises(ValueError, match="8,388,608"):
        InsideConfig(n_heads=64, n_kv_heads=64, seq_len=1024, kv_lora_rank=1024)
    InsideConfig(d_model=16, n_heads=8, n_kv_heads=8, head_dim=4, kv_lora_rank=4, rope_dim=0, seq_len=1024)
    with pytest.raises(ValueError, match="GFLOP"):
        InsideConfig(d_model=4096, n_heads=8, n_kv_heads=8, head_dim=256, kv_lora_rank=1024, seq_len=1024)
    InsideConfig(d_model=1024, n_heads=16, n_kv_heads=4, head_dim=64, seq_len=512)  # a big but quick one


# ----------------------------------------------------------------------------- data-flow diagrams

NODE = re.compile(r'^(\w+) \[label="(.*?)\\n\(([\d x]+)\)(\\ncached|\\nrebuilt every step)?" shape=box (.*)\];$')


def parse_dot(dot: str) -> dict[str, tuple[str, tuple[int, ...], str, str]]:
    """{node: (label, shape, tag, attributes)}; also checks the DOT is well-formed and edges join known nodes."""
    lines = dot.splitlines()
    assert lines[0] == "digraph G {" and lines[-1] == "}"
    assert dot.count("{") == dot.count("}") == 1
    nodes, edges = {}, []
    for line in lines[1:-1]:
        m = NODE.match(line)
        if m:
            name, label, dims, tag, attrs = m.groups()
            assert name not in nodes
            nodes[name] = (label, tuple(int(d) for d in dims.split(" x ")), (tag or "").replace("\\n", ""), attrs)
        elif "->" in line:
            edges += re.findall(r"(\w+) -> (\w+)", line)
        else:
            assert line.startswith("rankdir=LR"), line
    assert edges
    for a, b in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes


@pytest.mark.parametrize("name", CONFIGS)
def test_dataflow_cached_nodes_are_the_measured_cache(name):
    cfg, x, res = runs(name)
    for design in DESIGNS:
        nodes = parse_dot(dataflow_dot(design, cfg, batch=x.shape[0]))
        cached = [(n, shape) for n, (_, shape, tag, _) in nodes.items() if tag == "cached"]
        assert [shape for _, shape in cached] == [c.shape for c in res[design].cached], design
        for n, _ in cached:
            assert 'fillcolor="#bfdbfe"' in nodes[n][3] and "bold" in nodes[n][3]
        plain = [n for n, (_, _, tag, _) in nodes.items() if not tag]
        assert all('fillcolor="#f3f4f6"' in nodes[n][3] for n in plain)
        B, T, E = x.shape[0], cfg.seq_len, cfg.d_model
        assert nodes["x"][1] == (B, T, E) and nodes["out"][1] == (B, T, E)
        assert nodes["s"][1] == (B, cfg.n_heads, T, T)


def test_dataflow_shapes_at_the_defaults():
    cfg = InsideConfig()  # E 256, H 8, G 2, D 32, C 64, R 16, T 64
    mha, gqa = dataflow_dot("MHA", cfg), dataflow_dot("GQA", cfg)
    materialised, absorbed = dataflow_dot("MLA materialised", cfg), dataflow_dot("MLA absorbed", cfg)
    assert "(1 x 64 x 256)" in mha  # x
    assert "(1 x 8 x 64 x 32)\\ncached" in mha and "shared by" not in mha
    assert "(1 x 2 x 64 x 32)\\ncached" in gqa and 'label="shared by 4 heads"' in gqa
    assert (
        "(1 x 8 x 64 x 48)\\ncached" in materialised and "(1 x 8 x 64 x 32)\\ncached" in materialised
    )  # K: D + R, V: D
    assert "(1 x 64 x 8 x 64)" in absorbed  # q_C: (B, T, H, C)
    assert "(1 x 64 x 64)\\ncached" in absorbed and "(1 x 64 x 16)\\ncached" in absorbed  # c_KV, k_R
    assert "(1 x 8 x 64 x 64)" in absorbed  # scores (B, H, T, T)
    assert absorbed.count("\\ncached") == 2 and materialised.count("\\ncached") == 2
    assert "cached" not in dataflow_dot("MHA", cfg).split("k [")[0]  # x and q are not cached


def test_dataflow_follows_the_config():
    cfg = InsideConfig(d_model=64, n_heads=12, n_kv_heads=3, head_dim=16, kv_lora_rank=40, rope_dim=4, seq_len=9)
    assert "(2 x 3 x 9 x 16)\\ncached" in dataflow_dot("GQA", cfg, batch=2)
    assert "shared by 4 heads" in dataflow_dot("GQA", cfg)
    assert "(1 x 9 x 12 x 40)" in dataflow_dot("MLA absorbed", cfg)
    assert "(1 x 12 x 9 x 20)\\ncached" in dataflow_dot("MLA materialised", cfg)


# ----------------------------------------------------------------------------- real text as input


@pytest.fixture(scope="module")
def text_65():
    return text_input(65, 256)


def test_text_input_is_standardised_real_text_features(text_65):
    x = text_65
    assert x.shape == (1, 65, 256) and x.dtype == torch.float64
    assert torch.isfinite(x).all()
    assert float(x[0].mean(0).abs().max()) < 1e-10  # every feature centred
    assert torch.allclose(x[0].std(0), torch.ones(256, dtype=torch.float64), atol=1e-5)  # and unit variance

    # real text, not noise: consecutive tokens are more alike than seeded random features
    def neighbour_cos(t):
        return float(torch.nn.functional.cosine_similarity(t[0, 1:], t[0, :-1], dim=-1).mean())

    assert neighbour_cos(x) > neighbour_cos(random_input(InsideConfig(), extra=1)) + 0.05


def test_text_input_is_deterministic_and_seeded(text_65):
    assert torch.equal(text_input(65, 256), text_65)
    other = text_input(65, 256, seed=1)
    assert other.shape == text_65.shape and not torch.allclose(other, text_65)


@pytest.mark.parametrize("n,e", [(5, 16), (33, 48), (1025, 64)])
def test_text_input_any_length_and_width(n, e):
    x = text_input(n, e)  # 1025 tokens: more than the shipped passages hold, they repeat
    assert x.shape == (1, n, e) and torch.isfinite(x).all()
    assert torch.allclose(x[0].std(0), torch.ones(e, dtype=torch.float64), atol=1e-5)


def test_designs_run_on_text_input():
    cfg = CONFIGS["odd-small"]
    res = run_designs(cfg, text_input(cfg.seq_len + 1, cfg.d_model))
    for r in res.values():
        assert r.cache_nbytes == r.cache_formula and r.prefill_flops == r.prefill_formula
    n, a = res["MLA materialised"].out, res["MLA absorbed"].out
    assert float((n - a).norm() / n.norm()) < 1e-12


def test_each_layer_run_alone_on_its_part_config_equals_the_full_run():
    """The page caches each layer on `part_config` (fields the layer does not read fixed): its run must be the
    same as in the full run, number for number."""
    cfg = InsideConfig(d_model=64, n_heads=4, n_kv_heads=2, head_dim=8, kv_lora_rank=12, rope_dim=4, seq_len=10)
    x = random_input(cfg)
    full = run_designs(cfg, x)
    for part, designs in PARTS.items():
        alone = run_designs(part_config(cfg, part), random_input(part_config(cfg, part)), parts=(part,))
        assert set(alone) == set(designs)
        for d in designs:
            a, b = alone[d], full[d]
            assert (a.cached, a.cache_nbytes, a.cache_formula) == (b.cached, b.cache_nbytes, b.cache_formula)
            assert (a.prefill_flops, a.decode_flops, a.prefill_formula) == (
                b.prefill_flops,
                b.decode_flops,
                b.prefill_formula,
            )
            assert torch.equal(a.probs, b.probs) and torch.equal(a.out, b.out)
