"""Reinforcement learning with stable-baselines3 / sb3-contrib (PPO, A2C, DQN, MaskablePPO).

Top to bottom: build ``n_envs`` envs in the algorithm's action mode (by default the native
batched :class:`~edgellm.train.vec.EdgeLLMSB3VecEnv` + VecMonitor; ``--vec-env dummy``:
Monitor + DummyVecEnv of single envs, the same trajectories), build the algorithm from the
validated YAML hyperparameters (or load the
last checkpoint with ``--resume``), attach the callbacks, ``learn`` the remaining steps,
save ``model.zip`` + ``model.json`` + ``eval.json`` + ``config.yaml``.
The YAML's ``policy`` is SB3's ``MlpPolicy`` or a per-user scorer of
:mod:`edgellm.train.policies`; ``shaping`` wraps the training envs in potential-based
reward shaping (:mod:`edgellm.train.shaping`; logged returns stay the env's reward), and
``horizon: slot`` ends the learner's returns at every slot end (:mod:`edgellm.train.slots`).

Callbacks and TensorBoard scalars (besides SB3's own ``rollout/``, ``train/``, ``time/``):

* ``slot/served_per_slot``, ``slot/dropped_per_slot``: over the last 1000 training slots;
* ``eval/served_per_slot``, ``eval/value_per_slot``, ``eval/dropped_per_slot``,
  ``eval/oracle_ratio``, ``eval/decision_ms_per_slot``: periodic deterministic
  evaluation on held-out seeds (10 000+) against the oracle on the same seeds;
* checkpoints ``checkpoints/step_<N>.zip`` every ``--checkpoint-freq`` steps, and the best
  model of the periodic evaluation as ``checkpoints/best.zip`` (the final model).

DQN's replay buffer is not checkpointed: ``--resume`` restarts it empty.
"""

from __future__ import annotations

import time
from collections import deque
from functools import partial

from edgellm.agents.learned import LearnedPolicy
from edgellm.envs import EdgeLLMEnv
from edgellm.errors import EdgeLLMError
from edgellm.eval.runner import build_scenario
from edgellm.io import write_json
from edgellm.train.common import (
    EVAL_SEED,
    FINAL_SEED,
    HeldOut,
    atomic_save,
    prepare_run_dir,
    progress_bar,
    prune_checkpoints,
    sidecar,
    train_seed,
    write_yaml,
)
from edgellm.train.config import (
    ZOO_KEYS,
    TrainArgs,
    algo_class,
    policy_class,
    policy_kwargs,
    schedule,
)

CKPT_SUFFIX = ".zip"


def _env_fn(cfg, mode: str):
    from stable_baselines3.common.monitor import Monitor

    return Monitor(EdgeLLMEnv(cfg, action_mode=mode))


