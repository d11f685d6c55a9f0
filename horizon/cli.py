"""``edgellm bound``: hindsight upper and lower bounds of one episode."""

from __future__ import annotations

import argparse
import json

from edgellm.errors import EdgeLLMError


def _run_bound(args) -> int:
    from edgellm.eval.cli import _check_scenario, _overrides
    from edgellm.horizon.bound import bound

    _check_scenario(args.scenario)
    if args.slots < 1:
        raise EdgeLLMError(f"--slots: must be an integer >= 1, got {args.slots}")
    if not args.time_limit > 0:
        raise EdgeLLMError(f"--time-limit: must be > 0 seconds, got {args.time_limit}")
    res = bound(args.scenario, args.seed, args.slots, _overrides(args.set),
                time_limit=args.time_limit)
    d = res.to_dict()
    if args.json:
        print(json.dumps(d))
        return 0
    print(f"{res.scenario} seed {res.seed}, {res.slots} slots: upper {res.upper_bound:g}, "
          f"lower {res.lower_bound:g} ({res.best}), gap {100 * res.gap:.2f}% [{res.status}], "
          f"{res.wall_s:.1f} s")
    for name, v in res.policies.items():
        share = v / res.upper_bound if res.upper_bound else 1.0
        print(f"  {name:14s} {v:8g}  x bound {share:.3f}")
    print(f"  method: {res.method}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "bound", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="hindsight upper bound and best replayable schedule of one episode",
        description="Upper bound: no policy serves more in these slots of gym.make(id, "
                    "scenario=S, max_slots=H) after reset(seed=N) (a MILP relaxation solved "
                    "by HiGHS, docs/model.md 'The horizon problem'). Lower bound: the value "
                    "of a concrete schedule that replays in the env to exactly that value.")
    p.add_argument("--scenario", default="default", help="scenario preset (edgellm.envs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slots", type=int, default=100, help="horizon H")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="scenario override, repeatable (e.g. --set n_users=8)")
    p.add_argument("--time-limit", type=float, default=120.0,
                   help="seconds; the best bounds so far are returned when it runs out")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_run_bound)
