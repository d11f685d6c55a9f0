"""Compiled scalar core of the cost and radio models (numba).

These functions are *the* formulas of SPEC 2.2-2.3: :mod:`cost` and :mod:`radio` expose
them as broadcasting NumPy ufuncs, and :func:`check_rows_kernel` /
:func:`least_uplink_phase` use them inside the feasibility kernel. Nothing else
re-implements them. Compiled code is cached next to this file on first use.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LN2 = math.log(2.0)
OK, ACCURACY, MEMORY, SLOT, DEADLINE, DOWNLINK, UPLINK = range(7)

_jit = njit(cache=True, nogil=True)
# The per-row checks and the formulas they call are inlined into their compiled callers
# (numba IR inlining): called once per feasibility row, their call boundaries (array
# arguments' reference counts, tuple returns) cost more than their arithmetic. Same
# operations in the same order, so the same results bit for bit.
_inline = njit(cache=True, nogil=True, inline="always")


# ----------------------------------------------------------------------------- compute
@_inline
def prefill_s(b, S, P, L, d, W, kv, C, M):
    """Prefill seconds: max(F / C, Q / M), F = b (2 P S + 2 L d S (S + 1)), Q = W + b S kv."""
    flops = b * (2.0 * P * S + 2.0 * L * d * S * (S + 1.0))
    moved = W + b * S * kv
    return max(flops / C, moved / M)


@_inline
def decode_s(b, S, N, P, L, d, W, kv, C, M):
    """Seconds of decode steps j = 1 .. N - 1, in closed form.

    T_j = max(F_j / C, Q_j / M) with both terms linear in j: sum_j Q_j / M (an arithmetic
    series) plus the positive part of (F_j / C - Q_j / M), which is linear in j and so
    positive on one contiguous range of steps.
    """
    m = N - 1.0
    if m <= 0.0:
        return 0.0
    af = b * (2.0 * P + 4.0 * L * d * S) / C   # compute term: af + bf j
    bf = b * 4.0 * L * d / C
    aq = (W + b * S * kv) / M                  # memory term: aq + bq j
    bq = b * kv / M
    total = m * aq + bq * m * (m + 1.0) / 2.0
    g = af - aq
    h = bf - bq
    # clamp the crossing into [0, m + 1] before rounding: near-equal slopes put it at
    # ~1e19, beyond the integers that floor/ceil return under numba
    if h > 0.0:
        lo, hi = max(1.0, math.ceil(min(max(-g / h, 0.0), m + 1.0))), m
    elif h < 0.0:
        lo, hi = 1.0, min(m, math.floor(min(max(-g / h, 0.0), m + 1.0)))
    elif g > 0.0:
        lo, hi = 1.0, m
    else:
        return total
    if hi >= lo:
        count = hi - lo + 1.0
        total += count * g + h * (lo + hi) * count / 2.0
    return total


@_inline
def compute_s(b, S, N, P, L, d, W, kv, C, M):
    """T_C = prefill + decode seconds."""
    return prefill_s(b, S, P, L, d, W, kv, C, M) + decode_s(b, S, N, P, L, d, W, kv, C, M)


@_inline
def kv_cache_bytes(b, S, N, sum_sn, kv, padded):
    """KV-cache bytes: b (S + N) kv when ``padded``, else sum_k (s_k + n_k) kv."""
    return b * (S + N) * kv if padded else sum_sn * kv


@_jit
def served_alone(prefill, n, enc_s, P, L, d, W, kv, C, M, kv_cap, padded):
    """(T_C [s], KV fits) of one request served alone (b = 1): its encoder seconds plus
    prefill and decode, and whether its KV cache fits in ``kv_cap`` bytes. The arrival
    test of the env's queues, the hindsight trace and the rollout planner."""
    tc = enc_s + compute_s(1.0, prefill, n, P, L, d, W, kv, C, M)
    return tc, kv_cache_bytes(1.0, prefill, n, prefill + n, kv, padded) <= kv_cap


