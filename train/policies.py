"""Permutation-equivariant actor-critic policies: one shared scorer for every user.

In ``sequential`` mode the observation is K user rows of C columns followed by the global
entries (:class:`~edgellm.envs.EdgeLLMEnv`), and action k < K adds user k, action K
dispatches. Users are interchangeable: renumbering them permutes the rows of the
observation and the first K actions alike. A flat MLP has to learn the value of every
user slot separately; :class:`UserSetPolicy` scores all users with one shared network
instead (a Deep Sets encoder):

* ``e_k = phi(u_k)``: the same MLP over each user's C columns (``user_arch``);
* ``c = rho([mean_k e_k, max_k e_k, max_{k in batch} e_k, globals])``: a context of the
  whole slot and of the batch built so far (``head_arch``);
* logit of user k: ``score([e_k, c])``; logit of dispatch: ``dispatch(c)``;
* value: its own encoder and context (the same pooled features -> ``head_arch`` -> 1).

Permuting the users permutes the K user logits the same way and leaves the dispatch logit
and the value unchanged. The layout (K, C) is read from the spaces: K = actions - 1,
C = (observation length - number of global entries) / K, so it serves the 10-column
text-only scenarios and the 12-column media ones alike. It is an sb3-contrib
``MaskableActorCriticPolicy``: ``policy: UserSetPolicy`` in maskable-ppo.yml selects it,
and models saved with it load like any MaskablePPO model (``learned:PATH``).

:class:`UserSetScorePolicy` is the same network for the one-step-per-slot modes of PPO
and A2C (``policy: UserSetScorePolicy`` in ppo.yml / a2c.yml): the K scores, without a
dispatch logit, are the means of the Gaussian over the K priorities (``priority``: the
env fills the batch greedily by score) or the logits of the K Bernoulli choices
(``subset``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from edgellm.envs.env import GLOBAL_FEATURES, USER_FEATURES
from edgellm.errors import EdgeLLMError


def user_layout(observation_space: spaces.Space, action_space: spaces.Space) -> tuple[int, int]:
    """(K users, C columns per user) of the env's spaces: ``Discrete(K + 1)`` actions
    (sequential), ``Box((K,))`` (priority) or ``MultiBinary(K)`` (subset)."""
    if isinstance(action_space, spaces.Discrete):
        k = int(action_space.n) - 1
    elif isinstance(action_space, (spaces.Box, spaces.MultiBinary)) and \
            len(action_space.shape) == 1:
        k = int(action_space.shape[0])
    else:
        raise EdgeLLMError(f"per-user policy: unsupported action space {action_space}")
    if not isinstance(observation_space, spaces.Box):
        raise EdgeLLMError(f"per-user policy: unsupported observation space "
                           f"{observation_space}")
    n_user_cols = int(np.prod(observation_space.shape)) - len(GLOBAL_FEATURES)
    if k < 1 or n_user_cols <= 0 or n_user_cols % k:
        raise EdgeLLMError(f"per-user policy: observation length "
                           f"{int(np.prod(observation_space.shape))} is not C * {k} users + "
                           f"{len(GLOBAL_FEATURES)} global entries")
    return k, n_user_cols // k


def _mlp(sizes: list[int], act: type[nn.Module], last_act: bool) -> nn.Sequential:
    mods: list[nn.Module] = []
    for j in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[j], sizes[j + 1]))
        if last_act or j + 2 < len(sizes):
            mods.append(act())
    return nn.Sequential(*mods)


class UserSetNet(nn.Module):
    """The actor and critic networks; ``forward_actor`` returns the K user scores, followed
    by the dispatch logit when ``dispatch``."""

    def __init__(self, n_users: int, n_cols: int, n_global: int, user_arch: list[int],
                 head_arch: list[int], activation_fn: type[nn.Module], dispatch: bool = True):
        super().__init__()
        self.n_users, self.n_cols = n_users, n_cols
        self.in_batch = USER_FEATURES.index("in_batch")
        h, c = user_arch[-1], head_arch[-1]
        ctx_in = 3 * h + n_global
        self.pi_user = _mlp([n_cols, *user_arch], activation_fn, last_act=True)
        self.pi_context = _mlp([ctx_in, *head_arch], activation_fn, last_act=True)
        self.pi_score = _mlp([h + c, *head_arch, 1], activation_fn, last_act=False)
        self.pi_dispatch = nn.Linear(c, 1) if dispatch else None
        self.vf_user = _mlp([n_cols, *user_arch], activation_fn, last_act=True)
        self.vf_context = _mlp([ctx_in, *head_arch], activation_fn, last_act=True)
        self.latent_dim_pi = n_users + dispatch  # the logits themselves (action_net: Identity)
        self.latent_dim_vf = c

    def _context(self, obs: th.Tensor, user: nn.Module, context: nn.Module):
        kc = self.n_users * self.n_cols
        rows = obs[:, :kc].reshape(-1, self.n_users, self.n_cols)
        e = user(rows)  # (B, K, h)
        in_batch = rows[:, :, self.in_batch:self.in_batch + 1] > 0.5
        batch_max = th.where(in_batch, e, -th.inf).amax(dim=1)
        batch_max = th.where(in_batch.any(dim=1), batch_max, 0.0)  # 0 for an empty batch
        pooled = th.cat([e.mean(dim=1), e.amax(dim=1), batch_max, obs[:, kc:]], dim=1)
        return e, context(pooled)

    def forward_actor(self, obs: th.Tensor) -> th.Tensor:
        e, c = self._context(obs, self.pi_user, self.pi_context)
        per_user = th.cat([e, c.unsqueeze(1).expand(-1, self.n_users, -1)], dim=2)
        scores = self.pi_score(per_user).squeeze(2)
        if self.pi_dispatch is None:
            return scores
        return th.cat([scores, self.pi_dispatch(c)], dim=1)

    def forward_critic(self, obs: th.Tensor) -> th.Tensor:
        return self._context(obs, self.vf_user, self.vf_context)[1]

    def forward(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(obs), self.forward_critic(obs)


class _UserSet:
    """Construction shared by the two policies (mixed in before the SB3 policy class)."""

    _dispatch = True

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space,
                 lr_schedule, user_arch: list[int] | None = None,
                 head_arch: list[int] | None = None, dispatch_bias: float = 0.0,
                 activation_fn: type[nn.Module] = nn.ReLU, **kwargs: Any):
        name = type(self).__name__
        self.n_users, self.n_cols = user_layout(observation_space, action_space)
        if isinstance(action_space, spaces.Discrete) != self._dispatch:
            raise EdgeLLMError(f"{name}: acts in the "
                               f"{'sequential' if self._dispatch else 'priority or subset'} "
                               f"action mode; got actions {action_space}")
        self.user_arch = list(user_arch or [64, 64])
        self.head_arch = list(head_arch or [64])
        self.dispatch_bias = float(dispatch_bias)
        if not all(isinstance(w, int) and w >= 1 for w in self.user_arch + self.head_arch):
            raise EdgeLLMError(f"{name}: user_arch {self.user_arch} and head_arch "
                               f"{self.head_arch} must be lists of integers >= 1")
        if kwargs.get("use_sde"):
            raise EdgeLLMError(f"{name}: use_sde is not supported (one shared log std per "
                               f"policy); set use_sde: False")
        kwargs.pop("net_arch", None)
        super().__init__(observation_space, action_space, lr_schedule,
                         activation_fn=activation_fn, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(user_arch=self.user_arch, head_arch=self.head_arch,
                    dispatch_bias=self.dispatch_bias)
        data.pop("net_arch", None)
        return data

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = UserSetNet(self.n_users, self.n_cols, len(GLOBAL_FEATURES),
                                        self.user_arch, self.head_arch, self.activation_fn,
                                        dispatch=self._dispatch)

    def _build(self, lr_schedule) -> None:
        self._build_mlp_extractor()
        net = self.mlp_extractor
        self.action_net = nn.Identity()
        if isinstance(self.action_dist, DiagGaussianDistribution):
            # one log std shared by all users (broadcast over the K means): equivariant
            self.log_std = nn.Parameter(th.full((1,), float(self.log_std_init)))
        self.value_net = nn.Linear(net.latent_dim_vf, 1)
        outputs = [m for m in (net.pi_score[-1], net.pi_dispatch) if m is not None]
        if self.ortho_init:
            net.apply(partial(self.init_weights, gain=np.sqrt(2)))
            for out in outputs:
                out.apply(partial(self.init_weights, gain=0.01))
            self.value_net.apply(partial(self.init_weights, gain=1.0))
        if net.pi_dispatch is not None:
            with th.no_grad():
                net.pi_dispatch.bias.fill_(self.dispatch_bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)


class UserSetPolicy(_UserSet, MaskableActorCriticPolicy):
    """MaskablePPO policy with one shared per-user scorer (see the module docstring).

    ``user_arch`` (default [64, 64]): widths of the per-user encoder; ``head_arch``
    (default [64]): widths of the context and of the scorer's hidden layers. ``net_arch``
    is not used. Orthogonal initialisation as SB3's (gain sqrt 2), with gain 0.01 on the
    output layers of the logits (a near-uniform initial policy) and 1 on the value output.
    ``dispatch_bias``: initial bias of the dispatch logit (e.g. -3: the initial policy
    rarely ends a slot while users can still be added, so learning starts from full
    batches and the signal left is which users fill them).
    """


class UserSetScorePolicy(_UserSet, ActorCriticPolicy):
    """PPO / A2C policy for the ``priority`` and ``subset`` modes: the same per-user scorer
    without the dispatch logit (``dispatch_bias`` unused); in ``priority`` mode one log
    standard deviation (``log_std_init``) shared by the K Gaussian scores."""

    _dispatch = False


#: Policy names accepted by the ``policy`` key of the YAML, besides SB3's own.
POLICIES = {"UserSetPolicy": UserSetPolicy, "UserSetScorePolicy": UserSetScorePolicy}
