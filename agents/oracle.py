"""The DFTSP oracle: the optimal batch of every slot (myopic: optimal per slot, not over the
episode, since it ignores what stays queued)."""

from __future__ import annotations

from edgellm.agents.base import Policy, SlotViewLike, indices_to_users
from edgellm.dftsp.solver import Solution, slot_time_limit, solve


class OraclePolicy(Policy):
    """Serve ``solve(view.prepared, method, time_limit)`` each slot (``method``: dftsp or
    bruteforce). A slot's search stops after ``time_limit`` [s] (default: a quarter of the
    slot length, :data:`edgellm.dftsp.SLOT_FRACTION`) and then serves its best batch so
    far: ``last.status`` says whether it was proven optimal and ``unproven`` counts the
    slots where it was not. DFTSP proves the optimum well within that limit on most
    slots; pass a larger limit to wait for the proof."""

    name = "oracle"

    def __init__(self, method: str = "dftsp", time_limit: float | None = None):
        self.method = method
        self.time_limit = time_limit
        self.last: Solution | None = None
        self.unproven = 0

    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        if not view.users:
            self.last = None
            return ()
        p = view.prepared
        limit = slot_time_limit(p) if self.time_limit is None else self.time_limit
        self.last = solve(p, self.method, time_limit=limit)
        self.unproven += self.last.status != "optimal"
        return indices_to_users(view, self.last.batch)
