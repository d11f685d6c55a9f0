"""``edgellm scenario show NAME`` and ``edgellm scenario stats NAME``.

``stats`` runs the DFTSP oracle (per-slot optimal batch) through the environment in subset
mode and reports, per constraint, in how many slots it is *binding*: the most frequent
reason ``check_rows`` gives for (oracle batch + c) over the head-of-line candidates c left
out of the oracle's batch (ties go to the earlier test). It also reports in how many slots
each constraint refuses at least one such candidate.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from edgellm.system.feasibility import REASON_NAMES

CONSTRAINTS = REASON_NAMES  # accuracy, memory, slot, deadline, downlink, uplink


@dataclass(frozen=True)
class ScenarioStats:
    """Result of :func:`oracle_stats`."""

    scenario: str
    slots: int
    binding: dict        # reason or "none" -> slots where it binds
    refusing: dict       # reason -> slots where it refuses >= 1 left-out candidate
    mean_candidates: float
    mean_batch: float
    served: int
    dropped: dict
    unproven: int = 0    # slots whose DFTSP solve hit its node limit (not proven optimal)

    def table(self) -> str:
        n = max(self.slots, 1)
        lines = [f"scenario {self.scenario}: {self.slots} slots, oracle = DFTSP per slot",
                 f"mean candidates {self.mean_candidates:.2f}, mean oracle batch "
                 f"{self.mean_batch:.2f}, served {self.served}, dropped "
                 + ", ".join(f"{k} {v}" for k, v in self.dropped.items())
                 + (f"; {self.unproven} slots not proven optimal (node limit)"
                    if self.unproven else ""),
                 f"{'constraint':<10} {'binding':>8} {'share':>7} {'refuses':>8} {'share':>7}"]
        for r in (*CONSTRAINTS, "none"):
            b = self.binding.get(r, 0)
            f = self.refusing.get(r, 0) if r != "none" else 0
            lines.append(f"{r:<10} {b:>8d} {b / n:>7.1%} "
                         + (f"{f:>8d} {f / n:>7.1%}" if r != "none" else f"{'':>8} {'':>7}"))
        return "\n".join(lines)


def oracle_stats(scenario: str = "default", slots: int = 300, seed: int = 0,
                 **overrides) -> ScenarioStats:
    """Run the DFTSP oracle for ``slots`` slots and count binding constraints."""
    from edgellm.dftsp import ORACLE_NODE_LIMIT, solve
    from edgellm.envs.env import EdgeLLMEnv
    from edgellm.system.validate import check_number

    check_number(slots, "slots", lo=1, integer=True)
    env = EdgeLLMEnv(scenario, action_mode="subset", **overrides)
    env.reset(seed=seed)
    binding, refusing = Counter(), Counter()
    dropped = Counter()
    cand = batch = served = unproven = 0
    for _ in range(slots):
        view = env.slot_view()
        sol = solve(view.prepared, node_limit=ORACLE_NODE_LIMIT) if view.users else None
        unproven += sol is not None and sol.status != "optimal"
        users = [view.users[i] for i in sol.batch] if sol else []
        cand += len(view.users)
        batch += len(users)
        _, _, _, truncated, info = env.step(env.action_for(users))
        binding[info["binding"] or "none"] += 1
        for r in info["refused"]:
            refusing[r] += 1
        served += info["served"]
        dropped.update(info["dropped"])
        if truncated:
            env.reset(seed=seed + 1 + _)
    name = scenario if isinstance(scenario, str) else "custom"
    return ScenarioStats(name, slots, dict(binding), dict(refusing), cand / slots,
                         batch / slots, served, dict(dropped), unproven)


def _show(args) -> int:
    from edgellm.envs.scenarios import get_scenario, purpose

    cfg = get_scenario(args.name)
    print(f"# {args.name}: {purpose(args.name)}")
    print(json.dumps(cfg.to_dict(), indent=2))
    return 0


def _stats(args) -> int:
    print(oracle_stats(args.name, slots=args.slots, seed=args.seed).table())
    if args.bound_slots:
        print(horizon_table(args.name, args.bound_slots, args.seed, args.bound_seeds,
                            args.bound_time_limit))
    return 0


def horizon_table(name: str, slots: int, seed: int, seeds: int, time_limit: float) -> str:
    """Myopic oracle, urgent oracle, best schedule found and hindsight upper bound over the
    first ``slots`` slots of seeds ``seed .. seed + seeds - 1`` (``edgellm bound``)."""
    from edgellm.errors import EdgeLLMError
    from edgellm.horizon.bound import bound

    if slots < 1 or seeds < 1:
        raise EdgeLLMError(f"--bound-slots and --bound-seeds: must be >= 1, got {slots}, {seeds}")
    lines = [f"hindsight over {slots} slots (edgellm bound, {time_limit:g} s per seed):",
             f"{'seed':>5} {'oracle':>7} {'urgent':>7} {'best':>7} {'upper':>7}  best/oracle"]
    tot = [0.0, 0.0, 0.0, 0.0]
    for s in range(seed, seed + seeds):
        r = bound(name, s, slots, time_limit=time_limit)
        row = [r.policies["oracle"], r.policies["oracle-urgent"], r.lower_bound, r.upper_bound]
        tot = [a + b for a, b in zip(tot, row)]
        lines.append(f"{s:>5} " + " ".join(f"{v:>7g}" for v in row)
                     + f"  {row[2] / max(row[0], 1):.3f}")
    lines.append(f"{'all':>5} " + " ".join(f"{v:>7g}" for v in tot)
                 + f"  {tot[2] / max(tot[0], 1):.3f}")
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("scenario", help="show environment presets and their oracle statistics",
                       description="Inspect the environment's scenario presets.")
    ss = p.add_subparsers(dest="scenario_command", metavar="ACTION")
    s = ss.add_parser("show", help="print a preset's purpose and parameters (JSON)")
    s.add_argument("name", help="preset name")
    s.set_defaults(func=_show)
    t = ss.add_parser("stats", help="run the DFTSP oracle and count binding constraints")
    t.add_argument("name", help="preset name")
    t.add_argument("--slots", type=int, default=300, help="slots to simulate (default 300)")
    t.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    t.add_argument("--bound-slots", type=int, default=0,
                   help="also compare the oracle with the best schedule found in hindsight "
                        "over this many slots (edgellm bound; 0: off)")
    t.add_argument("--bound-seeds", type=int, default=4, help="seeds for --bound-slots")
    t.add_argument("--bound-time-limit", type=float, default=60.0,
                   help="seconds per seed for --bound-slots")
    t.set_defaults(func=_stats)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