# ----------------------------------------------------------------------------- radio
@_jit
def uplink_bw(bits, t, snr):
    """Least bandwidth [Hz] that uploads ``bits`` in ``t`` s with a = p g / N0 = ``snr`` [Hz].

    Solves ln(1 + x) = c x, x = a / beta, c = bits ln 2 / (a t) in (0, 1): start from the
    asymptotic expansion of x = -W_{-1}(-c e^{-c}) / c - 1, move right of the root, then
    Newton's method, which converges monotonically there (ln(1 + x) - c x is concave).
    """
    return _uplink_bw_newton(bits, t, snr, 100)


@_jit
def uplink_bw_lower(bits, t, snr):
    """A lower bound on :func:`uplink_bw` [Hz] for relaxations and necessary conditions,
    with half the log1p calls: two of its Newton steps, whose iterates x stay right of the
    root, so snr / x stays below the least bandwidth (within 1e-5 of it typically, 1e-3 at
    most where c nears 1), less 1e-9 of it for rounding (near c = 1 the two solves'
    roundings differ by up to 4e-12)."""
    return _uplink_bw_newton(bits, t, snr, 2) * (1.0 - 1e-9)


@_jit
def _uplink_bw_newton(bits, t, snr, steps):
    """:func:`uplink_bw` with at most ``steps`` Newton steps (it stops earlier once a step
    is below 1e-15 of x)."""
    if bits <= 0.0:
        return 0.0
    if not t > 0.0:
        return math.inf
    c = bits * LN2 / (snr * t)
    if c >= 1.0:
        return math.inf
    lc = math.log(c)
    x = (c - lc + math.log(c - lc)) / c - 1.0
    if not (x > 0.0 and math.isfinite(x)):
        x = 2.0 * (1.0 - c) / c
    for _ in range(200):
        if math.log1p(x) - c * x <= 0.0:
            break
        x *= 2.0
    for _ in range(steps):
        step = (math.log1p(x) - c * x) / (1.0 / (1.0 + x) - c)
        x -= step
        if abs(step) <= 1e-15 * x:
            break
    return snr / x


@_jit
def _uplink_slope(bits, t, snr, beta):
    """d beta / d t [Hz/s] of the least uplink bandwidth (negative)."""
    x = snr / beta
    drate = (math.log1p(x) - x / (1.0 + x)) / LN2  # d rate / d beta [bit/s/Hz]
    return -(bits / (t * t)) / drate


@_jit
def _uplink_sum(bits, snr, t):
    total = 0.0
    for k in range(bits.size):
        total += uplink_bw(bits[k], t, snr[k])
    return total


@_jit
def least_uplink_phase(bits, snr, t_hi, B):
    """T_lo: the least uplink phase whose least bandwidths sum to at most B.

    The sum is convex and decreasing in T, so Newton's method started left of the root
    (at the largest single-user time at full bandwidth) climbs monotonically to it; a
    short bisection then returns the least T found to fit, never above ``t_hi``.
    """
    T = 0.0
    for k in range(bits.size):
        T = max(T, bits[k] / (B * math.log2(1.0 + snr[k] / B)))
    T = min(T, t_hi)
    for _ in range(100):
        f = 0.0
        fp = 0.0
        for k in range(bits.size):
            beta = uplink_bw(bits[k], T, snr[k])
            f += beta
            fp += _uplink_slope(bits[k], T, snr[k], beta)
        f -= B
        if f <= 0.0:
            break
        step = -f / fp
        T = min(T + step, t_hi)
        if step <= 1e-15 * T:
            break
    lo, hi, gap = T, T, 1e-12
    while hi < t_hi and _uplink_sum(bits, snr, hi) > B:  # step right until it fits
        lo, hi, gap = hi, min(hi * (1.0 + gap), t_hi), gap * 4.0
    if lo < hi:
        for _ in range(200):
            if hi - lo <= 4e-16 * hi:
                break
            mid = 0.5 * (lo + hi)
            if _uplink_sum(bits, snr, mid) <= B:
                hi = mid
            else:
                lo = mid
    return hi


