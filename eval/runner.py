"""Run policies on identical traffic and record every episode (SPEC section 5).

Every policy plays episodes with seeds ``seed, seed + 1, ...``; the env draws traffic and
channels from the seed alone (common random numbers), so all policies face the same
arrivals and fading. Before each slot the DFTSP optimum of the policy's *own* state is
computed, so the per-slot regret is ``optimum - value served`` on states the policy really
visits. Decision time is the wall time of the policy's ``select`` / ``predict`` calls only.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgellm.agents import make_policy
from edgellm.agents.base import Policy
from edgellm.dftsp.solver import ORACLE_NODE_LIMIT, solve
from edgellm.envs import EdgeLLMEnv
from edgellm.eval import store
from edgellm.io import config_hash, write_json
from edgellm.system.validate import check_number

#: Action mode used for state-based policies (one env step per slot).
DEFAULT_ACTION_MODE = "subset"
#: Drop causes counted as deadline misses (a queued request whose deadline can no longer be
#: met); served requests always meet their deadline, since every served batch is feasible.
DEADLINE_CAUSES = ("expired",)


@dataclass(frozen=True)
class EvalSpec:
    """What to run. ``overrides`` go to ``get_scenario(scenario, **overrides)``; ``slots``
    overrides the episode length (``max_slots``)."""

    scenario: str = "default"
    policies: tuple[str, ...] = ("oracle", "fcfs")
    episodes: int = 4
    seed: int = 0
    slots: int | None = None
    overrides: dict = field(default_factory=dict)
    action_mode: str = DEFAULT_ACTION_MODE
    policy_kw: dict = field(default_factory=dict)  # {policy name: constructor kwargs}
    regret: bool = True  # solve DFTSP on every visited state (costly for large K)
    bound: bool = False  # hindsight upper bound per seed (edgellm.horizon), for x bound
    bound_time_limit: float = 60.0  # seconds per seed

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.episodes)]


def build_scenario(scenario: str, overrides: dict | None = None, slots: int | None = None):
    """``get_scenario(scenario, **overrides)`` with ``max_slots = slots`` when given
    (EdgeLLMError for unknown names, fields or values)."""
    from edgellm.envs import get_scenario

    over = dict(overrides or {})
    if slots is not None:
        over["max_slots"] = check_number(slots, "--slots", lo=1, integer=True)
    return get_scenario(scenario, **over)


def scenario_config(spec: EvalSpec):
    """The env's ScenarioConfig for ``spec``."""
    return build_scenario(spec.scenario, spec.overrides, spec.slots)


def config_dict(spec: EvalSpec, cfg) -> dict:
    """Everything that determines an episode's result except the policy and the seed."""
    c = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(vars(cfg))
    return {"scenario": spec.scenario, "scenario_config": c,
            "action_mode": spec.action_mode, "regret": bool(spec.regret),
            "policy_kw": {k: spec.policy_kw[k] for k in sorted(spec.policy_kw)}}


class OptimumCache:
    """DFTSP optimum per slot state, memoised (policies often share states, e.g. slot 0).

    Each solve stops after ``node_limit`` full feasibility checks (default
    :data:`edgellm.dftsp.ORACLE_NODE_LIMIT`, machine-independent) or ``time_limit`` [s]
    (default none); its best batch then stands for the optimum and ``unproven`` counts
    such states (the episode record's ``opt_unproven``)."""

    def __init__(self, size: int = 4096, time_limit: float | None = None,
                 node_limit: int | None = ORACLE_NODE_LIMIT):
        self.size = size
        self.time_limit = time_limit
        self.node_limit = node_limit
        self._d: OrderedDict = OrderedDict()
        self.hits = self.misses = self.unproven = 0

    def value(self, view) -> int:
        if not view.users:
            return 0
        p = view.prepared  # the slot's system and requests, without rebuilding the instance
        key = (p.system, tuple(c.tobytes() for c in p.columns.values()))
        try:
            v = self._d[key]
            self._d.move_to_end(key)
            self.hits += 1
            return v
        except KeyError:
            pass
        self.misses += 1
        sol = solve(p, time_limit=self.time_limit, node_limit=self.node_limit)
        self.unproven += sol.status != "optimal"
        v = int(sol.value)
        self._d[key] = v
        if len(self._d) > self.size:
            self._d.popitem(last=False)
        return v


