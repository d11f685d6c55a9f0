"""Roofline cost model of one batched LLM inference (SPEC section 2.2).

Pure functions of plain numbers. Every function broadcasts over NumPy arrays, so the
solver can cost many candidate batches in one call; on Python scalars it returns NumPy
float64 scalars.

Units: bytes, FLOP, seconds, FLOP/s, bytes/s.
"""

from __future__ import annotations

import numpy as np


def kv_bytes_per_token(n_layers: int, d_model: int, n_heads: int, n_kv_heads: int,
                       kv_bits: float) -> float:
    """KV-cache bytes one token occupies: 2 (K and V) * L * d_kv * kv_bits / 8."""
    d_kv = d_model * n_kv_heads / n_heads
    return 2.0 * n_layers * d_kv * kv_bits / 8.0


def weight_bytes(n_params: float, weight_bits: float) -> float:
    """Bytes of the quantized weights, W = P * weight_bits / 8."""
    return n_params * weight_bits / 8.0


def kv_cache_bytes(b, S, N, sum_sn, kv: float, padded: bool):
    """KV-cache bytes of a batch.

    ``padded``: every sequence holds S + N positions, b * (S + N) * kv.
    ``exact`` (paged cache): request k holds s_k + n_k positions, sum_sn * kv.
    """
    if padded:
        return np.multiply(b, np.add(S, N)) * kv
    return np.multiply(sum_sn, kv)


def prefill_time(b, S, P: float, L: int, d: int, W: float, kv: float, C: float, M: float):
    """Seconds of the prefill pass that produces the first output token.

    F = b (2 P S + 2 L d S (S + 1)) FLOP, Q = W + b S kv bytes, T = max(F / C, Q / M).
    """
    b = np.asarray(b, dtype=float)
    S = np.asarray(S, dtype=float)
    flops = b * (2.0 * P * S + 2.0 * L * d * S * (S + 1.0))
    moved = W + b * S * kv
    return np.maximum(flops / C, moved / M)


def _sum_linear(alpha, beta, lo, hi):
    """sum_{j=lo..hi} (alpha + beta j) for integer-valued lo, hi; 0 where hi < lo."""
    count = np.maximum(hi - lo + 1.0, 0.0)
    return count * alpha + beta * (lo + hi) * count / 2.0


def decode_time(b, S, N, P: float, L: int, d: int, W: float, kv: float, C: float, M: float):
    """Seconds of the N - 1 decode steps, in closed form.

    Step j = 1 .. N - 1 attends over S + j positions:
    F_j = b (2 P + 4 L d (S + j)), Q_j = W + b (S + j) kv, T_j = max(F_j / C, Q_j / M).
    Both terms are linear in j, so their maximum changes side at most once; each side is an
    arithmetic series.
    """
    b = np.asarray(b, dtype=float)
    S = np.asarray(S, dtype=float)
    m = np.asarray(N, dtype=float) - 1.0  # number of decode steps
    # compute term: af + bf * j ; memory term: aq + bq * j
    af = b * (2.0 * P + 4.0 * L * d * S) / C
    bf = b * 4.0 * L * d / C
    aq = (W + b * S * kv) / M
    bq = b * kv / M
    slope = bf - bq
    gap = af - aq  # compute minus memory at j = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(slope != 0.0, -gap / np.where(slope != 0.0, slope, 1.0), 0.0)
    # compute-bound steps: j >= cross if slope > 0; j <= cross if slope < 0; all or none if 0.
    rising = slope > 0.0
    falling = slope < 0.0
    # first compute-bound step when rising; last compute-bound step when falling
    first_c = np.where(rising, np.clip(np.ceil(cross), 1.0, m + 1.0), 1.0)
    last_c = np.where(falling, np.clip(np.floor(cross), 0.0, m), m)
    flat_memory = (slope == 0.0) & (gap < 0.0)
    c_lo = np.where(flat_memory, m + 1.0, first_c)
    c_hi = np.where(flat_memory, m, last_c)
    compute_part = _sum_linear(af, bf, c_lo, c_hi)
    # memory-bound steps are the rest of 1..m: [1, c_lo - 1] and [c_hi + 1, m]
    memory_part = _sum_linear(aq, bq, 1.0, c_lo - 1.0) + _sum_linear(aq, bq, c_hi + 1.0, m)
    return compute_part + memory_part


def compute_time(b, S, N, P: float, L: int, d: int, W: float, kv: float, C: float, M: float):
    """T_C = prefill + all decode steps [s]."""
    return prefill_time(b, S, P, L, d, W, kv, C, M) + decode_time(b, S, N, P, L, d, W, kv, C, M)
