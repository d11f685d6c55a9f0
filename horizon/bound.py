"""Hindsight bounds of one episode: ``edgellm bound`` (SPEC section 7, docs/model.md).

:func:`bound` returns

* ``upper_bound``: HiGHS's proven dual bound of the horizon MILP (:mod:`.milp`), a
  relaxation of every schedule the env allows: per slot the exact family of feasible
  batches (enumerated maximal batches, :mod:`.patterns`) or, where that family is too
  large, necessary linear conditions (:mod:`.relax`); FIFO order and queue capacity
  dropped. No policy serves more in those slots.
* ``lower_bound``: the best of several concrete schedules, each *replayed in the env* and
  worth exactly its replayed value: the myopic oracle, the urgent oracle, and the plan of
  the same MILP with FIFO order added, repaired slot by slot by DFTSP (planned requests
  first, then any other value).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from edgellm.envs.env import EdgeLLMEnv
from edgellm.errors import EdgeLLMError
from edgellm.horizon.milp import solve_items
from edgellm.horizon.patterns import maximal_batches
from edgellm.horizon.relax import Items, items_of, prepared_items
from edgellm.horizon.trace import Trace, episode_trace

NODE_CAP = 20000  # feasible batches visited per slot before falling back to linear rows
WINDOW = 6        # slots the rolling plan looks ahead
PATTERN_CAP = 30000  # maximal batches in one MILP (beyond, slots use linear rows)


@dataclass
class BoundResult:
    scenario: str
    seed: int
    slots: int
    upper_bound: float
    lower_bound: float
    gap: float            # (upper - lower) / upper (0 when upper is 0)
    status: str           # optimal | gap | time_limit
    method: str
    wall_s: float
    policies: dict = field(default_factory=dict)   # replayed value of each schedule tried
    best: str = ""                                 # which schedule gave lower_bound
    schedule: list = field(default_factory=list)   # per slot: user ids served
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def replay(env: EdgeLLMEnv, seed: int, choose) -> tuple[float, list]:
    """Play ``env`` from ``reset(seed)`` for its max_slots, serving ``choose(env, t)`` (user
    ids) each slot through ``action_for``; returns the total value served and the batches."""
    env.reset(seed=seed)
    total, batches = 0.0, []
    for t in range(env.config.max_slots):
        users = tuple(choose(env, t))
        done = False
        while not done:
            _, _, _, _, info = env.step(env.action_for(users))
            done = info["slot_done"]
        total += info["value"]
        batches.append(list(info["batch"]))
    return total, batches


def _policy_chooser(name: str):
    from edgellm.agents import make_policy

    pol = make_policy(name)
    pol.reset(0)

    def choose(env, t):
        if hasattr(pol, "cfg"):  # planners read the scenario's distributions
            pol.cfg = env.config
        return pol.select(env.slot_view())

    return choose


def _plan_chooser(trace: Trace, planned: dict[int, int]):
    """Serve the planned request ids of the slot that are at the head of their queues, then
    whatever else fits best (DFTSP, planned requests weighted above all others)."""
    from edgellm.agents.base import indices_to_users
    from edgellm.dftsp.solver import ORACLE_NODE_LIMIT, solve

    def choose(env, t):
        view = env.slot_view()
        if not view.users:
            return ()
        p = view.prepared
        plan = np.array([planned.get(int(r), -1) == t for r in view.request_ids])
        w = p.weight.astype(np.int64) + plan * (int(p.weight.sum()) + 1)
        return indices_to_users(view, solve(p, "dftsp", weights=w,
                                            node_limit=ORACLE_NODE_LIMIT).batch)

    return choose


def _rolling(env: EdgeLLMEnv, seed: int, trace: Trace, items: Items, pats: dict,
             deadline: float, window: int = WINDOW):
    """Model-predictive replay with the real future: at every slot, solve the MILP with FIFO
    rows over the requests still queued or yet to come in the next ``window`` slots, serve
    its plan for this slot (repaired by DFTSP), repeat. Past ``deadline`` the remaining
    slots follow the urgent oracle."""
    from edgellm.envs.queues import ID

    index = {int(rid): r for r, rid in enumerate(trace.rid)}
    by_slot = np.argsort(items.slot, kind="stable")
    fallback = _policy_chooser("oracle-urgent")
    solves = [0, 0.0]

    def choose(env, t):
        if time.perf_counter() > deadline:
            return fallback(env, t)
        q = env._queues
        live = [index[int(x)] for k in range(q.length.size)
                for x in q.data[k, :q.length[k], ID] if int(x) in index]
        future = np.flatnonzero((trace.arrival > t) & (trace.arrival < t + window))
        reqs = np.unique(np.concatenate([np.asarray(live, np.int64), future]))
        live_mask = np.zeros(trace.n, bool)
        live_mask[reqs] = True
        sel = by_slot[(items.slot[by_slot] >= t) & (items.slot[by_slot] < t + window)]
        sel = sel[live_mask[items.req[sel]]]
        pred = np.full(trace.n, -1)
        prev: dict[int, int] = {}
        for r in reqs:  # arrival order = queue order
            pred[r] = prev.get(int(trace.user[r]), -1)
            prev[int(trace.user[r])] = r
        res = solve_items(items, sel, patterns={s: pats[s] for s in range(t, t + window)
                                                if s in pats},
                          fifo_pred=pred, fifo_last=trace.last,
                          time_limit=max(min(5.0, deadline - time.perf_counter()), 0.05),
                          rel_gap=1e-3)
        solves[0] += 1
        solves[1] += res.wall_s
        now = sel[res.x & (items.slot[sel] == t)]
        planned = {int(trace.rid[items.req[i]]): t for i in now}
        return _plan_chooser(trace, planned)(env, t)

    value, batches = replay(env, seed, choose)
    return value, batches, dict(plan_window=window, plan_solves=solves[0],
                                plan_solve_s=round(solves[1], 3))


def _patterns(trace: Trace, items: Items, deadline: float, node_cap: int) -> dict:
    """Maximal batches of as many slots as the budgets allow, smallest slots first: at most
    ``node_cap`` nodes per slot, PATTERN_CAP batches in all, until ``deadline``."""
    pats: dict[int, list] = {}
    if items.n == 0:
        return pats
    order = np.argsort(items.slot, kind="stable")
    cuts = np.flatnonzero(np.diff(items.slot[order])) + 1
    groups = sorted(np.split(order, cuts), key=len)
    total = 0
    for g in groups:
        if time.perf_counter() > deadline or total >= PATTERN_CAP:
            break
        found = maximal_batches(prepared_items(trace, items, g), items.user[g],
                                min(node_cap, 4 * (PATTERN_CAP - total)))
        if found is not None:
            pats[int(items.slot[g[0]])] = [g[q] for q in found]
            total += len(found)
    return pats


def make_env(scenario: str, slots: int, overrides: dict | None = None) -> EdgeLLMEnv:
    if not isinstance(slots, (int, np.integer)) or slots < 1:
        raise EdgeLLMError(f"slots: must be an integer >= 1, got {slots!r}")
    over = {**(overrides or {}), "max_slots": int(slots)}
    return EdgeLLMEnv(scenario, action_mode="subset", **over)


def bound(scenario: str = "default", seed: int = 0, slots: int = 100,
          overrides: dict | None = None, time_limit: float = 120.0,
          policies=("oracle", "oracle-urgent"), node_cap: int = NODE_CAP) -> BoundResult:
    """Upper and lower bounds on the hindsight optimum (module docstring); stops within
    about ``time_limit`` seconds with the best bounds found so far. ``node_cap``: feasible
    batches enumerated per slot before that slot falls back to linear rows (0: always)."""
    t0 = time.perf_counter()
    if not time_limit > 0:
        raise EdgeLLMError(f"time_limit: must be > 0 seconds, got {time_limit!r}")
    end = t0 + float(time_limit)
    env = make_env(scenario, slots, overrides)
    trace = episode_trace(env, seed, slots)
    items = items_of(trace)
    values, scheds = {}, {}
    for name in policies:
        values[name], scheds[name] = replay(env, seed, _policy_chooser(name))
    pats = _patterns(trace, items, t0 + 0.25 * time_limit, node_cap)
    left = end - time.perf_counter()
    ub = solve_items(items, patterns=pats, time_limit=0.5 * left, rel_gap=2e-3)
    upper = float(np.floor(ub.dual_bound + 1e-2))  # integer optimum; 1e-2 absorbs solver tolerance
    left = end - time.perf_counter()
    values["plan"], scheds["plan"], plan_info = _rolling(env, seed, trace, items, pats,
                                                         time.perf_counter() + 0.9 * left)
    best = max(values, key=lambda k: values[k])
    lower = float(values[best])
    upper = max(upper, lower)
    gap = (upper - lower) / upper if upper > 0 else 0.0
    timed_out = "optimal" not in ub.status
    status = "optimal" if upper == lower else ("time_limit" if timed_out else "gap")
    detail = dict(requests=int(trace.n), items=int(items.n),
                  exact_slots=len(pats), linear_slots=int(np.unique(items.slot).size - len(pats)),
                  upper_status=ub.status, upper_s=round(ub.wall_s, 3),
                  **plan_info)
    method = ("highs-milp: exact maximal batches per slot" + (", linear rows elsewhere"
              if detail["linear_slots"] else "") + "; FIFO and queue capacity relaxed")
    return BoundResult(str(scenario), int(seed), int(slots), upper, lower, gap, status,
                       method, time.perf_counter() - t0, values, best, scheds[best], detail)
