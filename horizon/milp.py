"""The horizon MILP over items (request, slot), solved with HiGHS.

maximize   sum_i w_i x_i                      x_i in {0, 1}: item i = (r, t) served
subject to sum_{i of r} x_i <= 1              each request served at most once
           sum_{i of (u, t)} x_i <= 1         one head-of-line request per user and slot

and per slot t, either exactly (``patterns[t]``: its maximal feasible batches P, binary z_P)

           sum_P z_P <= 1,   x_i <= sum_{P containing i} z_P

or by necessary linear conditions (:mod:`edgellm.horizon.relax`):

           sum mem_i x_i <= KV tokens,  sum down_i x_i <= B_D,  sum up_i x_i <= B_U
           b_t >= sum x_i,  b_t + (n_t - bmax_i) x_i <= n_t   (batch size; n_t users at t)
           one leader y (largest s + n among the chosen): y_j <= x_j,
           x_j <= sum_{l before or at j} y_l,  b_t <= sum_j bmax_j y_j
           x_a + x_b <= 1 for pairs infeasible together

and, only for planning (not valid for the upper bound: overflow can remove a predecessor):
x_(r, t) <= sum_{t' < t} x_(r', t') when r' is queued just before r by the same user and can
still be waiting at t.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np

from edgellm.horizon.relax import Items


@dataclass(frozen=True)
class MilpResult:
    x: np.ndarray        # bool per item of the incumbent (all False when none)
    value: float         # incumbent objective (0 when none)
    dual_bound: float    # proven upper bound on the optimum
    status: str          # "optimal" | "time_limit" | ...
    wall_s: float


_quiet = [False]


def _highs() -> highspy.Highs:
    """A silent HiGHS instance (the first one per process prints a banner to fd 1 from C++,
    which would corrupt ``--json`` output: it is sent to /dev/null)."""
    if _quiet[0]:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)
        _quiet[0] = True
    h.setOptionValue("output_flag", False)
    return h


class _Rows:
    def __init__(self):
        self.starts, self.idx, self.val, self.hi = [], [], [], []
        self.nnz = 0

    def add(self, idx, val, hi: float) -> None:
        idx = np.asarray(idx, dtype=np.int32)
        if idx.size == 0:
            return
        self.starts.append(self.nnz)
        self.idx.append(idx)
        self.val.append(np.broadcast_to(np.asarray(val, dtype=float), idx.shape))
        self.hi.append(hi)
        self.nnz += idx.size


def _groups(keys: np.ndarray) -> list[np.ndarray]:
    """Indices grouped by equal key."""
    if keys.size == 0:
        return []
    order = np.argsort(keys, kind="stable")
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    return np.split(order, cuts)


def solve_items(items: Items, sel: np.ndarray | None = None, *, weights=None,
                fifo_pred: np.ndarray | None = None,
                fifo_last: np.ndarray | None = None, patterns=None, time_limit: float = 60.0,
                threads: int = 1, rel_gap: float = 1e-4, solver: str = "highs") -> MilpResult:
    """Solve the MILP on the items ``sel`` (indices into ``items``; all by default).

    ``weights`` replaces the objective coefficients; ``fifo_pred[r]`` (request index of the
    request queued just before r by the same user, -1 for none) with ``fifo_last[r]`` (last
    slot r can wait) adds the planning FIFO rows. Returns the incumbent and the solver's
    proven dual bound. ``solver="cpsat"`` solves the same model with OR-Tools CP-SAT
    (``threads`` workers; fractional rows scaled to integers, rounded so they only relax),
    for comparison (benchmarks/bench_bound.py).
    """
    t0 = time.perf_counter()
    sel = np.arange(items.n) if sel is None else np.asarray(sel, dtype=np.int64)
    n = sel.size
    if n == 0:
        return MilpResult(np.zeros(0, bool), 0.0, 0.0, "optimal", 0.0)
    w = (items.weight[sel] if weights is None else np.asarray(weights, float)).astype(float)
    req, slot, user = items.req[sel], items.slot[sel], items.user[sel]
    rows = _Rows()
    for g in _groups(req):
        if g.size > 1:
            rows.add(g, 1.0, 1.0)
    K = int(user.max()) + 1
    for g in _groups(slot * K + user):
        if g.size > 1:
            rows.add(g, 1.0, 1.0)
    bmax = items.bmax[sel]
    patterns = patterns or {}
    loc = np.full(items.n, -1, np.int64)
    loc[sel] = np.arange(n)
    exact = np.zeros(n, bool)  # items of slots described by their maximal batches
    nz = 0
    zcols: list[tuple[int, np.ndarray]] = []  # (column, local items of the pattern)
    for t, pats in patterns.items():
        here = loc[np.flatnonzero(items.slot == t)]
        here = here[here >= 0]
        if here.size == 0:
            continue
        exact[here] = True
        zs = []
        for pat in pats:
            lp = loc[pat]
            lp = lp[lp >= 0]
            if lp.size:
                zcols.append((nz, lp))
                zs.append(nz)
                nz += 1
        cover: dict[int, list[int]] = {}
        for z, lp in zcols[len(zcols) - len(zs):]:
            for i in lp:
                cover.setdefault(int(i), []).append(z)
        rows.add(n + np.asarray(zs, np.int64), 1.0, 1.0)               # one batch per slot
        for i in here:                                                 # x_i <= its batches
            zi = np.asarray(cover.get(int(i), []), np.int64)
            rows.add(np.concatenate([[i], n + zi]),
                     np.concatenate([[1.0], -np.ones(zi.size)]), 0.0)
    extra_ub: list[float] = []   # auxiliary columns after x and z: upper bound, integer
    extra_int: list[bool] = []

    def new_cols(k: int, integer: bool, ub: float) -> np.ndarray:
        start = n + nz + len(extra_ub)
        extra_ub.extend([ub] * k)
        extra_int.extend([integer] * k)
        return start + np.arange(k)

    for g in _groups(slot):  # linear necessary conditions where batches were not enumerated
        if exact[g].all():
            continue
        rows.add(g, items.mem[sel][g], items.mem_cap)
        rows.add(g, items.down[sel][g], items.down_cap)
        rows.add(g, items.up[sel][g], items.up_cap)
        n_t = np.unique(user[g]).size
        if g.size < 2:
            continue
        (b,) = new_cols(1, False, float(n_t))                # b >= batch size
        rows.add(np.concatenate([g, [b]]), np.concatenate([np.ones(g.size), [-1.0]]), 0.0)
        for i in g[bmax[g] < n_t]:                          # b <= bmax_i if x_i
            rows.add([b, i], [1.0, float(n_t - bmax[i])], float(n_t))
        # the leader (largest s + n, ties by index) is in the batch and caps its size
        g = g[np.lexsort((g, -items.mem[sel][g]))]
        y, Y = new_cols(g.size, True, 1.0), new_cols(g.size, False, 1.0)
        for k, j in enumerate(g):
            rows.add([y[k], j], [1.0, -1.0], 0.0)            # y_j <= x_j
            rows.add([j, Y[k]], [1.0, -1.0], 0.0)            # x_j <= Y_j = sum_{l <= j} y_l
            rows.add([Y[k], y[k], *([Y[k - 1]] if k else [])], [1.0, -1.0, -1.0][:2 + (k > 0)],
                     0.0)
        rows.add(y, 1.0, 1.0)
        rows.add(np.concatenate([[b], y]), np.concatenate([[1.0], -bmax[g].astype(float)]), 0.0)
    for a, b in items.conflicts:  # item pairs infeasible together
        if loc[a] >= 0 and loc[b] >= 0 and not exact[loc[a]]:
            rows.add([loc[a], loc[b]], 1.0, 1.0)
    if fifo_pred is not None:
        by_req = {int(r): g for r, g in zip(req[[g[0] for g in _groups(req)]], _groups(req))}
        for j in range(n):
            prev = int(fifo_pred[req[j]])
            if prev < 0 or fifo_last[prev] < slot[j]:
                continue  # no predecessor, or it has left the queue by then
            g = by_req.get(prev, np.zeros(0, np.int64))
            earlier = g[slot[g] < slot[j]]
            rows.add(np.concatenate([[j], earlier]),
                     np.concatenate([[1.0], -np.ones(earlier.size)]), 0.0)
    ne = len(extra_ub)
    nv = n + nz + ne
    ub = np.concatenate([np.ones(n + nz), extra_ub])
    integer = np.concatenate([np.ones(n + nz, bool), np.asarray(extra_int, bool)])
    if solver == "cpsat":
        return _cpsat(w, ub, rows, time_limit, threads, rel_gap, t0)
    h = _highs()
    h.setOptionValue("time_limit", float(max(time_limit, 0.01)))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", float(rel_gap))
    h.setOptionValue("random_seed", 0)
    h.addCols(nv, np.concatenate([-w, np.zeros(nz + ne)]), np.zeros(nv), ub, 0,
              np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    m = len(rows.hi)
    if m:
        h.addRows(m, np.full(m, -highspy.kHighsInf), np.asarray(rows.hi, float), rows.nnz,
                  np.asarray(rows.starts, np.int32), np.concatenate(rows.idx),
                  np.concatenate(rows.val))
    h.changeColsIntegrality(nv, np.arange(nv, dtype=np.int32),
                            np.where(integer, highspy.HighsVarType.kInteger,
                                     highspy.HighsVarType.kContinuous))
    h.run()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus()).lower().replace(" ", "_")
    dual = -float(info.mip_dual_bound)
    if not math.isfinite(dual):
        dual = float(w[w > 0].sum())
    x = np.zeros(n, bool)
    value = 0.0
    if info.primal_solution_status == 2:  # feasible incumbent
        x = np.asarray(h.getSolution().col_value)[:n] > 0.5
        value = float(w[x].sum())
    return MilpResult(x, value, max(dual, value), status, time.perf_counter() - t0)


def _cpsat(w, ub, rows: _Rows, time_limit, workers, rel_gap, t0) -> MilpResult:
    """The same model in CP-SAT (every variable integer: the auxiliary batch-size and prefix
    columns take integer values at any integer x, y)."""
    from ortools.sat.python import cp_model

    n = w.size
    m = cp_model.CpModel()
    v = [m.NewIntVar(0, int(math.floor(u)), f"v{i}") for i, u in enumerate(ub)]
    for idx, val, hi in zip(rows.idx, rows.val, rows.hi):
        if np.all(val == np.round(val)):
            coef, cap = val.astype(np.int64), int(math.floor(hi + 1e-9))
        else:  # positive fractional coefficients: scale, round down, capacity up (relaxes)
            scale = 1e6 / max(hi, 1e-300)
            coef, cap = np.floor(val * scale).astype(np.int64), int(math.ceil(hi * scale))
        m.Add(sum(int(c) * v[i] for c, i in zip(coef, idx)) <= cap)
    m.Maximize(sum(int(wi) * v[i] for i, wi in enumerate(w)))
    s = cp_model.CpSolver()
    s.parameters.max_time_in_seconds = float(max(time_limit, 0.01))
    s.parameters.num_workers = int(max(workers, 1))
    s.parameters.relative_gap_limit = float(rel_gap)
    s.parameters.random_seed = 0
    st = s.Solve(m)
    names = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "time_limit_reached"}
    x = np.zeros(n, bool)
    value = 0.0
    if st in names:
        x = np.array([s.Value(v[i]) for i in range(n)]) > 0
        value = float(w[x].sum())
        dual = float(s.BestObjectiveBound())
    else:
        dual = float(w[w > 0].sum())
    return MilpResult(x, value, max(dual, value), names.get(st, "unknown"),
                      time.perf_counter() - t0)
