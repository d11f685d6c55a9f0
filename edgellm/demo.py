"""``edgellm demo`` (``make demo``): the project's main job, end to end, in a few minutes.

1. Train a small scheduler by DAgger imitation of the DFTSP oracle on the ``default``
   scenario (about two minutes on 2 CPU cores; progress bar).
2. Evaluate it against the oracle and every heuristic on held-out seeds (identical traffic
   for all policies), print the table.
3. Leave under ``--out`` (default ``runs/demo``): ``train/<run>/`` (model + sidecar,
   eval.json, config.yaml, TensorBoard logs in ``tb/``) and ``eval/`` (summary.csv,
   summary.json, plots).

``--quick`` runs a tiny version (a few hundred steps, 6 users, short episodes) for tests.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

DEMO_RUN = "dagger-default"


def run_demo(out: str | Path = "runs/demo", *, quick: bool = False, timesteps: int | None = None,
             max_seconds: float | None = None, episodes: int | None = None,
             slots: int | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Train, evaluate, print; return the eval summary (see :mod:`edgellm.eval.report`)."""
    from edgellm.agents import HEURISTICS
    from edgellm.eval.report import format_table
    from edgellm.eval.runner import EvalSpec, run_eval
    from edgellm.train import TrainArgs, train
    from edgellm.train.common import FINAL_SEED

    out = Path(out)
    t0 = time.perf_counter()
    overrides = {"n_users": 6, "max_slots": 20} if quick else {}
    run_dir = out / "train" / DEMO_RUN
    if run_dir.exists():  # a previous demo's run: the demo always starts afresh
        shutil.rmtree(run_dir)
    targs = TrainArgs(
        algo="dagger", scenario="default", seed=seed, logdir=str(out / "train"),
        run_name=DEMO_RUN, scenario_overrides=overrides,
        timesteps=timesteps or (300 if quick else 150_000),
        hyperparams={"steps_per_iter": 100, "grad_steps": 20} if quick else {"grad_steps": 500},
        checkpoint_freq=10_000, eval_freq=0 if quick else 15_000,
        eval_episodes=1 if quick else 2, eval_slots=10 if quick else 60,
        final_eval_episodes=1, final_eval_slots=10 if quick else 50,
        max_seconds=max_seconds if max_seconds is not None else (60.0 if quick else 120.0),
        progress=progress)
    print(f"[1/2] training {targs.algo} on scenario default "
          f"({targs.timesteps} env steps, at most {targs.max_seconds:.0f} s) -> {run_dir}",
          flush=True)
    res = train(targs)
    t_train = time.perf_counter() - t0
    print(f"      trained {res['num_timesteps']} steps in {res['train_s']:.0f} s", flush=True)
    model = run_dir / "model.json"
    spec = EvalSpec(scenario="default", policies=("oracle", *HEURISTICS, f"learned:{model}"),
                    episodes=episodes or (1 if quick else 5), seed=FINAL_SEED,
                    slots=slots or (10 if quick else 200), overrides=overrides,
                    policy_kw={"static-batch": {"batch_size": 4}}, regret=not quick)
    print(f"[2/2] evaluating {len(spec.policies)} policies on {spec.episodes} held-out "
          f"episodes x {spec.slots} slots (seeds {FINAL_SEED}+)", flush=True)
    summary = run_eval(spec, out / "eval", fresh=True, progress=progress, plots=True)
    print(format_table(summary))
    total = time.perf_counter() - t0
    print(f"demo: {total:.0f} s (training {t_train:.0f} s). Wrote {out}/eval/summary.csv and "
          f"plots; model {model}; TensorBoard: tensorboard --logdir {out}/train")
    return summary


def _run(args) -> int:
    run_demo(args.out, quick=args.quick, timesteps=args.timesteps, max_seconds=args.max_seconds,
             episodes=args.episodes, slots=args.slots, seed=args.seed,
             progress=not args.quiet)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "demo", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="train a scheduler (~2 min), compare it with the oracle and the heuristics",
        description="Train a DAgger imitation of the DFTSP oracle on the default scenario "
                    "for about two minutes, evaluate it against the oracle and every "
                    "heuristic on held-out seeds, print the table, write plots and "
                    "TensorBoard logs under --out.")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a tiny run (for tests)")
    p.add_argument("--timesteps", type=int, default=None, help="training env steps")
    p.add_argument("--max-seconds", type=float, default=None, help="training wall-time cap")
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes")
    p.add_argument("--slots", type=int, default=None, help="slots per evaluation episode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
