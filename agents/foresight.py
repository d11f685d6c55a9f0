"""Foresight baselines (SPEC section 7): policies that look past the current slot.

* :class:`UrgentOraclePolicy` (``oracle-urgent``): the exact lexicographic optimum of each
  slot: maximum value first, then, among the batches of maximum value, the one whose
  members would expire soonest. Computed by DFTSP with integer weights
  ``value * M + rank`` (rank m for the most urgent of m candidates, 1 for the least;
  M = m (m + 1) / 2 + 1 exceeds any sum of ranks, so the order is exact in integers).
* :class:`RolloutPolicy` (``rollout``, in :mod:`edgellm.agents.rollout`).
"""

from __future__ import annotations

import numpy as np

from edgellm.agents.base import SlotViewLike
from edgellm.agents.oracle import OraclePolicy
from edgellm.dftsp.solver import ORACLE_NODE_LIMIT


def urgency_rank(p, users) -> np.ndarray:
    """Rank per candidate, m = soonest to expire, 1 = latest; distinct integers.

    A request expires at the end of a slot once its remaining deadline, less slot_s, is at
    most its compute time alone, so it has floor((tau - T_C alone) / slot_s) slots left
    after this one; ties by remaining deadline, then user id. ``p``: the slot's prepared
    arrays, ``users``: their user ids."""
    tc = p.compute_time(1.0, p.prefill_tokens, p.output_tokens)
    tau = p.columns["deadline_s"]
    left = np.floor((tau - tc) / p.slot_s)
    order = np.lexsort((np.asarray(users), -tau, -left))  # least urgent first
    rank = np.empty(p.n, dtype=np.int64)
    rank[order] = np.arange(1, p.n + 1)
    return rank


def lexicographic_weights(value: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Integer weights whose batch sums order by value, then by the sum of ``secondary``
    (positive integers)."""
    M = int(secondary.sum()) + 1
    return np.asarray(value, dtype=np.int64) * M + np.asarray(secondary, dtype=np.int64)


class UrgentOraclePolicy(OraclePolicy):
    """Maximum value per slot, then the soonest-expiring requests (module docstring);
    ``time_limit`` and ``node_limit`` as for :class:`~edgellm.agents.oracle.OraclePolicy`."""

    name = "oracle-urgent"

    def __init__(self, time_limit: float | None = None,
                 node_limit: int | None = ORACLE_NODE_LIMIT):
        super().__init__("dftsp", time_limit, node_limit)

    def weights(self, view: SlotViewLike) -> np.ndarray:
        return lexicographic_weights(view.prepared.weight,
                                     urgency_rank(view.prepared, view.users))
