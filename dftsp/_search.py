"""Compiled branch and bound of DFTSP (numba): the search loop and its node bounds.

The tree and the pruning rules are described in :mod:`edgellm.dftsp.solver`; this module
holds the loop, which runs on an explicit stack so that it can stop at a time or node
limit and report an upper bound on what it left unexplored. Every feasibility decision is
:func:`edgellm.system._kernel.check_row`, the kernel that ``check_rows`` uses, so the
search and ``evaluate`` never disagree (the greedy fills use its screened twin,
``check_row_screened``, which returns the same codes).
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit, objmode

from edgellm.system._kernel import (
    OK,
    check_row,
    check_row_screened,
    compute_s,
    kv_cache_bytes,
    uplink_bw,
    uplink_bw_lower,
)

_SLACK = 1e-9  # relative slack on the capacities of necessary conditions (rounding)
_CLOCK_EVERY = 8  # loop steps between two looks at the clock
_BOX_TRIES = 6  # longest prompts S* the root's greedy incumbent tries
_T_CELLS = 4  # first cells of the uplink time in :func:`box_lagrange`
_T_DEPTH = 4  # times a cell may be halved there
_RATIO_MIN = 512  # candidates from which the root's greedy fills order by resource shares
GREEDY_SHARE = 0.25  # share of a time limit the greedy incumbents may take first
_CLOSE_GAP = 256  # tree steps between two tries of :func:`box_lagrange` in a box


@njit(cache=True)
def _clock():
    with objmode(t="float64"):
        t = time.perf_counter()
    return t


@njit(cache=True, nogil=True)
def _frac_knapsack(w, size, idx, n, capacity):
    """Floor of the fractional-knapsack optimum of items idx[:n] (integer weights w, sizes
    ``size`` indexed like idx's positions) within ``capacity``: an upper bound on the
    weight of any subset whose sizes fit."""
    if capacity < 0.0:
        return -1
    ratio = np.empty(n)
    for t in range(n):
        s = size[t]
        ratio[t] = -(w[idx[t]] / s) if s > 0.0 else -math.inf
    order = np.argsort(ratio)
    total = 0.0
    left = capacity
    for q in range(n):
        t = order[q]
        s = size[t]
        wt = float(w[idx[t]])
        if s <= left:
            total += wt
            left -= s
        else:
            total += wt * left / s
            break
    return int(math.floor(total * (1.0 + 1e-12) + 1e-9))


@njit(cache=True, nogil=True)
def _top_weight_suffix(w, cand, wsort, n, start, k):
    """Sum of the k largest weights among cand[start:n] (wsort: positions by weight)."""
    total = 0
    taken = 0
    for q in range(n):
        if taken >= k:
            break
        t = wsort[q]
        if t >= start:
            total += w[cand[t]]
            taken += 1
    return total


@njit(cache=True, nogil=True)
def _masked(size, mask, n):
    """size[t] for the t < n with mask[t], in a new array."""
    vals = np.empty(n)
    c = 0
    for t in range(n):
        if mask[t]:
            vals[c] = size[t]
            c += 1
    return vals[:c]


@njit(cache=True, nogil=True)
def _smallest_sum(size, mask, n, m):
    """Sum of the m smallest size[t] with mask[t] (inf if fewer than m)."""
    vals = _masked(size, mask, n)
    if vals.size < m:
        return math.inf
    return _sum_smallest(vals, vals.size, m) if m else 0.0


@njit(cache=True, nogil=True)
def _kth_smallest(size, mask, n, m):
    """The m-th smallest size[t] with mask[t] (inf if fewer than m; m >= 1)."""
    vals = _masked(size, mask, n)
    if vals.size < m:
        return math.inf
    return np.partition(vals, m - 1)[m - 1]


@njit(cache=True, nogil=True)
def _box_fits(m, b, S, N, sumsn, minw, ids, F, nF, mask, prompt, output, window, down_c,
              P, L, d, W, kv, C, M, kv_cap, padded, B_D, out_S, out_N):
    """Necessary condition on the batch's longest prompt S* and output N* for m of the
    candidates F[t] with mask[t] to join X together: for some S* among their max(S, s_j),
    with E the candidates whose max(S, s_j) <= S* and N_m the m-th smallest max(N, n_j)
    in E, T_C(b + m, S*, N_m) (a lower bound on the batch's compute time) stays below X's
    windows and below the windows of at least m members of E, with padded memory
    (b + m)(S* + N_m) positions fit, and X's least KV memory and downlink demand plus the m
    smallest of those members' fit too. Returns how many S* pass; with non-empty
    ``out_S``/``out_N`` records the passing boxes (S*, N_m) there, up to their size,
    else stops at the first."""
    ne = 0
    for t in range(nF):
        if mask[t]:
            ne += 1
    if ne < m:
        return 0
    sj = np.empty(ne)
    nj = np.empty(ne)
    wj = np.empty(ne)
    q = 0
    for t in range(nF):
        if mask[t]:
            sj[q] = max(S, prompt[F[t]])
            nj[q] = max(N, output[F[t]])
            wj[q] = window[F[t]]
            q += 1
    memj = np.empty(ne)
    dcj = np.empty(ne)
    q = 0
    for t in range(nF):
        if mask[t]:
            memj[q] = prompt[F[t]] + output[F[t]]
            dcj[q] = down_c[F[t]]
            q += 1
    mem = np.empty(ne)
    dn = np.empty(ne)
    order = np.argsort(sj)
    found = 0
    ns = np.empty(ne)  # N values of E, kept sorted
    for q in range(ne):
        t = order[q]
        # insert nj[t] into ns[:q]
        k = q
        while k > 0 and ns[k - 1] > nj[t]:
            ns[k] = ns[k - 1]
            k -= 1
        ns[k] = nj[t]
        if q + 1 < m or (q + 1 < ne and sj[order[q + 1]] == sj[t]):
            continue  # E must hold every candidate with this longest prompt
        Sx = sj[t]
        Nx = ns[m - 1]
        if padded and kv_cache_bytes(float(b + m), Sx, Nx, 0.0, kv, True) > kv_cap:
            continue
        tau = compute_s(float(b + m), Sx, Nx, P, L, d, W, kv, C, M)
        if tau >= minw:
            continue
        cnt = 0
        for k in range(q + 1):
            t2 = order[k]
            if wj[t2] > tau:
                mem[cnt] = memj[t2]
                dn[cnt] = dcj[t2] / (wj[t2] - tau)
                cnt += 1
        if cnt < m:
            continue
        # the m joining candidates lie among these cnt: their least memory and downlink
        # demands (compute time at least tau) are at least the m smallest
        if not padded:
            if (sumsn + _sum_smallest(mem, cnt, m)) * kv > kv_cap * (1.0 + _SLACK):
                continue
        used = 0.0
        for k in range(b):
            used += down_c[ids[k]] / (window[ids[k]] - tau)
        if used + _sum_smallest(dn, cnt, m) > B_D * (1.0 + _SLACK):
            continue
        if found < out_S.size:
            out_S[found] = Sx
            out_N[found] = Nx
        found += 1
        if out_S.size == 0 or found >= out_S.size:
            return found
    return found


@njit(cache=True, nogil=True)
def _sum_smallest(vals, n, m):
    """Sum of the m smallest of vals[:n] (m <= n)."""
    if m == n:
        return vals[:n].sum()
    part = np.partition(vals[:n], m - 1)
    return part[:m].sum()


@njit(cache=True, nogil=True)
def _count_box(m, S, N, F, nF, mj, prompt, output, inside, size, mask):
    """(S_m, N_m) of :func:`_resources_fit`, with mask[t] = mj[t] >= m: the batch's
    longest prompt is at least the m-th smallest max(S, s_j) among the eligible
    candidates (it holds m of them), and likewise its longest output; S and N when
    ``inside``; inf when fewer than m are eligible. ``size`` is scratch."""
    ne = 0
    for t in range(nF):
        mask[t] = mj[t] >= m
        ne += mask[t]
    if ne < m:
        return math.inf, math.inf
    if inside:
        return S, N
    for t in range(nF):
        size[t] = max(S, prompt[F[t]])
    Sm = _kth_smallest(size, mask, nF, m)
    for t in range(nF):
        size[t] = max(N, output[F[t]])
    return Sm, _kth_smallest(size, mask, nF, m)


@njit(cache=True, nogil=True)
def _resources_fit(m, b, S, N, sumsn, minw, ids, F, nF, mj, prompt, output, window,
                   down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_D, inside=False):
    """Can the batch X (sorted ``ids``, b members, longest prompt S and output N) grow by m
    members of F[:nF] within compute time, memory and downlink? Necessary conditions:
    only candidates with mj >= m can be among the m, so the batch computes at least
    T_C(b + m, S_m, N_m) with S_m, N_m the m-th smallest longest prompt and output those
    candidates would give (and :func:`_box_fits`), and each resource must hold X's least
    demand plus the m smallest least demands of the eligible candidates (the uplink:
    :func:`_uplink_cap`, the costliest). ``inside``: every candidate is within X's
    longest prompt and output, so S_m = S and N_m = N and the test of :func:`_box_fits`
    is the one below."""
    if m == 0:
        return True
    mask = np.empty(nF, np.bool_)
    size = np.empty(nF)
    Sm, Nm = _count_box(m, S, N, F, nF, mj, prompt, output, inside, size, mask)
    if not math.isfinite(Sm + Nm):
        return False
    if not inside and not _box_fits(m, b, S, N, sumsn, minw, ids, F, nF, mask, prompt,
                                    output, window, down_c, P, L, d, W, kv, C, M, kv_cap,
                                    padded, B_D, np.empty(0), np.empty(0)):
        return False
    tcl = compute_s(float(b + m), Sm, Nm, P, L, d, W, kv, C, M)
    if tcl >= minw:
        return False
    for t in range(nF):
        mask[t] = mask[t] and window[F[t]] > tcl
    if not padded:
        for t in range(nF):
            size[t] = prompt[F[t]] + output[F[t]]
        if (sumsn + _smallest_sum(size, mask, nF, m)) * kv > kv_cap * (1.0 + _SLACK):
            return False
    used = 0.0
    for k in range(b):
        used += down_c[ids[k]] / (window[ids[k]] - tcl)
    for t in range(nF):
        size[t] = down_c[F[t]] / (window[F[t]] - tcl) if mask[t] else math.inf
    return used + _smallest_sum(size, mask, nF, m) <= B_D * (1.0 + _SLACK)


@njit(cache=True, nogil=True)
def _uplink_cap(r, b, S, N, minw, thi, ids, F, nF, mj, prompt, output, window, up_bits,
                snr, P, L, d, W, kv, C, M, B_U, inside, order, key, size, mask, dem):
    """The uplink test of :func:`_resources_fit` at count r, and what it says of larger
    counts: the largest m such that X's least uplink demand plus the m smallest least
    demands of the eligible candidates, all at r's uplink phase bound, fit in B_U. For
    m >= r the batch computes at least as long (S_m, N_m and T_C grow with m), the
    eligible candidates are fewer and the phase ends earlier, so each demand is at least
    its value at r: every m above the result fails the test. r passes it iff the result
    is >= r. The candidates are taken in ``order``, ``key`` a lower bound on each one's
    demand, ascending along it, in rounds of doubling size: once the (m + 1)-th smallest
    demand found is at most the next key, no later candidate changes the result.
    ``size``, ``mask`` and ``dem`` are scratch."""
    Sm, Nm = _count_box(r, S, N, F, nF, mj, prompt, output, inside, size, mask)
    if not math.isfinite(Sm + Nm):
        return r - 1
    tcl = compute_s(float(b + r), Sm, Nm, P, L, d, W, kv, C, M)
    t_end = min(thi, minw - tcl)
    used = 0.0
    for k in range(b):
        used += uplink_bw_lower(up_bits[ids[k]], t_end, snr[ids[k]])
    top = B_U * (1.0 + _SLACK)
    cnt = 0  # demands found in dem[:cnt]
    q = 0
    step = 2 * r + 2  # candidates per round, doubling
    while True:
        while q < nF and cnt < step:
            t = order[q]
            q += 1
            if mask[t] and window[F[t]] > tcl:
                dem[cnt] = uplink_bw_lower(up_bits[F[t]], min(t_end, window[F[t]] - tcl),
                                           snr[F[t]])
                cnt += 1
        srt = np.sort(dem[:cnt])
        acc = used
        m = 0
        while m < cnt and acc + srt[m] <= top:
            acc += srt[m]
            m += 1
        if q >= nF or (m < cnt and srt[m] <= key[order[q]]):
            return m
        step = 2 * cnt


@njit(cache=True, nogil=True)
def _cap_step(lo, hi, r, cap):
    """One step of the search by caps for the largest count that passes a monotone test,
    lo passing and every count above hi failing, after a pass at count r returned
    ``cap`` (:func:`_uplink_cap`, :func:`_count_cap`: r passes iff cap >= r, and then no
    count above cap passes). Returns the new (lo, hi, next r): after a passing r, the
    cap, settled if it passes; after a failing one, its cap as an estimate (demands only
    fall with the count) when inside (lo, hi], else the midpoint."""
    if cap >= r:
        hi = min(hi, cap)
        return r, hi, hi
    hi = r - 1
    return lo, hi, (cap if lo < cap <= hi else (lo + hi + 1) // 2)


@njit(cache=True, nogil=True)
def _uplink_room(room, b, S, N, minw, thi, ids, F, nF, mj, prompt, output, window,
                 up_bits, snr, P, L, d, W, kv, C, M, B_U, upk, inside):
    """The largest m <= room that passes the uplink test of :func:`_resources_fit`, every
    m <= room passing its other tests (what a binary search of that test finds): each
    pass of uplink solves at a count r (:func:`_uplink_cap`) settles r and caps the
    answer, so a few passes do, the next r the cap a failed pass estimates. ``inside``:
    the candidates' demands ``upk`` (:func:`_expand`) are lower bounds at every count,
    so each pass takes them in ascending order and stops early."""
    size = np.empty(nF)
    mask = np.empty(nF, np.bool_)
    dem = np.empty(nF)
    if inside:
        order = np.argsort(upk[:nF])
        key = upk
    else:
        order = np.arange(nF)
        key = np.full(nF, -1.0)
    lo, hi, r = 0, room, room
    while lo < hi:
        cap = _uplink_cap(r, b, S, N, minw, thi, ids, F, nF, mj, prompt, output, window,
                          up_bits, snr, P, L, d, W, kv, C, M, B_U, inside, order, key,
                          size, mask, dem)
        lo, hi, r = _cap_step(lo, hi, r, cap)
    return lo


@njit(cache=True, nogil=True)
def _node_bound(b, S, N, sumsn, minw, thi, upsum, downsum, ids, F, nF, tck, upk,
                prompt, output, window, weight, up_bits, snr, down_c,
                P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, unit):
    """(room, cap): at most ``room`` candidates of F[:nF] join X together in any feasible
    superset, adding at most ``cap`` value. ``tck`` and ``upk`` are each candidate's T_C
    when it joins X alone and its least uplink bandwidth then (at most T_hi(X); a lower
    bound, see :func:`_expand`);
    ``upsum`` and ``downsum`` X's least uplink demand at T_hi(X) and downlink demand at
    T_C(b + 1, S, N) with an instant uplink."""
    if nF == 0:
        return 0, 0
    # m_j: the largest size m of an addition holding j that compute time and deadlines
    # (and padded memory) allow, with the batch's longest prompt and output at least
    # those of X + j: T_C(b + m, S_j, N_j) < min(w_j, min window of X)
    mj = np.empty(nF, np.int64)
    inside = True  # every candidate within X's longest prompt and output (a box)
    wtop = 0.0
    for t in range(nF):
        inside = inside and prompt[F[t]] <= S and output[F[t]] <= N
        wtop = max(wtop, min(minw, window[F[t]]))
    if inside:
        # T_C(b + m, S, N) is the same for every candidate: tabulate it once, up to the
        # first count that no window or the padded memory admits
        tm = np.empty(nF + 1)
        top = 0
        for m in range(1, nF + 1):
            if padded and kv_cache_bytes(float(b + m), S, N, 0.0, kv, True) > kv_cap:
                break
            tm[m] = compute_s(float(b + m), S, N, P, L, d, W, kv, C, M)
            if tm[m] >= wtop:
                break
            top = m
        for t in range(nF):
            cap_w = min(minw, window[F[t]])
            lo, hi = 1, max(top, 1)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if tm[mid] < cap_w:
                    lo = mid
                else:
                    hi = mid - 1
            mj[t] = lo
    for t in range(nF):
        if inside:
            break
        j = F[t]
        Sj = max(S, prompt[j])
        Nj = max(N, output[j])
        cap_w = min(minw, window[j])
        lo, hi = 1, nF
        while lo < hi:
            mid = (lo + hi + 1) // 2
            ok = compute_s(float(b + mid), Sj, Nj, P, L, d, W, kv, C, M) < cap_w
            if ok and padded:
                ok = kv_cache_bytes(float(b + mid), Sj, Nj, 0.0, kv, True) <= kv_cap
            if ok:
                lo = mid
            else:
                hi = mid - 1
        mj[t] = lo
    # h-index: at most m candidates can join if fewer than m + 1 have mj >= m + 1
    srt = -np.sort(-mj)
    room = 0
    for t in range(nF):
        if srt[t] >= t + 1:
            room = t + 1
        else:
            break
    # resources: the largest m <= room that passes (monotone in m), first without the
    # uplink test, then with it
    if not _resources_fit(room, b, S, N, sumsn, minw, ids, F, nF, mj, prompt, output,
                          window, down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_D,
                          inside):
        lo, hi = 0, room - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _resources_fit(mid, b, S, N, sumsn, minw, ids, F, nF, mj, prompt, output,
                              window, down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_D,
                              inside):
                lo = mid
            else:
                hi = mid - 1
        room = lo
    room = _uplink_room(room, b, S, N, minw, thi, ids, F, nF, mj, prompt, output, window,
                        up_bits, snr, P, L, d, W, kv, C, M, B_U, upk, inside)
    if unit or room == 0:
        return room, room
    # value: the m heaviest candidates with mj >= m, for the best m <= room
    order = np.argsort(-weight[F[:nF]])
    cap = 0
    for m in range(1, room + 1):
        total = 0
        taken = 0
        for q in range(nF):
            t = order[q]
            if mj[t] >= m:
                total += weight[F[t]]
                taken += 1
                if taken == m:
                    break
        if taken == m and total > cap:
            cap = total
    # fractional knapsacks on each resource's least demand
    size = np.empty(nF)
    if not padded:
        for t in range(nF):
            size[t] = prompt[F[t]] + output[F[t]]
        cap = min(cap, _frac_knapsack(weight, size, F, nF, kv_cap / kv - sumsn))
    for t in range(nF):
        size[t] = down_c[F[t]] / (window[F[t]] - tck[t])
    cap = min(cap, _frac_knapsack(weight, size, F, nF, B_D - downsum))
    cap = min(cap, _frac_knapsack(weight, upk, F, nF, B_U - upsum))
    return room, max(cap, 0)


@njit(cache=True, nogil=True)
def _bound(unit, weight, cand, wsort, n, room, cap, start, k):
    """Upper bound on the value candidates cand[start:n] add (at most k of them)."""
    if unit:
        return max(min(k, n - start, cap), 0)
    return min(_top_weight_suffix(weight, cand, wsort, n, start, k), cap)


@njit(cache=True, nogil=True)
def _expand(b, ids, S, N, sumsn, minw, thi, upsum, src, start, nsrc, out, tck, upk,
            prompt, output, window, up_bits, snr, down_c,
            P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D):
    """Candidates of X's subtree: the k in src[start:nsrc] that pass the necessary
    conditions of X + k (memory, compute time against deadlines, downlink demand, uplink
    demand with the phase ending before T_hi(X)); written to ``out``, with their T_C and
    least uplink bandwidths (certified lower bounds, :func:`uplink_bw_lower`) in tck and
    upk. Returns (count, X's downlink demand at T_C(b + 1, S, N))."""
    tc0 = compute_s(float(b + 1), S, N, P, L, d, W, kv, C, M)
    downsum = 0.0
    for k in range(b):
        downsum += down_c[ids[k]] / (window[ids[k]] - tc0)
    cnt = 0
    for q in range(start, nsrc):
        j = src[q]
        Sj = max(S, prompt[j])
        Nj = max(N, output[j])
        if kv_cache_bytes(float(b + 1), Sj, Nj, sumsn + prompt[j] + output[j], kv,
                          padded) > kv_cap:
            continue
        tc = compute_s(float(b + 1), Sj, Nj, P, L, d, W, kv, C, M)
        if tc >= minw or tc >= window[j]:
            continue
        if downsum + down_c[j] / (window[j] - tc) > B_D * (1.0 + _SLACK):
            continue
        u = uplink_bw_lower(up_bits[j], min(thi, window[j] - tc), snr[j])
        if upsum + u > B_U * (1.0 + _SLACK):
            continue
        out[cnt] = j
        tck[cnt] = tc
        upk[cnt] = u
        cnt += 1
    return cnt, downsum


@njit(cache=True, nogil=True)
def greedy(orders, starts, prompt, output, window, admissible, weight, up_bits, snr, down_c,
           enc_s, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot, deadline):
    """Best of several greedy fills: for each order orders[starts[r]:starts[r + 1]], add
    each request in turn if the batch stays feasible; no new fill starts after the clock
    passes ``deadline``. Returns (batch, value, checks)."""
    n = prompt.size
    ids = np.empty(n + 1, np.int64)
    nxt = np.empty(n + 1, np.int64)
    Ds = np.empty(n + 1)
    cs = np.empty(n + 1)
    ups = np.empty(n + 1)
    downs = np.empty(n + 1)
    best = np.empty(0, np.int64)
    best_val = 0
    checks = 0
    for r in range(starts.size - 1):
        if r > 0 and _clock() > deadline:
            break
        b = 0
        v = 0
        for q in range(starts[r], starts[r + 1]):
            j = orders[q]
            k = 0
            while k < b and ids[k] < j:
                nxt[k] = ids[k]
                k += 1
            nxt[k] = j
            for k2 in range(k, b):
                nxt[k2 + 1] = ids[k2]
            # the same code as check_row; greedy needs no T_hi, so the screened kernel
            code = check_row_screened(nxt[:b + 1], prompt, output, window, admissible,
                                      up_bits, snr, down_c, enc_s, P, L, d, W, kv, C, M,
                                      kv_cap, padded, B_U, B_D, slot, Ds, cs, ups, downs)[0]
            checks += 1
            if code == OK:
                b += 1
                ids[:b] = nxt[:b]
                v += weight[j]
        if v > best_val:
            best_val = v
            best = ids[:b].copy()
    return best, best_val, checks


@njit(cache=True, nogil=True)
def _box_orders(sel, cnt, Sx, Nx, k, ratios, prompt, output, window, weight, up_bits, snr,
                down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D):
    """Greedy orders (concatenated, with their starts) of the candidates sel[:cnt] of the
    box (Sx, Nx), for batches of about k members: by window, longest first (compute
    time depends on the count only, and long windows leave the most room to grow); then
    by weight per share of each resource and of their sum, largest first, among the
    candidates that meet the deadline at tau = T_C(k, Sx, Nx): downlink demand
    c_j / (w_j - tau), uplink demand at an uplink phase of half the time left, and
    (exact KV) KV positions (the resources the Lagrangian bound prices), only with
    ``ratios``: they find better batches on hard instances of the tokens objective, but
    cost more checks than they save on easy ones."""
    tau = compute_s(float(max(k, 1)), Sx, Nx, P, L, d, W, kv, C, M)
    nres = 2 if padded else 3
    live = np.empty(cnt, np.int64)
    dem = np.zeros((nres + 1, cnt))
    nl = 0
    for t in range(cnt if ratios else 0):
        j = sel[t]
        D = window[j] - tau
        if D > 0.0:
            live[nl] = j
            dem[0, nl] = down_c[j] / D / B_D
            dem[1, nl] = uplink_bw(up_bits[j], 0.5 * D, snr[j]) / B_U
            if not padded:
                dem[2, nl] = (prompt[j] + output[j]) * kv / kv_cap
            for r in range(nres):
                dem[nres, nl] += dem[r, nl]
            nl += 1
    nord = nres + 1 if nl else 0
    orders = np.empty(cnt + nord * nl, np.int64)
    starts = np.empty(nord + 2, np.int64)
    key = np.empty(cnt)
    for t in range(cnt):
        key[t] = -window[sel[t]]
    orders[:cnt] = sel[:cnt][np.argsort(key, kind="mergesort")]
    starts[0] = 0
    starts[1] = cnt
    for r in range(nord):
        for t in range(nl):
            key[t] = -weight[live[t]] / max(dem[r, t], 1e-300)
        orders[starts[r + 1]:starts[r + 1] + nl] = live[:nl][np.argsort(key[:nl],
                                                                       kind="mergesort")]
        starts[r + 2] = starts[r + 1] + nl
    return orders, starts


@njit(cache=True, nogil=True)
def box_greedy(root, m_top, tries, prompt, output, window, admissible, weight, up_bits, snr,
               down_c, enc_s, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot, unit, deadline):
    """Incumbent from boxes: for m = m_top, m_top - 1, ..., the boxes (S*, N*) of longest
    prompt and output that :func:`_box_fits` lets hold m of ``root``; in each, greedy
    fills of its candidates in the orders of :func:`_box_orders` for m members (by
    resource shares too for N_m, from ``_RATIO_MIN`` candidates on, tokens objective),
    for N* = N_m and three longer outputs of the candidates within S*. Stops after
    ``tries`` values of S*, or when a batch of m requests is found (requests
    objective), or once the clock passes ``deadline``. Returns (batch, value, checks)."""
    n = root.size
    mask = np.ones(n, np.bool_)
    out_S = np.empty(tries)
    out_N = np.empty(tries)
    none = np.empty(0, np.int64)
    best = none
    best_val = 0
    checks = 0
    tried = 0
    for m in range(m_top, 0, -1):
        if tried >= tries or (unit and best_val >= m) or _clock() > deadline:
            break
        k = _box_fits(m, 0, 0.0, 0.0, 0.0, math.inf, none, root, n, mask, prompt, output,
                      window, down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_D,
                      out_S[:tries - tried], out_N[:tries - tried])
        for r in range(min(k, tries - tried)):
            # N*: N_m, then quartiles of the longer outputs with prompts within S*
            longer = np.empty(n)
            nl = 0
            for t in range(n):
                j = root[t]
                if prompt[j] <= out_S[r] and output[j] > out_N[r]:
                    longer[nl] = output[j]
                    nl += 1
            longer = np.sort(longer[:nl])
            for qn in range(4):
                if qn == 0:
                    Nx = out_N[r]
                elif nl == 0:
                    break
                else:
                    Nx = longer[min(nl - 1, (nl * qn) // 3 - (1 if qn == 3 else 0))]
                cnt = 0
                sel = np.empty(n, np.int64)
                for t in range(n):
                    j = root[t]
                    if prompt[j] <= out_S[r] and output[j] <= Nx:
                        sel[cnt] = j
                        cnt += 1
                order, starts = _box_orders(sel, cnt, out_S[r], Nx, m,
                                            not unit and qn == 0 and n >= _RATIO_MIN,
                                            prompt, output, window, weight, up_bits, snr,
                                            down_c, P, L, d, W, kv, C, M, kv_cap, padded,
                                            B_U, B_D)
                bt, v, c = greedy(order, starts, prompt, output, window, admissible, weight,
                                  up_bits, snr, down_c, enc_s, P, L, d, W, kv, C, M, kv_cap,
                                  padded, B_U, B_D, slot, deadline)
                checks += c
                if v > best_val:
                    best_val = v
                    best = bt
        tried += min(k, tries - tried)
    return best, best_val, checks


@njit(cache=True, nogil=True)
def search(root, prompt, output, window, admissible, weight, up_bits, snr, down_c,
           enc_s, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot, unit,
           time_limit, node_limit, start, start_val, box_incumbent, t0, S0=0.0, N0=0.0,
           close=False, close_at=0.0):
    """Depth-first branch and bound over the set-enumeration tree of ``root`` (feasible
    singletons in search order), from the incumbent ``start`` of value ``start_val``
    (improved first by :func:`box_greedy` when ``box_incumbent``). ``S0`` and ``N0``
    are floors on the longest prompt and output that the bounds assume (a box of
    :func:`box_search`): subtrees are pruned as if every batch had them, which is exact
    for the batches whose longest prompt and output are S0 and N0 (and only for those);
    feasibility is always checked in full. With ``close`` (inside a box), from
    ``close_at`` full checks of this search on, after the incumbent improves (at most
    every ``_CLOSE_GAP`` steps, then ever more rarely), :func:`box_lagrange` may prove
    that nothing in the box beats it and end the search.
    ``t0`` is the clock reading the time limit counts from. Returns (best batch, its
    value, full checks made, upper bound on the optimum, finished)."""
    n = root.size
    Dm = n + 1
    cand = np.empty((Dm, n), np.int64)
    wsort = np.empty((Dm, n), np.int64)        # positions in cand[d] by weight (not unit)
    ncand = np.zeros(Dm, np.int64)
    pos = np.zeros(Dm, np.int64)
    val = np.zeros(Dm, np.int64)
    room = np.zeros(Dm, np.int64)
    cap = np.zeros(Dm, np.int64)
    srt = np.empty((Dm, n), np.int64)          # X_d's members, sorted
    memb = np.empty(n, np.int64)               # members in insertion order
    Sd = np.zeros(Dm)
    Nd = np.zeros(Dm)
    sumsn = np.zeros(Dm)
    minw = np.full(Dm, math.inf)
    thi = np.full(Dm, math.inf)
    upsum = np.zeros(Dm)
    Ds = np.empty(n)
    cs = np.empty(n)
    ups = np.empty(n)
    downs = np.empty(n)
    tck = np.empty(n)
    upk = np.empty(n)
    best_val = start_val
    best = np.empty(max(n, start.size), np.int64)
    nbest = start.size
    best[:nbest] = start
    checks = 0
    steps = 0
    stopped = False
    improved = False
    next_close = _CLOSE_GAP
    if close:
        wE, memE, cE, bitsE, snrE, wtE = _members(root, window, prompt, output, down_c,
                                                  up_bits, snr, weight)

    # root: X = {}, F = root
    cnt, downsum = _expand(0, srt[0], S0, N0, 0.0, math.inf, math.inf, 0.0, root, 0, n,
                           cand[0], tck, upk, prompt, output, window, up_bits, snr,
                           down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D)
    ncand[0] = cnt
    room[0], cap[0] = _node_bound(0, S0, N0, 0.0, math.inf, math.inf, 0.0, downsum,
                                  srt[0], cand[0], cnt, tck, upk, prompt, output, window,
                                  weight, up_bits, snr, down_c, P, L, d, W, kv, C, M,
                                  kv_cap, padded, B_U, B_D, unit)
    wsort[0, :cnt] = np.argsort(-weight[cand[0, :cnt]], kind="mergesort")
    if box_incumbent and room[0] > 0 and best_val < cap[0]:
        bt, bv, c = box_greedy(cand[0, :cnt], room[0], _BOX_TRIES, prompt, output, window,
                               admissible, weight, up_bits, snr, down_c, enc_s, P, L, d, W, kv, C,
                               M, kv_cap, padded, B_U, B_D, slot, unit,
                               t0 + GREEDY_SHARE * time_limit)
        checks += c
        if bv > best_val:
            best_val = bv
            nbest = bt.size
            best[:nbest] = bt
    depth = 0
    while depth >= 0:
        i = pos[depth]
        nF = ncand[depth]
        if i >= nF or val[depth] + _bound(unit, weight, cand[depth], wsort[depth], nF,
                                          room[depth], cap[depth], i,
                                          room[depth]) <= best_val:
            depth -= 1
            if depth >= 0:
                pos[depth] += 1
            continue
        steps += 1
        if checks >= node_limit or (steps % _CLOCK_EVERY == 0
                                    and _clock() - t0 > time_limit):
            stopped = True
            break
        if close and improved and steps >= next_close and checks >= close_at:
            improved = False
            next_close = steps + max(_CLOSE_GAP, steps)
            if box_lagrange(S0, N0, n, best_val, best_val + 1, wE, memE, cE, bitsE, snrE,
                            wtE, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D,
                            t0 + time_limit, nbest) <= best_val:
                depth = -1
                break
        j = cand[depth, i]
        b = depth + 1
        v = val[depth] + weight[j]
        # children of X + j cannot beat the incumbent: X + j matters only if it does
        leaf = i + 1 == nF or v + min(_bound(unit, weight, cand[depth], wsort[depth], nF,
                                             room[depth], cap[depth], i + 1,
                                             room[depth] - 1),
                                      cap[depth] - weight[j]) <= best_val
        if leaf and v <= best_val:
            pos[depth] += 1
            continue
        # X + j, sorted
        q = 0
        for k in range(depth):
            if srt[depth, k] < j:
                srt[b, q] = srt[depth, k]
                q += 1
            else:
                break
        srt[b, q] = j
        for k in range(q, depth):
            srt[b, k + 1] = srt[depth, k]
        code, S, N, kvb, tc, T = check_row(srt[b, :b], prompt, output, window, admissible,
                                           up_bits, snr, down_c, enc_s, P, L, d, W, kv, C, M,
                                           kv_cap, padded, B_U, B_D, slot, Ds, cs, ups,
                                           downs)
        if depth > 0:
            checks += 1
        if code != OK:
            pos[depth] += 1
            continue
        S = max(S, S0)
        N = max(N, N0)
        memb[depth] = j
        if v > best_val:
            best_val = v
            nbest = b
            best[:b] = memb[:b]
            improved = True
        if leaf:
            pos[depth] += 1
            continue
        s_up = 0.0
        for k in range(b):
            s_up += ups[k]
        mw = min(minw[depth], window[j])
        ssn = sumsn[depth] + prompt[j] + output[j]
        cnt, downsum = _expand(b, srt[b], S, N, ssn, mw, T, s_up, cand[depth], i + 1, nF,
                               cand[b], tck, upk, prompt, output, window, up_bits, snr,
                               down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D)
        r, c = _node_bound(b, S, N, ssn, mw, T, s_up, downsum, srt[b], cand[b], cnt, tck,
                           upk, prompt, output, window, weight, up_bits, snr, down_c,
                           P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, unit)
        if unit:  # all weights 1: the r heaviest weigh r
            top = min(cnt, r)
        else:
            wsort[b, :cnt] = np.argsort(-weight[cand[b, :cnt]], kind="mergesort")
            top = _top_weight_suffix(weight, cand[b], wsort[b], cnt, 0, r)
        if r == 0 or v + min(c, top) <= best_val:
            pos[depth] += 1
            continue
        depth = b
        ncand[b], pos[b], val[b], room[b], cap[b] = cnt, 0, v, r, c
        Sd[b], Nd[b], sumsn[b], minw[b], thi[b], upsum[b] = S, N, ssn, mw, T, s_up
    # upper bound: the incumbent, or what the open subtrees of the stack can reach
    upper = best_val
    if stopped:
        for e in range(depth + 1):
            u = val[e] + _bound(unit, weight, cand[e], wsort[e], ncand[e], room[e], cap[e],
                                pos[e], room[e])
            upper = max(upper, u)
    return best[:nbest].copy(), best_val, checks, upper, not stopped


# ----------------------------------------------------------------------------- boxes
@njit(cache=True, nogil=True)
def _count_fits(m, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, buf,
              P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, uplink):
    """Necessary condition for m members of a box (candidates E with windows wE, KV
    positions memE, downlink constants cE, uplink bits and SNRs) to form a batch whose
    longest prompt and output are exactly Sx and Nx: its compute time is at least
    tau = T_C(m, Sx, Nx), so at least m members have windows above tau, padded memory
    m (Sx + Nx) fits, and the m smallest exact KV demands, downlink demands
    c_j / (w_j - tau) and (when ``uplink``) uplink demands beta_j(w_j - tau) fit (as
    :func:`uplink_bw_lower`).
    Monotone: if m passes, so does m - 1."""
    if m == 0:
        return True
    if m > nE:
        return False
    if padded and kv_cache_bytes(float(m), Sx, Nx, 0.0, kv, True) > kv_cap:
        return False
    tau = compute_s(float(m), Sx, Nx, P, L, d, W, kv, C, M)
    cnt = 0
    for t in range(nE):
        if wE[t] > tau:
            buf[cnt] = memE[t]
            cnt += 1
    if cnt < m:
        return False
    if not padded and _sum_smallest(buf, cnt, m) * kv > kv_cap * (1.0 + _SLACK):
        return False
    cnt = 0
    for t in range(nE):
        if wE[t] > tau:
            buf[cnt] = cE[t] / (wE[t] - tau)
            cnt += 1
    if _sum_smallest(buf, cnt, m) > B_D * (1.0 + _SLACK):
        return False
    return not uplink or _count_cap(m, Sx, Nx, nE, wE, bitsE, snrE, buf,
                                    P, L, d, W, kv, C, M, B_U) >= m


@njit(cache=True, nogil=True)
def _count_cap(r, Sx, Nx, nE, wE, bitsE, snrE, buf, P, L, d, W, kv, C, M, B_U):
    """The uplink test of :func:`_count_fits` at count r, and what it says of larger
    counts: the largest m whose m smallest uplink demands at tau = T_C(r, Sx, Nx) fit in
    B_U. For m >= r tau is larger, fewer members meet it and each demand is larger, so
    every m above the result fails the test; r passes it iff the result is >= r."""
    tau = compute_s(float(r), Sx, Nx, P, L, d, W, kv, C, M)
    cnt = 0
    for t in range(nE):
        if wE[t] > tau:
            buf[cnt] = uplink_bw_lower(bitsE[t], wE[t] - tau, snrE[t])
            cnt += 1
    dem = np.sort(buf[:cnt])
    top = B_U * (1.0 + _SLACK)
    used = 0.0
    m = 0
    while m < cnt and used + dem[m] <= top:
        used += dem[m]
        m += 1
    return m


@njit(cache=True, nogil=True)
def _box_count(lo, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, buf,
               P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, with_uplink=True, top=-1):
    """The largest m in [lo, top] (top < 0: nE) that passes :func:`_count_fits` (first
    without the uplink test, the costliest, then with it unless not ``with_uplink``), or
    lo - 1 if lo fails. The uplink test by :func:`_count_cap`: each pass settles a count
    and caps the answer, the next count the cap a failed pass estimates."""
    if top < 0:
        top = nE
    lo0 = lo
    if not _count_fits(lo, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, buf,
                       P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, False):
        return lo - 1
    hi = top
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _count_fits(mid, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, buf,
                       P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, False):
            lo = mid
        else:
            hi = mid - 1
    if not with_uplink:
        return lo
    # every m in [lo0, lo] passes the other tests: the uplink test, from above
    a, b, r = lo0 - 1, lo, lo
    while a < b:
        cap = _count_cap(r, Sx, Nx, nE, wE, bitsE, snrE, buf, P, L, d, W, kv, C, M, B_U)
        a, b, r = _cap_step(a, b, r, cap)
    return a


@njit(cache=True, nogil=True)
def _few_fit(m, nE, Sx, Nx, wmax, P, L, d, W, kv, C, M, kv_cap, padded):
    """Quick necessary condition for m members of a box of nE candidates, the longest
    window wmax: padded memory and compute time T_C(m, Sx, Nx) < wmax."""
    if m > nE:
        return False
    if padded and kv_cache_bytes(float(m), Sx, Nx, 0.0, kv, True) > kv_cap:
        return False
    return compute_s(float(m), Sx, Nx, P, L, d, W, kv, C, M) < wmax


@njit(cache=True, nogil=True)
def _box_demands(m, Sx, Nx, nE, wE, memE, cE, el, size_m, size_d, P, L, d, W, kv, C, M):
    """Members of a box that meet the deadline at tau = T_C(m, Sx, Nx), written to el;
    their KV positions and downlink demands c_j / (w_j - tau) to size_m and size_d.
    Returns their count."""
    tau = compute_s(float(m), Sx, Nx, P, L, d, W, kv, C, M)
    ne = 0
    for t in range(nE):
        if wE[t] > tau:
            el[ne] = t
            size_m[ne] = memE[t]
            size_d[ne] = cE[t] / (wE[t] - tau)
            ne += 1
    return ne


@njit(cache=True, nogil=True)
def _box_value(m, Sx, Nx, nE, wE, memE, cE, wtE, el, size_m, size_d,
               P, L, d, W, kv, C, M, kv_cap, padded, B_D):
    """Bound on the value of m members of a box: fractional knapsacks on exact KV memory
    and on downlink demand at T_C(m, Sx, Nx) over the members meeting that deadline.
    Non-increasing in m."""
    ne = _box_demands(m, Sx, Nx, nE, wE, memE, cE, el, size_m, size_d,
                      P, L, d, W, kv, C, M)
    cap = _frac_knapsack(wtE, size_d, el, ne, B_D)
    if not padded:
        cap = min(cap, _frac_knapsack(wtE, size_m, el, ne, kv_cap / kv))
    return cap


@njit(cache=True, nogil=True)
def _box_bound(Sx, Nx, nE, unit, floor, wE, memE, cE, bitsE, snrE, wtE, buf, el, size_m,
               size_d, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D):
    """:func:`box_bound` on the box's member columns (windows, KV positions, downlink
    constants, uplink bits, SNRs, weights); buf, el, size_m and size_d are scratch."""
    if nE == 0:
        return 0
    if unit:
        return _box_count(floor + 1, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, buf,
                          P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D)
    ne = _box_demands(1, Sx, Nx, nE, wE, memE, cE, el, size_m, size_d,
                      P, L, d, W, kv, C, M)
    total = 0
    for q in range(ne):
        total += wtE[el[q]]
    if total <= floor:
        return total
    m = _box_count(1, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, buf,
                   P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, False)
    if m <= 0:
        return 0
    # A(k): the k heaviest members meeting T_C(1) (non-decreasing); B(k): _box_value
    # (non-increasing); a batch of k members is worth at most min(A(k), B(k))
    for q in range(ne):
        buf[q] = -wtE[el[q]]
    ws = np.sort(buf[:ne])
    m = min(m, ne)
    A = np.zeros(m + 1, np.int64)
    for q in range(m):
        A[q + 1] = A[q] - int(ws[q])
    if A[m] <= floor:
        return A[m]
    best = _crossing(m, A, Sx, Nx, nE, wE, memE, cE, wtE, el, size_m, size_d,
                     P, L, d, W, kv, C, M, kv_cap, padded, B_D)
    if best <= floor:
        return best
    # with the uplink: fewer members may fit, and one fractional knapsack on uplink
    # demand at T_C(1) bounds every count
    mu = _box_count(1, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, buf,
                    P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, True, m)
    if mu <= 0:
        return 0
    if mu < m:  # else the same crossing
        best = _crossing(mu, A, Sx, Nx, nE, wE, memE, cE, wtE, el, size_m, size_d,
                         P, L, d, W, kv, C, M, kv_cap, padded, B_D)
        if best <= floor:
            return best
    ne = _box_demands(1, Sx, Nx, nE, wE, memE, cE, el, size_m, size_d,
                      P, L, d, W, kv, C, M)
    tau = compute_s(1.0, Sx, Nx, P, L, d, W, kv, C, M)
    for q in range(ne):
        t = el[q]
        size_m[q] = uplink_bw_lower(bitsE[t], wE[t] - tau, snrE[t])
    return min(best, _frac_knapsack(wtE, size_m, el, ne, B_U))


@njit(cache=True, nogil=True)
def _crossing(m, A, Sx, Nx, nE, wE, memE, cE, wtE, el, size_m, size_d,
              P, L, d, W, kv, C, M, kv_cap, padded, B_D):
    """max over k in [1, m] of min(A(k), B(k)), A non-decreasing and B = :func:`_box_value`
    non-increasing: at the least k with A(k) >= B(k), it is max(B(k), A(k - 1))."""
    # the least k with A(k) >= B(k): the bound is max(B(k), A(k - 1))
    lo, hi = 1, m + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if A[mid] >= _box_value(mid, Sx, Nx, nE, wE, memE, cE, wtE, el, size_m, size_d,
                                P, L, d, W, kv, C, M, kv_cap, padded, B_D):
            hi = mid
        else:
            lo = mid + 1
    if lo > m:
        return A[m]
    return max(_box_value(lo, Sx, Nx, nE, wE, memE, cE, wtE, el, size_m, size_d,
                          P, L, d, W, kv, C, M, kv_cap, padded, B_D), A[lo - 1])


@njit(cache=True, nogil=True)
def _put_member(t, j, wE, memE, cE, bitsE, snrE, wtE, window, prompt, output, down_c,
                up_bits, snr, weight):
    """Write request j's columns at position t of a box's member columns."""
    wE[t] = window[j]
    memE[t] = prompt[j] + output[j]
    cE[t] = down_c[j]
    bitsE[t] = up_bits[j]
    snrE[t] = snr[j]
    wtE[t] = weight[j]


@njit(cache=True, nogil=True)
def _member_columns(n):
    """Room for n members' columns: window, KV positions, downlink constant, uplink bits,
    SNR, weight (filled by :func:`_put_member`)."""
    return (np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n),
            np.empty(n, np.int64))


@njit(cache=True, nogil=True)
def _members(ids, window, prompt, output, down_c, up_bits, snr, weight):
    """The member columns of requests ``ids``, in their order."""
    wE, memE, cE, bitsE, snrE, wtE = _member_columns(ids.size)
    for t in range(ids.size):
        _put_member(t, ids[t], wE, memE, cE, bitsE, snrE, wtE, window, prompt, output,
                    down_c, up_bits, snr, weight)
    return wE, memE, cE, bitsE, snrE, wtE


@njit(cache=True, nogil=True)
def box_bound(Sx, Nx, E, nE, unit, floor, weight, prompt, output, window, up_bits, snr,
              down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D):
    """Upper bound on the value of any feasible batch of candidates E[:nE] whose longest
    prompt and output are exactly Sx and Nx, or a number <= ``floor`` when that bound
    cannot exceed ``floor`` (the incumbent). Requests objective: the largest count m
    that :func:`_count_fits` allows. Tokens: the largest over the counts k <= m of
    min(A(k), B(k)), A(k) the k heaviest weights of the candidates that meet the
    deadline at T_C(1, Sx, Nx), B(k) fractional knapsacks on exact KV memory and on
    downlink demand at T_C(k, Sx, Nx); also at most a fractional knapsack on uplink
    demand at T_C(1, Sx, Nx)."""
    wE, memE, cE, bitsE, snrE, wtE = _members(E[:nE], window, prompt, output, down_c,
                                              up_bits, snr, weight)
    return _box_bound(Sx, Nx, nE, unit, floor, wE, memE, cE, bitsE, snrE, wtE, np.empty(nE),
                      np.empty(nE, np.int64), np.empty(nE), np.empty(nE),
                      P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D)


@njit(cache=True, nogil=True)
def _before(r, q, rec):
    """Heap order of the range records r and q: larger bound first, then older."""
    return rec[r, 4] > rec[q, 4] or (rec[r, 4] == rec[q, 4] and r < q)


@njit(cache=True, nogil=True)
def _heap_push(heap, hn, r, rec):
    """Push record r on the binary heap heap[:hn]; returns the new size."""
    heap[hn] = r
    i = hn
    while i > 0:
        up = (i - 1) // 2
        if not _before(heap[i], heap[up], rec):
            break
        heap[i], heap[up] = heap[up], heap[i]
        i = up
    return hn + 1


@njit(cache=True, nogil=True)
def _heap_pop(heap, hn, rec):
    """Remove the first record of heap[:hn]; returns the new size."""
    hn -= 1
    heap[0] = heap[hn]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= hn:
            break
        if c + 1 < hn and _before(heap[c + 1], heap[c], rec):
            c += 1
        if not _before(heap[c], heap[i], rec):
            break
        heap[i], heap[c] = heap[c], heap[i]
        i = c
    return hn


@njit(cache=True, nogil=True)
def _add_range(x0, x1, y0, y1, Ps, Ns, root, best_val, unit, rec, nrec, heap, hn,
               wE, memE, cE, bitsE, snrE, wtE, buf, el, size_m, size_d,
               prompt, output, window, weight, up_bits, snr, down_c,
               P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D):
    """Bound the range of boxes S* in Ps[x0..x1], N* in Ns[y0..y1] and, if its bound
    beats ``best_val``, record it (rec[nrec] = x0, x1, y0, y1, bound, 0: not yet greedy)
    and push it on the heap. The range's batches have their members among the
    candidates within (Ps[x1], Ns[y1]) and compute at least T_C(m, Ps[x0], Ns[y0]) for
    m members, so :func:`_box_bound` with those floors bounds them all; x1 and y1 shrink
    to the members' longest prompt and output, and a range that no member reaches
    (no batch has its box there) is dropped. Returns (records, heap size, record count,
    heap): both arrays grow when full."""
    Sx1 = Ps[x1]
    Ny1 = Ns[y1]
    nE = 0
    maxp = -math.inf
    maxo = -math.inf
    tot = 0
    heavy = 0
    wmax = -math.inf
    for t in range(root.size):
        j = root[t]
        if prompt[j] <= Sx1 and output[j] <= Ny1:
            _put_member(nE, j, wE, memE, cE, bitsE, snrE, wtE, window, prompt, output,
                        down_c, up_bits, snr, weight)
            nE += 1
            maxp = max(maxp, prompt[j])
            maxo = max(maxo, output[j])
            tot += weight[j]
            heavy = max(heavy, weight[j])
            wmax = max(wmax, window[j])
    Sx = Ps[x0]
    Nx = Ns[y0]
    if nE == 0 or maxp < Sx or maxo < Nx or tot <= best_val:
        return rec, hn, nrec, heap
    x1 = np.searchsorted(Ps, maxp)
    y1 = np.searchsorted(Ns, maxo)
    # quick bound: at most mq members (padded memory, and compute time below the longest
    # window), each worth at most the heaviest
    if unit:
        if not _few_fit(best_val + 1, nE, Sx, Nx, wmax, P, L, d, W, kv, C, M, kv_cap,
                        padded):
            return rec, hn, nrec, heap
    else:
        lo, hi = 0, nE
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _few_fit(mid, nE, Sx, Nx, wmax, P, L, d, W, kv, C, M, kv_cap, padded):
                lo = mid
            else:
                hi = mid - 1
        if lo * heavy <= best_val:
            return rec, hn, nrec, heap
    u = _box_bound(Sx, Nx, nE, unit, best_val, wE, memE, cE, bitsE, snrE, wtE, buf, el,
                   size_m, size_d, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D)
    if u <= best_val:
        return rec, hn, nrec, heap
    if nrec == rec.shape[0]:
        grown = np.empty((2 * nrec, rec.shape[1]), np.int64)
        grown[:nrec] = rec
        rec = grown
        grown_heap = np.empty(2 * nrec, np.int64)
        grown_heap[:hn] = heap[:hn]
        heap = grown_heap
    rec[nrec, 0] = x0
    rec[nrec, 1] = x1
    rec[nrec, 2] = y0
    rec[nrec, 3] = y1
    rec[nrec, 4] = u
    rec[nrec, 5] = 0
    hn = _heap_push(heap, hn, nrec, rec)
    return rec, hn, nrec + 1, heap


@njit(cache=True, nogil=True)
def box_search(root, prompt, output, window, admissible, weight, up_bits, snr, down_c,
               enc_s, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, slot, unit,
               time_limit, node_limit, start, start_val, t0, close_after=math.inf):
    """Exact search by boxes: every batch has a longest prompt S* and output N*, both
    among its members' lengths. Best-first branch and bound over ranges of boxes
    (:func:`_add_range`): the range with the largest bound is split in two (along the
    prompts or the outputs, whichever has more distinct values) until it is one box
    (S*, N*); a box is then searched by a greedy fill in window order (longest first),
    from ``close_after`` full checks on :func:`box_lagrange` (which may close it or
    lower its bound, sending it back to the heap), and :func:`search` over the
    candidates inside the box with the box as its floors. Ends when the incumbent
    reaches the best bound left; stopped by a limit, the upper bound is the largest of
    the incumbent, the open ranges' bounds and the stopped tree's bound. Returns what
    :func:`search` does."""
    n = root.size
    best = np.empty(n, np.int64)
    nbest = start.size
    best[:nbest] = start
    best_val = start_val
    checks = 0
    Ps = np.unique(prompt[root])
    Ns = np.unique(output[root])
    wE, memE, cE, bitsE, snrE, wtE = _member_columns(n)
    buf = np.empty(n)
    el = np.empty(n, np.int64)
    size_m = np.empty(n)
    size_d = np.empty(n)
    rec = np.empty((4 * n + 16, 6), np.int64)
    heap = np.empty(4 * n + 16, np.int64)
    rec, hn, nrec, heap = _add_range(0, Ps.size - 1, 0, Ns.size - 1, Ps, Ns, root, best_val,
                                     unit, rec, 0, heap, 0, wE, memE, cE, bitsE, snrE, wtE,
                                     buf, el, size_m, size_d, prompt, output, window,
                                     weight, up_bits, snr, down_c, P, L, d, W, kv, C, M,
                                     kv_cap, padded, B_U, B_D)
    stopped = False
    upper = best_val
    sel = np.empty(n, np.int64)
    closes = 0
    fails = 0
    pops = 0
    while hn > 0:
        r = heap[0]
        if rec[r, 4] <= best_val:
            break
        pops += 1
        if checks >= node_limit or (pops % _CLOCK_EVERY == 0
                                    and _clock() - t0 > time_limit):
            stopped = True
            upper = max(upper, rec[r, 4])
            break
        hn = _heap_pop(heap, hn, rec)
        x0, x1, y0, y1 = rec[r, 0], rec[r, 1], rec[r, 2], rec[r, 3]
        if x0 < x1 or y0 < y1:
            if x1 - x0 >= y1 - y0:
                mid = (x0 + x1) // 2
                parts = ((x0, mid, y0, y1), (mid + 1, x1, y0, y1))
            else:
                mid = (y0 + y1) // 2
                parts = ((x0, x1, y0, mid), (x0, x1, mid + 1, y1))
            for part in parts:
                rec, hn, nrec, heap = _add_range(
                    part[0], part[1], part[2], part[3], Ps, Ns, root, best_val, unit, rec,
                    nrec, heap, hn, wE, memE, cE, bitsE, snrE, wtE, buf, el, size_m,
                    size_d, prompt, output, window, weight, up_bits, snr, down_c, P, L, d,
                    W, kv, C, M, kv_cap, padded, B_U, B_D)
            continue
        Sx = Ps[x0]
        Nx = Ns[y0]
        cnt = 0
        for t in range(n):
            j = root[t]
            if prompt[j] <= Sx and output[j] <= Nx:
                sel[cnt] = j
                cnt += 1
        if rec[r, 5] == 0:
            # greedy fills in the orders of _box_orders, for about the incumbent's count
            # (by resource shares too once the instance proves hard, tokens objective)
            orders, starts = _box_orders(sel, cnt, Sx, Nx, nbest,
                                         not unit and checks >= close_after,
                                         prompt, output, window, weight, up_bits, snr,
                                         down_c, P, L, d, W, kv, C, M, kv_cap, padded, B_U,
                                         B_D)
            bt, bv, ck = greedy(orders, starts, prompt, output, window, admissible, weight,
                                up_bits, snr, down_c, enc_s, P, L, d, W, kv, C, M, kv_cap,
                                padded, B_U, B_D, slot, math.inf)
            checks += ck
            if bv > best_val:
                best_val = bv
                nbest = bt.size
                best[:nbest] = bt
            if rec[r, 4] <= best_val:
                continue
            # box_lagrange before the tree (after close_after full checks: a count, not
            # the clock, so that a node-limited search is the same on every machine),
            # while it settles one box in three: it closes the box, or lowers its
            # bound below the next range's and sends it back
            if checks >= close_after and fails <= 2 * closes + 4:
                for t in range(cnt):
                    _put_member(t, sel[t], wE, memE, cE, bitsE, snrE, wtE, window, prompt,
                                output, down_c, up_bits, snr, weight)
                cutoff = best_val + 1
                if hn > 0:
                    cutoff = max(cutoff, rec[heap[0], 4])
                u = box_lagrange(Sx, Nx, cnt, best_val, cutoff, wE, memE, cE, bitsE, snrE,
                                 wtE, P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D,
                                 t0 + time_limit, nbest)
                if u < cutoff:
                    closes += 1
                    if u > best_val:
                        rec[r, 4] = min(rec[r, 4], u)
                        rec[r, 5] = 1
                        hn = _heap_push(heap, hn, r, rec)
                    continue
                fails += 1
        bt, bv, ck, up, done = search(sel[:cnt], prompt, output, window, admissible, weight,
                                      up_bits, snr, down_c, enc_s, P, L, d, W, kv, C, M,
                                      kv_cap, padded, B_U, B_D, slot, unit, time_limit,
                                      max(node_limit - checks, 1), best[:nbest], best_val,
                                      False, t0, Sx, Nx, close_after < math.inf,
                                      float(close_after - checks))
        checks += ck
        if bv > best_val:
            best_val = bv
            nbest = bt.size
            best[:nbest] = bt
        if not done:
            stopped = True
            upper = max(upper, min(up, rec[r, 4]))
            if hn > 0:
                upper = max(upper, rec[heap[0], 4])
            break
    upper = max(upper, best_val)
    return best[:nbest].copy(), best_val, checks, upper, not stopped


@njit(cache=True, nogil=True)
def _lagrange_g(mu, k, ne, wt, s, vals):
    """g(mu) of :func:`_lagrange_k` and its slope 1 - sum of s over k maximizing members
    (the k smallest mu s_j - wt_j, found by one partition: O(ne))."""
    for j in range(ne):
        vals[j] = mu * s[j] - wt[j]
    thr = np.partition(vals[:ne], k - 1)[k - 1]
    g = mu * (1.0 + _SLACK)
    used = 0.0
    taken = 0
    for j in range(ne):
        if vals[j] < thr:
            g -= vals[j]
            used += s[j]
            taken += 1
    for j in range(ne):  # ties at the threshold, in index order
        if taken >= k:
            break
        if vals[j] == thr:
            g -= vals[j]
            used += s[j]
            taken += 1
    return g, 1.0 + _SLACK - used


@njit(cache=True, nogil=True)
def _lagrange_k(k, ne, wt, res, nres, lam, floor, vals):
    """Least found Lagrangian bound on the value of exactly k members whose demands
    res[r, :ne] (fractions of each capacity) fit: for mu >= 0,
    g(mu) = mu + (sum of the k largest wt_j - mu s_j), s_j = sum_r lam_r res[r, j] with
    sum_r lam_r = 1, is a bound for every mu (the surrogate constraint sum s_j <= 1 of
    the k members, priced at mu). g is convex: doubles mu until its slope is >= 0, then
    bisects; stops as soon as g < floor + 1. Returns -1 when no k members fit."""
    s = np.empty(ne)
    for j in range(ne):
        v = 0.0
        for r in range(nres):
            if lam[r] > 0.0:
                v += lam[r] * res[r, j]
        s[j] = v
    if _sum_smallest(s.copy(), ne, k) > 1.0 + _SLACK:
        return -1.0
    stop = floor + 1.0 - 1e-7
    best, slope = _lagrange_g(0.0, k, ne, wt, s, vals)
    if best < stop or slope >= 0.0:
        return best
    lo, hi = 0.0, 1.0
    for _ in range(80):
        g, slope = _lagrange_g(hi, k, ne, wt, s, vals)
        best = min(best, g)
        if best < stop or slope >= 0.0:
            break
        lo = hi
        hi *= 2.0
    if best < stop:
        return best
    for _ in range(30):
        mu = 0.5 * (lo + hi)
        g, slope = _lagrange_g(mu, k, ne, wt, s, vals)
        best = min(best, g)
        if best < stop or hi - lo <= 1e-7 * hi:
            break
        if slope >= 0.0:
            hi = mu
        else:
            lo = mu
    return best

@njit(cache=True, nogil=True)
def _cell_bound(k, a, b, tau, floor, nE, wE, memE, cE, bitsE, snrE, wtE, capm, padded,
                B_U, B_D, lams, first, res, wt, vals, heavy):
    """Upper bound on the value of k members of a box with uplink time T in [a, b] (see
    :func:`box_lagrange`), or a number <= ``floor`` once one weighting proves it <=
    ``floor``; returns (bound, the weighting tried first next time)."""
    nres = res.shape[0]
    ne = 0
    for t in range(nE):
        D = wE[t] - tau
        if D > a:  # else, or if one demand exceeds its capacity: not a member
            res[0, ne] = cE[t] / (D - a) / B_D
            if not res[0, ne] <= 1.0 + _SLACK:
                continue
            res[1, ne] = uplink_bw_lower(bitsE[t], min(b, D), snrE[t]) / B_U
            if not res[1, ne] <= 1.0 + _SLACK:
                continue
            if not padded:
                res[2, ne] = memE[t] / capm
            wt[ne] = wtE[t]
            heavy[ne] = -wtE[t]
            ne += 1
    if ne < k:
        return -1, first
    best = int(-np.sort(heavy[:ne])[:k].sum())
    if best <= floor:
        return best, first
    nl = lams.shape[0]
    for i in range(nl):
        li = (first + i) % nl
        g = _lagrange_k(k, ne, wt, res, nres, lams[li], floor, vals)
        best = min(best, int(math.floor(g + 1e-7)))
        if best <= floor:
            return best, li
    return best, first


@njit(cache=True, nogil=True)
def box_lagrange(Sx, Nx, nE, floor, cutoff, wE, memE, cE, bitsE, snrE, wtE,
                 P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D, deadline=math.inf,
                 k0=1, depth=_T_DEPTH):
    """Upper bound on the value of the batches of the box (Sx, Nx) (members E with the
    given columns): a number <= ``floor`` when none is worth more than ``floor``; at
    least ``cutoff`` (then ``cutoff`` itself, the work stops there) when the bound is not
    below it, or the clock passes ``deadline``. A batch of k members has compute time
    at least tau = T_C(k, Sx, Nx) and is feasible only if, for one uplink time T, every
    member has D_j = w_j - tau > T and the downlink demands c_j / (D_j - T) and the
    uplink demands beta_j(T) fit (:func:`edgellm.system._kernel.check_row`). For T in a
    cell [a, b] the demands are at least c_j / (D_j - a) and beta_j(b) (taken as
    :func:`uplink_bw_lower`, a certified lower bound); with the exact
    KV positions, a Lagrangian bound (:func:`_lagrange_k`, valid for any multipliers) on
    k members whose demands fit one surrogate of the capacities, for several weightings
    of the resources, bounds the cell. Cells start as ``_T_CELLS`` equal parts of
    [0, max D_j] and are halved, up to ``depth`` times, while their bound exceeds
    ``floor``; the box's bound is the largest over counts and cells. Couples the
    resources, the count and the uplink time, which the bounds of :func:`box_bound` take
    one by one. Counts are tried from ``k0`` outwards, up to the largest that
    :func:`_count_fits` admits; a count whose k heaviest members meeting T_C(k, Sx, Nx)
    weigh no more than the bound so far needs no cell."""
    nres = 2 if padded else 3
    res = np.empty((nres, nE))
    wt = np.empty(nE)
    vals = np.empty(nE)
    heavy = np.empty(nE)
    if padded:
        lams = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.8, 0.2], [0.2, 0.8]])
    else:
        lams = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0],
                         [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5],
                         [0.0, 0.5, 0.5]])
    first = 0
    capm = kv_cap / kv
    sa = np.empty(_T_CELLS * (depth + 1) + 1)
    sb = np.empty(_T_CELLS * (depth + 1) + 1)
    sd = np.empty(_T_CELLS * (depth + 1) + 1, np.int64)
    upper = floor
    # no count above the largest that _count_fits admits has a batch
    kmax = _box_count(1, Sx, Nx, nE, wE, memE, cE, bitsE, snrE, vals,
                      P, L, d, W, kv, C, M, kv_cap, padded, B_U, B_D)
    # counts from k0 outwards (near the incumbent's size, where a box is least likely
    # to close: reaching the cutoff ends the work early)
    k0 = min(max(k0, 1), kmax)
    for e in range(2 * kmax):
        k = k0 + (e + 1) // 2 if e % 2 else k0 - e // 2
        if k < 1 or k > kmax:
            continue
        if e % _CLOCK_EVERY == 0 and _clock() > deadline:
            return cutoff
        if padded and kv_cache_bytes(float(k), Sx, Nx, 0.0, kv, True) > kv_cap:
            continue
        tau = compute_s(float(k), Sx, Nx, P, L, d, W, kv, C, M)
        dmax = 0.0
        cnt = 0
        for t in range(nE):
            if wE[t] > tau:
                dmax = max(dmax, wE[t] - tau)
                heavy[cnt] = -wtE[t]
                cnt += 1
        # every cell's bound is at most the k heaviest members meeting the deadline
        if cnt < k or int(-np.sort(heavy[:cnt])[:k].sum()) <= upper:
            continue
        top = 0
        for g in range(_T_CELLS - 1, -1, -1):
            sa[top] = dmax * g / _T_CELLS
            sb[top] = dmax * (g + 1) / _T_CELLS
            sd[top] = 0
            top += 1
        while top > 0:
            top -= 1
            a, b, dep = sa[top], sb[top], sd[top]
            u, first = _cell_bound(k, a, b, tau, upper, nE, wE, memE, cE, bitsE, snrE,
                                   wtE, capm, padded, B_U, B_D, lams, first, res, wt,
                                   vals, heavy)
            if u <= upper:
                continue
            if dep >= depth:
                upper = u
                if upper >= cutoff:
                    return cutoff
                continue
            mid = 0.5 * (a + b)
            sa[top], sb[top], sd[top] = mid, b, dep + 1
            sa[top + 1], sb[top + 1], sd[top + 1] = a, mid, dep + 1
            top += 2
    return upper
