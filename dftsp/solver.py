"""Exact solvers of the slot problem: DFTSP and brute force (SPEC section 3).

DFTSP is a depth-first search over the set-enumeration tree of the candidate requests.
A tree node is a batch; its children add one candidate that comes later in the search
order. Pruning rules, all exact because feasible batches form a down-closed family
(SPEC 2.4):

(a) requests that fail alone (accuracy, or infeasible as a singleton) are dropped;
(b) candidates are ordered by weight per share of the resources they use alone (KV
    memory, uplink and downlink bandwidth), so good batches come first;
(c) a child that is infeasible is never expanded, and is removed from the candidates of
    all its siblings' subtrees too (any batch holding both is a superset of it);
(d) a subtree is skipped when an upper bound on its value cannot beat the incumbent. At
    each node, the number of candidates that can still join is bounded twice, exactly
    (valid for every feasible superset, see ``_joint_additions`` and
    ``_resource_additions``):
    by lower bounds on each resource's demand given that compute time grows with the
    batch, and by enumerating the batch's final longest prompt and output, which fixes
    T_C and leaves only the candidates below both and with long enough deadlines. The
    value bound is the heaviest weights within that count (for the tokens objective also
    capped per (prompt, output) pair).

The node count is the number of batches whose feasibility was evaluated (the empty
batch included), so brute force reports 2^K.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace

import numpy as np

from edgellm.system.feasibility import (
    OK,
    BatchEvaluation,
    Prepared,
    check_additions,
    check_rows,
    evaluate,
    prepare,
)
from edgellm.system.instance import SlotInstance
from edgellm.system.radio import uplink_min_bandwidth

METHODS = ("dftsp", "bruteforce")
_SLACK = 1e-9  # relative slack on bound capacities, against rounding at a tight optimum


@dataclass(frozen=True)
class Solution:
    """An optimal batch (sorted request indices) with its evaluation and search effort."""

    method: str
    batch: tuple[int, ...]
    value: int
    evaluation: BatchEvaluation
    nodes: int
    wall_s: float

    def to_dict(self) -> dict:
        return {"method": self.method, "batch": list(self.batch), "value": self.value,
                "nodes": self.nodes, "wall_s": self.wall_s,
                "evaluation": self.evaluation.to_dict()}


def solve(inst: SlotInstance | Prepared, method: str = "dftsp", weights=None) -> Solution:
    """Return a batch of maximal value. Ties go to the first batch found in the method's
    deterministic search order. ``weights`` (positive integers, one per request) replace
    the objective's weights, e.g. for a lexicographic tie-break; ``value`` is then theirs."""
    if method not in METHODS:
        raise ValueError(f"method: must be one of {', '.join(METHODS)}; got {method!r}")
    p = inst if isinstance(inst, Prepared) else prepare(inst)
    if weights is not None:
        w = np.asarray(weights, dtype=np.int64)
        if w.shape != (p.n,) or (w < 1).any():
            raise ValueError(f"weights: need {p.n} positive integers, got {weights!r}")
        p = replace(p, weight=w)
    t0 = time.perf_counter()
    batch, value, nodes = (_dftsp if method == "dftsp" else _bruteforce)(p)
    wall = time.perf_counter() - t0
    ev = evaluate(p, batch)
    return Solution(method, tuple(sorted(batch)), int(value), ev, nodes, wall)


# ----------------------------------------------------------------------------- bounds
def _top(weights: np.ndarray, k: int) -> int:
    """Sum of the k largest weights (all of them if k >= len)."""
    if k <= 0:
        return 0
    if k >= weights.size:
        return int(weights.sum())
    return int(np.partition(weights, weights.size - k)[weights.size - k:].sum())


def _smallest_sums_fit(sizes: np.ndarray, base, capacity: float) -> np.ndarray:
    """For each row r (one per m = 1..M): do base[r] + the m smallest sizes of row r fit?"""
    M = sizes.shape[0]
    srt = np.sort(sizes, axis=1)
    csum = np.cumsum(srt, axis=1)[np.arange(M), np.arange(M)]
    return base + csum <= capacity * (1 + _SLACK)


@dataclass(eq=False)
class _Node:
    """A feasible batch X, its addable candidates F (X + j feasible for each j in F) in
    search order, and ``room``: at most this many of F fit together in any feasible
    superset of X (see :func:`_joint_additions` and :func:`_resource_additions`)."""

    members: list
    value: int
    cand: np.ndarray
    weight: np.ndarray
    room: int
    unit: bool  # all weights 1 (requests objective): bounds are counts
    cap: int = 1 << 62  # upper bound on the value any subset of cand can add

    def bound(self, start: int, room: int | None = None) -> int:
        """Upper bound on the value that candidates cand[start:] can add to X."""
        k = self.room if room is None else room
        if self.unit:
            return max(min(k, self.cand.size - start), 0)
        return min(_top(self.weight[start:], k), self.cap)


