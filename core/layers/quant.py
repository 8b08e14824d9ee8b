"""Quantized KV caches: fp8, intN with scales, KIVI 2-bit, and TurboQuant-style rotation + codebooks.

# T tokens, C channels (the vector width, d for TurboQuant), G scale groups per row, g group size,
# Q queries, M QJL sketch rows (m), K codebook entries (2^b); "..." any leading dims (batch, heads)

Every scheme turns x (..., T, C) into a `Quantized`: the packed storage as real tensors (codes in uint8,
packed 8/b per byte; scales and zero points in fp16; fp8 codes in torch's float8 dtypes; codebooks in
fp32), so its size is literally the sum of the tensors' `nbytes`, and `dequantize()` rebuilds x from
that storage alone (plus the scheme's seed, for TurboQuant's rotation and projection).

Uniform (integer) quantizers, on a group of values sharing one scale s:
    symmetric   s = max|x| / (2^(b-1) - 1),        q = round(x / s) in [-(2^(b-1)-1), 2^(b-1)-1],  x^ = q s
    asymmetric  s = (max x - min x) / (2^b - 1),   q = round((x - z) / s) in [0, 2^b - 1],  z = min x,  x^ = q s + z
The rounding error is at most s/2 per element, and about s^2/12 on average (uniform on [-s/2, s/2]).

TurboQuant (arXiv 2504.19874): for a vector x, store its norm ||x|| (fp16) and the codes of y = Pi x/||x||,
where Pi is a random orthogonal matrix. Each coordinate of a uniformly random unit vector in d
dimensions has density f(y) ∝ (1 - y^2)^((d-3)/2) on [-1, 1] (a Beta shape, close to N(0, 1/d)), so one
scalar Lloyd-Max codebook c_1..c_K optimised for f serves every coordinate:
    x^ = ||x|| Pi^T c[idx],   E ||x/||x|| - x^/||x|| ||^2 = d * D_f(b) <= sqrt(3) pi / 2 * 4^-b   (paper, Thm 1)
D_f(b) is the computed codebook's per-coordinate distortion: d D_f = 0.363, 0.117, 0.0345, 0.0095 at b = 1..4.
The MSE quantizer shrinks inner products (E <q, x^> != <q, x>). The optional QJL stage (arXiv 2406.03482,
TurboQuant's Q_prod) sketches the residual r = x - x^ with a Gaussian S (m x d), keeping sign(S r) (1 bit
each) and ||r|| (fp16). Since E[sign(<s, r>) <s, q>] = sqrt(2/pi) <q, r> / ||r|| for s ~ N(0, I),
    <q, x> ≈ <q, x^> + ||r|| sqrt(pi/2) / m * <S q, sign(S r)>      is unbiased over S.

Bits per element count everything stored: codes, scales, zero points, norms, sketches, codebooks, and the
fp16 window of recent tokens (KIVI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from core.model.dtypes import cache_dtype

FP16_BYTES = 2
FP32_BYTES = 4


# ----------------------------------------------------------------------------- bit packing


def pack_bits(codes: Tensor, widths: Tensor) -> Tensor:
    """Pack integer codes (..., n) into a little-endian bit stream, `widths[j]` bits for position j:
    position 0's lowest bit is bit 0 of byte 0. Uniform 4-bit codes land two per byte (low nibble first),
    2-bit four per byte, 1-bit eight per byte. Returns uint8 (..., ceil(sum(widths) / 8))."""
    top = int(widths.max()) if widths.numel() else 1
    shifts = torch.arange(top, dtype=torch.uint8)
    bits = (codes.to(torch.uint8).unsqueeze(-1) >> shifts) & 1  # (..., n, top)
    uniform = bool((widths == top).all())
    stream = bits.flatten(-2) if uniform else bits[..., shifts < widths[:, None]]  # (..., sum(widths)), position-major
    pad = -stream.shape[-1] % 8
    stream = torch.nn.functional.pad(stream, (0, pad)).unflatten(-1, (-1, 8))  # (..., bytes, 8)
    return (stream << torch.arange(8, dtype=torch.uint8)).sum(-1).to(torch.uint8)  # (..., bytes)


def unpack_bits(packed: Tensor, widths: Tensor) -> Tensor:
    """Inverse of `pack_bits`: uint8 (..., bytes) -> int64 codes (..., n)."""
    top = int(widths.max()) if widths.numel() else 1
    shifts = torch.arange(top, dtype=torch.uint8)
    mask = shifts < widths[:, None]  # (n, top)
    stream = ((packed.unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1).flatten(-2)  # (..., 8 bytes)
    if bool(mask.all()):
        bits = stream[..., : mask.numel()].unflatten(-1, mask.shape)  # (..., n, top)
    else:
        bits = torch.zeros(*packed.shape[:-1], *mask.shape, dtype=torch.uint8)  # (..., n, top)
        bits[..., mask] = stream[..., : int(mask.sum())]
    return (bits.long() << shifts.long()).sum(-1)  # (..., n)


def _widths(n: int, bits: int) -> Tensor:
    return torch.full((n,), bits, dtype=torch.long)


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class Quantized:
    """A quantized tensor: the packed storage (`tensors`) and the scheme that decodes it."""

    scheme: Scheme
    shape: tuple[int, ...]  # (..., T, C) of the input
    dtype: torch.dtype  # dtype `dequantize` returns
    tensors: dict[str, Tensor] = field(repr=False)  # name -> packed storage

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes stored: the sum of the storage tensors' nbytes."""
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def bits_per_element(self) -> float:
        """8 nbytes / elements: codes plus every scale, norm, sketch, codebook and fp16 window."""
        return 8 * self.nbytes / self.numel if self.numel else 0.0

    def dequantize(self) -> Tensor:
        """x^ (..., T, C), rebuilt from the storage alone."""
        return self.scheme.dequantize(self)


