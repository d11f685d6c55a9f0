"""Learned schedulers saved by ``train/``: loading and acting on observations.

File format (``train/`` writes it; this module reads it)
-------------------------------------------------------
A saved policy is a weights file plus a JSON *sidecar* with the same stem, e.g.
``runs/ppo-subset/model.zip`` + ``runs/ppo-subset/model.json``. The name
``learned:PATH`` accepts the weights file, the sidecar or the bare stem.

Sidecar keys (schema ``edgellm.policy/1``):

============== ======== ===============================================================
key            required meaning
============== ======== ===============================================================
schema         yes      ``"edgellm.policy/1"``
algo           yes      ``ppo``, ``a2c``, ``dqn`` (stable-baselines3), ``maskable-ppo``,
                        ``trpo``, ``qrdqn`` (sb3-contrib), ``bc``, ``dagger`` (imitation),
                        ``rllib-ppo`` (RLlib, sequential mode only)
action_mode    yes      ``sequential``, ``subset`` or ``priority``: the env mode it acts in
scenario       yes      scenario name it was trained on (informational; eval may differ)
format         no       ``sb3`` (an algorithm zip from ``model.save``; default for the RL
                        algos), ``sb3-policy`` (a policy zip from ``model.policy.save``) or
                        ``torch-mlp`` (a torch ``state_dict``; default for bc / dagger) or
                        ``rllib`` (an RLModule folder from ``save_to_path``; needs the
                        ``[ray]`` extra; default for rllib-ppo)
weights        no       weights file (folder for ``rllib``) relative to the sidecar
                        (default: stem + ``.zip``, + ``.pt`` for ``torch-mlp``, ``rl_module``
                        for ``rllib``)
policy_class   sb3-pol. ``ActorCriticPolicy`` (default), ``MaskableActorCriticPolicy``,
                        ``DQNPolicy``, ``UserSetPolicy`` ... (a class of
                        ``stable_baselines3.common.policies``, ``stable_baselines3.dqn
                        .policies``, ``sb3_contrib.common.maskable.policies`` or
                        ``edgellm.train.policies``)
net            torch    ``{"hidden": [256, 256], "activation": "relu" | "tanh"}``
overrides      no       scenario overrides used in training (informational)
obs_version    no       version of the env's observation layout (informational)
obs_dim        no       observation length; checked against the eval env when present
n_users        no       K; checked against the eval env when present
============== ======== ===============================================================

``torch-mlp`` is ``torch.nn.Sequential(Linear(obs_dim, h1), Act, ..., Linear(h_last, out))``
saved with ``torch.save(net.state_dict(), path)`` (keys ``0.weight``, ``0.bias``, ``2.weight``
...); a dict ``{"state_dict": ...}`` is accepted too. Its output is read per action mode:
``sequential``: K + 1 logits, the best action allowed by ``action_masks()``; ``subset``:
K logits, user k added iff its logit > 0; ``priority``: K scores clipped to [-1, 1].
``rllib`` modules read ``{"action_mask": action_masks(), "observations": obs}`` and act by
the largest logit (masked actions carry -1e9).

Every model acts deterministically (``predict(obs, deterministic=True)``); MaskablePPO and
masked policies get ``action_masks=env.unwrapped.action_masks()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.agents.base import ObservationPolicy, SlotOutcome
from edgellm.envs.env import ACTION_MODES
from edgellm.errors import EdgeLLMError

SIDECAR_SCHEMA = "edgellm.policy/1"
SB3_ALGOS = {  # algo -> (module, class)
    "ppo": ("stable_baselines3", "PPO"),
    "a2c": ("stable_baselines3", "A2C"),
    "dqn": ("stable_baselines3", "DQN"),
    "maskable-ppo": ("sb3_contrib", "MaskablePPO"),
    "trpo": ("sb3_contrib", "TRPO"),
    "qrdqn": ("sb3_contrib", "QRDQN"),
}
IMITATION_ALGOS = ("bc", "dagger")
RLLIB_ALGOS = ("rllib-ppo",)
ALGOS = tuple(SB3_ALGOS) + IMITATION_ALGOS + RLLIB_ALGOS
FORMATS = ("sb3", "sb3-policy", "torch-mlp", "rllib")
_DEFAULT_FORMAT = {**dict.fromkeys(IMITATION_ALGOS, "torch-mlp"),
                   **dict.fromkeys(RLLIB_ALGOS, "rllib")}
_DEFAULT_WEIGHTS = {"sb3": ".zip", "sb3-policy": ".zip", "torch-mlp": ".pt"}
_POLICY_MODULES = ("stable_baselines3.common.policies", "stable_baselines3.dqn.policies",
                   "sb3_contrib.common.maskable.policies", "sb3_contrib.qrdqn.policies",
                   "edgellm.train.policies")


def resolve_sidecar(path: str | Path) -> Path:
    """The sidecar JSON for a weights file, a sidecar path or a stem."""
    path = Path(path)
    side = path if path.suffix == ".json" else path.with_suffix(".json")
    if not side.is_file():
        raise EdgeLLMError(f"learned policy {str(path)!r}: no sidecar {side} "
                           f"(train/ writes <stem>.json next to the weights; "
                           f"see edgellm.agents.learned)")
    return side


def read_sidecar(path: str | Path) -> dict:
    """Read and validate a sidecar; the result has ``format`` and an absolute ``weights``."""
    side = resolve_sidecar(path)
    try:
        meta = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EdgeLLMError(f"{side}: cannot read the policy sidecar ({e})") from None
    if not isinstance(meta, dict):
        raise EdgeLLMError(f"{side}: must hold a JSON object")
    for key in ("schema", "algo", "action_mode", "scenario"):
        if key not in meta:
            raise EdgeLLMError(f"{side}: {key}: missing key")
    if meta["schema"] != SIDECAR_SCHEMA:
        raise EdgeLLMError(f"{side}: schema: must be {SIDECAR_SCHEMA!r}, got {meta['schema']!r}")
    if meta["algo"] not in ALGOS:
        raise EdgeLLMError(f"{side}: algo: must be one of {', '.join(ALGOS)}; "
                           f"got {meta['algo']!r}")
    if meta["action_mode"] not in ACTION_MODES:
        raise EdgeLLMError(f"{side}: action_mode: must be one of {', '.join(ACTION_MODES)}; "
                           f"got {meta['action_mode']!r}")
    fmt = meta.setdefault("format", _DEFAULT_FORMAT.get(meta["algo"], "sb3"))
    if fmt not in FORMATS:
        raise EdgeLLMError(f"{side}: format: must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "sb3" and meta["algo"] not in SB3_ALGOS:
        raise EdgeLLMError(f"{side}: format 'sb3' needs an SB3 algo "
                           f"({', '.join(SB3_ALGOS)}); got {meta['algo']!r}")
    if fmt == "rllib" and meta["action_mode"] != "sequential":
        raise EdgeLLMError(f"{side}: format 'rllib' acts in sequential mode only; "
                           f"got {meta['action_mode']!r}")
    default = (side.with_suffix(_DEFAULT_WEIGHTS[fmt]).name if fmt in _DEFAULT_WEIGHTS
               else "rl_module")
    weights = side.parent / meta.get("weights", default)
    if not (weights.is_dir() if fmt == "rllib" else weights.is_file()):
        raise EdgeLLMError(f"{side}: weights file {weights} not found")
    meta["weights"] = str(weights)
    meta["sidecar"] = str(side)
    return meta


ACTIVATIONS = ("relu", "tanh")


def activation_class(name: str):
    """The torch module class of activation ``name`` (one of ACTIVATIONS)."""
    import torch.nn as nn

    return {"relu": nn.ReLU, "tanh": nn.Tanh}[name]


def mlp(sizes: list[int], activation: str = "relu"):
    """``torch.nn.Sequential(Linear, Act, ..., Linear)`` through layer widths ``sizes``: the
    ``torch-mlp`` layout (Linear layers at indices 0, 2, 4, ...)."""
    import torch.nn as nn

    act = activation_class(activation)
    mods = []
    for j in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[j], sizes[j + 1]))
        if j + 2 < len(sizes):
            mods.append(act())
    return nn.Sequential(*mods)


class TorchMLP:
    """A ``torch-mlp`` network with an SB3-like ``predict`` for action mode ``mode``."""

    def __init__(self, net, mode: str):
        self.net = net
        self.obs_dim = int(net[0].in_features)
        self.mode = mode

    @classmethod
    def load(cls, meta: dict) -> TorchMLP:
        """The network saved at ``meta["weights"]`` (a sidecar read by read_sidecar)."""
        import torch

        net_cfg = meta.get("net") or {}
        state = torch.load(meta["weights"], map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        layers = sorted({int(k.split(".")[0]) for k in state if k.endswith(".weight")})
        if not layers:
            raise EdgeLLMError(f"{meta['weights']}: no Linear weights in the state_dict")
        activation = net_cfg.get("activation", "relu")
        if activation not in ACTIVATIONS:
            raise EdgeLLMError(f"{meta['sidecar']}: net.activation: must be relu or tanh; "
                               f"got {activation!r}")
        shapes = [state[f"{i}.weight"].shape for i in layers]
        net = mlp([shapes[0][1], *(sh[0] for sh in shapes)], activation)
        try:
            # mlp() numbers the Linear layers 0, 2, 4 ...; map the saved indices on them
            remap = {f"{2 * j}.{suffix}": state[f"{i}.{suffix}"]
                     for j, i in enumerate(layers) for suffix in ("weight", "bias")}
            net.load_state_dict(remap)
        except (KeyError, RuntimeError) as e:
            raise EdgeLLMError(f"{meta['weights']}: state_dict does not match an MLP ({e})") \
                from None
        net.eval()
        return cls(net, meta["action_mode"])

    def predict(self, obs, deterministic: bool = True, action_masks=None):
        import torch

        with torch.no_grad():
            out = self.net(torch.as_tensor(np.asarray(obs, dtype=np.float32))[None])[0].numpy()
        if self.mode == "sequential":
            if action_masks is not None:
                out = np.where(np.asarray(action_masks, dtype=bool), out, -np.inf)
            return int(np.argmax(out)), None
        if self.mode == "subset":
            return (out > 0).astype(np.int8), None
        return np.clip(out, -1.0, 1.0).astype(np.float32), None


class RLlibModel:
    """An RLlib RLModule (``rllib-ppo``) with an SB3-like masked ``predict`` (sequential)."""

    def __init__(self, module):
        self.module = module

    @classmethod
    def load(cls, meta: dict) -> RLlibModel:
        from edgellm.distributed import import_ray

        import_ray(f"learned policy {meta['weights']} (format rllib)")
        from ray.rllib.core.rl_module.rl_module import RLModule

        try:
            module = RLModule.from_checkpoint(str(Path(meta["weights"]).resolve()))
        except Exception as e:  # RLlib raises several types for a bad folder
            raise EdgeLLMError(f"{meta['weights']}: cannot load the RLModule "
                               f"({type(e).__name__}: {e})") from None
        return cls(module)

    def predict(self, obs, deterministic: bool = True, action_masks=None):
        import torch
        from ray.rllib.core.columns import Columns

        mask = np.ones(self.module.action_space.n, np.float32) if action_masks is None \
            else np.asarray(action_masks, np.float32)
        batch = {Columns.OBS: {"action_mask": torch.as_tensor(mask)[None],
                               "observations": torch.as_tensor(
                                   np.asarray(obs, np.float32))[None]}}
        with torch.no_grad():
            logits = self.module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
        return int(torch.argmax(logits[0])), None


def _load_model(meta: dict):
    import importlib

    fmt, algo = meta["format"], meta["algo"]
    try:
        if fmt == "torch-mlp":
            return TorchMLP.load(meta)
        if fmt == "rllib":
            return RLlibModel.load(meta)
        if fmt == "sb3":
            mod, cls = SB3_ALGOS[algo]
            return getattr(importlib.import_module(mod), cls).load(meta["weights"], device="cpu")
        name = meta.get("policy_class", "ActorCriticPolicy")
        for mod in _POLICY_MODULES:
            try:
                klass = getattr(importlib.import_module(mod), name, None)
            except ImportError:
                continue
            if klass is not None:
                return klass.load(meta["weights"], device="cpu")
        raise EdgeLLMError(f"{meta['sidecar']}: policy_class {name!r} not found in "
                           f"{', '.join(_POLICY_MODULES)}")
    except ImportError as e:
        raise EdgeLLMError(f"learned policy {meta['weights']}: needs {e.name} "
                           f"(pip install 'edgellm-gym[rl]')") from None


class LearnedPolicy(ObservationPolicy):
    """A saved model acting on the env's observations in its own action mode."""

    def __init__(self, path: str | Path, name: str | None = None):
        meta = read_sidecar(path)
        self._setup(_load_model(meta), meta, name or f"learned:{path}")

    @classmethod
    def from_model(cls, model, action_mode: str, algo: str, *, masked: bool | None = None,
                   name: str | None = None) -> LearnedPolicy:
        """A model held in memory (an SB3 algorithm or a :class:`TorchMLP`), e.g. during
        training; ``masked`` defaults to ``algo == "maskable-ppo"``."""
        policy = cls.__new__(cls)
        policy._setup(model, {"algo": algo, "action_mode": action_mode}, name or algo, masked)
        return policy

    def _setup(self, model, meta: dict, name: str, masked: bool | None = None) -> None:
        self.meta, self.model, self.name = meta, model, name
        self.action_mode = meta["action_mode"]
        self.masked = masked if masked is not None else (
            meta["algo"] == "maskable-ppo" or "Maskable" in str(meta.get("policy_class", ""))
            or meta.get("policy_class") == "UserSetPolicy")
        self._checked = False

    def check_env(self, env) -> None:
        """Raise EdgeLLMError when the env's mode or sizes differ from the model's."""
        base = env.unwrapped
        mode = getattr(base, "action_mode", self.action_mode)
        if mode != self.action_mode:
            raise EdgeLLMError(f"{self.name}: trained for action mode {self.action_mode!r}, "
                               f"env uses {mode!r}")
        k = self.meta.get("n_users")
        n_users = getattr(getattr(base, "config", None), "n_users", None)
        if k is not None and n_users is not None and int(k) != int(n_users):
            raise EdgeLLMError(f"{self.name}: trained with {k} users, env has {n_users}")
        dim = int(np.prod(env.observation_space.shape))
        want = self.meta.get("obs_dim")
        space = getattr(self.model, "observation_space", None)
        if want is None and space is not None:
            want = int(np.prod(space.shape))
        if want is None and isinstance(self.model, TorchMLP):
            want = self.model.obs_dim
        if want is not None and int(want) != dim:
            raise EdgeLLMError(f"{self.name}: model expects observations of length {want}, "
                               f"the env gives {dim} (different number of users or layout?)")
        self._checked = True

    def predict(self, env, obs) -> Any:
        """One action for ``obs`` (masked in sequential mode where the model supports it)."""
        if self.masked or isinstance(self.model, (TorchMLP, RLlibModel)):
            masks = (env.unwrapped.action_masks() if self.action_mode == "sequential"
                     else None)
            if masks is not None:
                return self.model.predict(obs, deterministic=True, action_masks=masks)[0]
        return self.model.predict(obs, deterministic=True)[0]

    def act(self, env, obs) -> Any:
        return self.predict(env, obs)

    def play_slot(self, env, obs) -> SlotOutcome:
        if not self._checked:
            self.check_env(env)
        return super().play_slot(env, obs)