@_jit
def allocation(bits, snr, down_c, window, tc, t_hi, B):
    """Reported allocation of a feasible batch: T_lo, then each member's least uplink
    bandwidth at T_lo, its download time (until its window closes) and least downlink
    bandwidth for it."""
    t_up = least_uplink_phase(bits, snr, t_hi, B)
    up = np.empty(bits.size)
    left = np.empty(bits.size)
    down = np.empty(bits.size)
    for k in range(bits.size):
        up[k] = uplink_bw(bits[k], t_up, snr[k])
        left[k] = window[k] - tc - t_up
        down[k] = down_c[k] / left[k]
    return t_up, up, left, down


# ----------------------------------------------------------------------------- kernel
@_jit
def _downlink_t_hi(D, c, B):
    """Largest T in [0, min D) with sum c / (D - T) <= B (requires sum c / D <= B).

    1 / g(T) is concave, so Newton's method on it started right of the root converges
    monotonically from the right."""
    k = 0
    for j in range(D.size):
        if D[j] < D[k]:
            k = j
    dmin = D[k]
    T = max(dmin - c[k] / B, 0.0)
    for _ in range(100):
        g = 0.0
        gp = 0.0
        for j in range(D.size):
            r = c[j] / (D[j] - T)
            g += r
            gp += r / (D[j] - T)
        step = g * (1.0 - g / B) / gp
        T = max(T + step, 0.0)
        if -step <= 1e-13 * dmin:
            break
    return T


@_inline
def _row_cost(ids, prompt, output, window, admissible, down_c, enc_s, P, L, d, W, kv, C, M,
              kv_cap, padded, slot):
    """The compute-side tests of :func:`check_row` (accuracy, memory, slot and deadlines):
    returns (code, S, N, KV bytes, T_C, the smallest window, the summed downlink demand
    [Hz s]), code OK when the radio tests are left."""
    b = ids.size
    S = 0.0
    N = 0.0
    sum_sn = 0.0
    wmin = math.inf
    enc = 0.0
    csum = 0.0
    adm = True
    for k in range(b):
        i = ids[k]
        S = max(S, prompt[i])
        N = max(N, output[i])
        sum_sn += prompt[i] + output[i]
        wmin = min(wmin, window[i])
        enc += enc_s[i]
        csum += down_c[i]
        adm = adm and admissible[i]
    kvb = kv_cache_bytes(float(b), S, N, sum_sn, kv, padded)
    tc = enc + compute_s(float(b), S, N, P, L, d, W, kv, C, M)
    if not adm:
        return ACCURACY, S, N, kvb, tc, wmin, csum
    if kvb > kv_cap:
        return MEMORY, S, N, kvb, tc, wmin, csum
    if tc >= wmin:
        return (SLOT if wmin >= slot else DEADLINE), S, N, kvb, tc, wmin, csum
    return OK, S, N, kvb, tc, wmin, csum


@_inline
def _downlink_fits(ids, window, down_c, tc, B_D, D, c, down):
    """The downlink test of :func:`check_row` (least downlink bandwidths with an instant
    uplink fit in B_D); fills ``D`` (download windows after T_C), ``c`` and ``down``."""
    g0 = 0.0
    for k in range(ids.size):
        i = ids[k]
        D[k] = window[i] - tc
        c[k] = down_c[i]
        down[k] = c[k] / D[k]
        g0 += down[k]
    return not g0 > B_D


@_inline
def _uplink_fits(ids, up_bits, snr, T, B_U, up):
    """The uplink test of :func:`check_row`: sum_k uplink_bw(up_bits[i], T, snr[i]) <= B_U
    over the batch, the terms written into ``up``."""
    total = 0.0
    for k in range(ids.size):
        i = ids[k]
        up[k] = uplink_bw(up_bits[i], T, snr[i])
        total += up[k]
    return total <= B_U


