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
  found only by :func:`evaluate`: the sum is convex in T_U, so Newton's method from the
  left reaches it monotonically. The arithmetic runs compiled (``_kernel``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edgellm.system import _kernel, cost, radio
from edgellm.system._kernel import ACCURACY, DEADLINE, DOWNLINK, MEMORY, OK, SLOT, UPLINK
from edgellm.system.instance import Request, SlotInstance

# Outcome codes of check_rows, in the order they are tested (OK = 0).
REASONS = {ACCURACY: "accuracy", MEMORY: "memory", SLOT: "slot", DEADLINE: "deadline",
           DOWNLINK: "downlink", UPLINK: "uplink"}
REASON_NAMES = tuple(REASONS.values())


REQUEST_COLUMNS = ("prompt_tokens", "output_tokens", "deadline_s", "ppl_tolerance",
                   "uplink_gain", "downlink_gain", "tx_power_w")
MEDIA_COLUMNS = ("media_tokens", "uplink_media_bits", "downlink_media_bits", "encoder_flops")
ENCODER_PRECISION = "fp16"  # media encoders run unquantized (falls back to quant.compute)


@dataclass(frozen=True, eq=False)
class Prepared:
    """Per-instance constants as arrays, computed once (see :func:`prepare` and
    :func:`prepare_arrays`). ``instance`` is built on first access when the arrays came
    without one."""

    system: SlotInstance      # model, quantization, device, radio, slot, modes
    columns: dict             # request attribute -> array (REQUEST_COLUMNS + MEDIA_COLUMNS)
    prefill_tokens: np.ndarray  # s_k + m_k (text + media) [tokens]
    output_tokens: np.ndarray  # n_k [tokens]
    window: np.ndarray        # min(tau_k, slot_s) [s]
    weight: np.ndarray        # objective weight (int64)
    admissible: np.ndarray    # ppl_increase <= A_k
    snr_hz: np.ndarray        # p_k g_k / N0 [Hz]
    up_bits: np.ndarray       # s_k * bits_per_token + uplink media [bit]
    up_floor: np.ndarray      # least possible upload time [s]
    down_c: np.ndarray        # (n_k * bits_per_token + downlink media) / rho_k [Hz s]
    enc_s: np.ndarray         # media encoder seconds e_k / C_enc [s]
    # model / device constants
    n_params: float           # P of the FLOP terms (cost.matmul_params)
    n_layers: int
    d_model: int
    weight_bytes: float
    kv_per_token: float
    flops: float              # effective compute C [FLOP/s]
    bandwidth: float          # effective memory bandwidth M [B/s]
    kv_capacity: float        # memory_bytes - reserved_bytes - W - W_enc [B]
    encoder_bytes: float      # W_enc: resident media-encoder weights [B]
    padded: bool
    uplink_hz: float
    downlink_hz: float
    slot_s: float

    @property
    def n(self) -> int:
        return len(self.prefill_tokens)

    @functools.cached_property
    def instance(self) -> SlotInstance:
        """The slot instance these arrays describe (built from the columns on first use)."""
        cols = [self.columns[k].tolist() for k in REQUEST_COLUMNS + MEDIA_COLUMNS]
        reqs = [Request(int(s), int(n), tau, tol, gu, gd, pw, int(m), mu, md, fe)
                for s, n, tau, tol, gu, gd, pw, m, mu, md, fe in zip(*cols)]
        return self.system.with_requests(reqs)

    @property
    def cost_constants(self) -> tuple[float, float, float, float, float, float, float]:
        """(P, L, d, W, kv, C, M): the model and device arguments of the time formulas."""
        return (self.n_params, float(self.n_layers), float(self.d_model), self.weight_bytes,
                self.kv_per_token, self.flops, self.bandwidth)

    def compute_time(self, b, S, N):
        return cost.compute_time(b, S, N, *self.cost_constants)


def prepare(inst: SlotInstance) -> Prepared:
    """Turn an instance into the arrays the kernel works on."""
    cols = {k: np.array([getattr(r, k) for r in inst.requests], dtype=float)
            for k in REQUEST_COLUMNS + MEDIA_COLUMNS}
    p = prepare_arrays(inst, **cols)
    p.__dict__["instance"] = inst  # known already: no need to rebuild it
    return p


def prepare_arrays(system: SlotInstance, prompt_tokens, output_tokens, deadline_s,
                   ppl_tolerance, uplink_gain, downlink_gain, tx_power_w, media_tokens=None,
                   uplink_media_bits=None, downlink_media_bits=None,
                   encoder_flops=None) -> Prepared:
    """Prepared arrays for ``system`` (its own requests are ignored) and requests given
    column-wise, one array per :class:`Request` field (media columns: None = all zero).
    The values must satisfy the Request checks; nothing is validated here (the environment
    builds them valid by construction); ``instance`` validates them when first built."""
    m, q, dev, rad = system.model, system.quant, system.device, system.radio
    cols = {k: np.asarray(v, dtype=float) for k, v in zip(REQUEST_COLUMNS, (
        prompt_tokens, output_tokens, deadline_s, ppl_tolerance, uplink_gain, downlink_gain,
        tx_power_w))}
    s, n = cols["prompt_tokens"], cols["output_tokens"]
    media = (media_tokens, uplink_media_bits, downlink_media_bits, encoder_flops)
    text_only = all(v is None for v in media)
    for k, v in zip(MEDIA_COLUMNS, media):
        cols[k] = np.zeros(s.size) if v is None else np.asarray(v, dtype=float)
    snr = radio.uplink_snr_hz(cols["tx_power_w"], cols["uplink_gain"], rad.uplink_noise)
    up_bits = s * rad.bits_per_token
    down_bits = n * rad.bits_per_token
    if not text_only:  # (adding zeros would change nothing; text-only skips the sums)
        s = s + cols["media_tokens"]
        up_bits = up_bits + cols["uplink_media_bits"]
        down_bits = down_bits + cols["downlink_media_bits"]
    rho = radio.downlink_efficiency(rad.en_power_w, cols["downlink_gain"],
                                    rad.downlink_noise, rad.downlink_hz)
    P, W = cost.model_costs(m, q)
    W_enc = cost.encoder_bytes(m.encoder_params)
    C_enc = encoder_rate(system)
    return Prepared(
        system=system, columns=cols,
        prefill_tokens=s, output_tokens=n,
        window=np.minimum(cols["deadline_s"], system.slot_s),
        weight=(np.ones(s.size, dtype=np.int64) if system.objective == "requests"
                else n.astype(np.int64)),
        admissible=q.ppl_increase <= cols["ppl_tolerance"],
        snr_hz=snr, up_bits=up_bits, up_floor=radio.uplink_min_time(up_bits, snr),
        down_c=down_bits / rho, enc_s=cost.encoder_time(cols["encoder_flops"], C_enc),
        n_params=float(P), n_layers=m.n_layers, d_model=m.d_model,
        weight_bytes=W,
        kv_per_token=cost.kv_bytes_per_token(m.n_layers, m.d_model, m.n_heads, m.n_kv_heads,
                                             q.kv_bits),
        flops=dev.peak_flops[q.compute] * dev.compute_efficiency,
        bandwidth=dev.mem_bandwidth * dev.memory_efficiency,
        kv_capacity=dev.memory_bytes - dev.reserved_bytes - W - W_enc, encoder_bytes=W_enc,
        padded=system.kv_cache == "padded",
        uplink_hz=rad.uplink_hz, downlink_hz=rad.downlink_hz, slot_s=system.slot_s,
    )


def encoder_rate(system: SlotInstance) -> float:
    """C_enc [FLOP/s]: the device's effective FP16 rate (media encoders stay unquantized),
    or its rate at the quantization's compute precision where it lists no FP16 peak."""
    dev = system.device
    peak = dev.peak_flops.get(ENCODER_PRECISION, dev.peak_flops[system.quant.compute])
    return peak * dev.compute_efficiency


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
    down_hz: np.ndarray     # (m, b) least downlink bandwidths with an instant uplink [Hz]


def check_rows(p: Prepared, idx: np.ndarray) -> RowCheck:
    """Check m batches at once; ``idx`` is an (m, b) int matrix, each row one batch (b >= 1).

    Rows are tested in the order accuracy, memory, slot/deadline (compute alone overruns the
    slot or a deadline), downlink (too little bandwidth even with an instant uplink), uplink
    (uploading takes so long that the downloads no longer fit).
    """
    idx = np.sort(np.asarray(idx, dtype=np.int64), axis=1)  # same set, same arithmetic
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"check_rows: idx must be an (m, b) matrix with b >= 1, got {idx.shape}")
    out = _kernel.check_rows_kernel(
        idx, p.prefill_tokens, p.output_tokens, p.window, p.admissible, p.up_bits, p.snr_hz,
        p.down_c, p.enc_s, *p.cost_constants, p.kv_capacity, p.padded, p.uplink_hz,
        p.downlink_hz, p.slot_s)
    return RowCheck(*out)


