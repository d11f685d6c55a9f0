"""PPO with action masking on RLlib's new API stack (``edgellm train --algo rllib-ppo``).

Top to bottom: start Ray (local, sized for this machine, or ``--ray-address``), register
the sequential env with a Dict observation ``{"action_mask", "observations"}`` (the
env's own mask and observation, :class:`MaskedObservation`), build PPO with
:class:`~edgellm.train.rllib_module.MaskedPPOModule` (an RLModule that sets the logits of
masked actions to a large negative number, so they are never sampled nor chosen), call
``train()`` until the step budget is spent, then save the RLModule (``rl_module/``) with
its sidecar ``model.json``
(format ``rllib``; ``edgellm eval --policies learned:RUN/model.json`` loads it).

TensorBoard scalars (``tb/``) carry the SB3 path's names: ``slot/served_per_slot`` and
``slot/dropped_per_slot`` (training slots of the last iteration), ``eval/*`` (periodic
held-out evaluation against the oracle), plus ``rllib/`` losses and returns.
Checkpoints: ``checkpoints/step_<N>/`` (the whole algorithm; ``--resume`` restores it).
"""

from __future__ import annotations

import copy
import shutil
import time

import gymnasium as gym
import numpy as np

from edgellm.agents.learned import RLlibModel
from edgellm.envs import ENV_IDS, EdgeLLMEnv
from edgellm.errors import EdgeLLMError
from edgellm.eval.runner import build_scenario
from edgellm.train.common import (
    EVAL_SEED,
    FINAL_SEED,
    HeldOut,
    checkpoints,
    prepare_run_dir,
    progress_bar,
    sidecar,
    train_seed,
    write_json,
    write_yaml,
)
from edgellm.train.config import TrainArgs

RLLIB_ENV = "edgellm-sequential-masked"
CKPT_SUFFIX = ""  # checkpoints are folders checkpoints/step_<N>
MODULE_DIR = "rl_module"


class MaskedObservation(gym.ObservationWrapper):
    """The observation as ``{"action_mask": float32 (K+1,), "observations": float32
    (F K + 4,)}`` (F = 10 columns per user, 12 with media; sequential mode: the mask of
    ``action_masks()``, 1 = allowed)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        n = env.action_space.n
        self.observation_space = gym.spaces.Dict({
            "action_mask": gym.spaces.Box(0.0, 1.0, (n,), np.float32),
            "observations": env.observation_space})

    def observation(self, obs):
        return {"action_mask": self.env.unwrapped.action_masks().astype(np.float32),
                "observations": obs}


def vectorize_mode(env_id: str = ENV_IDS["sequential"]) -> str:
    """THE ONE SWITCH to the native vector env: RLlib vectorises the single env itself
    ("sync") until the env id has a ``vector_entry_point``; from then on the env creator
    below is called with ``num_envs`` and returns the native vector env."""
    spec = gym.spec(env_id)  # registered by importing edgellm.envs
    return "vector_entry_point" if spec.vector_entry_point is not None else "sync"


def make_env(config: dict):
    """RLlib's env creator (registered as ``RLLIB_ENV``; importable in every worker)."""
    cfg = config["scenario_config"]
    num_envs = config.get("num_envs")
    if num_envs is not None:  # vector_entry_point mode (see vectorize_mode)
        venv = gym.make_vec(ENV_IDS["sequential"], num_envs=num_envs,
                            vectorization_mode="vector_entry_point", scenario=cfg)
        return _MaskedVector(venv)
    return MaskedObservation(EdgeLLMEnv(cfg, action_mode="sequential"))


class _MaskedVector(gym.vector.VectorObservationWrapper):
    """The native vector env with Dict observations (masks from its ``action_masks()``)."""

    def __init__(self, env):
        super().__init__(env)
        n = env.single_action_space.n
        self.single_observation_space = gym.spaces.Dict({
            "action_mask": gym.spaces.Box(0.0, 1.0, (n,), np.float32),
            "observations": env.single_observation_space})
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              env.num_envs)

    def observations(self, obs):
        return {"action_mask": np.asarray(self.env.unwrapped.action_masks(), np.float32),
                "observations": obs}


def _on_episode_step(*, episode, metrics_logger=None, **_):
    """Per training slot: served and dropped requests (the SB3 path's ``slot/`` scalars)."""
    info = episode.get_infos(-1)
    if info and info.get("slot_done") and metrics_logger is not None:
        metrics_logger.log_value("served_per_slot", float(info["served"]), reduce="mean",
                                 window=1000)
        metrics_logger.log_value("dropped_per_slot", float(sum(info["dropped"].values())),
                                 reduce="mean", window=1000)


