"""The DFTSP oracle: the optimal batch of every slot (myopic: optimal per slot, not over the
episode, since it ignores what stays queued)."""

from __future__ import annotations

from edgellm.agents.base import Policy, SlotViewLike, indices_to_users
from edgellm.dftsp.solver import Solution, solve


class OraclePolicy(Policy):
    """Serve ``solve(view.prepared, method, time_limit)`` each slot (``method``: dftsp or
    bruteforce). With ``time_limit`` [s] a slot's search stops after that long and serves
    its best batch so far (``last.status`` says whether it was proven optimal); the
    default, no limit, serves the optimum every slot."""

    name = "oracle"

    def __init__(self, method: str = "dftsp", time_limit: float | None = None):
        self.method = method
        self.time_limit = time_limit
        self.last: Solution | None = None

    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        if not view.users:
            self.last = None
            return ()
        self.last = solve(view.prepared, self.method, time_limit=self.time_limit)
        return indices_to_users(view, self.last.batch)
