"""Exact solvers of the slot problem: DFTSP and brute force (SPEC section 3).

DFTSP is a depth-first search over the set-enumeration tree of the candidate requests.
A tree node is a batch; its children add one candidate that comes later in the search
order. Pruning rules, all exact because feasible batches form a down-closed family
(SPEC 2.4):

(a) requests that fail alone (accuracy, or infeasible as a singleton) are dropped;
(b) candidates are ordered by weight per unit of resource use (memory, uplink and
    downlink bandwidth, each as a share of its capacity), so good batches come first;
(c) a child that is infeasible is never expanded, and is removed from the candidates of
    all its siblings' subtrees too (any batch holding both is a superset of it);
(d) a subtree is skipped when an upper bound on its value cannot beat the incumbent. The
    bound is the least of: the value so far plus all addable weights, and three
    fractional-knapsack bounds, one per resource (KV memory, uplink and downlink
    bandwidth), whose item sizes are lower bounds on what each addable request costs in
    *any* feasible superset (see ``_Node``).

The node count is the number of batches whose feasibility was evaluated (the empty
batch included), so brute force reports 2^K.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from edgellm.dftsp.feasibility import (
    OK,
    BatchEvaluation,
    Prepared,
    check_rows,
    evaluate,
    prepare,
)
from edgellm.dftsp.instance import SlotInstance

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


def solve(inst: SlotInstance | Prepared, method: str = "dftsp") -> Solution:
    """Return a batch of maximal value. Ties go to the first batch found in the method's
    deterministic search order."""
    if method not in METHODS:
        raise ValueError(f"method: must be one of {', '.join(METHODS)}; got {method!r}")
    p = inst if isinstance(inst, Prepared) else prepare(inst)
    t0 = time.perf_counter()
    batch, value, nodes = (_dftsp if method == "dftsp" else _bruteforce)(p)
    wall = time.perf_counter() - t0
    ev = evaluate(p, batch)
    return Solution(method, tuple(sorted(batch)), int(value), ev, nodes, wall)


# ----------------------------------------------------------------------------- bounds
def _knapsack_bound(weights: np.ndarray, sizes: np.ndarray, capacity: float) -> float:
    """Fractional-knapsack optimum: an upper bound on the weight of any subset that fits."""
    if capacity < 0:
        return -1.0
    free = sizes <= 0
    total = float(weights[free].sum())
    w, z = weights[~free], sizes[~free]
    if w.size == 0:
        return total
    order = np.argsort(-(w / z), kind="stable")
    w, z = w[order], z[order]
    cum = np.cumsum(z)
    k = int(np.searchsorted(cum, capacity, side="right"))
    total += float(w[:k].sum())
    if k < w.size:
        room = capacity - (cum[k - 1] if k else 0.0)
        total += float(w[k]) * room / float(z[k])
    return total


@dataclass(eq=False)
class _Node:
    """A feasible batch X and, for each candidate j in F (X + j is feasible), lower bounds
    on what j costs in any feasible Y containing X + j:

    * memory: padded, (max(S_X, s_j) + max(N_X, n_j)) kv, against the capacity left after
      X's b (S_X + N_X) kv; exact, (s_j + n_j) kv;
    * uplink: beta_j(T_hi(X + j)), since T_U(Y) <= T_hi(Y) <= T_hi(X + j) and least uplink
      bandwidths fall with T_U; against B_U less X's demand at T_hi(X);
    * downlink: c_j / (w_j - T_C(X + j)), since T_C(Y) >= T_C(X + j) and T_U >= 0; against
      B_D less X's demand at T_U = 0 and T_C(X).
    """

    members: list
    value: int
    cand: np.ndarray        # F, in search order
    weight: np.ndarray      # weights of F
    size: np.ndarray        # (3, |F|) resource lower bounds
    room: np.ndarray        # (3,) capacities left

    def bound(self, start: int, extra_room=None) -> int:
        """Upper bound on the value any batch X + (subset of cand[start:]) can add."""
        w = self.weight[start:]
        best = float(w.sum())
        room = self.room if extra_room is None else self.room - extra_room
        for r in range(3):
            best = min(best, _knapsack_bound(w, self.size[r, start:], room[r]))
        return int(np.floor(best + 1e-6)) if best >= 0 else -1


def _expand(p: Prepared, members: list, value: int, cand: np.ndarray, node_rc, row: int):
    """Evaluate X + j for every j in cand; return the node and the number of evaluations."""
    b = len(members)
    if b:
        idx = np.empty((cand.size, b + 1), dtype=np.intp)
        idx[:, :b] = members
        idx[:, b] = cand
    else:
        idx = cand[:, None]
    rc = check_rows(p, idx)
    ok = rc.code == OK
    F = cand[ok]
    sidx = np.sort(idx[ok], axis=1)
    col = (sidx == F[:, None]).argmax(axis=1)  # where j sits in its sorted row
    rows = np.arange(F.size)
    kvtok = p.kv_per_token
    if b:
        S, N = float(node_rc.S[row]), float(node_rc.N[row])
        tc = float(node_rc.t_compute[row])
        mem_used = (b * (S + N) if p.padded else float(p.prompt[members].sum()
                                                       + p.output[members].sum())) * kvtok
        up_used = float(np.nansum(node_rc.uplink_hz[row]))
        mw = np.array(members)
        down_used = float((p.down_c[mw] / (p.window[mw] - tc)).sum())
    else:
        S = N = 0.0
        mem_used = up_used = down_used = 0.0
    if p.padded:
        mem = (np.maximum(S, p.prompt[F]) + np.maximum(N, p.output[F])) * kvtok
    else:
        mem = (p.prompt[F] + p.output[F]) * kvtok
    up = rc.uplink_hz[ok][rows, col]
    down = p.down_c[F] / (p.window[F] - rc.t_compute[ok])
    size = np.vstack([mem, up, down])
    caps = np.array([p.kv_capacity, p.uplink_hz, p.downlink_hz])
    room = caps * (1 + _SLACK) - np.array([mem_used, up_used, down_used])
    node = _Node(members, value, F, p.weight[F], size, room)
    return node, rc, np.flatnonzero(ok), cand.size


def _order(p: Prepared, node: _Node) -> np.ndarray:
    """Search order of the root's feasible candidates: weight per share of resources."""
    share = node.size / np.array([p.kv_capacity, p.uplink_hz, p.downlink_hz])[:, None]
    key = node.weight / np.maximum(share.sum(axis=0), 1e-300)
    return np.lexsort((node.cand, -key))


def _dftsp(p: Prepared):
    root, rc, okrows, nodes = _expand(p, [], 0, np.arange(p.n), None, 0)
    nodes += 1  # the empty batch
    if root.cand.size == 0:
        return (), 0, nodes
    order = _order(p, root)
    root = _Node([], 0, root.cand[order], root.weight[order], root.size[:, order], root.room)
    rc_rows = okrows[order]
    best = {"value": 0, "batch": ()}
    count = [nodes]

    def visit(node: _Node, node_rc, rows):
        F = node.cand
        for i in range(F.size):
            wj = int(node.weight[i])
            val = node.value + wj
            if node.value + node.bound(i) <= best["value"]:
                return
            members = node.members + [int(F[i])]
            if val > best["value"]:
                best["value"], best["batch"] = val, tuple(members)
            if i + 1 == F.size:
                return
            # bound for X + j before paying for its children
            if val + node.bound(i + 1, node.size[:, i]) <= best["value"]:
                continue
            child, crc, crows, evals = _expand(p, members, val, F[i + 1:], node_rc, rows[i])
            count[0] += evals
            if child.cand.size and val + child.bound(0) > best["value"]:
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