@_inline
def check_row(ids, prompt, output, window, admissible, up_bits, snr, down_c, enc_s,
              P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot, D, c, up, down):
    """Feasibility of one batch ``ids`` (sorted request indices): returns (code, S, N, KV
    bytes, T_C, T_hi). ``prompt`` holds each request's prefill tokens (text + media),
    ``enc_s`` its media encoder seconds: T_C = their sum over the batch + prefill + decode.
    Writes the least uplink bandwidths at T_hi into ``up`` and the least downlink
    bandwidths with an instant uplink into ``down`` as far as the checks get;
    ``D`` and ``c`` are scratch (length >= len(ids))."""
    code, S, N, kvb, tc, _, _ = _row_cost(ids, prompt, output, window, admissible, down_c,
                                          enc_s, P, L, d, W, kv, C, M, kv_cap, padded, slot)
    if code != OK:
        return code, S, N, kvb, tc, math.nan
    if not _downlink_fits(ids, window, down_c, tc, B_D, D, c, down):
        return DOWNLINK, S, N, kvb, tc, math.nan
    b = ids.size
    T = _downlink_t_hi(D[:b], c[:b], B_D)
    if not _uplink_fits(ids, up_bits, snr, T, B_U, up):
        code = UPLINK
    return code, S, N, kvb, tc, T


# ----------------------------------------------------------------------------- screening
# Each least uplink bandwidth is snr / x with x the root of ln(1 + x) = c x, c = bits ln2 /
# (snr T) in (0, 1). The bounds 2x / (2 + x) <= ln(1 + x) <= x / sqrt(1 + x) and
# ln(1 + x) <= x (2 + x) / (2 (1 + x)) (x >= 0) bracket the root in closed form:
# 2 (1 - c) / c <= x <= min(1 / c^2 - 1, 2 (1 - c) / (2c - 1) if c > 1/2), hence
# snr c^2 / (1 - c^2) <= beta <= snr c / (2 (1 - c)) (the lower one tighter where c > 1/2).
# A decision taken from bounds must clear B_U by a relative margin: the exact test's sums
# (Newton to 1e-15 per term, T_hi to 1e-13 of the window) agree with the true sums far
# closer than that, so the screen and the exact test never disagree.
_SCREEN_MARGIN = 1e-7
_SCREEN_C_MAX = 0.999   # nearer c = 1 the root x ~ 2 (1 - c) loses digits: solve exactly
_SCREEN_T_MIN = 1e-3    # a bracket end below this share of the window: solve exactly


@_inline
def _uplink_upper(ids, up_bits, snr, T):
    """An upper bound on sum_k uplink_bw(up_bits[i], T, snr[i]) [Hz] (one division per
    member), or inf where a term is near or past the rate limit."""
    hi = 0.0
    for k in range(ids.size):
        i = ids[k]
        if up_bits[i] <= 0.0:
            continue
        a = snr[i]
        u = up_bits[i] * LN2   # c = u / v
        v = a * T
        if not (v > 0.0 and u <= _SCREEN_C_MAX * v):
            return math.inf
        hi += a * u / (2.0 * (v - u))
    return hi


@_inline
def uplink_screen(ids, up_bits, snr, T, B_U):
    """Certified answer to sum_k uplink_bw(up_bits[i], T, snr[i]) <= B_U over the batch
    without Newton solves: 1 when it surely holds, -1 when it surely fails, 0 when the
    closed-form bounds above do not decide (or a term is near the rate limit)."""
    hi = 0.0
    lo = 0.0
    for k in range(ids.size):
        i = ids[k]
        bits = up_bits[i]
        if bits <= 0.0:  # the branches of uplink_bw, in its order
            continue
        if not T > 0.0:
            return -1
        a = snr[i]
        cc = bits * LN2 / (a * T)
        if cc >= 1.0:
            return -1
        if not (cc > 0.0 and cc <= _SCREEN_C_MAX):
            return 0
        hi += a * cc / (2.0 * (1.0 - cc))
        x = 1.0 / (cc * cc) - 1.0
        if cc > 0.5:
            x = min(x, 2.0 * (1.0 - cc) / (2.0 * cc - 1.0))
        lo += a / x
    if hi <= B_U * (1.0 - _SCREEN_MARGIN):
        return 1
    if lo > B_U * (1.0 + _SCREEN_MARGIN):
        return -1
    return 0


