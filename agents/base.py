"""The policy interface shared by every scheduler, and the driver that plays one slot.

A *state-based* policy looks at the slot's candidates (a :class:`SlotView`, as returned by
``env.unwrapped.slot_view()``) and returns the batch to serve as a tuple of **user ids**;
instance index ``i`` of ``view.instance`` belongs to user ``view.users[i]``. The driver
(:meth:`Policy.play_slot`) turns that batch into actions for whatever action mode the env
uses, through ``env.unwrapped.action_for(users)`` (one step in ``subset`` and ``priority``
modes, one step per added user plus the dispatch in ``sequential`` mode).

A *learned* policy acts on observations instead; it overrides :meth:`Policy.play_slot`
(see :mod:`edgellm.agents.learned`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.system.feasibility import Prepared, prepare
from edgellm.system.instance import SlotInstance

# Safety net against an env whose slot never ends (e.g. an action_for that never dispatches).
_MAX_STEPS_PER_SLOT = 10_000


class SlotViewLike(Protocol):
    """What a state-based policy reads (the env's ``SlotView`` satisfies it)."""

    users: tuple[int, ...]
    instance: SlotInstance
    prepared: Prepared
    slot: int


@dataclass(frozen=True, eq=False)
class StaticView:
    """A :class:`SlotViewLike` built from a bare instance, for tests and offline use.

    ``users`` defaults to ``0 .. n-1``; ``request_ids`` (any key that grows in arrival
    order, as the env's request ids do) is optional and only read by FCFS.
    """

    instance: SlotInstance
    users: tuple[int, ...] = ()
    slot: int = 0
    request_ids: tuple[int, ...] = ()
    chosen: tuple[int, ...] = ()
    prepared: Prepared = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if not self.users:
            object.__setattr__(self, "users", tuple(range(self.instance.n_requests)))
        if len(self.users) != self.instance.n_requests:
            raise ValueError("users: need one user id per request of the instance")
        if self.prepared is None:
            object.__setattr__(self, "prepared", prepare(self.instance))


@dataclass
class SlotOutcome:
    """One slot played by a policy.

    ``decision_s`` is the wall time spent choosing (``select`` or ``predict`` calls) [s];
    ``info`` is the env's info dict of the step that closed the slot (``slot_done`` True).
    """

    obs: Any
    reward: float
    info: dict
    truncated: bool
    terminated: bool
    decision_s: float
    steps: int


class Policy:
    """Base class of every scheduler. Subclasses implement :meth:`select` (state-based) or
    override :meth:`play_slot` (observation-based)."""

    #: Registry name, e.g. ``"edf"``; also the label in eval tables.
    name: str = "policy"
    #: Action mode the policy must run in, or None when it works in any mode.
    action_mode: str | None = None

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; ``seed`` seeds any randomness of the policy."""

    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        """The batch to serve this slot, as user ids taken from ``view.users``."""
        raise NotImplementedError

    def play_slot(self, env, obs) -> SlotOutcome:
        """Step ``env`` until the current slot is dispatched; time only the decision."""
        base = env.unwrapped
        view = base.slot_view()
        t0 = time.perf_counter()
        users = tuple(int(u) for u in self.select(view))
        decision = time.perf_counter() - t0
        total = 0.0
        for steps in range(1, _MAX_STEPS_PER_SLOT + 1):
            action = base.action_for(users)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            if info.get("slot_done") or terminated or truncated:
                return SlotOutcome(obs, total, info, truncated, terminated, decision, steps)
        raise RuntimeError(f"{self.name}: slot not dispatched after {_MAX_STEPS_PER_SLOT} steps")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ObservationPolicy(Policy):
    """A policy that acts on observations, one env step at a time (learned models).
    Subclasses implement :meth:`act`; the decision time of a slot is the time in it."""

    def act(self, env, obs) -> Any:
        """The next action for observation ``obs`` of ``env``."""
        raise NotImplementedError

    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        raise EdgeLLMError(f"{self.name}: acts on observations; use play_slot(env, obs)")

    def play_slot(self, env, obs) -> SlotOutcome:
        total, decision = 0.0, 0.0
        for steps in range(1, _MAX_STEPS_PER_SLOT + 1):
            t0 = time.perf_counter()
            action = self.act(env, obs)
            decision += time.perf_counter() - t0
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            if info.get("slot_done") or terminated or truncated:
                return SlotOutcome(obs, total, info, truncated, terminated, decision, steps)
        raise RuntimeError(f"{self.name}: slot not dispatched after {_MAX_STEPS_PER_SLOT} steps")


def indices_to_users(view: SlotViewLike, indices) -> tuple[int, ...]:
    """Instance indices -> user ids (sorted)."""
    return tuple(sorted(int(view.users[int(i)]) for i in indices))


def users_to_indices(view: SlotViewLike, users) -> tuple[int, ...]:
    """User ids -> instance indices (sorted); a user without a candidate raises ValueError."""
    pos = {int(u): i for i, u in enumerate(view.users)}
    try:
        return tuple(sorted(pos[int(u)] for u in users))
    except KeyError as e:
        raise ValueError(f"user {e.args[0]} has no request this slot "
                         f"(candidates: {list(view.users)})") from None


def request_column(view: SlotViewLike, attr: str) -> np.ndarray:
    """One request attribute per candidate, as a float array in ``view.users`` order."""
    return view.prepared.columns[attr]
