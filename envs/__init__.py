"""Multi-slot Gymnasium environment of edge LLM batch scheduling (SPEC section 4).

Importing this package registers one versioned id per action mode, so any project can
``gym.make("edgellm.envs:EdgeLLM-Subset-v0", scenario="bursty")``, and
``gym.make_vec(id, num_envs=N, ...)`` returns the native batched
:class:`~edgellm.envs.vector.EdgeLLMVectorEnv` (N envs stepped in compiled calls):

===========================  ==================================================
id                           action space
===========================  ==================================================
``EdgeLLM-Sequential-v0``    Discrete(K + 1): add a user, or K = dispatch
``EdgeLLM-Subset-v0``        MultiBinary(K): the batch in one step
``EdgeLLM-Priority-v0``      Box(-1, 1, (K,)): scores, greedy feasible fill
===========================  ==================================================
"""

from __future__ import annotations

import gymnasium as gym

from edgellm.envs.config import FIELD_DOCS, ScenarioConfig
from edgellm.envs.env import ACTION_MODES, DROP_CAUSES, EdgeLLMEnv, SlotView
from edgellm.envs.scenarios import PRESETS, SCENARIOS, get_scenario, purpose

ENV_IDS = {
    "sequential": "EdgeLLM-Sequential-v0",
    "subset": "EdgeLLM-Subset-v0",
    "priority": "EdgeLLM-Priority-v0",
}


def _register() -> None:
    for mode, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="edgellm.envs.env:EdgeLLMEnv",
                         vector_entry_point="edgellm.envs.vector:EdgeLLMVectorEnv",
                         kwargs={"action_mode": mode})


_register()

__all__ = [
    "ACTION_MODES", "DROP_CAUSES", "ENV_IDS", "FIELD_DOCS", "PRESETS", "SCENARIOS",
    "EdgeLLMEnv", "ScenarioConfig", "SlotView", "get_scenario", "purpose",
]