def check_additions(p: Prepared, batch, candidates) -> RowCheck:
    """:func:`check_rows` for the batches ``batch + [j]``, one row per ``j`` in ``candidates``."""
    candidates = np.asarray(candidates, dtype=np.int64)
    idx = np.empty((candidates.size, len(batch) + 1), dtype=np.int64)
    idx[:, :-1] = batch
    idx[:, -1] = candidates
    return check_rows(p, idx)


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
    t_encoder_s: float = 0.0  # media encoders (part of t_compute_s)

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, tuple):
                return [clean(x) for x in v]
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        return {k: clean(v) for k, v in self.__dict__.items()}


def evaluate(inst: SlotInstance | Prepared, batch) -> BatchEvaluation:
    """Feasibility, timing, memory and least bandwidths of ``batch`` (request indices)."""
    p = inst if isinstance(inst, Prepared) else prepare(inst)
    members = _check_batch(p, batch)
    b = len(members)
    nan = math.nan
    if b == 0:
        return BatchEvaluation((), True, None, 0, 0.0, nan, 0.0, 0.0, 0.0, 0.0, 0.0,
                               p.weight_bytes + p.encoder_bytes, 0.0, (), (), ())
    arr = np.array(members, dtype=np.int64)
    rc = check_rows(p, arr[None, :])
    code = int(rc.code[0])
    t_pre = _kernel.prefill_s(float(b), float(rc.S[0]), *p.cost_constants)
    tc = float(rc.t_compute[0])
    kv = float(rc.kv_bytes[0])
    t_enc = float(p.enc_s[arr].sum())
    common = dict(batch=members, t_compute_s=tc, t_prefill_s=t_pre, t_encoder_s=t_enc,
                  t_decode_s=tc - t_pre - t_enc,
                  memory_bytes=p.weight_bytes + p.encoder_bytes + kv, kv_bytes=kv)
    if code != OK:
        return BatchEvaluation(feasible=False, reason=REASONS[code], value=0,
                               t_uplink_s=nan, t_uplink_max_s=float(rc.t_hi[0]),
                               t_download_max_s=nan, epoch_s=nan, uplink_hz=(), downlink_hz=(),
                               download_s=(), **common)
    t_hi = float(rc.t_hi[0])
    t_up, up, left, down = _kernel.allocation(p.up_bits[arr], p.snr_hz[arr], p.down_c[arr],
                                              p.window[arr], tc, t_hi, p.uplink_hz)
    t_down = float(left.max())
    return BatchEvaluation(feasible=True, reason=None, value=int(p.weight[arr].sum()),
                           t_uplink_s=t_up, t_uplink_max_s=t_hi, t_download_max_s=t_down,
                           epoch_s=t_up + tc + t_down, uplink_hz=tuple(up.tolist()),
                           downlink_hz=tuple(down.tolist()), download_s=tuple(left.tolist()),
                           **common)


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