def _resource_additions(p: Prepared, members: list, F: np.ndarray, S: float, N: float,
                        tc: np.ndarray, up_hi: np.ndarray) -> int:
    """Largest m such that X plus some m candidates of F fit KV memory, downlink and
    uplink bandwidth, given tc[m - 1], a lower bound on T_C of any such batch.

    Each member's time left after compute is at most w_k - tc_m, and the uplink phase must
    end before the earliest such window closes. That gives lower bounds on every request's
    demands; m is possible only if X's demands plus the m smallest of the candidates'
    demands fit, for each resource: KV memory, downlink bandwidth (even with an instant
    uplink) and uplink bandwidth (the least bandwidth at the latest possible uplink phase,
    which is also at most T_hi(X + j)). The conditions tighten as m grows.
    """
    b, M = len(members), F.size
    ok = np.isfinite(tc)
    if p.padded:
        used = b * (S + N)
        size = np.maximum(S, p.prompt[F]) + np.maximum(N, p.output[F])
    else:
        used = float(p.prompt[members].sum() + p.output[members].sum()) if b else 0.0
        size = p.prompt[F] + p.output[F]
    ok &= _smallest_sums_fit(np.broadcast_to(size, (M, M)), used,
                             p.kv_capacity / p.kv_per_token)
    # time left after compute, per m (rows) and request (columns)
    left = p.window[F][None, :] - tc[:, None]                         # (M, |F|)
    if b:
        mw = np.asarray(members)
        left_X = p.window[mw][None, :] - tc[:, None]                  # (M, b)
        t_end = left_X.min(axis=1)                                     # uplink ends before
        ok &= t_end > 0
    else:
        t_end = np.full(M, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        down_F = np.where(left > 0, p.down_c[F][None, :] / left, np.inf)
        down_X = ((p.down_c[mw][None, :] / np.where(left_X > 0, left_X, np.nan)).sum(axis=1)
                  if b else 0.0)
    ok &= _smallest_sums_fit(down_F, down_X, p.downlink_hz)
    t_up = np.minimum(np.minimum(left, t_end[:, None]), up_hi[None, :])
    up_F = _uplink(p, F, t_up)
    if b:
        up_X = np.nansum(_uplink(p, mw, np.broadcast_to(t_end[:, None], (M, b))), axis=1)
    else:
        up_X = 0.0
    ok &= _smallest_sums_fit(up_F, up_X, p.uplink_hz)
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else M


@dataclass(frozen=True, eq=False)
class _Tables:
    """T_C(b, S, N) for every batch size and every prompt and output length among the
    candidates, computed once per solve: ``tc[b - 1, i, k]`` for S = prompts[i],
    N = outputs[k]."""

    prompts: np.ndarray
    outputs: np.ndarray
    tc: np.ndarray

    @classmethod
    def build(cls, p: Prepared, F: np.ndarray) -> _Tables:
        Us, Un = np.unique(p.prompt[F]), np.unique(p.output[F])
        bs = np.arange(1, F.size + 1, dtype=float)
        return cls(Us, Un, p.compute_time(bs[:, None, None], Us[None, :, None],
                                          Un[None, None, :]))


def _joint_additions(p: Prepared, tab: _Tables, members: list, F: np.ndarray,
                     S: float, N: float) -> tuple[int, int, np.ndarray]:
    """Largest m allowed by compute time, deadlines and padded memory, enumerating the
    final longest prompt and output (S*, N*) exactly.

    For any feasible Y = X + A with |A| = m, S* = max(S_X, max_A s) and N* likewise are
    among the values max(S_X, s_j), max(N_X, n_j) of the candidates; A lies in
    E = {j : s_j <= S*, n_j <= N*}; T_C(Y) = T_C(b + m, S*, N*) exactly, and it must stay
    below X's windows and below the m-th longest window in E (A holds m members of E).
    With padded memory, (b + m)(S* + N*) kv must fit too. For fixed (S*, N*) the allowed
    m form a prefix, so the answer is the largest rank that passes, over all pairs.

    Returns (m, v, tc): the largest m; an upper bound v on the value A can add (per pair,
    the m_pair heaviest weights in E; for the tokens objective every weight n_j <= N*);
    and tc[m - 1], the least T_C(b + m, S*, N*) over the pairs that allow m (inf if none),
    a lower bound on the compute time of any feasible batch X + A with |A| = m.
    """
    b = len(members)
    order = np.argsort(-p.window[F], kind="stable")
    s, n, w = p.prompt[F][order], p.output[F][order], p.window[F][order]
    iS = np.unique(np.searchsorted(tab.prompts, np.maximum(S, s)))
    iN = np.unique(np.searchsorted(tab.outputs, np.maximum(N, n)))
    e = ((s[None, None, :] <= tab.prompts[iS][:, None, None])
         & (n[None, None, :] <= tab.outputs[iN][None, :, None]))        # (|iS|, |iN|, M)
    rank = np.cumsum(e, axis=2)
    tcv = tab.tc[np.maximum(b + rank - 1, 0), iS[:, None, None], iN[None, :, None]]
    w_cap = np.minimum(w, float(p.window[members].min()) if b else np.inf)
    ok = e & (tcv < w_cap[None, None, :])
    if p.padded:
        seq = tab.prompts[iS][:, None, None] + tab.outputs[iN][None, :, None]
        ok &= (b + rank) * seq * p.kv_per_token <= p.kv_capacity * (1 + _SLACK)
    m_pair = np.where(ok, rank, 0).max(axis=2)                       # (|iS|, |iN|)
    m = int(m_pair.max())
    tc = np.full(F.size + 1, np.inf)
    np.minimum.at(tc, rank[ok], tcv[ok])
    if _unit(p):
        return m, m, tc[1:]
    heavy = -np.sort(-np.where(e, p.weight[F][order], 0), axis=2)
    csum = np.concatenate([np.zeros(m_pair.shape + (1,)), np.cumsum(heavy, axis=2)], axis=2)
    value = np.take_along_axis(csum, m_pair[..., None], axis=2)
    return m, int(value.max()), tc[1:]


def _unit(p: Prepared) -> bool:
    """All weights 1 (the requests objective): value bounds are counts."""
    return bool((p.weight == 1).all())


def _uplink(p: Prepared, who: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Least uplink bandwidths of requests ``who`` (columns) for upload times ``t``; inf
    where t <= 0."""
    tt = np.where(t > 0, t, 1.0)
    return np.where(t > 0, uplink_min_bandwidth(p.up_bits[who], tt, p.snr_hz[who]),
                    np.inf)


def _expand(p: Prepared, tab: _Tables, members: list, value: int, cand: np.ndarray,
            node_rc, row: int):
    """Evaluate X + j for every j in cand; return the node, its checks, and evaluations."""
    b = len(members)
    rc = check_additions(p, members, cand)
    ok = rc.code == OK
    F = cand[ok]
    node = _Node(members, value, F, p.weight[F], 0, _unit(p))
    if F.size:
        S = float(node_rc.S[row]) if b else 0.0
        N = float(node_rc.N[row]) if b else 0.0
        m, node.cap, tc = _joint_additions(p, tab, members, F, S, N)
        if m:
            m = min(m, _resource_additions(p, members, F, S, N, tc, rc.t_hi[ok]))
        node.room = m
    return node, rc, np.flatnonzero(ok), cand.size


def _order(p: Prepared, F: np.ndarray, rc, rows: np.ndarray) -> np.ndarray:
    """Search order of the feasible singletons F: weight per share of the resources they
    use alone (KV memory, uplink bandwidth at their latest uplink phase, downlink
    bandwidth at T_U = 0), largest first; ties by index."""
    mem = (p.prompt[F] + p.output[F]) * p.kv_per_token / p.kv_capacity
    up = rc.uplink_hz[rows, 0] / p.uplink_hz
    down = rc.down_hz[rows, 0] / p.downlink_hz
    key = p.weight[F] / np.maximum(mem + up + down, 1e-300)
    return np.lexsort((F, -key))


def _dftsp(p: Prepared):
    everyone = np.arange(p.n)
    tab = _Tables.build(p, everyone)
    root, rc, okrows, nodes = _expand(p, tab, [], 0, everyone, None, 0)
    nodes += 1  # the empty batch
    if root.cand.size == 0:
        return (), 0, nodes
    order = _order(p, root.cand, rc, okrows)
    root = _Node([], 0, root.cand[order], root.weight[order], root.room, root.unit, root.cap)
    rc_rows = okrows[order]
    best = {"value": 0, "batch": ()}
    count = [nodes]

    def visit(node: _Node, node_rc, rows):
        F = node.cand
        for i in range(F.size):
            wj = int(node.weight[i])
            val = node.value + wj
            if node.value + node.bound(i) <= best["value"]:
                return  # later candidates only see fewer options
            members = node.members + [int(F[i])]
            if val > best["value"]:
                best["value"], best["batch"] = val, tuple(members)
            if i + 1 == F.size:
                return
            # bound for X + j before paying for its children
            if val + node.bound(i + 1, node.room - 1) <= best["value"]:
                continue
            child, crc, crows, evals = _expand(p, tab, members, val, F[i + 1:], node_rc,
                                               rows[i])
            count[0] += evals
            if child.room and val + child.bound(0) > best["value"]:
                visit(child, crc, crows)

    # the root's children are the singletons, already evaluated: rows index root rc
    visit(root, rc, rc_rows)
    return best["batch"], best["value"], count[0]


# ----------------------------------------------------------------------------- brute force
def _bruteforce(p: Prepared, chunk: int = 4096):
    """Evaluate all 2^K subsets (by size, then lexicographically); keep the first best."""
    K = p.n
    best_val, best = 0, ()
    for b in range(1, K + 1):
        combos = itertools.combinations(range(K), b)
        while True:
            block = np.array(list(itertools.islice(combos, chunk)), dtype=np.intp)
            if block.size == 0:
                break
            block = block.reshape(-1, b)
            ok = check_rows(p, block).code == OK
            if ok.any():
                vals = p.weight[block[ok]].sum(axis=1)
                k = int(np.argmax(vals))
                if vals[k] > best_val:
                    best_val, best = int(vals[k]), tuple(int(x) for x in block[ok][k])
    return best, best_val, 2 ** K