def run_episode(policy: Policy, cfg, seed: int, action_mode: str,
                optimum: OptimumCache | None = None, on_slot=None) -> dict:
    """Play one episode; return its per-slot record (see :mod:`edgellm.eval.store`).

    Without ``optimum`` no regret is computed (``opt_value`` entries are None).
    """
    mode = policy.action_mode or action_mode
    env = EdgeLLMEnv(cfg, action_mode=mode)
    try:
        obs, _ = env.reset(seed=seed)
        policy.reset(seed)
        cols = {k: [] for k in ("value", "served", "served_tokens", "opt_value",
                                "candidates", "decision_s", "deadline_misses", "dropped")}
        dropped: dict[str, int] = {}
        invalid = repaired = 0
        reward = 0.0
        unproven0 = optimum.unproven if optimum is not None else 0
        t0 = time.perf_counter()
        while True:
            view = env.unwrapped.slot_view()
            opt = optimum.value(view) if optimum is not None else None
            out = policy.play_slot(env, obs)
            obs, info = out.obs, out.info
            reward += out.reward
            drops = {str(k): int(v) for k, v in (info.get("dropped") or {}).items()}
            for k, v in drops.items():
                dropped[k] = dropped.get(k, 0) + v
            cols["value"].append(int(info.get("value", 0)))
            cols["served"].append(int(info.get("served", len(info.get("batch", ())))))
            cols["served_tokens"].append(int(info.get("served_tokens", 0)))
            cols["opt_value"].append(opt)
            cols["candidates"].append(len(view.users))
            cols["decision_s"].append(out.decision_s)
            cols["deadline_misses"].append(sum(drops.get(c, 0) for c in DEADLINE_CAUSES))
            cols["dropped"].append(sum(drops.values()))
            invalid += int(bool(info.get("invalid_action", False)))
            repaired += int(bool(info.get("repaired", False)))
            if on_slot is not None:
                on_slot()
            if out.truncated or out.terminated:
                break
        wall = time.perf_counter() - t0
    finally:
        env.close()
    return {"schema": store.RECORD_SCHEMA, "policy": policy.name, "seed": int(seed),
            "action_mode": mode, "slots": len(cols["value"]), "per_slot": cols,
            "dropped": dict(sorted(dropped.items())), "invalid_actions": invalid,
            "repaired": repaired, "reward": reward, "wall_s": wall,
            "opt_unproven": (optimum.unproven - unproven0) if optimum is not None else None}


def _episode_task(name: str, load: str, kw: dict, cfg, seed: int, action_mode: str,
                  regret: bool):
    """One episode in a Ray worker: the policy is built there from ``load`` (its name, with
    an absolute path for learned:PATH) after the compiled kernels are loaded, and keeps
    the name ``name`` it has in the eval."""
    from edgellm.distributed import warm_up

    warm_up(cfg)
    policy = make_policy(load, **kw)
    policy.name = name
    return run_episode(policy, cfg, seed, action_mode, OptimumCache() if regret else None)


