"""The RLModule of ``rllib-ppo``: PPO's default MLP with action masking (needs the
``[ray]`` extra; imported by name in every Ray worker)."""

from __future__ import annotations

from ray.rllib.algorithms.ppo.torch.ppo_torch_rl_module import PPOTorchRLModule
from ray.rllib.core.columns import Columns

MASKED_LOGIT = -1e9


class MaskedPPOModule(PPOTorchRLModule):
    """Reads Dict observations ``{"action_mask", "observations"}``: the MLP sees
    ``observations``; every forward pass adds ``MASKED_LOGIT`` to the logits of the actions
    whose ``action_mask`` is 0, so they are never sampled nor chosen."""

    def __init__(self, *, observation_space=None, **kw):
        self.dict_space = observation_space
        super().__init__(observation_space=observation_space["observations"], **kw)

    def setup(self):
        super().setup()
        self.observation_space = self.dict_space  # what the env runners hand in

    @staticmethod
    def _split(batch):
        obs = batch[Columns.OBS]
        return obs["action_mask"], {**batch, Columns.OBS: obs["observations"]}

    @staticmethod
    def _masked(out, mask):
        out[Columns.ACTION_DIST_INPUTS] = out[Columns.ACTION_DIST_INPUTS] + \
            (1.0 - mask) * MASKED_LOGIT
        return out

    def _forward_inference(self, batch, **kw):
        mask, batch = self._split(batch)
        return self._masked(super()._forward_inference(batch, **kw), mask)

    def _forward_exploration(self, batch, **kw):
        mask, batch = self._split(batch)
        return self._masked(super()._forward_exploration(batch, **kw), mask)

    def _forward_train(self, batch, **kw):
        mask, batch = self._split(batch)
        return self._masked(super()._forward_train(batch, **kw), mask)

    def compute_values(self, batch, embeddings=None):
        if isinstance(batch[Columns.OBS], dict):
            _, batch = self._split(batch)
        return super().compute_values(batch, embeddings)
