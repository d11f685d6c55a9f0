"""stable-baselines3 ``VecEnv`` over the native batched env (:class:`EdgeLLMVectorEnv`).

``EdgeLLMSB3VecEnv(n_envs, scenario, action_mode)`` steps all envs in one call, as SB3
expects: an env whose episode ends is reset in the same step (``terminal_observation`` and
``TimeLimit.truncated`` in its info); ``reset()`` seeds env i with ``seed + i`` after
``seed(seed)`` (as ``DummyVecEnv`` does); ``env_method("action_masks")`` returns the
(N, A) masks that sb3-contrib's MaskablePPO reads. The per-env info dicts hold what the
trainer logs: ``slot_done`` and, at the end of a slot, ``served`` and ``dropped``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from edgellm.envs.config import ScenarioConfig
from edgellm.envs.queues import DROP_CAUSES
from edgellm.envs.vector import EdgeLLMVectorEnv


class EdgeLLMSB3VecEnv(VecEnv):
    """SB3 view of an :class:`EdgeLLMVectorEnv` with same-step autoreset."""

    def __init__(self, n_envs: int, scenario: str | ScenarioConfig = "default",
                 action_mode: str = "sequential", **overrides: Any):
        self.venv = EdgeLLMVectorEnv(n_envs, scenario, action_mode=action_mode,
                                     autoreset_mode="same-step", slot_info=False,
                                     **overrides)
        super().__init__(self.venv.num_envs, self.venv.single_observation_space,
                         self.venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        obs, info = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rew, term, trunc, info = self.venv.step(self._actions)
        dones = term | trunc
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        slot_done = info["slot_done"]
        for i in np.flatnonzero(slot_done).tolist():
            infos[i] = {"slot_done": True, "served": int(info["served"][i]),
                        "dropped": {c: int(info["dropped"][c][i]) for c in DROP_CAUSES}}
        for i in np.flatnonzero(dones).tolist():
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
        return obs, rew.astype(np.float32), dones, infos

    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def close(self) -> None:
        self.venv.close()

    # ------------------------------------------------------------------ SB3 plumbing
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self if attr_name == "action_masks" else self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None,
                   **method_kwargs) -> list[Any] | np.ndarray:
        if method_name == "action_masks":
            return self.action_masks()[list(self._get_indices(indices))]
        out = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [out for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
