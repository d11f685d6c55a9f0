"""Greedy batching heuristics (SPEC section 5).

Each heuristic sorts the slot's candidates by a key and adds them in that order while the
batch stays feasible. Feasibility always comes from :func:`edgellm.system.check_rows`, the
cost model shared with the env and the oracle. Because feasible batches are down-closed
(SPEC 2.4), a candidate that does not fit the current batch never fits a later, larger
one, so :func:`greedy_fill` tests every remaining candidate against the current batch in
one vectorised call per added request.

Ties in a key are broken by user id (ascending), so every heuristic is deterministic.
"""

from __future__ import annotations

import numpy as np

from edgellm.agents.base import Policy, SlotViewLike, indices_to_users, request_column
from edgellm.system.feasibility import OK, Prepared, check_additions


def greedy_fill(p: Prepared, order, limit: int | None = None) -> list[int]:
    """Add instance indices in ``order`` while the batch stays feasible; at most ``limit``.

    Equivalent to testing each candidate in turn against the batch built so far.
    """
    remaining = np.asarray(order, dtype=np.intp)
    batch: list[int] = []
    while remaining.size and (limit is None or len(batch) < limit):
        ok = check_additions(p, batch, remaining).code == OK
        if not ok.any():
            break
        first = int(np.argmax(ok))
        batch.append(int(remaining[first]))
        remaining = remaining[first + 1:][ok[first + 1:]]
    return batch


def arrival_order(view: SlotViewLike) -> np.ndarray | None:
    """A key per candidate that grows with its arrival (``view.request_ids``: the env
    numbers requests in arrival order), or None when the view carries none."""
    ids = getattr(view, "request_ids", ())
    return np.asarray(ids, dtype=float) if len(ids) else None


class GreedyPolicy(Policy):
    """Greedy fill in ascending order of :meth:`key` (ties by user id)."""

    limit: int | None = None

    def key(self, view: SlotViewLike) -> np.ndarray:
        """Sort key per candidate, in ``view.users`` order; smaller goes first."""
        raise NotImplementedError

    def order(self, view: SlotViewLike) -> np.ndarray:
        users = np.asarray(view.users, dtype=float)
        return np.lexsort((users, self.key(view)))

    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        if not view.users:
            return ()
        return indices_to_users(view, greedy_fill(view.prepared, self.order(view), self.limit))


class FCFSPolicy(GreedyPolicy):
    """First come, first served: oldest request first (by request id; by user id when the
    view carries no arrival order)."""

    name = "fcfs"

    def key(self, view):
        arr = arrival_order(view)
        return arr if arr is not None else np.zeros(len(view.users))


class SJFPolicy(GreedyPolicy):
    """Shortest job first: fewest total tokens s_k + m_k + n_k (prefill, media included, plus
    output) first (ties: shorter output)."""

    name = "sjf"

    def key(self, view):
        p = view.prepared
        return p.prefill_tokens + p.output_tokens

    def order(self, view):
        users = np.asarray(view.users, dtype=float)
        return np.lexsort((users, view.prepared.output_tokens, self.key(view)))


class EDFPolicy(GreedyPolicy):
    """Earliest deadline first: least remaining deadline tau_k [s] first."""

    name = "edf"

    def key(self, view):
        return request_column(view, "deadline_s")


class BestChannelPolicy(GreedyPolicy):
    """Best channel first: largest uplink capacity bound p_k g_k / N0 first, ties broken by
    the downlink gain (both decide how much bandwidth a request needs)."""

    name = "best-channel"

    def key(self, view):
        return -view.prepared.snr_hz

    def order(self, view):
        users = np.asarray(view.users, dtype=float)
        return np.lexsort((users, -request_column(view, "downlink_gain"), self.key(view)))


class StaticBatchPolicy(FCFSPolicy):
    """Classic static batching: FCFS order, at most ``batch_size`` requests per slot
    (fewer when adding more would make the batch infeasible)."""

    name = "static-batch"

    def __init__(self, batch_size: int = 4):
        from edgellm.system.validate import check_number

        self.limit = check_number(batch_size, "static-batch: batch_size", lo=1, integer=True)


class RandomPolicy(GreedyPolicy):
    """Random feasible: a uniformly random order from a generator seeded by :meth:`reset`,
    filled greedily, so every batch is feasible and maximal."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def order(self, view):
        return self.rng.permutation(len(view.users))