def _as_input(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise ValueError("x must be a tensor of shape (tokens, channels) or (..., tokens, channels).")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}.")
    if not torch.isfinite(x).all():
        raise ValueError("x contains inf or nan; quantizers need finite values.")
    return x.detach().cpu()


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Compute in float32 (float64 inputs stay float64, for exact checks)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _work(x: Tensor) -> Tensor:
    return x.to(_work_dtype(x.dtype))


def relative_mse(x: Tensor, x_hat: Tensor) -> float:
    """||x - x^||^2 / ||x||^2 over the whole tensor."""
    x, x_hat = x.double(), x_hat.double()
    return float(((x - x_hat) ** 2).sum() / (x**2).sum())


# ----------------------------------------------------------------------------- fp16 and fp8


@dataclass(frozen=True)
class Half:
    """fp16 storage, no scales: the baseline every other scheme is compared with."""

    def quantize(self, x: Tensor) -> Quantized:
        x = _as_input(x)
        return Quantized(self, tuple(x.shape), x.dtype, {"values": x.half()})

    def dequantize(self, qz: Quantized) -> Tensor:
        return qz.tensors["values"].to(qz.dtype)

    def vector_bytes(self, width: int) -> int:
        return FP16_BYTES * width

    def tensor_bytes(self, width: int) -> int:
        return 0

    def packed_bytes(self, shape: tuple[int, ...]) -> int:
        return math.prod(shape[:-1]) * self.vector_bytes(shape[-1]) + self.tensor_bytes(shape[-1])


FP8_DTYPES = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}


@dataclass(frozen=True)
class Fp8:
    """float8 codes (torch's e4m3fn: max 448, 3 mantissa bits; e5m2: max 57344, 2 mantissa bits) with an
    fp32 scale s = max|x| / fp8_max per tensor or per token: x^ = fp8(x / s) s. Rounding to nearest keeps
    the relative error of normal values within 2^-(mantissa bits + 1)."""

    fmt: str = "e4m3"
    granularity: str = "tensor"  # "tensor": one scale for the whole tensor; "token": one per vector

    def __post_init__(self) -> None:
        if self.fmt not in FP8_DTYPES:
            raise ValueError(f"fp8 format {self.fmt!r} is unknown; choose e4m3 or e5m2.")
        if self.granularity not in ("tensor", "token"):
            raise ValueError(f"fp8 granularity {self.granularity!r} is unknown; choose tensor or token.")

    @property
    def torch_dtype(self) -> torch.dtype:
        return FP8_DTYPES[self.fmt]

    def quantize(self, x: Tensor) -> Quantized:
        x = _as_input(x)
        w = x.float()
        fmax = torch.finfo(self.torch_dtype).max
        amax = w.abs().amax() if self.granularity == "tensor" else w.abs().amax(-1, keepdim=True)  # () or (..., T, 1)
        scale = torch.where(amax > 0, amax / fmax, torch.ones_like(amax))
        codes = (w / scale).clamp(-fmax, fmax).to(self.torch_dtype)  # (..., T, C)
        return Quantized(self, tuple(x.shape), x.dtype, {"codes": codes, "scale": scale})

    def dequantize(self, qz: Quantized) -> Tensor:
        return (qz.tensors["codes"].float() * qz.tensors["scale"]).to(qz.dtype)

    def vector_bytes(self, width: int) -> int:
        return width + (FP32_BYTES if self.granularity == "token" else 0)

    def tensor_bytes(self, width: int) -> int:
        return FP32_BYTES if self.granularity == "tensor" else 0

    def packed_bytes(self, shape: tuple[int, ...]) -> int:
        return math.prod(shape[:-1]) * self.vector_bytes(shape[-1]) + self.tensor_bytes(shape[-1])


