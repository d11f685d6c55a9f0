"""Scheduling policies behind one interface (SPEC section 5).

>>> from edgellm.agents import make_policy, POLICIES
>>> policy = make_policy("edf")
>>> users = policy.select(env.unwrapped.slot_view())     # a batch of user ids
>>> outcome = policy.play_slot(env, obs)                  # or: play one slot in any mode
"""

from edgellm.agents.base import (
    Policy,
    SlotOutcome,
    SlotViewLike,
    StaticView,
    indices_to_users,
    users_to_indices,
)
from edgellm.agents.heuristics import (
    BestChannelPolicy,
    EDFPolicy,
    FCFSPolicy,
    GreedyPolicy,
    RandomPolicy,
    SJFPolicy,
    StaticBatchPolicy,
    greedy_fill,
)
from edgellm.agents.oracle import OraclePolicy
from edgellm.agents.registry import (
    HEURISTICS,
    LEARNED_PREFIX,
    POLICIES,
    make_policy,
    parse_policy_list,
)

__all__ = [
    "HEURISTICS", "LEARNED_PREFIX", "POLICIES", "BestChannelPolicy", "EDFPolicy", "FCFSPolicy",
    "GreedyPolicy", "OraclePolicy", "Policy", "RandomPolicy", "SJFPolicy", "SlotOutcome",
    "SlotViewLike", "StaticBatchPolicy", "StaticView", "greedy_fill", "indices_to_users",
    "make_policy", "parse_policy_list", "users_to_indices",
]
