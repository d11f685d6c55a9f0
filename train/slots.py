"""Slot-long returns for training (the ``horizon: slot`` key; sequential action mode).

In the sequential mode a slot takes several steps (one per user added, then the dispatch)
and its value arrives as the dispatch's reward. Over a whole episode that reward is a small
part of a return summed over many slots, whose traffic the policy does not control: the
advantage of picking one addable user over another (about a fraction of a request) drowns
in the next slots' noise. ``SlotEpisodes(venv)`` ends the learner's episode at every slot
end: the learner sees ``done`` there and does not bootstrap across it, so each step's
return is the value of its own slot (and the drops counted at its dispatch), the myopic
objective that the per-slot oracle maximizes. The env itself runs on unchanged (queues,
deadlines, episodes); only what the learner discounts changes. Use ``gamma: 1.0`` with it
(a slot is a few steps; discounting inside it would only favour short batches).

Wrap it outside :class:`~stable_baselines3.common.vec_env.VecMonitor`, so that the
logged episodes stay the env's episodes; the env must report ``slot_done`` in its infos
(both the native vector env's SB3 adapter and the single env do).
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper


class SlotEpisodes(VecEnvWrapper):
    """Marks every slot end as an episode end for the learner (see the module docstring)."""

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rew, dones, infos = self.venv.step_wait()
        ends = np.array([bool(info.get("slot_done")) for info in infos]) | dones
        for i in np.flatnonzero(ends).tolist():
            # no bootstrap across a slot end, an episode's last (a truncation) included
            infos[i] = {"terminal_observation": obs[i], **infos[i],
                        "TimeLimit.truncated": False}
        return obs, rew, ends, infos