# ----------------------------------------------------------------------------- intN (and KIVI)


def _affine_codes(x: Tensor, bits: int, symmetric: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Groups on the last dim: x (..., G, g) -> codes (..., G, g) in [0, 2^b), scale and zero (..., G) fp16.
    Codes are computed against the fp16-rounded scale and zero, so dequantizing the stored values is exact."""
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = (x.abs().amax(-1) / qmax).half()  # (..., G)
        s = torch.where(scale > 0, scale, 1).to(x.dtype)  # an all-zero group: any scale will do
        codes = torch.round(x / s[..., None]).clamp(-qmax, qmax) + qmax  # (..., G, g), offset to unsigned
        return codes, scale, None
    levels = 2**bits - 1
    lo, hi = x.amin(-1), x.amax(-1)  # (..., G)
    scale, zero = ((hi - lo) / levels).half(), lo.half()
    s = torch.where(scale > 0, scale, 1).to(x.dtype)
    codes = torch.round((x - zero[..., None].to(x.dtype)) / s[..., None]).clamp(0, levels)
    return codes, scale, zero


@dataclass(frozen=True)
class IntQuant:
    """b-bit integer codes with fp16 scales (and fp16 zero points when asymmetric).

    granularity, for x (..., T, C):
      "token":   one scale per token (the group is the whole vector of C channels)
      "group":   per token, one scale per `group_size` consecutive channels (the last group may be short)
      "channel": one scale per channel, over `group_size` consecutive tokens (0: over all quantized tokens);
                 codes are stored channel-major, packed along tokens (KIVI's key layout)
    `residual` > 0 keeps the most recent tokens in fp16 (KIVI's full-precision window): tokens
    [0, T_q) are quantized and [T_q, T) stored in fp16, with T_q = T - residual, rounded down to a
    multiple of `group_size` when groups run along tokens (so the fp16 window holds residual to
    residual + group_size - 1 tokens there, as KIVI's keys wait for a whole group)."""

    bits: int = 8  # b
    symmetric: bool = True
    granularity: str = "group"
    group_size: int = 64  # g
    residual: int = 0  # recent tokens kept in fp16

    def __post_init__(self) -> None:
        if self.bits not in range(1, 9) or (self.symmetric and self.bits < 2):
            raise ValueError(f"bits ({self.bits}) must be 1-8, and at least 2 for a symmetric quantizer.")
        if self.granularity not in ("token", "group", "channel"):
            raise ValueError(f"granularity {self.granularity!r} is unknown; choose token, group or channel.")
        if self.group_size < 0 or self.residual < 0:
            raise ValueError("group_size and residual must be >= 0.")
        if self.granularity == "group" and self.group_size == 0:
            raise ValueError("granularity 'group' needs a group_size > 0 (channels per scale).")
        if self.granularity == "token" and self.group_size:
            raise ValueError("granularity 'token' uses the whole vector as its group; set group_size to 0.")

    def quantized_tokens(self, tokens: int) -> int:
        """T_q: how many of the oldest tokens are quantized (the rest stay in fp16)."""
        t_q = max(tokens - self.residual, 0)
        if self.granularity == "channel" and self.group_size:
            t_q -= t_q % self.group_size
        return t_q

    def _rows(self, tokens: int, width: int) -> tuple[int, int, int]:
        """(rows, n, g): quantized storage is `rows` rows of n codes, in groups of g along the row."""
        t_q = self.quantized_tokens(tokens)
        if self.granularity == "channel":
            return width, t_q, self.group_size or t_q
        return t_q, width, (self.group_size if self.granularity == "group" else width)

    def quantize(self, x: Tensor) -> Quantized:
        x = _as_input(x)
        w = _work(x)
        tokens, width = w.shape[-2:]
        t_q = self.quantized_tokens(tokens)
        rows = w[..., :t_q, :].mT if self.granularity == "channel" else w[..., :t_q, :]  # (..., rows, n)
        _, n, g = self._rows(tokens, width)
        tensors = {}
        if rows.numel():
            n_groups = -(-n // g)
            padded = torch.cat([rows, rows[..., -1:].expand(*rows.shape[:-1], n_groups * g - n)], -1)  # repeat the last
            codes, scale, zero = _affine_codes(padded.unflatten(-1, (n_groups, g)), self.bits, self.symmetric)
            tensors["codes"] = pack_bits(codes.flatten(-2)[..., :n], _widths(n, self.bits))  # (..., rows, n b / 8)
            tensors["scale"] = scale  # (..., rows, G)
            if zero is not None:
                tensors["zero"] = zero  # (..., rows, G)
        if t_q < tokens:
            tensors["recent"] = x[..., t_q:, :].half()  # (..., T - T_q, C)
        return Quantized(self, tuple(x.shape), x.dtype, tensors)

    def dequantize(self, qz: Quantized) -> Tensor:
        tokens, width = qz.shape[-2:]
        rows, n, g = self._rows(tokens, width)
        parts = []
        if "codes" in qz.tensors:
            codes = unpack_bits(qz.tensors["codes"], _widths(n, self.bits)).float()  # (..., rows, n)
            scale = qz.tensors["scale"].float().repeat_interleave(g, -1)[..., :n]  # (..., rows, n)
            if self.symmetric:
                x_hat = (codes - (2 ** (self.bits - 1) - 1)) * scale
            else:
                x_hat = codes * scale + qz.tensors["zero"].float().repeat_interleave(g, -1)[..., :n]
            parts.append(x_hat.mT if self.granularity == "channel" else x_hat)  # (..., T_q, C)
        if "recent" in qz.tensors:
            parts.append(qz.tensors["recent"].float())  # (..., T - T_q, C)
        return torch.cat(parts, -2).to(qz.dtype)

    def vector_bytes(self, width: int) -> int:
        """Bytes per token vector: ceil(C b / 8) + ceil(C / g) scales (x2 with zero points), fp16 each."""
        if self.granularity == "channel" or self.residual:
            raise ValueError("per-channel scales and fp16 windows span tokens: use packed_bytes(shape).")
        _, n, g = self._rows(1, width)
        return -(-n * self.bits // 8) + -(-n // g) * FP16_BYTES * (1 if self.symmetric else 2)

    def tensor_bytes(self, width: int) -> int:
        return 0

    def packed_bytes(self, shape: tuple[int, ...]) -> int:
        tokens, width = shape[-2:]
        rows, n, g = self._rows(tokens, width)
        per_scale = FP16_BYTES * (1 if self.symmetric else 2)
        quantized = rows * (-(-n * self.bits // 8) + -(-n // g) * per_scale) if rows and n else 0
        recent = (tokens - self.quantized_tokens(tokens)) * width * FP16_BYTES
        return math.prod(shape[:-2]) * (quantized + recent)


# ----------------------------------------------------------------------------- TurboQuant


@lru_cache(maxsize=64)
def lloyd_max_codebook(d: int, bits: int, grid: int = 1 << 16) -> tuple[tuple[float, ...], float]:
    """Lloyd-Max codebook for one coordinate of a uniformly random unit vector in d dimensions.

    The density f(y) ∝ (1 - y^2)^((d-3)/2) on [-1, 1] becomes, with y = cos(theta), the weight
    sin(theta)^(d-2) d theta on [0, pi]: smooth for every d >= 2, so a midpoint grid in theta integrates it.
    Lloyd's iterations alternate boundaries (midpoints of neighbouring centroids) and centroids
    (conditional means of each cell) until no boundary moves to another grid point.
    Returns (centroids ascending, per-coordinate distortion D_f = E (y - c(y))^2)."""
    if d < 2 or bits not in range(1, 9):
        raise ValueError(f"a codebook needs d >= 2 (got {d}) and 1-8 bits (got {bits}).")
    theta = (np.arange(grid) + 0.5) * np.pi / grid
    y = -np.cos(theta)  # ascending
    logw = (d - 2) * np.log(np.sin(theta))
    w = np.exp(logw - logw.max())
    w /= w.sum()
    cum_w, cum_wy = np.concatenate([[0], np.cumsum(w)]), np.concatenate([[0], np.cumsum(w * y)])
    k = 2**bits
    edges = np.searchsorted(cum_w[1:], np.arange(1, k) / k)  # start from equal-probability cells
    for step in range(20000):
        lo, hi = np.concatenate([[0], edges]), np.concatenate([edges, [grid]])
        mass = np.maximum(cum_w[hi] - cum_w[lo], 1e-300)
        c = (cum_wy[hi] - cum_wy[lo]) / mass
        c = (c - c[::-1]) / 2  # the density is symmetric; keep the codebook exactly so
        new_edges = np.searchsorted(y, (c[:-1] + c[1:]) / 2)
        if step and np.array_equal(new_edges, edges):
            break
        edges = new_edges
    cell = np.searchsorted((c[:-1] + c[1:]) / 2, y)
    distortion = float((w * (y - c[cell]) ** 2).sum())
    return tuple(float(v) for v in c), distortion


@lru_cache(maxsize=256)
def random_rotation(d: int, seed: int) -> Tensor:
    """Pi (d, d): a Haar-random orthogonal matrix, the Q of the QR decomposition of a seeded Gaussian
    matrix with its columns' signs fixed by diag(R) (Mezzadri 2007). We use QR for every d, not a
    randomized Hadamard transform: simpler, exactly Haar, and d is small here. Float64."""
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@lru_cache(maxsize=256)
def qjl_projection(m: int, d: int, seed: int) -> Tensor:
    """S (m, d) with i.i.d. N(0, 1) entries, seeded independently of the rotation. Float64."""
    gen = torch.Generator().manual_seed(seed + 0x9E3779B9)
    return torch.randn(m, d, generator=gen, dtype=torch.float64)


@dataclass(frozen=True)
class TurboQuant:
    """TurboQuant-style vector quantizer (arXiv 2504.19874): per vector, an fp16 norm and b-bit Lloyd-Max
    codes of the rotated unit vector; optionally the 1-bit QJL sketch of the residual (Q_prod).

    A fractional `bits` (e.g. 3.5) gives ceil(frac * d) rotated coordinates one bit more (two codebooks).
    After the rotation every coordinate has the same distribution, so this is a plain bit allocation;
    the paper instead picks outlier channels before rotating and quantizes the two sets separately.
    Storage per vector: ceil(total code bits / 8) + 2 (norm) [+ ceil(m / 8) + 2 (signs, residual norm)];
    per tensor: the fp32 codebooks."""

    bits: float = 3  # b: codebook bits per coordinate, 1-4
    qjl: bool = False  # add the QJL sketch: unbiased inner products
    qjl_dim: int = 0  # m: rows of S; 0 means m = d, the paper's choice
    seed: int = 0  # seeds the rotation Pi and the projection S

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 4:
            raise ValueError(f"TurboQuant bits ({self.bits}) must be between 1 and 4.")
        if self.qjl_dim < 0:
            raise ValueError(f"qjl_dim ({self.qjl_dim}) must be >= 0 (0: as many rows as channels).")

    def split(self, d: int) -> tuple[int, int]:
        """(coordinates with floor(b) + 1 bits, coordinates with floor(b) bits)."""
        n_hi = math.ceil((self.bits - math.floor(self.bits)) * d)
        return n_hi, d - n_hi

    def _widths(self, d: int) -> Tensor:
        n_hi, n_lo = self.split(d)
        b = math.floor(self.bits)
        return torch.cat([_widths(n_hi, b + 1), _widths(n_lo, b)])

    def _codebooks(self, d: int) -> dict[str, Tensor]:
        n_hi, n_lo = self.split(d)
        b = math.floor(self.bits)
        books = {}
        if n_hi:
            books["codebook_hi"] = torch.tensor(lloyd_max_codebook(d, b + 1)[0], dtype=torch.float32)  # (2K,)
        if n_lo:
            books["codebook"] = torch.tensor(lloyd_max_codebook(d, b)[0], dtype=torch.float32)  # (K,)
        return books

    def distortion(self, d: int) -> float:
        """Expected ||u - u^||^2 for a unit vector u (before fp16 norm rounding): sum of the coordinates' D_f."""
        n_hi, n_lo = self.split(d)
        b = math.floor(self.bits)
        return (n_hi * lloyd_max_codebook(d, b + 1)[1] if n_hi else 0) + (
            n_lo * lloyd_max_codebook(d, b)[1] if n_lo else 0
        )

    def m(self, d: int) -> int:
        return self.qjl_dim or d

    def quantize(self, x: Tensor) -> Quantized:
        x = _as_input(x)
        w = _work(x)
        d = w.shape[-1]
        if d < 2:
            raise ValueError("TurboQuant needs vectors of at least 2 channels.")
        rot = random_rotation(d, self.seed).to(w.dtype)  # (C, C)
        n_hi, _ = self.split(d)
        books = self._codebooks(d)
        norm = w.norm(dim=-1, keepdim=True)  # (..., T, 1)
        y = (w / norm.clamp_min(torch.finfo(w.dtype).tiny)) @ rot.T  # (..., T, C): y = Pi u
        codes = []
        for name, part in (("codebook_hi", y[..., :n_hi]), ("codebook", y[..., n_hi:])):
            if name in books:
                c = books[name].to(w.dtype)
                codes.append(torch.bucketize(part.contiguous(), (c[:-1] + c[1:]) / 2))  # nearest centroid, (..., T, n)
        tensors = {"codes": pack_bits(torch.cat(codes, -1), self._widths(d)), "norm": norm.half(), **books}
        if self.qjl:
            r = w - self._decode_mse(tensors, d, w.dtype)  # (..., T, C) residual
            proj = qjl_projection(self.m(d), d, self.seed).to(w.dtype)  # (M, C)
            signs = (r @ proj.T >= 0).long()  # (..., T, M)
            tensors["qjl_signs"] = pack_bits(signs, _widths(self.m(d), 1))  # (..., T, M / 8)
            tensors["residual_norm"] = r.norm(dim=-1, keepdim=True).half()  # (..., T, 1)
        return Quantized(self, tuple(x.shape), x.dtype, tensors)

    def _decode_mse(self, tensors: dict[str, Tensor], d: int, dtype: torch.dtype) -> Tensor:
        n_hi, _ = self.split(d)
        idx = unpack_bits(tensors["codes"], self._widths(d))  # (..., T, C)
        parts = []
        if "codebook_hi" in tensors:
            parts.append(tensors["codebook_hi"].to(dtype)[idx[..., :n_hi]])
        if "codebook" in tensors:
            parts.append(tensors["codebook"].to(dtype)[idx[..., n_hi:]])
        y_hat = torch.cat(parts, -1)  # (..., T, C)
        return tensors["norm"].to(dtype) * (y_hat @ random_rotation(d, self.seed).to(dtype))  # ||x|| Pi^T y^

    def dequantize_mse(self, qz: Quantized) -> Tensor:
        """x^_mse = ||x|| Pi^T c[idx] (..., T, C): the MSE-optimal reconstruction."""
        return self._decode_mse(qz.tensors, qz.shape[-1], _work_dtype(qz.dtype)).to(qz.dtype)

    def dequantize(self, qz: Quantized) -> Tensor:
        """x^_mse, plus with QJL the paper's DeQuant_prod term ||r|| sqrt(pi/2) / m S^T sign(S r), so that
        q . x~ is the unbiased estimator. That term adds error: E||x - x~||^2 = ||r||^2 (pi d / (2m) - 1/m)."""
        x_hat = self.dequantize_mse(qz)
        if not self.qjl:
            return x_hat
        d, m = qz.shape[-1], self.m(qz.shape[-1])
        dtype = _work_dtype(qz.dtype)
        z = 2.0 * unpack_bits(qz.tensors["qjl_signs"], _widths(m, 1)).to(dtype) - 1  # (..., T, M) in {-1, +1}
        gamma = qz.tensors["residual_norm"].to(dtype)  # (..., T, 1)
        correction = math.sqrt(math.pi / 2) / m * gamma * (z @ qjl_projection(m, d, self.seed).to(dtype))
        return (x_hat.to(dtype) + correction).to(qz.dtype)

    def vector_bytes(self, width: int) -> int:
        code = -(-int(self._widths(width).sum()) // 8) + FP16_BYTES
        return code + (-(-self.m(width) // 8) + FP16_BYTES if self.qjl else 0)

    def tensor_bytes(self, width: int) -> int:
        n_hi, n_lo = self.split(width)
        b = math.floor(self.bits)
        return FP32_BYTES * ((2 ** (b + 1) if n_hi else 0) + (2**b if n_lo else 0))

    def packed_bytes(self, shape: tuple[int, ...]) -> int:
        return math.prod(shape[:-1]) * self.vector_bytes(shape[-1]) + self.tensor_bytes(shape[-1])


@dataclass(frozen=True)
class GgmlBlock:
    """llama.cpp's cache types (`--cache-type-k/-v q8_0 | q4_0`), quantized and dequantized by the `gguf`
    package, llama.cpp's own reference code (gguf-py `quants.py`), so the blocks are the bytes llama.cpp
    stores: each block of 32 values keeps an fp16 scale d and 32 codes, q8_0 int8 (x^ = q d, d = max|x| / 127;
    34 bytes), q4_0 4-bit (x^ = (q - 8) d, d = -(the value of largest magnitude) / 8; 18 bytes)."""

    name: str = "q8_0"

    def __post_init__(self) -> None:
        if self.name not in ("q8_0", "q4_0"):
            raise ValueError(f"llama.cpp cache type {self.name!r} is not offered here; choose q8_0 or q4_0.")

    @property
    def qtype(self):
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType[self.name.upper()]

    def quantize(self, x: Tensor) -> Quantized:
        from gguf.quants import quantize

        x = _as_input(x)
        if x.shape[-1] % 32:
            raise ValueError(
                f"{self.name} stores rows in blocks of 32 values; a row of {x.shape[-1]} is not whole blocks."
            )
        blocks = quantize(x.float().numpy(), self.qtype)  # (..., T, C / 32 * bytes per block) uint8
        return Quantized(self, tuple(x.shape), x.dtype, {"blocks": torch.from_numpy(blocks)})

    def dequantize(self, qz: Quantized) -> Tensor:
        from gguf.quants import dequantize

        return torch.from_numpy(dequantize(qz.tensors["blocks"].numpy(), self.qtype)).reshape(qz.shape).to(qz.dtype)

    def vector_bytes(self, width: int) -> int:
        return cache_dtype(self.name).vector_bytes(width)

    def tensor_bytes(self, width: int) -> int:
        return 0

    def packed_bytes(self, shape: tuple[int, ...]) -> int:
        return math.prod(shape[:-1]) * self.vector_bytes(shape[-1])


Scheme = Half | Fp8 | IntQuant | TurboQuant | GgmlBlock


def inner_product_estimate(q: Tensor, quantized: Quantized, qjl: bool = True) -> Tensor:
    """Estimated scores <q, k> (..., Q, T) for queries q (..., Q, C) against quantized keys (..., T, C), on CPU.

    For TurboQuant with a QJL stage and qjl=True: <q, k^_mse> + ||r|| sqrt(pi/2) / m <S q, sign(S r)>
    (unbiased over S); qjl=False uses k^_mse alone (biased: shrunk towards 0). Every other scheme: q . k^."""
    scheme = quantized.scheme
    if not (isinstance(scheme, TurboQuant) and scheme.qjl):
        return q @ quantized.dequantize().to(q.dtype).mT
    d, m = quantized.shape[-1], scheme.m(quantized.shape[-1])
    dtype = _work_dtype(q.dtype)
    q = q.to(dtype)
    scores = q @ scheme.dequantize_mse(quantized).to(dtype).mT  # (..., Q, T)
    if qjl:
        z = 2.0 * unpack_bits(quantized.tensors["qjl_signs"], _widths(m, 1)).to(dtype) - 1  # (..., T, M)
        sq = q @ qjl_projection(m, d, scheme.seed).to(dtype).T  # (..., Q, M)
        gamma = quantized.tensors["residual_norm"].to(dtype).mT  # (..., 1, T)
        scores = scores + math.sqrt(math.pi / 2) / m * gamma * (sq @ z.mT)
    return scores


# ----------------------------------------------------------------------------- presets

LONG = 1 << 16  # tokens of a "long" cache: a multiple of every group size here


@dataclass(frozen=True)
class Preset:
    """A named scheme the pages offer; keys and values may be quantized differently (KIVI)."""

    name: str
    description: str
    key: Scheme
    value: Scheme

    def scheme(self, role: str = "key") -> Scheme:
        if role not in ("key", "value"):
            raise ValueError(f"role {role!r} is unknown; choose key or value.")
        return self.key if role == "key" else self.value

    def quantize(self, x: Tensor, role: str = "key") -> Quantized:
        return self.scheme(role).quantize(x)

    def packed_bytes(self, shape: tuple[int, ...]) -> int:
        """Bytes of the keys and the values of this shape together."""
        return self.key.packed_bytes(shape) + self.value.packed_bytes(shape)

    def bits_per_element(self, width: int, tokens: int | None = None) -> float:
        """Stored bits per cached element, keys and values together. With `tokens`: exact for a
        (tokens, width) tensor, everything included. Without: the cost of one more token in a long cache
        (per-tensor constants and the fp16 window no longer grow), what the cache grows by."""
        if tokens is not None:
            return 8 * self.packed_bytes((tokens, width)) / (2 * tokens * width)
        grow = self.packed_bytes((2 * LONG, width)) - self.packed_bytes((LONG, width))
        return 8 * grow / (2 * LONG * width)


def _preset(name: str, description: str, key: Scheme, value: Scheme | None = None) -> Preset:
    return Preset(name, description, key, key if value is None else value)


SCHEMES: dict[str, Preset] = {
    p.name: p
    for p in (
        _preset("fp16", "fp16, no scales: the baseline", Half()),
        _preset("fp8-e4m3", "float8 e4m3, one fp32 scale per tensor", Fp8("e4m3")),
        _preset("fp8-e5m2", "float8 e5m2 (more range, one mantissa bit less), one fp32 scale per tensor", Fp8("e5m2")),
        _preset("fp8-e4m3-token", "float8 e4m3, one fp32 scale per token", Fp8("e4m3", "token")),
        _preset("int8-token", "int8 symmetric, one fp16 scale per token", IntQuant(8, True, "token", 0)),
        _preset("int8-group64", "int8 symmetric, one fp16 scale per 64 channels", IntQuant(8, True, "group", 64)),
        _preset(
            "int8-channel",
            "int8 symmetric, one fp16 scale per channel (over all tokens)",
            IntQuant(8, True, "channel", 0),
        ),
        _preset("int4-token", "int4 asymmetric, fp16 scale + zero per token", IntQuant(4, False, "token", 0)),
        _preset(
            "int4-channel",
            "int4 asymmetric, fp16 scale + zero per channel (over all tokens)",
            IntQuant(4, False, "channel", 0),
        ),
        _preset("int4-group64", "int4 asymmetric, fp16 scale + zero per 64 channels", IntQuant(4, False, "group", 64)),
        _preset("int2-group32", "int2 asymmetric, fp16 scale + zero per 32 channels", IntQuant(2, False, "group", 32)),
        _preset("int2-token", "int2 asymmetric, fp16 scale + zero per token", IntQuant(2, False, "token", 0)),
        _preset(
            "int2-channel",
            "int2 asymmetric, fp16 scale + zero per channel (over all tokens)",
            IntQuant(2, False, "channel", 0),
        ),
        _preset("q8_0", "llama.cpp q8_0: int8 + an fp16 scale per block of 32 (8.5 bits)", GgmlBlock("q8_0")),
        _preset("q4_0", "llama.cpp q4_0: 4-bit + an fp16 scale per block of 32 (4.5 bits)", GgmlBlock("q4_0")),
        _preset(
            "kivi-2bit",
            "KIVI 2-bit: keys per channel (groups of 32 tokens), values per token (groups of 32 channels), "
            "the most recent 128 tokens in fp16",
            IntQuant(2, False, "channel", 32, residual=128),
            IntQuant(2, False, "group", 32, residual=128),
        ),
        _preset(
            "kivi-4bit",
            "KIVI 4-bit: as kivi-2bit with 4-bit codes",
            IntQuant(4, False, "channel", 32, residual=128),
            IntQuant(4, False, "group", 32, residual=128),
        ),
        *(
            _preset(f"tq-{b:g}bit", f"TurboQuant-style: rotation + {b:g}-bit Lloyd-Max codes, fp16 norm", TurboQuant(b))
            for b in (4, 3.5, 3, 2.5, 2, 1)
        ),
        *(
            _preset(
                f"tq-{b}bit+qjl",
                f"TurboQuant-style {b}-bit codes + 1-bit QJL sketch of the residual (unbiased scores), "
                f"{b + 1} bits per channel in all",
                TurboQuant(b, qjl=True),
            )
            for b in (1, 2, 3)
        ),
    )
}

# Cache dtypes of core.dtypes and the scheme whose packed bytes per vector they count.
DTYPE_SCHEMES: dict[str, str] = {
    "fp16": "fp16",
    "fp8": "fp8-e4m3",
    "int8": "int8-group64",
    "int4": "int4-group64",
    "tq3.5": "tq-3.5bit",
    "tq2.5": "tq-2.5bit",
}


# The name a visitor reads for each preset. A preset that stores what one of the planner's cache dtypes counts
# (DTYPE_SCHEMES) carries that dtype's name, and the others are named in the same style, so one method has one
# name on every page: the Quantized page's "tq3.5" is the planner's tq3.5. The preset names stay the keys.
LABELS: dict[str, str] = {
    "fp16": "fp16",
    "fp8-e4m3": "fp8",
    "fp8-e5m2": "fp8 e5m2",
    "fp8-e4m3-token": "fp8 per token",
    "int8-token": "int8 per token",
    "int8-group64": "int8",
    "int8-channel": "int8 per channel",
    "int4-token": "int4 per token",
    "int4-channel": "int4 per channel",
    "int4-group64": "int4",
    "int2-group32": "int2 per 32",
    "int2-token": "int2 per token",
    "int2-channel": "int2 per channel",
    "q8_0": "q8_0",
    "q4_0": "q4_0",
    "kivi-2bit": "KIVI 2-bit",
    "kivi-4bit": "KIVI 4-bit",
    **{f"tq-{b:g}bit": f"tq{b:g}" for b in (4, 3.5, 3, 2.5, 2, 1)},
    **{f"tq-{b}bit+qjl": f"tq{b}+qjl" for b in (1, 2, 3)},
}


def label(name: str) -> str:
    """The name a page shows for preset `name` (LABELS); a name that is no preset is returned unchanged."""
    return LABELS.get(name, name)


def preset(name: str) -> Preset:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown quantization scheme {name!r}; choose one of {', '.join(SCHEMES)}.") from None
