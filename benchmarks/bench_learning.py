"""Learning benchmark (issue 5): how close does a learned scheduler get to DFTSP, how fast
does it decide, and does it beat the per-slot oracle on the bursty scenario?

Steps (each training is an ordinary ``edgellm train`` run under ``--out``):

1. ``default`` with 16 users: train DAgger (``--timesteps``), or load ``--model``;
   evaluate it with the oracle and every heuristic on held-out seeds 20 000+ (identical
   traffic for all); per-slot throughput and ratio to the oracle.
2. Decision time per slot at K = 16 and K = 32: the learned policy's network calls (all
   steps of a slot) vs one DFTSP solve, measured by the eval runner on the same episodes.
   The 32-user model is trained with ``--timesteps-32`` steps (or ``--model-32``).
3. ``bursty``: train DAgger (``--timesteps-bursty``), optionally followed by MaskablePPO
   fine-tuning (``--finetune-bursty``), and compare episode throughput with the oracle's
   on the same seeds: does it beat the myopic oracle?
4. ``rl`` (issue 11), on ``--scenario``: MaskablePPO **from scratch** with the native
   vector env (maskable-ppo.yml, ``--n-envs``), capped at ``--rl-seconds`` of wall time,
   with a learning-curve PNG drawn from the run's TensorBoard scalars
   (``eval/oracle_ratio`` and ``rollout/ep_rew_mean`` vs env steps). Optionally
   (``--finetune N``) DAgger of ``--expert`` (the myopic ``oracle`` or the foresight
   ``oracle-urgent``) followed by N steps of MaskablePPO fine-tuning on the episode return,
   to try to beat the myopic oracle over whole episodes. Both are evaluated with
   ``oracle``, ``oracle-urgent``, every heuristic (``--rollout``: the rollout planner too)
   on held-out seeds 20 000+, with ``x bound`` (hindsight bound per seed) under ``--bound``.
   ``--rl-variant NAME:KEY=VALUE;...`` (repeatable) replaces the single MaskablePPO run by
   several runs from scratch with these YAML overrides (``algo=ppo``: PPO in its priority
   mode), trained one after the other with the same seed and budget and evaluated side by
   side, e.g. the per-user policies of ``edgellm.train.policies`` against the MLPs.

``--only rl`` (or ``imitation``) runs only those steps.

Usage::

    .venv/bin/python benchmarks/bench_learning.py               # full (about 15 min, 2 cores)
    .venv/bin/python benchmarks/bench_learning.py --quick       # smoke run
    .venv/bin/python benchmarks/bench_learning.py --model runs/x/model.json ...
    .venv/bin/python benchmarks/bench_learning.py --only rl --scenario default \
        --rl-seconds 900 --finetune 200000 --expert oracle-urgent   # 15 min RL + DAgger

Prints the figures side by side and writes ``<out>/learning.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _finished(run: Path, reuse: bool) -> bool:
    """Whether ``run`` holds a model from an earlier bench run to evaluate again: only with
    ``--reuse``, and said so; otherwise stop rather than mix old results into new ones."""
    if not (run / "model.json").is_file():
        return False
    if not reuse:
        raise SystemExit(f"bench_learning: {run} already holds a trained model; pass --reuse "
                         "to evaluate it again, or choose another --out")
    print(f"# reusing the model trained earlier in {run} (--reuse)", flush=True)
    return True


def _train(out: Path, name: str, scenario: str, steps: int, overrides: dict, seed: int,
           hp: dict, progress: bool, reuse: bool) -> tuple[Path, dict]:
    from edgellm.train import TrainArgs, train

    run = out / name
    if _finished(run, reuse):
        return run / "model.json", json.loads((run / "eval.json").read_text())
    args = TrainArgs(algo="dagger", scenario=scenario, timesteps=steps, seed=seed,
                     logdir=str(out), run_name=name, scenario_overrides=overrides,
                     hyperparams=hp, eval_freq=max(steps // 3, 1), final_eval_episodes=2,
                     progress=progress, resume=(run / "checkpoints").is_dir())
    t0 = time.perf_counter()
    res = train(args)
    res["bench_wall_s"] = time.perf_counter() - t0
    return run / "model.json", res


def parse_variant(text: str) -> tuple[str, str, dict]:
    """``NAME`` or ``NAME:KEY=VALUE;KEY=VALUE...`` -> (name, algo, YAML overrides); the key
    ``algo`` (default ``maskable-ppo``) picks the algorithm and so its YAML and action mode."""
    from edgellm.train.config import TRAIN_ALGOS, parse_overrides

    name, _, rest = text.partition(":")
    if not name or "/" in name:
        raise SystemExit(f"bench_learning: --rl-variant {text!r}: expected NAME[:KEY=VALUE;...]")
    hp = parse_overrides([x for x in rest.split(";") if x.strip()], "--rl-variant")
    algo = hp.pop("algo", "maskable-ppo")
    if algo not in TRAIN_ALGOS:
        raise SystemExit(f"bench_learning: --rl-variant {text!r}: algo must be one of "
                         f"{', '.join(TRAIN_ALGOS)}")
    return name, algo, hp


def _train_rl(out: Path, scenario: str, seconds: float, n_envs: int | None, seed: int,
              progress: bool, timesteps: int | None, reuse: bool, name: str = "maskable-ppo",
              algo: str = "maskable-ppo", hp: dict | None = None) -> tuple[Path, dict]:
    """``algo`` from scratch (its YAML with the overrides ``hp``, its default action mode,
    native vector env), wall-time capped."""
    from edgellm.train import TrainArgs, train

    run = out / f"{name}-{scenario}"
    if _finished(run, reuse):
        return run / "model.json", json.loads((run / "eval.json").read_text())
    args = TrainArgs(algo=algo, scenario=scenario, timesteps=timesteps, seed=seed,
                     hyperparams=dict(hp or {}),
                     logdir=str(out), run_name=run.name, eval_freq=100_000, eval_episodes=2,
                     final_eval_episodes=2, max_seconds=seconds, n_envs=n_envs,
                     checkpoint_freq=200_000, progress=progress,
                     resume=(run / "checkpoints").is_dir())
    t0 = time.perf_counter()
    res = train(args)
    res["bench_wall_s"] = time.perf_counter() - t0
    return run / "model.json", res


def learning_curve(run: Path, png: Path, title: str) -> None:
    """Plot eval/oracle_ratio and rollout/ep_rew_mean of a run's TensorBoard logs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from edgellm.io import atomic_path

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, tag, label in ((axes[0], "eval/oracle_ratio", "held-out value/slot x oracle"),
                           (axes[1], "rollout/ep_rew_mean", "training episode return")):
        if tag in tags:
            ev = acc.Scalars(tag)
            ax.plot([e.step for e in ev], [e.value for e in ev], marker=".")
        if tag == "eval/oracle_ratio":
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
            ax.axhline(0.95, color="g", lw=0.8, ls=":")
        ax.set_xlabel("env steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _eval(out: Path, scenario: str, policies: list[str], episodes: int, slots: int | None,
          overrides: dict, progress: bool, bound: bool = False,
          bound_time_limit: float = 60.0) -> dict:
    from edgellm.eval.runner import EvalSpec, run_eval
    from edgellm.train.common import FINAL_SEED

    spec = EvalSpec(scenario=scenario, policies=tuple(policies), episodes=episodes,
                    seed=FINAL_SEED, slots=slots, overrides=overrides, regret=False,
                    policy_kw={"static-batch": {"batch_size": 4}}, bound=bound,
                    bound_time_limit=bound_time_limit)
    return run_eval(spec, out, progress=progress, plots=True)


