"""The attention design of a model, said in words (for the planner and the CLI)."""

from __future__ import annotations

from core.specs import CompressedSpec, DSASpec, GQASpec, MLASpec, ModelSpec


def _gqa(a: GQASpec) -> str:
    per = 2 * a.n_kv_heads * a.head_dim
    if a.design == "MHA":
        what = f"MHA: every one of the {a.n_heads} heads caches its own key and value of {a.head_dim}"
    elif a.design == "MQA":
        what = f"MQA: all {a.n_heads} query heads share one key and one value head of {a.head_dim}"
    else:
        what = (
            f"GQA: {a.n_heads} query heads share {a.n_kv_heads} key/value heads of {a.head_dim} "
            f"({a.group_size} query heads per group)"
        )
    return f"{what}; caches 2 x {a.n_kv_heads} x {a.head_dim} = {per:,} numbers per token per layer"


def describe(spec: ModelSpec) -> list[str]:
    """Sentences a person can check against the config: what is cached per token and why."""
    out: list[str] = []
    kinds = spec.layer_kinds
    first = {k: next(a for a in spec.attention if a.kind == k) for k in kinds}
    said: set[tuple[int, int, int]] = set()
    for kind, a in first.items():
        n = kinds[kind]
        layers = f"{n} of {spec.n_layers} layers" if len(kinds) > 1 else f"all {n} layers"
        if isinstance(a, GQASpec):
            dims = (a.n_heads, a.n_kv_heads, a.head_dim)
            s = _gqa(a) if dims not in said else "The same heads"
            said.add(dims)
            if a.sliding_window:
                s += f"; {layers} keep only the last {a.sliding_window:,} tokens (sliding window)"
            elif len(kinds) > 1:
                s += f"; {layers} attend to every token"
            out.append(s + ".")
        elif isinstance(a, DSASpec):
            out.append(
                f"DSA (MLA + lightning indexer): caches a {a.kv_lora_rank}-wide latent, a {a.qk_rope_head_dim}-wide "
                f"rope key and a {a.index_head_dim}-wide indexer key per token per layer; each query attends to at "
                f"most {a.index_topk:,} tokens chosen by a {a.index_n_heads}-head indexer that scores every token."
            )
        elif isinstance(a, MLASpec):
            out.append(
                f"MLA: caches a {a.kv_lora_rank}-wide latent plus a {a.qk_rope_head_dim}-wide rope key per token per "
                f"layer, shared by all {a.n_heads} heads; keys and values ({a.qk_head_dim} and {a.v_head_dim} wide per "
                "head) are rebuilt from the latent, or folded into the query and output projections (absorbed)."
            )
        elif isinstance(a, CompressedSpec):
            if a.compress_ratio == 0:
                s = (
                    f"Sliding-only ({layers}): keeps the last {a.sliding_window} tokens, "
                    f"one {a.head_dim}-wide K=V entry each"
                )
            elif a.indexed:
                s = (
                    f"CSA ({layers}): pools every {a.compress_ratio} tokens (overlapping windows of "
                    f"{2 * a.compress_ratio}) into one {a.head_dim}-wide K=V entry with a {a.index_head_dim}-wide "
                    f"indexer key; each query attends to the top {a.index_topk:,} entries"
                )
            else:
                s = (
                    f"HCA ({layers}): pools every {a.compress_ratio} tokens into one {a.head_dim}-wide K=V entry; "
                    "each query attends to all entries"
                )
            if a.compress_ratio:
                s += f", plus the last {a.sliding_window} raw tokens"
            out.append(s + ".")
    out.extend(spec.notes)
    return out
