"""The environment under gymnasium and stable-baselines3 vector envs (2 envs, few steps)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from edgellm.envs import ENV_IDS


def _thunk(env_id, **kw):
    def make():
        # the module:id string imports edgellm.envs (and registers) in subprocesses too
        return gym.make(f"edgellm.envs:{env_id}", n_users=6, max_slots=10, **kw)

    return make


@pytest.mark.parametrize("vec", ["sync", "async"])
@pytest.mark.parametrize("env_id", list(ENV_IDS.values()))
def test_gymnasium_vector_envs(vec, env_id):
    cls = gym.vector.SyncVectorEnv if vec == "sync" else gym.vector.AsyncVectorEnv
    envs = cls([_thunk(env_id), _thunk(env_id)])
    try:
        obs, info = envs.reset(seed=[1, 2])
        assert obs.shape == (2, 64) and obs.dtype == np.float32
        envs.action_space.seed(0)
        done_slots = 0
        for _ in range(25):
            obs, r, term, trunc, info = envs.step(envs.action_space.sample())
            assert obs.shape == (2, 64) and r.shape == (2,) and not term.any()
            done_slots += int(np.sum(info["slot_done"]))
        assert done_slots > 0
    finally:
        envs.close()


def test_sb3_dummy_vec_env_ppo():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(_thunk(ENV_IDS["priority"]), n_envs=2, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
    venv.close()


def test_sb3_subproc_vec_env_maskable_ppo_gets_masks():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = SubprocVecEnv([_thunk(ENV_IDS["sequential"]), _thunk(ENV_IDS["sequential"])])
    try:
        venv.seed(0)
        obs = venv.reset()
        masks = get_action_masks(venv)
        assert masks.shape == (2, 7) and masks[:, -1].all()
        assert np.array_equal(masks[:, :6].astype(np.float32), obs[:, 9:60:10])
        model = MaskablePPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0,
                            device="cpu")
        model.learn(32)
        for _ in range(10):
            masks = get_action_masks(venv)
            act, _ = model.predict(obs, action_masks=masks)
            assert all(masks[i, a] for i, a in enumerate(act))
            obs, _, _, infos = venv.step(act)
            assert not any(i["invalid_action"] for i in infos)
    finally:
        venv.close()