def _rows(summary: dict) -> dict[str, dict]:
    from edgellm.eval.report import table_rows

    return {r["policy"]: r for r in table_rows(summary)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="results/bench-learning")
    p.add_argument("--model", default=None, help="16-user default model (skip training)")
    p.add_argument("--model-32", default=None, help="32-user default model (skip training)")
    p.add_argument("--model-bursty", default=None, help="bursty model (skip training)")
    p.add_argument("--timesteps", type=int, default=30_000)
    p.add_argument("--timesteps-32", type=int, default=12_000)
    p.add_argument("--timesteps-bursty", type=int, default=30_000)
    p.add_argument("--finetune-bursty", type=int, default=0,
                   help="MaskablePPO fine-tuning steps after DAgger on bursty")
    p.add_argument("--episodes", type=int, default=5, help="held-out evaluation episodes")
    p.add_argument("--slots", type=int, default=None, help="slots per episode (scenario's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=("imitation", "rl"), default=None,
                   help="run only the imitation steps (1-3) or the RL step (4)")
    p.add_argument("--rl-seconds", type=float, default=900.0,
                   help="wall-time budget of MaskablePPO from scratch [s]")
    p.add_argument("--rl-timesteps", type=int, default=None,
                   help="steps of MaskablePPO from scratch (default: the YAML's n_timesteps, "
                        "which also sets the learning-rate decay; --rl-seconds may end it "
                        "sooner; 0 seconds: skip it)")
    p.add_argument("--rl-variant", action="append", default=None,
                   metavar="NAME[:KEY=VALUE;...]",
                   help="--only rl: a run from scratch named NAME with these YAML "
                        "overrides (key algo: the algorithm, default maskable-ppo), e.g. "
                        "'userset:policy=UserSetPolicy' or 'ppo-prio:algo=ppo'; repeatable: "
                        "the runs train one after the other with the same seed and budget "
                        "and are evaluated side by side (default: one run, 'maskable-ppo', "
                        "the YAML as it is)")
    p.add_argument("--n-envs", type=int, default=None, help="RL envs (default: the YAML's)")
    p.add_argument("--scenario", default="default", help="scenario of --only rl")
    p.add_argument("--finetune", type=int, default=0,
                   help="--only rl: DAgger of --expert + this many MaskablePPO fine-tuning "
                        "steps (0: skip)")
    p.add_argument("--expert", default="oracle", choices=("oracle", "oracle-urgent"),
                   help="teacher of the DAgger run of --finetune")
    p.add_argument("--dagger", action="append", default=[], metavar="KEY=VALUE",
                   help="more dagger.yml overrides of the --finetune run (repeatable)")
    p.add_argument("--rollout", action="store_true",
                   help="--only rl: also evaluate the rollout planner (slow)")
    p.add_argument("--bound", action="store_true",
                   help="--only rl: hindsight bound per seed, for the x bound column")
    p.add_argument("--bound-time-limit", type=float, default=60.0,
                   help="seconds per seed of --bound")
    p.add_argument("--figures", default="docs/figures",
                   help="folder of the learning-curve PNG")
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    p.add_argument("--reuse", action="store_true",
                   help="evaluate models already trained under --out instead of stopping")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    from edgellm.agents import HEURISTICS

    out, progress = Path(a.out), not a.quiet
    from edgellm.train.config import parse_overrides

    a.dagger_hp = parse_overrides(a.dagger, "--dagger")
    if a.quick:
        a.timesteps, a.timesteps_32, a.timesteps_bursty = 2000, 1000, 2000
        a.episodes, a.slots, a.rl_seconds, a.rl_timesteps = 1, 30, 20.0, 8192
        a.finetune = min(a.finetune, 1024)
        a.dagger_hp = {"finetune_eval_freq": 512, **a.dagger_hp}
    hp = {"grad_steps": 500}
    t_all = time.perf_counter()
    report: dict = {"machine": f"{_cpu()}, {__import__('os').cpu_count()} cores",
                    "python": sys.version.split()[0], "episodes": a.episodes,
                    "slots": a.slots}

    if a.only == "rl":
        return _rl_main(a, out, report, progress)
    # 1. default, 16 users
    train16 = None
    if a.model is None:
        model16, train16 = _train(out / "train", "dagger-default-k16", "default", a.timesteps,
                                  {}, a.seed, hp, progress, a.reuse)
    else:
        model16 = Path(a.model)
    pol16 = f"learned:{model16}"
    s16 = _eval(out / "eval-default-k16", "default", ["oracle", *HEURISTICS, pol16],
                a.episodes, a.slots, {}, progress)
    rows16 = _rows(s16)
    # 2. decision time at 32 users
    train32 = None
    if a.model_32 is None:
        model32, train32 = _train(out / "train", "dagger-default-k32", "default",
                                  a.timesteps_32, {"n_users": 32}, a.seed, hp, progress,
                                  a.reuse)
    else:
        model32 = Path(a.model_32)
    pol32 = f"learned:{model32}"
    s32 = _eval(out / "eval-default-k32", "default", ["oracle", "sjf", pol32],
                min(a.episodes, 3), a.slots, {"n_users": 32}, progress)
    rows32 = _rows(s32)
    # 3. bursty
    trainb = None
    if a.model_bursty is None:
        hpb = {**hp, "finetune_steps": a.finetune_bursty}
        modelb, trainb = _train(out / "train", "dagger-bursty", "bursty", a.timesteps_bursty,
                                {}, a.seed, hpb, progress, a.reuse)
    else:
        modelb = Path(a.model_bursty)
    polb = f"learned:{modelb}"
    sb = _eval(out / "eval-bursty", "bursty", ["oracle", *HEURISTICS, polb], a.episodes,
               a.slots, {}, progress)
    rowsb = _rows(sb)

    def pick(rows, pol):
        r = rows[pol]
        return {"value_per_slot": r["value_per_slot"], "ratio_to_oracle": r["ratio_to_oracle"],
                "episodes_above_oracle": r["episodes_above_oracle"],
                "decision_ms_mean": r["decision_ms_mean"], "dropped_per_slot":
                r["dropped_per_slot"], "invalid_actions": r["invalid_actions"]}

    def budget(res):
        return None if res is None else {"timesteps": res["num_timesteps"],
                                         "train_s": res["train_s"]}

    report["default_k16"] = {"policies": {k: pick(rows16, k) for k in rows16},
                             "learned": pol16, "training": budget(train16)}
    report["default_k32"] = {"policies": {k: pick(rows32, k) for k in rows32},
                             "learned": pol32, "training": budget(train32)}
    report["bursty"] = {"policies": {k: pick(rowsb, k) for k in rowsb}, "learned": polb,
                        "training": budget(trainb)}
    dec16 = rows16["oracle"]["decision_ms_mean"] / max(rows16[pol16]["decision_ms_mean"], 1e-9)
    dec32 = rows32["oracle"]["decision_ms_mean"] / max(rows32[pol32]["decision_ms_mean"], 1e-9)
    report["speedup_k16"], report["speedup_k32"] = dec16, dec32
    report["wall_s"] = time.perf_counter() - t_all

    print(f"\nmachine: {report['machine']}; held-out seeds 20000+, {a.episodes} episodes")
    for title, rows, pol, res in (("default, 16 users", rows16, pol16, train16),
                                  ("default, 32 users", rows32, pol32, train32),
                                  ("bursty, 16 users", rowsb, polb, trainb)):
        tr = "" if res is None else (f" (trained {res['num_timesteps']} steps, "
                                     f"{res['train_s']:.0f} s)")
        print(f"\n{title}{tr}")
        print(f"  {'policy':<12} {'value/slot':>10} {'x oracle':>9} {'ep>oracle':>9} "
              f"{'ms/slot':>8}")
        for name, r in rows.items():
            label = "learned" if name == pol else name
            print(f"  {label:<12} {r['value_per_slot']:>10.3f} {r['ratio_to_oracle']:>9.3f} "
                  f"{r['episodes_above_oracle']:>9d} {r['decision_ms_mean']:>8.3f}")
    print(f"\ndecision time, DFTSP / learned: {dec16:.1f}x at 16 users, {dec32:.1f}x at 32 users")
    rb = rowsb[polb]
    print(f"bursty: learned {rb['value_per_slot']:.3f} vs oracle "
          f"{rowsb['oracle']['value_per_slot']:.3f} per slot (ratio {rb['ratio_to_oracle']:.3f}, "
          f"{rb['episodes_above_oracle']}/{a.episodes} episodes above the oracle): "
          f"{'beats' if rb['ratio_to_oracle'] > 1 else 'does not beat'} the per-slot oracle")
    print(f"total wall time {report['wall_s']:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    from edgellm.train.common import write_json

    write_json(out / "learning.json", report)
    return 0


def _rl_main(a, out: Path, report: dict, progress: bool) -> int:
    """Step 4: MaskablePPO from scratch on ``--scenario``, optionally DAgger of ``--expert``
    + MaskablePPO fine-tuning, evaluated with the oracles, the heuristics (and ``rollout``,
    and the hindsight bound, when asked) on the same held-out seeds."""
    from edgellm.agents import HEURISTICS
    from edgellm.train.common import write_json

    t_all, sc = time.perf_counter(), a.scenario
    pols, trained = {}, {}
    figs = []
    variants = [parse_variant(v) for v in a.rl_variant or ["maskable-ppo"]]
    for name, algo, hp in variants if a.rl_seconds > 0 else ():
        model, res = _train_rl(out / "train", sc, a.rl_seconds, a.n_envs, a.seed, progress,
                               a.rl_timesteps, a.reuse, name, algo, hp)
        label = f"{name} (scratch)"
        pols[label], trained[label] = f"learned:{model}", res
        figs.append(Path(a.figures) / f"learning_{name.replace('-', '_')}_{sc}.png")
        learning_curve(model.parent, figs[-1],
                       f"{algo} from scratch, {name}, {sc} ({res['num_timesteps']:,} "
                       f"steps, {res['train_s']:.0f} s)")
    if a.finetune:
        label = f"dagger ({a.expert}) + maskable-ppo"
        hpf = {"grad_steps": 500, "expert": a.expert, "finetune_steps": a.finetune,
               **a.dagger_hp}
        mf, rf = _train(out / "train", f"dagger-{a.expert}-ft-{sc}", sc, a.timesteps, {},
                        a.seed, hpf, progress, a.reuse)
        pols[label] = f"learned:{mf}"
        trained[label] = rf
    base = ["oracle", "oracle-urgent", *(["rollout"] if a.rollout else []), *HEURISTICS]
    summ = _eval(out / f"eval-{sc}-rl", sc, [*base, *pols.values()], a.episodes, a.slots, {},
                 progress, bound=a.bound, bound_time_limit=a.bound_time_limit)
    rows = _rows(summ)
    cols = ("value_per_slot", "ratio_to_oracle", "ratio_to_bound", "episodes_above_oracle",
            "decision_ms_mean")
    report[f"rl_{sc}"] = {
        "policies": {k: {c: rows[k].get(c) for c in cols} for k in rows},
        "learned": pols,
        "training": {k: {"timesteps": r["num_timesteps"], "train_s": r["train_s"],
                         "steps_per_s": r["num_timesteps"] / max(r["train_s"], 1e-9)}
                     for k, r in trained.items()},
        "figures": [str(f) for f in figs]}
    report["wall_s"] = time.perf_counter() - t_all
    report["load_average"] = _load()
    print(f"\nmachine: {report['machine']}, load average {report['load_average']}; "
          f"scenario {sc}, held-out seeds 20000+, {a.episodes} episodes of "
          f"{a.slots or 'all'} slots")
    for k, r in trained.items():
        print(f"{k}: trained {r['num_timesteps']:,} env steps in {r['train_s']:.0f} s "
              f"({r['num_timesteps'] / max(r['train_s'], 1e-9):,.0f} steps/s incl. updates "
              f"and periodic evaluation)")
    print("| policy | value/slot | x oracle | x bound | episodes above the oracle "
          "| decision ms/slot |\n|---|---:|---:|---:|---:|---:|")
    names = {v: k for k, v in pols.items()}
    for name, r in rows.items():
        xb = r.get("ratio_to_bound")
        print(f"| {names.get(name, name)} | {r['value_per_slot']:.3f} | "
              f"{r['ratio_to_oracle']:.3f} | {'-' if xb is None else f'{xb:.3f}'} | "
              f"{r['episodes_above_oracle'] if name != 'oracle' else '-'} | "
              f"{r['decision_ms_mean']:.2f} |")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"learning_rl_{sc}.json", report)
    print(f"learning curves: {', '.join(map(str, figs)) or '-'}; "
          f"total wall time {report['wall_s']:.0f} s")
    return 0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
