"""The DFTSP oracle: the optimal batch of every slot (myopic: optimal per slot, not over the
episode, since it ignores what stays queued)."""

from __future__ import annotations

from edgellm.agents.base import Policy, SlotViewLike, indices_to_users
from edgellm.dftsp.solver import Solution, solve


class OraclePolicy(Policy):
    """Serve ``solve(view.prepared, method)`` each slot (``method``: dftsp or bruteforce)."""

    name = "oracle"

    def __init__(self, method: str = "dftsp"):
        self.method = method
        self.last: Solution | None = None

    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        if not view.users:
            self.last = None
            return ()
        self.last = solve(view.prepared, self.method)
        return indices_to_users(view, self.last.batch)
