"""The DFTSP oracle: the optimal batch of every slot (myopic: optimal per slot, not over the
episode, since it ignores what stays queued)."""

from __future__ import annotations

from edgellm.agents.base import Policy, SlotViewLike, indices_to_users
from edgellm.dftsp.solver import ORACLE_NODE_LIMIT, Solution, solve


class OraclePolicy(Policy):
    """Serve ``solve(view.prepared, method, time_limit, node_limit)`` each slot
    (``method``: dftsp or bruteforce). A slot's search stops after ``node_limit`` full
    feasibility checks (default :data:`edgellm.dftsp.ORACLE_NODE_LIMIT`, the same on every
    machine; None: no limit) or ``time_limit`` [s] (default none) and then serves its best
    batch so far: ``last.status`` says whether it was proven optimal and ``unproven``
    counts the slots where it was not. Subclasses may replace the objective's weights
    (:meth:`weights`, e.g. a lexicographic tie-break)."""

    name = "oracle"

    def __init__(self, method: str = "dftsp", time_limit: float | None = None,
                 node_limit: int | None = ORACLE_NODE_LIMIT):
        self.method = method
        self.time_limit = time_limit
        self.node_limit = node_limit
        self.last: Solution | None = None
        self.unproven = 0

    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        if not view.users:
            self.last = None
            return ()
        self.last = solve(view.prepared, self.method, time_limit=self.time_limit,
                          node_limit=self.node_limit, weights=self.weights(view))
        self.unproven += self.last.status != "optimal"
        return indices_to_users(view, self.last.batch)

    def weights(self, view: SlotViewLike):
        """Integer weights per candidate that replace the objective's (None: keep it)."""
        return None
