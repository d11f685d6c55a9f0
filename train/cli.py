"""``edgellm train``: train a learned scheduler (see :mod:`edgellm.train`)."""

from __future__ import annotations

import argparse

from edgellm.errors import EdgeLLMError

ALGO_CHOICES = ("ppo", "maskable-ppo", "a2c", "dqn", "bc", "dagger", "rllib-ppo")


def _run(args) -> int:
    from edgellm.train import TrainArgs, train
    from edgellm.train.config import parse_overrides

    targs = TrainArgs(
        algo=args.algo, scenario=args.scenario, timesteps=args.timesteps, seed=args.seed,
        logdir=args.logdir, run_name=args.run_name,
        hyperparams=parse_overrides(args.hyperparams),
        hyperparams_file=args.hyperparams_file,
        scenario_overrides=parse_overrides(args.set, "--set"),
        action_mode=args.action_mode, resume=args.resume,
        checkpoint_freq=args.checkpoint_freq, eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes, eval_slots=args.eval_slots,
        final_eval_episodes=args.final_eval_episodes, final_eval_slots=args.final_eval_slots,
        max_seconds=args.max_seconds, n_envs=args.n_envs, vec_env=args.vec_env,
        torch_threads=args.torch_threads, progress=not args.quiet, verbose=args.verbose,
        ray_address=args.ray_address)
    res = train(targs)
    run = targs.run_dir
    print(f"{targs.algo} on {targs.scenario}: {res['num_timesteps']} steps in "
          f"{res['train_s']:.1f} s; held-out value/slot {res['value_per_slot']:.3f} vs oracle "
          f"{res['oracle_value_per_slot']:.3f} (ratio {res['oracle_ratio']:.3f}), "
          f"decision {res['decision_ms_per_slot']:.2f} ms/slot")
    print(f"saved {run}/model.json (+ model, eval.json, config.yaml); "
          f"edgellm eval --policies oracle,learned:{run}/model.json")
    return 0


def _int_or_none(text: str):
    if text.lower() in ("none", "all", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise EdgeLLMError(f"expected an integer, got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser(
        "train", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="train a learned scheduler (SB3 RL, or imitation of the DFTSP oracle)",
        description="Train PPO / A2C / DQN (stable-baselines3), MaskablePPO (sb3-contrib), "
                    "PPO with action masks on RLlib (rllib-ppo, needs the [ray] extra) or "
                    "behaviour cloning / DAgger of the DFTSP oracle (torch). Hyperparameters "
                    "come from train/hyperparams/<algo>.yml (rl-zoo3 format), overridable "
                    "with --hyperparams KEY=VALUE. Writes <logdir>/<run>/: model + model.json "
                    "(load with `edgellm eval --policies learned:PATH`), eval.json, "
                    "config.yaml, checkpoints/, tb/ (TensorBoard). --resume continues from "
                    "the last checkpoint.")
    p.add_argument("--algo", required=True, choices=ALGO_CHOICES)
    p.add_argument("--scenario", default="default", help="scenario preset (edgellm.envs)")
    p.add_argument("--timesteps", type=int, default=None,
                   help="total env steps (default: n_timesteps of the YAML); with --resume, "
                        "the total to reach")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", default="runs")
    p.add_argument("--run-name", default=None, help="default <algo>-<scenario>-s<seed>")
    p.add_argument("--hyperparams", nargs="+", metavar="KEY=VALUE",
                   help="override hyperparameters of the YAML (values parsed as YAML)")
    p.add_argument("--hyperparams-file", default=None, help="another rl-zoo3 YAML file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="scenario override, repeatable (e.g. --set n_users=8)")
    p.add_argument("--action-mode", default=None, choices=("sequential", "subset", "priority"),
                   help="env mode (default per algo: ppo/a2c priority, others sequential)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--checkpoint-freq", type=int, default=10_000, help="env steps")
    p.add_argument("--eval-freq", type=int, default=10_000,
                   help="env steps between held-out evaluations (0: off)")
    p.add_argument("--eval-episodes", type=int, default=2)
    p.add_argument("--eval-slots", type=_int_or_none, default=100,
                   help="slots per periodic-evaluation episode (none: scenario's)")
    p.add_argument("--final-eval-episodes", type=int, default=4)
    p.add_argument("--final-eval-slots", type=_int_or_none, default=None)
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop training after this wall time [s] (then save)")
    p.add_argument("--n-envs", type=int, default=None,
                   help="parallel training envs (SB3 algorithms; default: n_envs of the YAML)")
    p.add_argument("--vec-env", default="native", choices=("native", "dummy"),
                   help="native: all envs stepped in one compiled call (EdgeLLMVectorEnv); "
                        "dummy: SB3 DummyVecEnv of single envs")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads (1 is fastest for these small networks, "
                        "and on a busy machine by far)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", type=int, default=0, help="SB3 verbosity")
    p.add_argument("--ray-address", default=None,
                   help="rllib-ppo: a running Ray cluster ('auto', 'ray://HOST:10001'); "
                        "default: a local Ray with num_env_runners + 1 CPUs")
    p.set_defaults(func=_run)
