"""Potential-based reward shaping (training only; meant for the sequential action mode).

``PotentialShaping(venv, gamma, weights)`` adds ``gamma * phi(s') - phi(s)`` to every
reward, with the potential ``phi(s) = sum_k sum_col weights[col] * obs[k, col]`` over the
user rows of the observation (e.g. ``{"in_batch": 1, "addable": 0.5}``: the batch size plus
half the number of users that can still be added). Shaping of this form leaves the optimal
policies of the discounted return unchanged (Ng, Harada and Russell, ICML 1999); it moves
the slot's reward onto the additions that earn it and charges an addition that makes other
users unaddable at once, instead of only through the critic. At an episode end ``s'`` is
the terminal observation, as for SB3's bootstrap. It is valid in every action mode, but only
in the sequential one do the observation's batch columns change within a slot.

Wrap it outside :class:`~stable_baselines3.common.vec_env.VecMonitor`, so that the
episode returns logged (``rollout/ep_rew_mean``) and every evaluation stay the env's own
reward.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from edgellm.envs.env import USER_FEATURES
from edgellm.errors import EdgeLLMError
from edgellm.train.config import SHAPING_COLUMNS
from edgellm.train.policies import user_layout


class PotentialShaping(VecEnvWrapper):
    """Adds ``gamma * phi(s') - phi(s)`` to the rewards of a VecEnv of the env."""

    def __init__(self, venv: VecEnv, gamma: float, weights: dict[str, float]):
        super().__init__(venv)
        self.n_users, self.n_cols = user_layout(venv.observation_space, venv.action_space)
        self.gamma = float(gamma)
        self.weights = np.zeros(self.n_cols, dtype=np.float64)
        for name, w in weights.items():
            if name not in SHAPING_COLUMNS:
                raise EdgeLLMError(f"shaping: unknown column {name!r} "
                                   f"(allowed: {', '.join(SHAPING_COLUMNS)})")
            self.weights[USER_FEATURES.index(name)] = float(w)
        self._phi_last = np.zeros(self.num_envs)

    def potential(self, obs: np.ndarray) -> np.ndarray:
        """phi of a batch of observations, shape (N,)."""
        kc = self.n_users * self.n_cols
        users = np.asarray(obs, dtype=np.float64)[:, :kc].reshape(-1, self.n_users, self.n_cols)
        return (users @ self.weights).sum(axis=1)

    def reset(self):
        obs = self.venv.reset()
        self._phi_last = self.potential(obs)
        return obs

    def step_wait(self):
        obs, rew, dones, infos = self.venv.step_wait()
        phi = self.potential(obs)
        phi_next = phi.copy()
        for i in np.flatnonzero(dones).tolist():
            phi_next[i] = self.potential(infos[i]["terminal_observation"][None])[0]
        shaped = rew + self.gamma * phi_next - self._phi_last
        self._phi_last = phi
        return obs, shaped.astype(np.float32), dones, infos
