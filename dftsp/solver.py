"""Exact solvers of the slot problem: DFTSP and brute force (SPEC section 3).

DFTSP is a depth-first branch and bound over the set-enumeration tree of the candidate
requests, compiled (:mod:`edgellm.dftsp._search`). A tree node is a batch X; its children
add one candidate that comes later in the search order. Pruning rules, all exact because
feasible batches form a down-closed family (SPEC 2.4):

(a) requests that fail alone (accuracy, or infeasible as a singleton) are dropped;
(b) candidates are ordered by weight per share of the resources they use alone (KV
    memory, uplink and downlink bandwidth), so good batches come first;
(c) a batch that is infeasible is never expanded; when a node is expanded, a candidate k
    is kept for its subtree only if X + k passes necessary conditions (memory and
    compute time exactly as the kernel computes them; downlink demand with an instant
    uplink; uplink demand with the uplink phase ending before T_hi(X), which only falls
    as the batch grows);
(d) a subtree is skipped when an upper bound on its value cannot beat the incumbent.
    Per node: for each candidate j, the largest addition holding j that compute time,
    deadlines and padded memory allow (T_C(b + m, max(S, s_j), max(N, n_j)) must stay
    below j's and X's windows); an h-index of those sizes bounds how many can join; the
    count then shrinks until X's least demand plus the m smallest least demands of the
    eligible candidates fit each resource (exact KV memory, downlink, uplink), with
    compute time at least T_C(b + m, S_m, N_m), S_m and N_m the m-th smallest longest
    prompt and output the eligible candidates give. For the tokens objective the value
    is bounded by the heaviest eligible weights per count and by fractional knapsacks on
    exact KV memory, downlink and uplink demand.

(e) with more than 16 feasible candidates, the search starts from a greedy incumbent:
    the best of greedy fills in the search order and, for "boxes" of a longest prompt
    S* and output N*, in window order (longest first) among the candidates inside the
    box; the boxes are quantiles of the candidates' lengths and the boxes the root's
    bound admits for the largest counts. Within a box compute time depends only on the
    batch size, which is why these fills are often optimal. On hard instances of the
    tokens objective (from 512 candidates, or after ``CLOSE_AFTER`` full checks) each
    box is also filled by weight per share of each resource (downlink, uplink, KV
    memory) and of their sum.
    These fills may take a quarter of a time limit (``_search.GREEDY_SHARE``).

(f) with more than 16 feasible candidates (``BOX_MIN``), the tree is split by boxes:
    every batch has a longest prompt S* and output N* among its members' lengths, and
    for a batch whose box is exactly (S*, N*) compute time is at least T_C(m, S*, N*)
    for m members, so a per-box bound (:func:`_search.box_bound`: the largest count
    whose members meet that deadline and whose smallest memory, downlink and uplink
    demands fit; for the tokens objective also fractional knapsacks per count) is far
    tighter than a bound over every box at once. The boxes are found by a best-first
    branch and bound over ranges of boxes (S* and N* each in an interval of the
    candidates' lengths), bounded the same way with the interval's shortest S* and N*
    and its longest as the members' limits; the range of largest bound is split until
    it is one box, which is then searched by the tree of (c)-(d) over the candidates
    inside it with (S*, N*) as floors of its bounds, until the incumbent reaches the
    best bound left. After ``CLOSE_AFTER`` full checks a box is first bounded by a
    Lagrangian bound coupling KV memory, downlink, uplink, the count and the uplink
    time (:func:`_search.box_lagrange`), which closes it or, when that bound is below
    the next range's, sends it back to the heap with it.

Ties: with 16 or fewer candidates the result is the first batch of maximal value in the
tree's depth-first order (as in version 0.1); with more, the first found by the greedy
fills and by the boxes in the order the range heap yields them. The bounds change the
work, never the value. With a time or node limit the search may stop early: it returns
its incumbent with an upper bound on the optimum (the largest of the incumbent, the
bounds of the ranges and boxes still open, and what the open subtrees of a stopped tree
could still add) and the gap between them.

The node count is the number of batches whose feasibility was evaluated in full (the
empty batch and the singletons included), so brute force reports 2^K; candidates dropped
by the necessary conditions of (c) are not counted.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from edgellm.dftsp import _search
from edgellm.system.feasibility import (
    OK,
    BatchEvaluation,
    Prepared,
    check_additions,
    check_rows,
    evaluate,
    prepare,
)
from edgellm.system.instance import SlotInstance, check_number

METHODS = ("dftsp", "bruteforce")
STATUSES = ("optimal", "time_limit")
#: Default search budget of the oracle callers (oracle policies, eval's per-slot optimum,
#: scenario stats), in full feasibility checks: no slot can stall them (about 2 s at
#: K = 256 on a 2-core laptop-class CPU, BENCHMARKS.md section 1), and unlike a time limit
#: it gives the same batches on every machine and load. The env's presets (at most 32
#: candidates a slot) finish far below it.
ORACLE_NODE_LIMIT = 20_000


@dataclass(frozen=True)
class Solution:
    """The best batch found (sorted request indices) with its evaluation and search effort.

    ``status`` is "optimal" when the search finished (``value`` is the optimum) and
    "time_limit" when a time or node limit stopped it first; ``upper_bound`` >= the optimum
    either way, and ``gap`` = (upper_bound - value) / upper_bound (0 when the bound is 0)."""

    method: str
    batch: tuple[int, ...]
    value: int
    evaluation: BatchEvaluation
    nodes: int
    wall_s: float
    status: str = "optimal"
    upper_bound: int = 0
    gap: float = 0.0

    def to_dict(self) -> dict:
        return {"method": self.method, "batch": list(self.batch), "value": self.value,
                "status": self.status, "upper_bound": self.upper_bound, "gap": self.gap,
                "nodes": self.nodes, "wall_s": self.wall_s,
                "evaluation": self.evaluation.to_dict()}


def solve(inst: SlotInstance | Prepared, method: str = "dftsp",
          time_limit: float | None = None, node_limit: int | None = None,
          weights=None, start=None) -> Solution:
    """Return a batch of maximal value. Ties go to the first batch found in the method's
    deterministic search order. ``weights`` (positive integers, one per request) replace
    the objective's weights, e.g. for a lexicographic tie-break; ``value`` is then theirs.

    ``time_limit`` [s] and ``node_limit`` (full feasibility checks) stop the search early;
    the Solution then carries the incumbent, an upper bound and status "time_limit". With
    neither (the default; ``math.inf`` also means no time limit) the search always
    finishes. A node limit gives the same result on every machine, a time limit does not.

    ``start`` (request indices of a feasible batch, e.g. the previous slot's) is a first
    incumbent for DFTSP (brute force ignores it): the optimal value is the same, the
    search prunes against it from the start, and with ties the batch returned may differ
    from the one found without it."""
    if method not in METHODS:
        raise ValueError(f"method: must be one of {', '.join(METHODS)}; got {method!r}")
    tl = math.inf if time_limit is None or time_limit == math.inf else float(
        check_number(time_limit, "time_limit", lo=0.0, lo_open=True))
    nl = (1 << 62) if node_limit is None else int(
        check_number(node_limit, "node_limit", lo=1, integer=True))
    p = inst if isinstance(inst, Prepared) else prepare(inst)
    if weights is not None:
        w = np.asarray(weights, dtype=np.int64)
        if w.shape != (p.n,) or (w < 1).any():
            raise ValueError(f"weights: need {p.n} positive integers, got {weights!r}")
        p = replace(p, weight=w)
    if start is not None:
        ev = evaluate(p, start)
        if not ev.feasible:
            raise ValueError(f"start: batch {ev.batch} is not feasible ({ev.reason})")
        start = np.array(ev.batch, np.int64)
    t0 = time.perf_counter()
    if method == "dftsp":
        batch, value, nodes, upper, done = _dftsp(p, tl, nl, start)
    else:
        batch, value, nodes, upper, done = _bruteforce(p, tl, nl)
    wall = time.perf_counter() - t0
    ev = evaluate(p, batch)
    gap = (upper - value) / upper if upper > 0 else 0.0
    return Solution(method, tuple(sorted(batch)), int(value), ev, nodes, wall,
                    "optimal" if done else "time_limit", int(upper), gap)


# ----------------------------------------------------------------------------- DFTSP
def _order(p: Prepared, F: np.ndarray, rc, rows: np.ndarray) -> np.ndarray:
    """Search order of the feasible singletons F: weight per share of the resources they
    use alone (KV memory, uplink bandwidth at their latest uplink phase, downlink
    bandwidth at T_U = 0), largest first; ties by index."""
    mem = (p.prefill_tokens[F] + p.output_tokens[F]) * p.kv_per_token / p.kv_capacity
    up = rc.uplink_hz[rows, 0] / p.uplink_hz
    down = rc.down_hz[rows, 0] / p.downlink_hz
    key = p.weight[F] / np.maximum(mem + up + down, 1e-300)
    return np.lexsort((F, -key))


def _dftsp(p: Prepared, time_limit: float, node_limit: int, first=None):
    everyone = np.arange(p.n)
    rc = check_additions(p, [], everyone)
    okrows = np.flatnonzero(rc.code == OK)
    nodes = p.n + 1  # the singletons and the empty batch
    if okrows.size == 0:
        return (), 0, nodes, 0, True
    root = everyone[okrows][_order(p, everyone[okrows], rc, okrows)].astype(np.int64)
    arrays = search_arrays(p)
    _compile(root, arrays)
    t0 = time.perf_counter()
    start, start_val, g_checks = np.empty(0, np.int64), 0, 0
    big = root.size > _GREEDY_MIN
    if big:
        start, start_val, g_checks = _search.greedy(
            *_greedy_orders(p, root), *arrays, t0 + _search.GREEDY_SHARE * time_limit)
    if first is not None and int(p.weight[first].sum()) > start_val:
        start, start_val = first, int(p.weight[first].sum())
    if root.size > BOX_MIN:
        # the root of the plain search (no step taken): its incumbent from boxes, and a
        # bound over every box at once, which may already prove it optimal
        start, start_val, c, upper0, done = _search.search(
            root, *arrays, _unit(p), time_limit, 0, start, start_val, big, t0)
        g_checks += c
        if done:
            return (tuple(int(x) for x in start), int(start_val), nodes + int(g_checks),
                    int(start_val), True)
        batch, value, checks, upper, done = _search.box_search(
            root, *arrays, _unit(p), time_limit, node_limit, start, start_val, t0, CLOSE_AFTER)
        upper = min(upper, max(upper0, value))
    else:
        batch, value, checks, upper, done = _search.search(
            root, *arrays, _unit(p), time_limit, node_limit,
            start, start_val, big, t0)
    return (tuple(int(x) for x in batch), int(value), nodes + int(g_checks + checks),
            int(upper), done)


_compiled = False


def _compile(root: np.ndarray, arrays: tuple) -> None:
    """Compile the search (or load it from numba's on-disk cache) once per process, on a
    one-candidate root, before a time limit starts counting: otherwise the first solve of
    a process would spend its limit compiling, and its result would depend on the cache."""
    global _compiled
    if _compiled:
        return
    one, none = root[:1], np.empty(0, np.int64)
    _search.greedy(one, np.array([0, 1], np.int64), *arrays, -math.inf)
    _search.search(one, *arrays, True, 0.0, 1, none, 0, True, time.perf_counter())
    _search.box_search(one, *arrays, True, 0.0, 1, none, 0, time.perf_counter(), 0.0)
    _compiled = True


def search_arrays(p: Prepared) -> tuple:
    """The request columns and constants the compiled search takes, in its order; the
    columns contiguous with fixed dtypes, so that numba compiles the search only once
    (column views of an env's slot would otherwise compile another version)."""
    f, i = np.float64, np.int64
    cols = [np.ascontiguousarray(c, t) for c, t in (
        (p.prefill_tokens, f), (p.output_tokens, f), (p.window, f), (p.admissible, np.bool_),
        (p.weight, i), (p.up_bits, f), (p.snr_hz, f), (p.down_c, f), (p.enc_s, f))]
    return (*cols, *(float(x) for x in p.cost_constants), float(p.kv_capacity),
            bool(p.padded), float(p.uplink_hz), float(p.downlink_hz), float(p.slot_s))


def _unit(p: Prepared) -> bool:
    """All weights 1 (the requests objective): value bounds are counts."""
    return bool((p.weight == 1).all())


_QUANTILES = (0.25, 0.5, 0.75, 0.9, 1.0)
_GREEDY_MIN = 16  # fewer candidates: the tree search alone is quicker than the greedy
BOX_MIN = 16  # more candidates: search box by box (:func:`_search.box_search`)
# full feasibility checks after which a box is first bounded by :func:`_search.box_lagrange`
# (Lagrangian bound per count and uplink-time cell) before and during its tree, and
# filled greedily by resource shares too (about 0.25 s at K = 256 on the benchmark
# machine); they cost more than the trees of easy instances save (math.inf: never). A
# count, not a time: results never depend on speed.
CLOSE_AFTER = 4000


def _greedy_orders(p: Prepared, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orders for the greedy incumbent: the search order; then, per "box" of a longest
    prompt S* and output N* (quantiles of the candidates'), the candidates within the box
    by window, longest first (for a fixed box, compute time depends on the count only,
    and the longest windows leave the most room to grow)."""
    orders = [root]
    s, n, w = p.prefill_tokens[root], p.output_tokens[root], p.window[root]
    by_window = root[np.lexsort((root, -w))]
    for S in np.unique(np.quantile(s, _QUANTILES, method="higher")):
        for N in np.unique(np.quantile(n, _QUANTILES, method="higher")):
            inbox = (p.prefill_tokens[by_window] <= S) & (p.output_tokens[by_window] <= N)
            orders.append(by_window[inbox])
    starts = np.cumsum([0] + [len(o) for o in orders])
    return np.concatenate(orders).astype(np.int64), starts.astype(np.int64)


# ----------------------------------------------------------------------------- brute force
def _bruteforce(p: Prepared, time_limit: float, node_limit: int, chunk: int = 4096):
    """Evaluate all 2^K subsets (by size, then lexicographically); keep the first best.
    Stopped early, its upper bound is the total weight of the feasible singletons."""
    K = p.n
    best_val, best = 0, ()
    t0, done = time.perf_counter(), 1
    for b in range(1, K + 1):
        combos = itertools.combinations(range(K), b)
        while True:
            if done > node_limit or time.perf_counter() - t0 > time_limit:
                single = check_additions(p, [], np.arange(K)).code == OK
                return best, best_val, done, max(int(p.weight[single].sum()), best_val), False
            block = np.array(list(itertools.islice(combos, chunk)), dtype=np.intp)
            if block.size == 0:
                break
            block = block.reshape(-1, b)
            done += block.shape[0]
            ok = check_rows(p, block).code == OK
            if ok.any():
                vals = p.weight[block[ok]].sum(axis=1)
                k = int(np.argmax(vals))
                if vals[k] > best_val:
                    best_val, best = int(vals[k]), tuple(int(x) for x in block[ok][k])
    return best, best_val, 2 ** K, best_val, True
