"""Layers with no sequence mixer (Nemotron-H's MLP-only layers, DeciLM's no-op or linear-replaced
attention): they cache nothing, read nothing and attend to nothing."""

from __future__ import annotations

from core.accounting.base import CacheRows, Design, LatexTerm, Params, check_mode, register
from core.model.dtypes import StorageFormat
from core.model.specs import NoMixer


@register(NoMixer)
class NoMixerDesign(Design):
    def cache_rows(self, attn: NoMixer, context: int, fmt: StorageFormat, layout: str) -> list[CacheRows]:
        return []

    def attended(self, attn: NoMixer, context: int) -> int:
        return 0

    def pair_flops(self, attn: NoMixer, mode: str) -> int:
        check_mode(mode)
        return 0

    def prefill_core_flops(self, attn: NoMixer, n_tokens: int, mode: str, causal: bool) -> int:
        return 0

    def params(self, attn: NoMixer, hidden: int) -> Params:
        """DeciLM `replace_with_linear`: one hidden x hidden matrix, no bias."""
        return Params(hidden * hidden if attn.linear else 0)

    def latex_terms(self, attn: NoMixer, fmt: StorageFormat, layout: str) -> list[LatexTerm]:
        return []

    def vllm_kind(self, attn: NoMixer) -> None:
        """vLLM gives these layers no KV-cache spec (the planner skips them)."""
        return None

    def tp_shard(self, attn: NoMixer, tp: int) -> NoMixer:
        return attn

    def tp_params(self, attn: NoMixer, hidden: int, tp: int) -> Params:
        """The replacing linear map is split over the ranks like any projection."""
        return Params(-(-self.params(attn, hidden).matmul // tp))

    def describe(self, attn: NoMixer, layers: str, multi: bool) -> str:
        if attn.linear:
            return f"No attention ({layers}): a single linear map of the hidden state replaces it; nothing is cached."
        return f"No attention ({layers}): these layers have no sequence mixer and cache nothing."