@_inline
def check_row_screened(ids, prompt, output, window, admissible, up_bits, snr, down_c, enc_s,
                       P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot, D, c, up, down):
    """:func:`check_row`'s (code, S, N, KV bytes, T_C), bit for bit, mostly without its
    Newton solves and per-member downlink divisions (T_hi is not returned; ``D``, ``c``,
    ``up`` and ``down`` are scratch).

    T_hi lies in [T_L, T_0] with D_min the smallest download window and c_min its demand:
    T_L = D_min - sum_k c_k / B_D (every window is at least D_min - T; T_L > 0 also
    passes the downlink test) and T_0 = D_min - c_min / B_D (that member alone fills B_D).
    The uplink sum falls with T, so the batch fits if a bound certifies it at T_L and
    fails if :func:`uplink_screen` refutes it at T_0; otherwise T_hi is solved, screened
    again, and the uplink test run exactly if need be."""
    code, S, N, kvb, tc, wmin, csum = _row_cost(ids, prompt, output, window, admissible,
                                                down_c, enc_s, P, L, d, W, kv, C, M, kv_cap,
                                                padded, slot)
    if code != OK:
        return code, S, N, kvb, tc
    dmin = wmin - tc  # = min_k (window_k - T_C): rounding is monotone
    t_lo = dmin - csum / B_D
    if t_lo > _SCREEN_T_MIN * dmin and \
            _uplink_upper(ids, up_bits, snr, t_lo) <= B_U * (1.0 - _SCREEN_MARGIN):
        return OK, S, N, kvb, tc
    if not _downlink_fits(ids, window, down_c, tc, B_D, D, c, down):
        return DOWNLINK, S, N, kvb, tc
    b = ids.size
    cmin = 0.0
    for k in range(b):
        if D[k] == dmin:
            cmin = max(cmin, c[k])
    t_0 = dmin - cmin / B_D
    if t_0 > _SCREEN_T_MIN * dmin and uplink_screen(ids, up_bits, snr, t_0, B_U) < 0:
        return UPLINK, S, N, kvb, tc
    T = _downlink_t_hi(D[:b], c[:b], B_D)
    s = uplink_screen(ids, up_bits, snr, T, B_U)
    if s < 0 or (s == 0 and not _uplink_fits(ids, up_bits, snr, T, B_U, up)):
        return UPLINK, S, N, kvb, tc
    return OK, S, N, kvb, tc


@_jit
def check_rows_kernel(idx, prompt, output, window, admissible, up_bits, snr, down_c, enc_s,
                      P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot):
    """Feasibility of each row of ``idx`` (sorted request indices, one batch per row), by
    :func:`check_row`."""
    m, b = idx.shape
    code = np.zeros(m, np.int8)
    S_out = np.zeros(m)
    N_out = np.zeros(m)
    kv_out = np.zeros(m)
    tc_out = np.zeros(m)
    t_hi = np.full(m, np.nan)
    up = np.full((m, b), np.nan)
    down = np.full((m, b), np.nan)
    D = np.empty(b)
    c = np.empty(b)
    for r in range(m):
        code[r], S_out[r], N_out[r], kv_out[r], tc_out[r], t_hi[r] = check_row(
            idx[r], prompt, output, window, admissible, up_bits, snr, down_c, enc_s,
            P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot, D, c, up[r], down[r])
    return code, S_out, N_out, kv_out, tc_out, t_hi, up, down
