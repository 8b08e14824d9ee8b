"""GPU presets: vendor datasheet figures (docs/facts.md section 8). Memory is the vendor's decimal GB."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float  # vendor figure, decimal gigabytes (1e9 bytes)
    bandwidth_tb_s: float  # vendor figure, decimal TB/s
    bf16_tflops: float  # dense

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 1e9)


GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        GPU("A100 SXM 80GB", 80, 2.04, 312),
        GPU("H100 SXM", 80, 3.35, 989),
        GPU("H200", 141, 4.8, 989),
        GPU("B200", 180, 8.0, 2250),
        GPU("MI300X", 192, 5.3, 1307),
        GPU("RTX 4090", 24, 1.01, 165),
    )
}
