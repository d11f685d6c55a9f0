"""Feasibility of batches and their resource allocation (SPEC 2.2, 2.3).

One kernel, :func:`check_rows`, decides many batches of equal size at once (one batch per
row of an index matrix). ``evaluate``, the DFTSP oracle, brute force, the environment and
the heuristics all go through it, so they share one cost model.

Feasibility of a batch with compute time T_C, windows w_k = min(tau_k, slot_s) and
D_k = w_k - T_C:

* downlink: with uplink phase T_U the least downlink bandwidth of user k is
  c_k / (D_k - T_U), c_k = n_k bits_per_token / rho_k. The sum g(T_U) increases with T_U;
  T_hi is the largest T_U with g(T_U) <= B_D. 1 / g is concave (a harmonic mean of affine
  functions), so Newton's method on 1 / g started right of the root converges
  monotonically from the right, quadratically.
* uplink: the least uplink bandwidths decrease with T_U, so the batch is feasible iff their
  sum at T_hi fits in B_U (equivalently T_lo <= T_hi). T_lo, the reported uplink phase, is
  found only by :func:`evaluate`, by bisection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from edgellm.dftsp import cost, radio
from edgellm.dftsp.instance import SlotInstance

# Outcome codes of check_rows, in the order they are tested.
OK, ACCURACY, MEMORY, SLOT, DEADLINE, DOWNLINK, UPLINK = range(7)
REASONS = {ACCURACY: "accuracy", MEMORY: "memory", SLOT: "slot", DEADLINE: "deadline",
           DOWNLINK: "downlink", UPLINK: "uplink"}
REASON_NAMES = tuple(REASONS.values())

_NEWTON_RTOL = 1e-13
_NEWTON_MAXITER = 100


@dataclass(frozen=True, eq=False)
class Prepared:
    """Per-instance constants as arrays, computed once (see :func:`prepare`)."""

    instance: SlotInstance
    prompt: np.ndarray        # s_k [tokens]
    output: np.ndarray        # n_k [tokens]
    window: np.ndarray        # min(tau_k, slot_s) [s]
    weight: np.ndarray        # objective weight (int64)
    admissible: np.ndarray    # ppl_increase <= A_k
    snr_hz: np.ndarray        # p_k g_k / N0 [Hz]
    up_bits: np.ndarray       # s_k * bits_per_token [bit]
    up_floor: np.ndarray      # least possible upload time [s]
    down_c: np.ndarray        # n_k * bits_per_token / rho_k [Hz s]
    # model / device constants
    n_params: float
    n_layers: int
    d_model: int
    weight_bytes: float
    kv_per_token: float
    flops: float              # effective compute C [FLOP/s]
    bandwidth: float          # effective memory bandwidth M [B/s]
    kv_capacity: float        # memory_bytes - reserved_bytes - W [B]
    padded: bool
    uplink_hz: float
    downlink_hz: float
    slot_s: float

    @property
    def n(self) -> int:
        return len(self.prompt)

    def compute_time(self, b, S, N):
        return cost.compute_time(b, S, N, self.n_params, self.n_layers, self.d_model,
                                 self.weight_bytes, self.kv_per_token, self.flops,
                                 self.bandwidth)

    def kv_bytes(self, b, S, N, sum_sn):
        return cost.kv_cache_bytes(b, S, N, sum_sn, self.kv_per_token, self.padded)


def prepare(inst: SlotInstance) -> Prepared:
    """Turn an instance into the arrays the kernel works on."""
    m, q, dev, rad = inst.model, inst.quant, inst.device, inst.radio
    reqs = inst.requests
    col = lambda attr: np.array([getattr(r, attr) for r in reqs], dtype=float)  # noqa: E731
    s, n = col("prompt_tokens"), col("output_tokens")
    snr = radio.uplink_snr_hz(col("tx_power_w"), col("uplink_gain"), rad.noise_psd_w_per_hz)
    up_bits = s * rad.bits_per_token
    rho = radio.downlink_efficiency(rad.en_power_w, col("downlink_gain"),
                                    rad.noise_psd_w_per_hz, rad.downlink_hz)
    W = cost.weight_bytes(m.n_params, q.weight_bits)
    return Prepared(
        instance=inst,
        prompt=s, output=n,
        window=np.minimum(col("deadline_s"), inst.slot_s),
        weight=(np.ones(len(reqs), dtype=np.int64) if inst.objective == "requests"
                else n.astype(np.int64)),
        admissible=q.ppl_increase <= col("ppl_tolerance"),
        snr_hz=snr, up_bits=up_bits, up_floor=radio.uplink_min_time(up_bits, snr),
        down_c=n * rad.bits_per_token / rho,
        n_params=float(m.n_params), n_layers=m.n_layers, d_model=m.d_model,
        weight_bytes=W,
        kv_per_token=cost.kv_bytes_per_token(m.n_layers, m.d_model, m.n_heads, m.n_kv_heads,
                                             q.kv_bits),
        flops=dev.peak_flops[q.compute] * dev.compute_efficiency,
        bandwidth=dev.mem_bandwidth * dev.memory_efficiency,
        kv_capacity=dev.memory_bytes - dev.reserved_bytes - W,
        padded=inst.kv_cache == "padded",
        uplink_hz=rad.uplink_hz, downlink_hz=rad.downlink_hz, slot_s=inst.slot_s,
    )


@dataclass(frozen=True, eq=False)
class RowCheck:
    """Result of :func:`check_rows` for m batches of b requests each (arrays of length m)."""

    code: np.ndarray        # OK or a reason code
    S: np.ndarray           # longest prompt
    N: np.ndarray           # longest output
    kv_bytes: np.ndarray
    t_compute: np.ndarray   # T_C [s]
    t_hi: np.ndarray        # largest feasible uplink phase [s] (nan where not reached)
    uplink_hz: np.ndarray   # (m, b) least uplink bandwidths at t_hi [Hz]
    down_hz: np.ndarray     # (m, b) least downlink bandwidths at the least T_U bound [Hz]


def _downlink_t_hi(D: np.ndarray, c: np.ndarray, B: float) -> np.ndarray:
    """Largest T in [0, min D) with sum_k c_k / (D_k - T) <= B, per row (rows must admit T=0)."""
    rows = np.arange(D.shape[0])
    k = D.argmin(axis=1)
    dmin = D[rows, k]
    T = np.maximum(dmin - c[rows, k] / B, 0.0)  # right of the root: g(T) >= B
    for _ in range(_NEWTON_MAXITER):
        x = D - T[:, None]
        r = c / x
        g = r.sum(axis=1)
        gp = (r / x).sum(axis=1)
        step = g * (1.0 - g / B) / gp  # <= 0
        T = np.maximum(T + step, 0.0)
        if np.all(-step <= _NEWTON_RTOL * dmin):
            break
    return T


def check_rows(p: Prepared, idx: np.ndarray) -> RowCheck:
    """Check m batches at once; ``idx`` is an (m, b) int matrix, each row one batch (b >= 1).

    Rows are tested in the order accuracy, memory, slot/deadline (compute alone overruns the
    slot or a deadline), downlink (too little bandwidth even with an instant uplink), uplink
    (uploading takes so long that the downloads no longer fit).
    """
    idx = np.sort(np.asarray(idx, dtype=np.intp), axis=1)  # same set, same arithmetic
    m, b = idx.shape
    s, n, win = p.prompt[idx], p.output[idx], p.window[idx]
    S, N = s.max(axis=1), n.max(axis=1)
    kv = p.kv_bytes(b, S, N, (s + n).sum(axis=1))
    tc = p.compute_time(b, S, N)
    wmin = win.min(axis=1)
    code = np.full(m, OK, dtype=np.int8)
    code[tc >= wmin] = np.where(wmin[tc >= wmin] >= p.slot_s, SLOT, DEADLINE)
    code[kv > p.kv_capacity] = MEMORY
    code[~p.admissible[idx].all(axis=1)] = ACCURACY

    t_hi = np.full(m, np.nan)
    up = np.full((m, b), np.nan)
    down = np.full((m, b), np.nan)
    live = np.flatnonzero(code == OK)
    if live.size:
        D = win[live] - tc[live, None]
        c = p.down_c[idx[live]]
        g0 = (c / D).sum(axis=1)
        bad = g0 > p.downlink_hz
        code[live[bad]] = DOWNLINK
        down[live] = c / D
        live, D, c = live[~bad], D[~bad], c[~bad]
    if live.size:
        th = _downlink_t_hi(D, c, p.downlink_hz)
        t_hi[live] = th
        li = idx[live]
        beta = radio.uplink_min_bandwidth(p.up_bits[li], th[:, None], p.snr_hz[li])
        up[live] = beta
        code[live[~(beta.sum(axis=1) <= p.uplink_hz)]] = UPLINK
    return RowCheck(code=code, S=S, N=N, kv_bytes=kv, t_compute=tc, t_hi=t_hi,
                    uplink_hz=up, down_hz=down)


# ----------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class BatchEvaluation:
    """Everything about one batch. Times in s, memory in bytes, bandwidths in Hz.

    For a feasible batch the allocation uses the least uplink phase T_U = T_lo and, per
    member (in ``batch`` order), the least uplink and downlink bandwidths for it; each
    member then downloads until its window min(tau_k, slot_s) closes. Quantities that
    cannot be computed for an infeasible batch are NaN (``None`` in ``to_dict``).
    """

    batch: tuple[int, ...]
    feasible: bool
    reason: str | None
    value: int
    t_uplink_s: float
    t_uplink_max_s: float
    t_compute_s: float
    t_prefill_s: float
    t_decode_s: float
    t_download_max_s: float
    epoch_s: float
    memory_bytes: float
    kv_bytes: float
    uplink_hz: tuple[float, ...]
    downlink_hz: tuple[float, ...]
    download_s: tuple[float, ...]

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, tuple):
                return [clean(x) for x in v]
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        return {k: clean(v) for k, v in self.__dict__.items()}


def _least_uplink_phase(p: Prepared, batch: np.ndarray, t_hi: float) -> float:
    """T_lo: least T_U whose least uplink bandwidths fit in B_U (bisection, batch feasible)."""
    bits, snr = p.up_bits[batch], p.snr_hz[batch]
    lo, hi = float(p.up_floor[batch].max()), t_hi
    for _ in range(200):
        if hi - lo <= 4e-16 * hi:
            break
        mid = 0.5 * (lo + hi)
        if np.sum(radio.uplink_min_bandwidth(bits, mid, snr)) <= p.uplink_hz:
            hi = mid
        else:
            lo = mid
    return hi


def evaluate(inst: SlotInstance | Prepared, batch) -> BatchEvaluation:
    """Feasibility, timing, memory and least bandwidths of ``batch`` (request indices)."""
    p = inst if isinstance(inst, Prepared) else prepare(inst)
    members = _check_batch(p, batch)
    b = len(members)
    nan = math.nan
    if b == 0:
        return BatchEvaluation((), True, None, 0, 0.0, nan, 0.0, 0.0, 0.0, 0.0, 0.0,
                               p.weight_bytes, 0.0, (), (), ())
    arr = np.array(members, dtype=np.intp)
    rc = check_rows(p, arr[None, :])
    code = int(rc.code[0])
    t_pre = float(cost.prefill_time(b, float(rc.S[0]), p.n_params, p.n_layers, p.d_model,
                                    p.weight_bytes, p.kv_per_token, p.flops, p.bandwidth))
    tc = float(rc.t_compute[0])
    kv = float(rc.kv_bytes[0])
    common = dict(batch=members, t_compute_s=tc, t_prefill_s=t_pre, t_decode_s=tc - t_pre,
                  memory_bytes=p.weight_bytes + kv, kv_bytes=kv)
    if code != OK:
        return BatchEvaluation(feasible=False, reason=REASONS[code], value=0,
                               t_uplink_s=nan, t_uplink_max_s=float(rc.t_hi[0]),
                               t_download_max_s=nan, epoch_s=nan, uplink_hz=(), downlink_hz=(),
                               download_s=(), **common)
    t_hi = float(rc.t_hi[0])
    t_up = _least_uplink_phase(p, arr, t_hi)
    window = p.window[arr] - tc - t_up
    up = radio.uplink_min_bandwidth(p.up_bits[arr], t_up, p.snr_hz[arr])
    down = p.down_c[arr] / window
    return BatchEvaluation(feasible=True, reason=None, value=int(p.weight[arr].sum()),
                           t_uplink_s=t_up, t_uplink_max_s=t_hi,
                           t_download_max_s=float(window.max()),
                           epoch_s=t_up + tc + float(window.max()),
                           uplink_hz=tuple(float(x) for x in up),
                           downlink_hz=tuple(float(x) for x in down),
                           download_s=tuple(float(x) for x in window), **common)


def _check_batch(p: Prepared, batch) -> tuple[int, ...]:
    """Validate a batch of request indices: integers in range, no repeats; sorted."""
    try:
        members = [int(i) for i in batch]
    except (TypeError, ValueError):
        raise ValueError(f"batch: must be a sequence of request indices, got {batch!r}") from None
    for i in members:
        if not 0 <= i < p.n:
            raise ValueError(f"batch: request index {i} out of range 0..{p.n - 1}")
    if len(set(members)) != len(members):
        raise ValueError(f"batch: repeated request index in {members}")
    return tuple(sorted(members))