def run_eval(spec: EvalSpec, out: str | Path, *, fresh: bool = False, progress: bool = True,
             plots: bool = True, max_new_episodes: int | None = None,
             backend: str = "local", ray_address: str | None = None) -> dict | None:
    """Run every (policy, seed) pair not yet recorded under ``out``; return the summary.

    ``max_new_episodes`` stops after that many new episodes (for tests of resuming); the
    summary files are then not written and None is returned. ``backend="ray"`` runs the
    episodes as Ray tasks (local Ray, or the cluster at ``ray_address``); the records are
    the same as the local backend's but for the timing entries (``decision_s``, ``wall_s``).
    """
    from edgellm.distributed import check_backend
    from edgellm.eval.report import summarize, write_outputs

    check_backend(backend)
    out = Path(out)
    check_number(spec.episodes, "--episodes", lo=1, integer=True)
    cfg = scenario_config(spec)
    config = config_dict(spec, cfg)
    chash = config_hash(config)
    policies = {name: make_policy(name, **spec.policy_kw.get(name, {}))
                for name in spec.policies}
    store.check_run_file(out, config, chash, fresh)

    records: dict[tuple[str, int], dict] = {}
    todo = []
    for name in spec.policies:
        for seed in spec.seeds:
            rec = store.load_record(out, name, seed, chash)
            if rec is None:
                todo.append((name, seed))
            else:
                records[name, seed] = rec
    n_slots = int(getattr(cfg, "max_slots", 0)) or None
    bar = _progress(len(todo) * n_slots if n_slots else None, progress,
                    f"eval {spec.scenario}")
    optimum = OptimumCache() if spec.regret else None
    done_new = 0

    def save(name: str, seed: int, rec: dict) -> None:
        rec["config_hash"] = chash
        rec["scenario"] = spec.scenario
        write_json(store.record_path(out, name, seed), rec)
        records[name, seed] = rec

    try:
        if backend == "ray":
            _run_ray(spec, cfg, todo[:max_new_episodes], save, bar, n_slots, ray_address)
            if max_new_episodes is not None and len(todo) > max_new_episodes:
                return None
            todo = []
        for name, seed in todo:
            if max_new_episodes is not None and done_new >= max_new_episodes:
                return None
            if bar is not None:
                bar.set_postfix_str(f"{name} seed {seed}")
            rec = run_episode(policies[name], cfg, seed, spec.action_mode, optimum,
                              on_slot=(bar.update if bar is not None else None))
            save(name, seed, rec)
            done_new += 1
    finally:
        if bar is not None:
            bar.close()
    bounds = episode_bounds(spec, out, chash, progress) if spec.bound else None
    summary = summarize(spec, config, chash, records, bounds)
    write_outputs(summary, out, plots=plots)
    return summary


def _run_ray(spec: EvalSpec, cfg, todo: list, save, bar, n_slots, address) -> None:
    """Fan ``todo`` out as Ray tasks; ``save`` each record as soon as it arrives."""
    from edgellm import distributed
    from edgellm.agents.registry import LEARNED_PREFIX

    if not todo:
        return
    ray = distributed.init(address)
    task = ray.remote(num_cpus=1, max_retries=0)(_episode_task)

    def load(name: str) -> str:  # workers may start in another folder
        if name.startswith(LEARNED_PREFIX):
            return LEARNED_PREFIX + str(Path(name[len(LEARNED_PREFIX):]).resolve())
        return name

    refs = {(name, seed): task.remote(name, load(name), spec.policy_kw.get(name, {}), cfg,
                                      seed, spec.action_mode, spec.regret)
            for name, seed in todo}
    for (name, seed), rec in distributed.gather(
            ray, refs, lambda k: f"episode of {k[0]} (seed {k[1]})"):
        save(name, seed, rec)
        if bar is not None:
            bar.update(n_slots or 0)
def episode_bounds(spec: EvalSpec, out: Path, chash: str, progress: bool) -> dict:
    """``{seed: hindsight bound dict}`` of every seed (``edgellm bound`` on the same
    scenario, seed and slots), kept in ``out/bounds.json`` per config hash."""
    from edgellm.horizon.bound import bound

    path = out / "bounds.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    kept = kept if kept.get("config_hash") == chash else {"config_hash": chash, "seeds": {}}
    cfg = scenario_config(spec)
    over = {**spec.overrides, "max_slots": cfg.max_slots}
    for seed in spec.seeds:
        if str(seed) in kept["seeds"]:
            continue
        if progress:
            print(f"bound {spec.scenario} seed {seed} ...", flush=True)
        res = bound(spec.scenario, seed, cfg.max_slots, over,
                    time_limit=spec.bound_time_limit).to_dict()
        res.pop("schedule")
        kept["seeds"][str(seed)] = res
        store.write_json(path, kept)
    return {s: kept["seeds"][str(s)] for s in spec.seeds}


def _progress(total, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="slot", dynamic_ncols=True, leave=False)


def episode_means(records: list[dict], key: str) -> np.ndarray:
    """Per-episode mean of a per-slot column."""
    return np.array([np.mean(r["per_slot"][key]) if r["per_slot"][key] else 0.0
                     for r in records], dtype=float)
