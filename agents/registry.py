"""Policies by name: ``make_policy("edf")``, ``make_policy("learned:runs/ppo/model.zip")``."""

from __future__ import annotations

from collections.abc import Callable

from edgellm.agents.base import Policy
from edgellm.agents.foresight import UrgentOraclePolicy
from edgellm.agents.heuristics import (
    BestChannelPolicy,
    EDFPolicy,
    FCFSPolicy,
    RandomPolicy,
    SJFPolicy,
    StaticBatchPolicy,
)
from edgellm.agents.oracle import OraclePolicy
from edgellm.agents.rollout import RolloutPolicy
from edgellm.errors import EdgeLLMError

#: Built-in policies by registry name.
POLICIES: dict[str, Callable[..., Policy]] = {
    "oracle": OraclePolicy,
    "oracle-urgent": UrgentOraclePolicy,
    "rollout": RolloutPolicy,
    "fcfs": FCFSPolicy,
    "sjf": SJFPolicy,
    "edf": EDFPolicy,
    "best-channel": BestChannelPolicy,
    "static-batch": StaticBatchPolicy,
    "random": RandomPolicy,
}
LEARNED_PREFIX = "learned:"
#: Exact per-slot optimisers (myopic, and the lexicographic foresight variant).
ORACLES = ("oracle", "oracle-urgent")
#: Every built-in heuristic (everything but the oracles and the planners).
HEURISTICS = tuple(n for n in POLICIES if n not in ORACLES and n != "rollout")


def valid_names() -> str:
    return ", ".join([*POLICIES, f"{LEARNED_PREFIX}PATH"])


def make_policy(name: str, **kw) -> Policy:
    """Build a policy by registry name; ``learned:PATH`` loads a model saved by ``train/``.

    Keyword arguments go to the policy's constructor (e.g. ``batch_size`` for static-batch).
    """
    if not isinstance(name, str) or not name:
        raise EdgeLLMError(f"policy: expected a name, got {name!r}; valid: {valid_names()}")
    if name.startswith(LEARNED_PREFIX):
        path = name[len(LEARNED_PREFIX):]
        if not path:
            raise EdgeLLMError(f"policy {name!r}: give the model path, e.g. "
                               f"learned:runs/ppo/model.zip")
        from edgellm.agents.learned import LearnedPolicy

        return LearnedPolicy(path, name=name, **kw)
    if name not in POLICIES:
        raise EdgeLLMError(f"unknown policy {name!r}; valid: {valid_names()}")
    try:
        return POLICIES[name](**kw)
    except TypeError as e:
        raise EdgeLLMError(f"policy {name!r}: bad options {sorted(kw)} ({e})") from None


def parse_policy_list(text: str) -> list[str]:
    """Split a comma list of policy names, check each, keep order, drop repeats."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise EdgeLLMError(f"--policies: empty list; valid: {valid_names()}")
    bad = [n for n in names if n not in POLICIES and not n.startswith(LEARNED_PREFIX)]
    if bad:
        raise EdgeLLMError(f"unknown polic{'y' if len(bad) == 1 else 'ies'} "
                           f"{', '.join(map(repr, bad))}; valid: {valid_names()}")
    return list(dict.fromkeys(names))
