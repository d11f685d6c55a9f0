"""Training arguments and hyperparameters (rl-zoo3 YAML format, validated).

Hyperparameters live in ``train/hyperparams/<algo>.yml``, one file per algorithm, in the
rl-zoo3 layout: the top-level key is the env id (which fixes the action mode), e.g.::

    EdgeLLM-Sequential-v0:
      n_timesteps: !!float 1e5
      policy: 'MlpPolicy'
      n_envs: 4
      learning_rate: !!float 3e-4
      policy_kwargs: "dict(net_arch=[256, 256])"

``--hyperparams key=value ...`` overrides single keys (values parsed as YAML). Every key
is checked: for the SB3 algorithms against the algorithm constructor's signature
(``inspect.signature``) plus the rl-zoo3 keys ``n_timesteps``, ``policy``, ``n_envs``,
``env_kwargs``; for ``bc`` / ``dagger`` against :class:`ImitationHP`. An unknown key or a
bad value raises one :class:`~edgellm.errors.EdgeLLMError` naming it and what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edgellm.agents.learned import ACTIVATIONS, IMITATION_ALGOS, RLLIB_ALGOS, SB3_ALGOS
from edgellm.envs import ENV_IDS
from edgellm.errors import EdgeLLMError
from edgellm.system.validate import check_choice, check_number, is_integer, is_number

#: The algorithms ``edgellm train`` runs: those with packaged hyperparameters
#: (``train/hyperparams/<algo>.yml``). Learned policies of every algorithm of
#: :data:`edgellm.agents.learned.ALGOS` load for evaluation.
TRAIN_ALGOS = ("ppo", "a2c", "dqn", "maskable-ppo", *IMITATION_ALGOS, *RLLIB_ALGOS)
#: Default action mode per algorithm (DQN: Discrete only; MaskablePPO: needs masks).
DEFAULT_MODE = {"ppo": "priority", "a2c": "priority", "dqn": "sequential",
                "maskable-ppo": "sequential", "bc": "sequential", "dagger": "sequential",
                "rllib-ppo": "sequential"}
ALLOWED_MODES = {"ppo": ("priority", "sequential", "subset"),
                 "a2c": ("priority", "sequential", "subset"),
                 "dqn": ("sequential",), "maskable-ppo": ("sequential",),
                 "bc": ("sequential",), "dagger": ("sequential",),
                 "rllib-ppo": ("sequential",)}
#: rl-zoo3 keys handled by the trainer, not passed to the algorithm's constructor.
ZOO_KEYS = ("n_timesteps", "policy", "n_envs", "env_kwargs", "shaping", "horizon")
#: Policy names of the ``policy`` key: SB3's MLP, or the per-user scorers of
#: :mod:`edgellm.train.policies` (UserSetPolicy: MaskablePPO; UserSetScorePolicy: PPO, A2C).
SB3_POLICIES = ("MlpPolicy", "UserSetPolicy", "UserSetScorePolicy")
_POLICY_ALGOS = {"UserSetPolicy": ("maskable-ppo",), "UserSetScorePolicy": ("ppo", "a2c")}
#: Observation columns the ``shaping`` key may weigh (:mod:`edgellm.train.shaping`).
SHAPING_COLUMNS = ("in_batch", "addable", "present")
#: Values of the ``horizon`` key: returns over the env's episodes, or over one slot
#: (:mod:`edgellm.train.slots`).
HORIZONS = ("episode", "slot")
MAX_ENVS = 4096
VEC_ENVS = ("native", "dummy")
#: Constructor arguments the trainer sets itself.
RESERVED = ("self", "policy", "env", "tensorboard_log", "verbose", "seed", "device",
            "_init_setup_model")


@dataclass
class TrainArgs:
    """Everything ``edgellm train`` needs (CLI flags map 1:1 onto these fields)."""

    algo: str = "dagger"
    scenario: str = "default"
    timesteps: int | None = None        # total env steps; None: n_timesteps of the YAML
    seed: int = 0
    logdir: str = "runs"
    run_name: str | None = None         # default "<algo>-<scenario>-s<seed>"
    hyperparams: dict = field(default_factory=dict)   # key=value overrides of the YAML
    hyperparams_file: str | None = None  # another YAML instead of the packaged one
    scenario_overrides: dict = field(default_factory=dict)  # e.g. {"n_users": 8}
    action_mode: str | None = None      # default per algo (DEFAULT_MODE)
    resume: bool = False                # continue from the last checkpoint
    checkpoint_freq: int = 10_000       # env steps between checkpoints
    eval_freq: int = 10_000             # env steps between held-out evaluations (0: off)
    eval_episodes: int = 2              # held-out episodes per periodic evaluation
    eval_slots: int | None = 100        # slots per periodic-evaluation episode
    final_eval_episodes: int = 4        # held-out episodes of the final evaluation
    final_eval_slots: int | None = None  # None: the scenario's max_slots
    max_seconds: float | None = None    # wall-time cap on training [s] (then save and stop)
    ray_address: str | None = None      # rllib-ppo: a Ray cluster; None: local Ray
    n_envs: int | None = None           # parallel training envs; None: n_envs of the YAML
    vec_env: str = "native"             # native (batched EdgeLLMVectorEnv) | dummy (SB3)
    torch_threads: int = 1              # torch intra-op threads (small MLPs: 1 is fastest)
    progress: bool = True
    verbose: int = 0

    @property
    def mode(self) -> str:
        return self.action_mode or DEFAULT_MODE[self.algo]

    @property
    def env_id(self) -> str:
        return ENV_IDS[self.mode]

    @property
    def run(self) -> str:
        return self.run_name or f"{self.algo}-{self.scenario}-s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.logdir) / self.run

    def to_dict(self) -> dict:
        """The arguments as plain data, with the resolved action mode and run folder."""
        return {**dataclasses.asdict(self), "action_mode": self.mode, "run_dir": str(self.run_dir)}

    def check(self) -> None:
        """Raise EdgeLLMError for a bad argument (one message naming it)."""
        from edgellm.envs import SCENARIOS

        check_choice(self.algo, "--algo", TRAIN_ALGOS)
        check_choice(self.scenario, "--scenario", SCENARIOS)
        check_choice(self.mode, f"--action-mode ({self.algo})", ALLOWED_MODES[self.algo])
        check_choice(self.vec_env, "--vec-env", VEC_ENVS)
        for name, lo in (("timesteps", 1), ("torch_threads", 1), ("checkpoint_freq", 1),
                         ("eval_episodes", 1), ("final_eval_episodes", 1), ("eval_slots", 1),
                         ("final_eval_slots", 1), ("eval_freq", 0)):
            if getattr(self, name) is not None or name == "eval_freq":
                setattr(self, name, check_number(getattr(self, name),
                                                 f"--{name.replace('_', '-')}", lo=lo,
                                                 integer=True))
        if self.n_envs is not None:
            self.n_envs = check_number(self.n_envs, "--n-envs", lo=1, hi=MAX_ENVS, integer=True)
        if self.max_seconds is not None:
            check_number(self.max_seconds, "--max-seconds", lo=0, lo_open=True)


# ----------------------------------------------------------------------------- imitation
EXPERTS = ("oracle", "oracle-urgent")  # teachers of bc / dagger (edgellm.train.imitation)


@dataclass
class ImitationHP:
    """Hyperparameters of behaviour cloning / DAgger (``bc.yml``, ``dagger.yml``)."""

    n_timesteps: int = 30_000     # env steps collected in total
    net_arch: list = field(default_factory=lambda: [256, 256])  # hidden widths
    activation: str = "relu"      # relu | tanh
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    steps_per_iter: int = 2000    # env steps collected per iteration
    grad_steps: int = 300         # minibatch updates per iteration
    buffer_size: int = 300_000    # samples kept
    beta0: float = 1.0            # expert share of the actions at iteration 0
    beta_decay: float = 0.5       # beta_i = beta0 * beta_decay ** i (1.0 for bc)
    finetune_steps: int = 0       # MaskablePPO fine-tuning steps afterwards (0: none)
    augment: bool = True          # random user permutations of each minibatch
    expert: str = "oracle"        # teacher: oracle (myopic DFTSP) | oracle-urgent (foresight)
    finetune_learning_rate: Any = 1e-4  # MaskablePPO fine-tuning: number or lin_<x>
    finetune_gamma: float = 0.99
    finetune_n_envs: int = 16     # fine-tuning envs (--n-envs overrides)
    finetune_rollout: int = 4096  # env steps per PPO rollout (all envs)
    finetune_warmup: int = 0      # first steps train the critic only (actor frozen)
    finetune_eval_freq: int = 20_000  # held-out evaluations; the best policy is kept


_IMITATION_RULES = {  # key -> (check, rule text)
    "n_timesteps": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "net_arch": (lambda v: isinstance(v, list) and len(v) >= 1
                 and all(is_integer(h) and h >= 1 for h in v), "a non-empty list of integers >= 1"),
    "activation": (lambda v: v in ACTIVATIONS, " or ".join(ACTIVATIONS)),
    "learning_rate": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "batch_size": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "steps_per_iter": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "grad_steps": (lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    "buffer_size": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "beta0": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "beta_decay": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "finetune_steps": (lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    "augment": (lambda v: isinstance(v, bool), "true or false"),
    "expert": (lambda v: v in EXPERTS, " or ".join(EXPERTS)),
    "finetune_learning_rate": (lambda v: (is_number(v) and v > 0) or _is_lin(v),
                               "a number > 0 or 'lin_<number>'"),
    "finetune_gamma": (lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "finetune_n_envs": (lambda v: is_integer(v) and 1 <= v <= MAX_ENVS,
                        f"an integer in [1, {MAX_ENVS}]"),
    "finetune_rollout": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "finetune_warmup": (lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    "finetune_eval_freq": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
}

@dataclass
class RLlibPPOHP:
    """Hyperparameters of ``rllib-ppo`` (``rllib-ppo.yml``; RLlib's names where they differ:
    n_envs = num_envs_per_env_runner, learning_rate = lr, gae_lambda = lambda_,
    net_arch = fcnet_hiddens)."""

    n_timesteps: int = 100_000    # env steps in total
    n_envs: int = 4               # envs per env runner
    num_env_runners: int = 0      # 0: sample in the driver; else Ray actors of 1 CPU each
    net_arch: list = field(default_factory=lambda: [256, 256])
    activation: str = "relu"      # relu | tanh
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    train_batch_size: int = 2000  # env steps per training iteration
    minibatch_size: int = 256
    num_epochs: int = 10
    entropy_coeff: float = 0.01
    clip_param: float = 0.2
    vf_loss_coeff: float = 0.5


# Range rules for common SB3 keys (beyond the type of the constructor's default).
_SB3_RULES = {
    "gamma": (lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "gae_lambda": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "n_steps": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "n_epochs": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "ent_coef": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "vf_coef": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "max_grad_norm": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "buffer_size": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "learning_starts": (lambda v: is_integer(v) and v >= 0, "an integer >= 0"),
    "tau": (lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "exploration_fraction": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "exploration_initial_eps": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "exploration_final_eps": (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "n_timesteps": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "n_envs": (lambda v: is_integer(v) and 1 <= v <= MAX_ENVS, f"an integer in [1, {MAX_ENVS}]"),
    "policy": (lambda v: v in SB3_POLICIES, " or ".join(SB3_POLICIES)),
    "env_kwargs": (lambda v: isinstance(v, dict), "a mapping of scenario overrides"),
    "shaping": (lambda v: isinstance(v, dict) and all(
        k in SHAPING_COLUMNS and is_number(w) for k, w in v.items()),
                f"a mapping of observation columns ({', '.join(SHAPING_COLUMNS)}) to "
                f"weights of the potential (edgellm.train.shaping)"),
    "horizon": (lambda v: v in HORIZONS,
                "'episode' or 'slot' (edgellm.train.slots: returns end at each slot)"),
}


_RLLIB_RULES = {
    **{k: _IMITATION_RULES[k] for k in ("n_timesteps", "net_arch", "activation",
                                        "learning_rate")},
    **{k: _SB3_RULES[k] for k in ("gamma", "gae_lambda", "n_envs")},
    "num_env_runners": (lambda v: is_integer(v) and 0 <= v <= 256, "an integer in [0, 256]"),
    "train_batch_size": _SB3_RULES["n_steps"],
    "minibatch_size": _SB3_RULES["batch_size"],
    "num_epochs": _SB3_RULES["n_epochs"],
    "entropy_coeff": _SB3_RULES["ent_coef"],
    "clip_param": _SB3_RULES["max_grad_norm"],  # a number > 0
    "vf_loss_coeff": _SB3_RULES["vf_coef"],
}


def _bad(algo: str, key: str, value: Any, rule: str) -> EdgeLLMError:
    return EdgeLLMError(f"hyperparameter {key}={value!r} ({algo}): must be {rule}")


def parse_overrides(items: list[str] | None, what: str = "--hyperparams") -> dict:
    """``KEY=VALUE`` strings -> dict; values parsed as YAML (numbers, lists, strings)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise EdgeLLMError(f"{what}: expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v) if v.strip() else v
        except yaml.YAMLError:
            out[k.strip()] = v
    return out


def load_yaml(algo: str, path: str | None = None) -> dict:
    """The raw YAML of ``algo`` (packaged file, or ``path``)."""
    try:
        if path is not None:
            text = Path(path).read_text()
        else:
            text = resources.files("edgellm.train").joinpath(f"hyperparams/{algo}.yml") \
                .read_text()
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as e:
        raise EdgeLLMError(f"hyperparameters of {algo}: cannot read {path or algo + '.yml'} "
                           f"({e})") from None
    if not isinstance(data, dict):
        raise EdgeLLMError(f"hyperparameters of {algo}: the YAML must map env ids to settings")
    return data


def resolve_hyperparams(args: TrainArgs) -> dict:
    """The YAML section of ``args.env_id`` with the overrides applied, validated."""
    data = load_yaml(args.algo, args.hyperparams_file)
    if args.env_id not in data:
        raise EdgeLLMError(f"hyperparameters of {args.algo}: no section {args.env_id!r} "
                           f"(sections: {', '.join(map(str, data))})")
    hp = dict(data[args.env_id] or {})
    hp.update(args.hyperparams)
    if args.algo in IMITATION_ALGOS:
        return validate_imitation(args.algo, hp)
    if args.algo in RLLIB_ALGOS:
        return validate_fields(args.algo, hp, RLlibPPOHP, _RLLIB_RULES)
    return validate_sb3(args.algo, hp)


def validate_imitation(algo: str, hp: dict) -> dict:
    return validate_fields(algo, hp, ImitationHP, _IMITATION_RULES)


def validate_fields(algo: str, hp: dict, cls, rules: dict) -> dict:
    """``hp`` over the defaults of dataclass ``cls``; every key checked by ``rules``."""
    names = [f.name for f in dataclasses.fields(cls)]
    out = dataclasses.asdict(cls())
    for k, v in hp.items():
        if k not in names:
            raise EdgeLLMError(f"hyperparameter {k!r} ({algo}): unknown key "
                               f"(allowed: {', '.join(names)})")
        ok, rule = rules[k]
        if not ok(v):
            raise _bad(algo, k, v, rule)
        out[k] = int(v) if is_integer(v) and isinstance(out[k], int) else v
    return out


def algo_class(algo: str):
    mod, cls = SB3_ALGOS[algo]
    return getattr(importlib.import_module(mod), cls)


def policy_class(name: str):
    """The ``policy`` argument of the algorithm for a name of :data:`SB3_POLICIES`: SB3's
    own names pass through, the project's resolve to their class."""
    if name == "MlpPolicy":
        return name
    from edgellm.train.policies import POLICIES

    return POLICIES[name]


def sb3_allowed_keys(algo: str) -> list[str]:
    params = inspect.signature(algo_class(algo).__init__).parameters
    return [*ZOO_KEYS, *(p for p in params if p not in RESERVED)]


def validate_sb3(algo: str, hp: dict) -> dict:
    """Check every key against the constructor's signature and its default's type."""
    params = inspect.signature(algo_class(algo).__init__).parameters
    allowed = sb3_allowed_keys(algo)
    out = {}
    for k, v in hp.items():
        if k not in allowed:
            raise EdgeLLMError(f"hyperparameter {k!r} ({algo}): unknown key "
                               f"(allowed: {', '.join(allowed)})")
        if k in _SB3_RULES:
            ok, rule = _SB3_RULES[k]
            if not ok(v):
                raise _bad(algo, k, v, rule)
            if k == "policy" and algo not in _POLICY_ALGOS.get(v, (algo,)):
                raise _bad(algo, k, v, f"MlpPolicy ({v} is for "
                                       f"{' or '.join(_POLICY_ALGOS[v])})")
            out[k] = int(v) if is_integer(v) and rule.startswith("an integer") else v
            continue
        if k == "policy_kwargs":
            out[k] = v  # parsed (and checked) by policy_kwargs()
            policy_kwargs(algo, v)
            continue
        if k in ("learning_rate", "clip_range", "clip_range_vf"):
            if v is None and k == "clip_range_vf":
                out[k] = v
                continue
            if is_number(v) and v > 0:
                out[k] = float(v)
                continue
            if _is_lin(v):
                out[k] = v
                continue
            raise _bad(algo, k, v, "a number > 0 or 'lin_<number>' (linear decay)")
        default = params[k].default
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise _bad(algo, k, v, "true or false")
        elif isinstance(default, int):
            if not is_integer(v):
                raise _bad(algo, k, v, "an integer")
            v = int(v)
        elif isinstance(default, float):
            if not is_number(v):
                raise _bad(algo, k, v, "a finite number")
            v = float(v)
        elif k == "train_freq":
            if not (is_integer(v) and v >= 1):
                raise _bad(algo, k, v, "an integer >= 1")
            v = int(v)
        out[k] = v
    return out


def policy_kwargs(algo: str, value: Any) -> dict:
    """rl-zoo3 writes policy_kwargs as a Python expression string: evaluate it safely."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise _bad(algo, "policy_kwargs", value, "a mapping or a string like "
                   "\"dict(net_arch=[64, 64])\"")
    import torch.nn as nn

    try:
        out = eval(value, {"__builtins__": {}}, {"dict": dict, "nn": nn, "list": list})  # noqa: S307
    except Exception as e:  # noqa: BLE001 - any error in the expression is the user's
        raise _bad(algo, "policy_kwargs", value, f"a valid expression ({e})") from None
    if not isinstance(out, dict):
        raise _bad(algo, "policy_kwargs", value, "an expression giving a dict")
    return out


def _is_lin(value) -> bool:
    """``lin_<x>`` with x > 0 (a linear schedule, see :func:`schedule`)."""
    try:
        return isinstance(value, str) and value.startswith("lin_") and float(value[4:]) > 0
    except ValueError:
        return False


def schedule(value):
    """``lin_<x>``: linear decay from x to 0 over training (rl-zoo3); numbers pass through."""
    if isinstance(value, str) and value.startswith("lin_"):
        x0 = float(value[4:])
        return lambda progress_remaining: progress_remaining * x0
    return value
