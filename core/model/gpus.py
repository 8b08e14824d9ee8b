"""GPU presets (docs/facts.md section 8): the vendor's datasheet figures, and the memory the device reports.

`memory_gb` is the vendor's figure in decimal GB; the planner plans from it (`memory_bytes`). What an engine
can allocate from is what CUDA or ROCm reports (`torch.cuda.mem_get_info()`'s total, the `total_gpu_memory`
vLLM logs), a few GiB more on most cards: `reported_gib`, each with its source, a public log. Where no log was
found the figure is an estimate, marked so (`reported_estimate`) with how it was made. Planning from the
reported figure needs vLLM's whole memory line (non-torch memory, the activation peak), which is not modelled
yet: until then the pages say both figures.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float  # vendor figure, decimal gigabytes (1e9 bytes)
    bandwidth_tb_s: float  # vendor figure, decimal TB/s
    bf16_tflops: float  # dense
    reported_gib: float  # total memory as the device reports it (CUDA / ROCm), binary GiB
    reported_source: str  # a public log that prints it, or how the estimate was made
    reported_estimate: bool = False  # no log found: `reported_source` says how the figure was estimated

    @property
    def memory_bytes(self) -> int:
        """Memory per GPU, the datasheet's decimal GB in bytes: what the planner plans from."""
        return int(self.memory_gb * 1e9)

    @property
    def reported_bytes(self) -> int:
        """Memory per GPU as the device reports it: what vLLM's `total x utilization` starts from."""
        return int(self.reported_gib * GIB)

    def describe_memory(self) -> str:
        """'80 GB on the datasheet; the device reports 79.11 GiB' (with 'about' and 'estimated' for estimates)."""
        said = "is estimated to report about" if self.reported_estimate else "reports"
        return f"{self.memory_gb:g} GB on the datasheet; the device {said} {self.reported_gib:.2f} GiB"


_VLLM = "https://github.com/vllm-project/vllm"
GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        GPU("A100 SXM 40GB", 40, 1.555, 312, 39.39, "https://github.com/bottlerocket-os/bottlerocket/pull/3873"),
        GPU("A100 SXM 80GB", 80, 2.04, 312, 79.25, "https://github.com/vllm-project/vllm-omni/issues/276"),
        GPU("H100 SXM", 80, 3.35, 989, 79.11, f"{_VLLM}/issues/27508"),
        GPU(
            "H100 PCIe",
            80,
            2.0,
            756,
            79.11,
            "no log found: the 80 GB of the H100 SXM and A100 80GB (79.1-79.3 GiB reported)",
            True,
        ),  # fmt: skip
        GPU("H100 NVL", 94, 3.9, 835, 93.00, "https://github.com/ali-vilab/VACE/issues/56"),
        GPU(
            "H200",
            141,
            4.8,
            989,
            139.72,
            f"{_VLLM}/issues/31273",  # an H20 141GB: the H200's memory (nvidia-smi shows 143,771 MiB on both)
        ),  # fmt: skip
        GPU("B200", 180, 8.0, 2250, 178.35, "https://github.com/pytorch/ao/pull/4002"),
        GPU(
            "GB200",
            186,
            8.0,
            2500,
            184.3,
            "no log found: B200's reported share of its datasheet figure (178.35 GiB of 180 GB) applied to 186 GB",
            True,
        ),  # fmt: skip
        GPU("L40S", 48, 0.864, 362, 44.42, f"{_VLLM}/issues/15815"),
        GPU("L4", 24, 0.3, 121, 22.03, "https://github.com/ArcInstitute/evo2/issues/190"),
        GPU("RTX 4090", 24, 1.01, 165, 23.52, f"{_VLLM}/issues/42049"),
        GPU("RTX 5090", 32, 1.792, 209.5, 31.37, "https://github.com/Wan-Video/Wan2.1/issues/465"),
        GPU("MI300X", 192, 5.3, 1307, 191.98, "https://github.com/ROCm/legacy-rocm-build/issues/4750"),
        GPU(
            "MI325X",
            256,
            6.0,
            1307,
            255.98,
            "no log found: AMD's 256 GB is binary, as the MI300X's 192 GB (191.98 GiB reported)",
            True,
        ),  # fmt: skip
        GPU(
            "MI355X",
            288,
            8.0,
            2500,
            288.0,
            "about 288 GiB, from vLLM's requested memory in https://github.com/SemiAnalysisAI/InferenceX/pull/2522",
            True,
        ),  # fmt: skip
    )
}
