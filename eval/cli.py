"""``edgellm eval`` and ``edgellm sweep``."""

from __future__ import annotations

import argparse
import json

from edgellm.errors import EdgeLLMError
from edgellm.system.validate import check_number

DEFAULT_POLICIES = "oracle,fcfs,sjf,edf,best-channel,static-batch,random"


def _overrides(items: list[str] | None) -> dict:
    """``--set key=value`` pairs; values parsed as JSON when possible (numbers, lists)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise EdgeLLMError(f"--set: expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


def _check_scenario(name: str) -> None:
    from edgellm.envs import SCENARIOS

    if name not in SCENARIOS:
        raise EdgeLLMError(f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}")


def _positive(name: str, value) -> None:
    if value is not None:
        check_number(value, name, lo=1, integer=True)


def _run_eval(args) -> int:
    from edgellm.agents import parse_policy_list
    from edgellm.eval.report import format_table
    from edgellm.eval.runner import EvalSpec, run_eval

    _check_scenario(args.scenario)
    policies = parse_policy_list(args.policies)
    _positive("--episodes", args.episodes)
    _positive("--slots", args.slots)
    _positive("--batch-size", args.batch_size)
    kw = {"static-batch": {"batch_size": args.batch_size}} if "static-batch" in policies else {}
    spec = EvalSpec(scenario=args.scenario, policies=tuple(policies), episodes=args.episodes,
                    seed=args.seed, slots=args.slots, overrides=_overrides(args.set),
                    action_mode=args.action_mode, policy_kw=kw, regret=not args.no_regret,
                    bound=args.bound, bound_time_limit=args.bound_time_limit)
    if args.video:
        from edgellm.eval.video import check_video_path

        check_video_path(args.video)
        if args.video_policy is not None and args.video_policy not in policies:
            raise EdgeLLMError(f"--video-policy: {args.video_policy!r} is not one of "
                               f"--policies ({', '.join(policies)})")
        _positive("--video-slots", args.video_slots)
    out = args.out or f"results/eval-{args.scenario}"
    summary = run_eval(spec, out, fresh=args.fresh, progress=not args.quiet,
                       plots=not args.no_plots, backend=args.backend,
                       ray_address=args.ray_address)
    print(format_table(summary))
    print(f"wrote {out}/summary.csv, summary.json" + ("" if args.no_plots else ", *.png"))
    if args.video:
        from edgellm.agents import make_policy
        from edgellm.eval.runner import build_scenario
        from edgellm.eval.video import record_episode

        name = args.video_policy or policies[0]
        cfg = build_scenario(args.scenario, spec.overrides, args.video_slots)
        n = record_episode(make_policy(name, **kw.get(name, {})), cfg, args.seed,
                           args.action_mode, args.video)
        print(f"wrote {args.video}: {name}, seed {args.seed}, {n} frames")
    return 0


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise EdgeLLMError(f"expected a comma list of numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    vals = _floats(text)
    if not all(v.is_integer() and v >= 1 for v in vals):
        raise EdgeLLMError(f"expected a comma list of integers >= 1, got {text!r}")
    return tuple(int(v) for v in vals)


def _run_sweep(args) -> int:
    from edgellm.agents import parse_policy_list
    from edgellm.eval.sweep import EXPERIMENTS, QUANTS, SweepSpec, run_sweep

    _check_scenario(args.scenario)
    exps = tuple(e.strip() for e in args.experiments.split(",") if e.strip())
    bad = [e for e in exps if e not in EXPERIMENTS]
    if bad or not exps:
        raise EdgeLLMError(f"--experiments: unknown {', '.join(map(repr, bad)) or '(empty)'}; "
                           f"valid: {', '.join(EXPERIMENTS)}")
    _positive("--episodes", args.episodes)
    _positive("--slots", args.slots)
    _positive("--instances", args.instances)
    given = dict(episodes=args.episodes, slots=args.slots, nodes_instances=args.instances,
                 users=args.users and _ints(args.users),
                 bandwidth_mhz=args.bandwidth_mhz and _floats(args.bandwidth_mhz),
                 quants=args.quants and (tuple(q.strip() for q in args.quants.split(",")
                                               if q.strip()) or QUANTS),
                 nodes_k=args.nodes_k and _ints(args.nodes_k))
    spec = SweepSpec(scenario=args.scenario, policies=tuple(parse_policy_list(args.policies)),
                     seed=args.seed, experiments=exps, overrides=_overrides(args.set),
                     **{k: v for k, v in given.items() if v is not None})
    out = args.out or f"results/sweep-{args.scenario}"
    written = run_sweep(spec, out, progress=not args.quiet, backend=args.backend,
                        ray_address=args.ray_address)
    for exp, path in written.items():
        print(f"{exp}: {path} (+ .png)")
    return 0


def _backend_args(p) -> None:
    p.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="where episodes run: this process, or Ray tasks (needs the [ray] "
                        "extra); results are the same but for timing columns")
    p.add_argument("--ray-address", default=None,
                   help="with --backend ray: a running cluster ('auto', 'ray://HOST:10001'); "
                        "default: a local Ray sized to this machine's cores")


def register(sub) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser(
        "eval", formatter_class=fmt,
        help="compare policies with the DFTSP oracle on identical traffic",
        description="Run every policy on the same seeds (identical traffic and channels) and "
                    "report throughput, drops, ratio to the oracle, per-slot regret on the "
                    "policy's own states and decision time. Finished episodes are kept under "
                    "--out, so an interrupted run resumes. Timing columns (decision_ms_*) are "
                    "the only ones that differ between identical runs.")
    p.add_argument("--scenario", default="default", help="scenario preset (edgellm.envs)")
    p.add_argument("--policies", default=DEFAULT_POLICIES,
                   help="comma list of policy names, learned:PATH for a trained model")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="first seed; episodes use S, S+1, ...")
    p.add_argument("--slots", type=int, default=None, help="episode length (default: scenario)")
    p.add_argument("--out", default=None, help="output folder (default results/eval-SCENARIO)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="scenario override, repeatable (e.g. --set n_users=8)")
    p.add_argument("--action-mode", default="subset",
                   choices=("subset", "sequential", "priority"),
                   help="env mode for state-based policies (learned ones use their own)")
    p.add_argument("--batch-size", type=int, default=4, help="B of static-batch")
    p.add_argument("--no-regret", action="store_true",
                   help="skip the per-slot DFTSP solve on every policy's states")
    p.add_argument("--bound", action="store_true",
                   help="also compute the hindsight upper bound of every seed (edgellm bound) "
                        "and report x bound: value over it")
    p.add_argument("--bound-time-limit", type=float, default=60.0,
                   help="seconds per seed for --bound")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--fresh", action="store_true", help="discard finished episodes in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--video", default=None, metavar="FILE",
                   help="also write a clip of one episode: .gif, or .mp4 (needs the [video] "
                        "extra)")
    p.add_argument("--video-policy", default=None,
                   help="the policy of the clip (default: the first of --policies)")
    p.add_argument("--video-slots", type=int, default=20, help="slots in the clip")
    _backend_args(p)
    p.set_defaults(func=_run_eval)

    s = sub.add_parser(
        "sweep", formatter_class=fmt,
        help="the source paper's experiments: throughput vs users, bandwidth, quantization; "
             "DFTSP vs brute force",
        description="Figures (PNG) with CSV beside them under --out. Each env experiment point "
                    "is an eval run in its own folder, so an interrupted sweep resumes. "
                    "Options left unset take the defaults of edgellm.eval.sweep.SweepSpec "
                    "(its field name in brackets); sweep.json records the values used.")
    s.add_argument("--scenario", default="paper")
    s.add_argument("--policies", default=DEFAULT_POLICIES)
    s.add_argument("--experiments", default="users,bandwidth,quant,nodes",
                   help="comma list of users, bandwidth, quant, nodes")
    # Unset options take the defaults of edgellm.eval.sweep.SweepSpec (its field in brackets).
    s.add_argument("--episodes", type=int, default=None, help="episodes per point [episodes]")
    s.add_argument("--slots", type=int, default=None, help="slots per episode [slots]")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--users", default=None, help="comma list of n_users values [users]")
    s.add_argument("--bandwidth-mhz", default=None,
                   help="comma list of uplink_hz = downlink_hz values in MHz [bandwidth_mhz]")
    s.add_argument("--quants", default=None, help="comma list of quantizations [quants]")
    s.add_argument("--nodes-k", default=None,
                   help="request counts of the DFTSP vs brute-force experiment [nodes_k]")
    s.add_argument("--instances", type=int, default=None,
                   help="random instances per K in the nodes experiment [nodes_instances]")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="scenario override applied at every point, repeatable")
    s.add_argument("--out", default=None, help="output folder (default results/sweep-SCENARIO)")
    s.add_argument("--quiet", action="store_true")
    _backend_args(s)
    s.set_defaults(func=_run_sweep)