def build_config(args: TrainArgs, hp: dict, cfg):
    """The PPOConfig of a run (new API stack) from the validated hyperparameters."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.tune.registry import register_env

    from edgellm.train.rllib_module import MaskedPPOModule

    register_env(RLLIB_ENV, make_env)
    model_config = {"fcnet_hiddens": list(hp["net_arch"]),
                    "fcnet_activation": hp["activation"], "vf_share_layers": False}
    return (
        PPOConfig()
        .environment(RLLIB_ENV, env_config={"scenario_config": cfg})
        .env_runners(num_env_runners=hp["num_env_runners"],
                     num_envs_per_env_runner=hp["n_envs"],
                     gym_env_vectorize_mode=vectorize_mode())
        .learners(num_learners=0)
        .training(lr=hp["learning_rate"], gamma=hp["gamma"], lambda_=hp["gae_lambda"],
                  train_batch_size_per_learner=hp["train_batch_size"],
                  minibatch_size=hp["minibatch_size"], num_epochs=hp["num_epochs"],
                  entropy_coeff=hp["entropy_coeff"], clip_param=hp["clip_param"],
                  vf_loss_coeff=hp["vf_loss_coeff"])
        .rl_module(rl_module_spec=RLModuleSpec(module_class=MaskedPPOModule,
                                               model_config=model_config))
        .callbacks(on_episode_step=_on_episode_step)
        .debugging(seed=train_seed(args.seed), log_level="ERROR")  # never held-out seeds
    )


def _steps(result: dict) -> int:
    return int(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0)
               or result.get("num_env_steps_sampled_lifetime", 0))


def train_rllib(args: TrainArgs, hp: dict) -> dict:
    """Train PPO with masks on RLlib; write the run folder; return the final eval."""
    from torch.utils.tensorboard import SummaryWriter

    from edgellm import distributed
    from edgellm.agents.learned import LearnedPolicy

    distributed.import_ray("--algo rllib-ppo")  # before anything is written
    run = args.run_dir
    resume_from = prepare_run_dir(args, CKPT_SUFFIX)
    overrides = {**dict(hp.get("env_kwargs") or {}), **args.scenario_overrides}
    cfg = build_scenario(args.scenario, overrides)
    total = int(args.timesteps or hp["n_timesteps"])
    distributed.init(args.ray_address, num_cpus=hp["num_env_runners"] + 1,
                     what="--algo rllib-ppo")
    try:
        algo = build_config(args, hp, cfg).build_algo()
    except Exception as e:  # RLlib raises many types for bad settings
        raise EdgeLLMError(f"rllib-ppo: cannot build PPO ({type(e).__name__}: {e})") from None
    start = 0
    if resume_from is not None:
        algo.restore_from_path(str(resume_from[1].resolve()))
        start = resume_from[0]
    write_yaml(run / "config.yaml", {"args": args.to_dict(),
                                     "hyperparams": {**hp, "n_timesteps": total},
                                     "resumed_from": start if resume_from else None})
    held = HeldOut(build_scenario(args.scenario, overrides, args.eval_slots),
                   [EVAL_SEED + i for i in range(args.eval_episodes)], run / "oracle_eval.json")
    tb = SummaryWriter(str(run / "tb"))
    bar = progress_bar(total, start, args.progress, f"rllib-ppo {args.run}")
    steps, t0 = start, time.perf_counter()
    next_ckpt = (start // args.checkpoint_freq + 1) * args.checkpoint_freq
    next_eval = (start // args.eval_freq + 1) * args.eval_freq if args.eval_freq else None
    best, best_state = -1.0, None

    def policy():
        return LearnedPolicy.from_model(RLlibModel(algo.get_module()), "sequential",
                                        "rllib-ppo")

    def evaluate():
        nonlocal best, best_state
        res = held.evaluate(policy())
        for k in ("served_per_slot", "value_per_slot", "dropped_per_slot", "oracle_ratio",
                  "decision_ms_per_slot"):
            tb.add_scalar(f"eval/{k}", res[k], steps)
        if res["value_per_slot"] > best:  # a copy: get_state's arrays share the weights
            best = res["value_per_slot"]
            best_state = copy.deepcopy(algo.get_module().get_state())

    def checkpoint():
        path = run / "checkpoints" / f"step_{steps}"
        if path.is_dir():
            return
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        algo.save_to_path(str(tmp.resolve()))
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        for _, old in checkpoints(run, CKPT_SUFFIX)[:-3]:
            shutil.rmtree(old, ignore_errors=True)

    try:
        while steps < total:
            result = algo.train()
            steps = _steps(result)
            runners = result.get("env_runners", {})
            for k in ("served_per_slot", "dropped_per_slot"):
                if k in runners:
                    tb.add_scalar(f"slot/{k}", float(runners[k]), steps)
            for k in ("episode_return_mean", "episode_len_mean"):
                if k in runners:
                    tb.add_scalar(f"rllib/{k}", float(runners[k]), steps)
            learner = result.get("learners", {}).get("default_policy", {})
            for k in ("policy_loss", "vf_loss", "entropy"):
                if k in learner:
                    tb.add_scalar(f"rllib/{k}", float(learner[k]), steps)
            if bar is not None:
                bar.update(steps - bar.n)
            if steps >= next_ckpt:
                while next_ckpt <= steps:
                    next_ckpt += args.checkpoint_freq
                checkpoint()
            if next_eval is not None and steps >= next_eval:
                while next_eval <= steps:
                    next_eval += args.eval_freq
                evaluate()
            if args.max_seconds is not None and time.perf_counter() - t0 >= args.max_seconds:
                break
    except KeyboardInterrupt:
        checkpoint()
        raise
    finally:
        if bar is not None:
            bar.close()
    train_s = time.perf_counter() - t0
    checkpoint()
    if args.eval_freq:
        evaluate()
    module = algo.get_module()
    if best_state is not None:  # the best module of the periodic evaluation is the final one
        module.set_state(best_state)
    target = run / MODULE_DIR
    shutil.rmtree(target, ignore_errors=True)
    module.save_to_path(str(target.resolve()))
    final = HeldOut(build_scenario(args.scenario, overrides, args.final_eval_slots),
                    [FINAL_SEED + i for i in range(args.final_eval_episodes)],
                    run / "oracle_final.json")
    res = final.evaluate(policy())
    res.update(num_timesteps=steps, train_s=round(train_s, 3))
    tb.close()
    write_json(run / "eval.json", res)
    write_json(run / "model.json",
               sidecar(args, algo="rllib-ppo", fmt="rllib", weights=MODULE_DIR,
                       obs_dim=EdgeLLMEnv(cfg).observation_space.shape[0], n_users=cfg.n_users,
                       extra={"num_timesteps": steps, "train_s": round(train_s, 3)}))
    algo.stop()
    return res