def make_vec_env(cfg, mode: str, n_envs: int, kind: str = "native"):
    """``n_envs`` training envs for SB3: the native batched env (``kind="native"``) or a
    DummyVecEnv of single envs (``"dummy"``), each with episode statistics."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    if kind == "native":
        from edgellm.train.vec import EdgeLLMSB3VecEnv

        return VecMonitor(EdgeLLMSB3VecEnv(n_envs, cfg, action_mode=mode))
    return DummyVecEnv([partial(_env_fn, cfg, mode) for _ in range(n_envs)])


def _callbacks(args: TrainArgs, total: int, held: HeldOut, masked: bool, start: int):
    from stable_baselines3.common.callbacks import BaseCallback

    run = args.run_dir

    class Training(BaseCallback):
        """Slot statistics, checkpoints, periodic evaluation, progress and time limit."""

        def __init__(self):
            super().__init__()
            self.served = deque(maxlen=1000)
            self.dropped = deque(maxlen=1000)
            self.best = -1.0
            self.next_ckpt = (start // args.checkpoint_freq + 1) * args.checkpoint_freq
            self.next_eval = ((start // args.eval_freq + 1) * args.eval_freq
                              if args.eval_freq else None)
            self.bar = None
            self.t0 = time.perf_counter()
            self.out_of_time = False

        def _on_training_start(self) -> None:
            self.bar = progress_bar(total, self.num_timesteps, args.progress,
                                    f"{args.algo} {args.run}")

        def save_checkpoint(self) -> None:
            path = run / "checkpoints" / f"step_{self.num_timesteps}{CKPT_SUFFIX}"
            atomic_save(path, self.model.save)
            prune_checkpoints(run, CKPT_SUFFIX)

        def evaluate(self) -> None:
            res = held.evaluate(LearnedPolicy.from_model(self.model, args.mode, args.algo,
                                                         masked=masked))
            for k in ("served_per_slot", "value_per_slot", "dropped_per_slot",
                      "oracle_ratio", "decision_ms_per_slot"):
                self.logger.record(f"eval/{k}", res[k])
            if self.bar is not None:
                self.bar.write(f"[{args.run}] step {self.num_timesteps}: held-out value/slot "
                               f"{res['value_per_slot']:.3f} = {res['oracle_ratio']:.3f} "
                               f"x oracle")
            if res["value_per_slot"] > self.best:
                self.best = res["value_per_slot"]
                atomic_save(run / "checkpoints" / "best.zip", self.model.save)

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                if info.get("slot_done"):
                    self.served.append(info["served"])
                    self.dropped.append(sum(info["dropped"].values()))
            if self.served:
                self.logger.record("slot/served_per_slot", sum(self.served) / len(self.served))
                self.logger.record("slot/dropped_per_slot",
                                   sum(self.dropped) / len(self.dropped))
            if self.bar is not None:
                self.bar.update(self.num_timesteps - self.bar.n)
            if self.num_timesteps >= self.next_ckpt:
                while self.next_ckpt <= self.num_timesteps:
                    self.next_ckpt += args.checkpoint_freq
                self.save_checkpoint()
            if self.next_eval is not None and self.num_timesteps >= self.next_eval:
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += args.eval_freq
                self.evaluate()
            if args.max_seconds is not None and \
                    time.perf_counter() - self.t0 >= args.max_seconds:
                self.out_of_time = True
                return False
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()
            self.save_checkpoint()
            if args.eval_freq:
                self.evaluate()
                self.logger.dump(self.num_timesteps)

    return Training()


def train_sb3(args: TrainArgs, hp: dict) -> dict:
    """Train an SB3 algorithm as configured; write the run folder; return the final eval."""
    import torch
    from stable_baselines3.common.logger import configure

    run = args.run_dir
    resume_from = prepare_run_dir(args, CKPT_SUFFIX)
    overrides = {**dict(hp.get("env_kwargs") or {}), **args.scenario_overrides}
    cfg = build_scenario(args.scenario, overrides)
    total = int(args.timesteps or hp["n_timesteps"])
    n_envs = int(args.n_envs or hp.get("n_envs", 1))
    venv = make_vec_env(cfg, args.mode, n_envs, args.vec_env)
    if hp.get("horizon", "episode") == "slot":  # outside VecMonitor, as shaping
        from edgellm.train.slots import SlotEpisodes

        venv = SlotEpisodes(venv)
    if hp.get("shaping"):  # outside VecMonitor: logged returns stay the env's reward
        from edgellm.train.shaping import PotentialShaping

        venv = PotentialShaping(venv, hp.get("gamma", 0.99), hp["shaping"])
    Algo = algo_class(args.algo)
    masked = args.algo == "maskable-ppo"
    torch.manual_seed(args.seed)
    if resume_from is not None:
        model = Algo.load(resume_from[1], env=venv, device="cpu")
        start = int(model.num_timesteps)
    else:
        kwargs = {k: schedule(v) for k, v in hp.items() if k not in ZOO_KEYS}
        kwargs["policy_kwargs"] = policy_kwargs(args.algo, hp.get("policy_kwargs"))
        try:
            model = Algo(policy_class(hp.get("policy", "MlpPolicy")), venv, seed=args.seed,
                         device="cpu", verbose=args.verbose, **kwargs)
        except (ValueError, TypeError, AssertionError, KeyError) as e:
            raise EdgeLLMError(f"hyperparameters of {args.algo}: {e}") from None
        start = 0
    venv.seed(train_seed(args.seed) + start)  # training seeds, never the held-out ones
    model.set_logger(configure(str(run / "tb"),
                               ["stdout", "tensorboard"] if args.verbose else ["tensorboard"]))
    write_yaml(run / "config.yaml", {"args": args.to_dict(),
                                     "hyperparams": {**hp, "n_timesteps": total},
                                     "resumed_from": start if resume_from else None})
    held = HeldOut(build_scenario(args.scenario, overrides, args.eval_slots),
                   [EVAL_SEED + i for i in range(args.eval_episodes)], run / "oracle_eval.json")
    cb = _callbacks(args, total, held, masked, start)
    t0 = time.perf_counter()
    try:
        if total > start:
            model.learn(total - start, callback=cb, reset_num_timesteps=False,
                        progress_bar=False)
    except KeyboardInterrupt:
        cb.save_checkpoint()
        raise
    train_s = time.perf_counter() - t0
    num_timesteps = int(model.num_timesteps)
    best = run / "checkpoints" / "best.zip"
    if best.is_file():  # the best model of the periodic evaluation is the final one
        model = Algo.load(best, device="cpu")
    atomic_save(run / "model.zip", model.save)
    final = HeldOut(build_scenario(args.scenario, overrides, args.final_eval_slots),
                    [FINAL_SEED + i for i in range(args.final_eval_episodes)],
                    run / "oracle_final.json")
    res = final.evaluate(LearnedPolicy.from_model(model, args.mode, args.algo, masked=masked))
    res.update(num_timesteps=num_timesteps, train_s=round(train_s, 3))
    obs_dim = int(venv.observation_space.shape[0])
    write_json(run / "eval.json", res)
    write_json(run / "model.json",
               sidecar(args, algo=args.algo, fmt="sb3", weights="model.zip", obs_dim=obs_dim,
                       n_users=cfg.n_users, extra={"num_timesteps": num_timesteps,
                                                   "train_s": round(train_s, 3)}))
    venv.close()
    return res
