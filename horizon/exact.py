"""The exact hindsight optimum of tiny episodes, by exhaustive search over schedules.

Every feasible batch of every slot is tried (the empty one included), in the env itself,
so its rules (FIFO, queue capacity and overflow, ageing, expiry) hold exactly. States are
memoised on (slot, the request ids queued per user): since arrivals, attributes and
channels are fixed by the seed, those determine everything that follows. Exponential:
meant for K <= 4 users and H <= 8 slots, as a reference for the bounds' tests.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np

from edgellm.envs.env import EdgeLLMEnv
from edgellm.envs.queues import ID
from edgellm.system import check_rows
from edgellm.system._kernel import OK


def _key(env: EdgeLLMEnv) -> tuple:
    q = env._queues
    return (env._slot, tuple(tuple(q.data[k, :q.length[k], ID].astype(np.int64).tolist())
                             for k in range(q.length.size)))


def _feasible_batches(env: EdgeLLMEnv) -> list[tuple[int, ...]]:
    view = env.slot_view()
    m = len(view.users)
    out = [()]
    for b in range(1, m + 1):
        combos = np.array(list(itertools.combinations(range(m), b)), dtype=np.int64)
        ok = check_rows(view.prepared, combos).code == OK
        out += [tuple(view.users[i] for i in c) for c in combos[ok]]
    return out


def exact_optimum(env: EdgeLLMEnv, seed: int) -> float:
    """The largest total value any schedule serves in ``env.config.max_slots`` slots after
    ``env.reset(seed=seed)`` (``env`` in subset mode)."""
    env.reset(seed=seed)
    H = env.config.max_slots
    memo: dict[tuple, float] = {}

    def best(e: EdgeLLMEnv) -> float:
        if e._slot >= H:
            return 0.0
        key = _key(e)
        if key in memo:
            return memo[key]
        top = 0.0
        for users in _feasible_batches(e):
            nxt = copy.deepcopy(e)
            _, _, _, _, info = nxt.step(nxt.action_for(users))
            top = max(top, info["value"] + best(nxt))
        memo[key] = top
        return top

    return best(env)
