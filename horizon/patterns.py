"""Maximal feasible batches of one slot, enumerated exactly.

Feasible batches are down-closed (SPEC 2.4), so a slot's feasible family is the union of
the subsets of its maximal members. Choosing one maximal batch per slot and serving any
subset of it is therefore an exact description of the slot's constraints; the horizon
MILP uses it wherever the enumeration stays small, and the linear necessary conditions of
:mod:`edgellm.horizon.relax` elsewhere.
"""

from __future__ import annotations

import numpy as np

from edgellm.system import _kernel, check_additions
from edgellm.system.feasibility import Prepared


def maximal_batches(p: Prepared, users: np.ndarray, node_cap: int = 20000):
    """Every maximal feasible batch (sorted index arrays) of the requests of ``p``, at most
    one per user; requests must be feasible alone. None when more than ``node_cap``
    feasible batches would have to be visited."""
    n = p.n
    users = np.asarray(users)
    out: list[np.ndarray] = []
    nodes = 0
    stack = [[i] for i in range(n - 1, -1, -1)]
    everyone = np.arange(n)
    while stack:
        X = stack.pop()
        nodes += 1
        if nodes > node_cap:
            return None
        others = everyone[~np.isin(users, users[X])]
        if others.size:
            ok = others[check_additions(p, X, others).code == _kernel.OK]
        else:
            ok = others
        if ok.size == 0:
            out.append(np.asarray(X, dtype=np.int64))
            continue
        for j in ok[ok > X[-1]][::-1]:
            stack.append(X + [int(j)])
    return out
