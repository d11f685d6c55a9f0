"""Scenario presets: named :class:`ScenarioConfig` overrides, each with a stated purpose.

``get_scenario(name, **overrides)`` returns the preset with ``overrides`` applied; an
unknown preset or field, or a bad value, raises :class:`~edgellm.errors.EdgeLLMError`.
"""

from __future__ import annotations

from typing import Any

from edgellm.envs.config import ScenarioConfig, _check_names, _coerce
from edgellm.errors import EdgeLLMError

# name -> (purpose, overrides of the ScenarioConfig defaults)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": (
        "A genuinely multi-resource scheduling problem: 16 users of Llama-2-13B (SmoothQuant "
        "W8A8) on an RTX 4090, Azure-conversation-like requests (median prompt 1020 tokens, "
        "answers capped at 256), users up to 1 km away, correlated fading, and a narrow radio "
        "slice for the LLM service (40 kHz up, 2.5 kHz down: text payloads are a few kbit, so "
        "only a thin slice makes the radio matter). The per-slot oracle is stopped by KV "
        "memory, deadlines, the uplink and the downlink, each in at least 5% of slots "
        "(`edgellm scenario stats default`).",
        dict(n_users=16, model="llama-2-13b", quant="w8a8", device="rtx-4090",
             kv_cache="padded", slot_s=8.0, uplink_hz=40e3, downlink_hz=2.5e3,
             en_power_w=0.2, tx_power_w=0.1, distance_m=(20.0, 1000.0), shadowing_db=8.0,
             fading_rho=0.9, arrival="bernoulli", arrival_rate=0.5,
             trace="azure-conversation-2023", max_prompt=4096, max_output=256,
             deadline_s=(6.0, 24.0), ppl_tolerance=(0.05, 0.2, 0.5, 2.0), queue_capacity=8,
             max_slots=200),
    ),
    "paper": (
        "Close to the source paper's single-epoch setting: a fixed population of 16 users, each "
        "with exactly one fresh request every slot (arrival probability 1, queue capacity 1, an "
        "unserved request is replaced by the next one and counted as an overflow drop), i.i.d. "
        "Rayleigh fading, ShareGPT lengths, a 20 MHz carrier. Each slot is an independent "
        "instance of the slot problem of SPEC section 2.",
        dict(n_users=16, model="llama-2-7b", quant="w4a16", device="rtx-4090",
             slot_s=5.0, uplink_hz=20e6, downlink_hz=20e6, fading_rho=0.0,
             arrival="bernoulli", arrival_rate=1.0, queue_capacity=1, overflow="drop_oldest",
             trace="sharegpt", deadline_s=(2.0, 12.0), max_slots=100),
    ),
    "bursty": (
        "Time-varying load: each user alternates between a calm state (arrival probability "
        "0.1) and a burst state (0.9), a two-state Markov-modulated Bernoulli process with mean "
        "burst length 4 slots. Queues fill and overflow in bursts, so a policy that looks at "
        "queue lengths and deadlines can beat the myopic oracle.",
        dict(arrival="bursty", arrival_rate=0.1, burst_rate=0.9, p_enter_burst=0.08,
             p_leave_burst=0.25, uplink_hz=5e6, downlink_hz=5e6, fading_rho=0.9,
             slot_s=4.0, queue_capacity=6),
    ),
    "narrowband": (
        "Radio-bound: the default system with short LMSYS-Chat-1M requests, users up to "
        "1.5 km away and a very thin slice (20 kHz up, 1.5 kHz down), so the uplink and "
        "downlink, not the GPU, decide the batch; best-channel scheduling matters.",
        dict(model="llama-2-7b", quant="w4a16", uplink_hz=20e3, downlink_hz=1.5e3,
             en_power_w=0.2, tx_power_w=0.1, distance_m=(50.0, 1500.0),
             trace="lmsys-chat-1m", max_prompt=1024, max_output=512, fading_rho=0.5,
             arrival_rate=0.5, deadline_s=(3.0, 12.0), slot_s=6.0),
    ),
    "memory-tight": (
        "Memory-bound: the default system (Llama-2-13B W8A8 on a 24 GiB RTX 4090, padded KV "
        "cache, long Azure-conversation prompts) with 32 busy users, a wide 20 MHz carrier "
        "and long deadlines and slots, so how many requests fit in GPU memory decides the batch.",
        dict(n_users=32, uplink_hz=20e6, downlink_hz=20e6, en_power_w=10.0,
             deadline_s=(20.0, 60.0),
             slot_s=20.0, arrival_rate=0.9),
    ),
    "planning": (
        "Where planning matters: 8 nearly static users (fixed wireless terminals, so the "
        "small-scale gain decorrelates over minutes: Gauss-Markov rho 0.995 per 4 s slot) of a "
        "text assistant over a thin radio slice (20 kHz up, 1.5 kHz down), sessions that "
        "alternate between idle (arrival probability 0.02) and active (a request every slot; "
        "mean active spell 20 slots, idle 25), Azure-conversation lengths (short and long "
        "prompts) and deadlines from 4.5 s (interactive) to 2 min (background). Serving the "
        "urgent requests during a burst and the patient ones after it, on a good channel, "
        "beats the per-slot optimum by more than 15% (`edgellm bound --scenario planning`).",
        dict(n_users=8, model="llama-2-7b", quant="w4a16", device="rtx-4090", slot_s=4.0,
             uplink_hz=20e3, downlink_hz=1.5e3, en_power_w=0.2, tx_power_w=0.1,
             distance_m=(50.0, 1200.0), fading_rho=0.995, arrival="bursty",
             arrival_rate=0.02, burst_rate=1.0, p_enter_burst=0.04, p_leave_burst=0.05,
             trace="azure-conversation-2023", max_prompt=4096, max_output=256,
             deadline_s=(4.5, 120.0), queue_capacity=32, max_slots=200),
    ),
}

SCENARIOS: tuple[str, ...] = tuple(PRESETS)


def purpose(name: str) -> str:
    """The stated purpose of preset ``name``."""
    _known(name)
    return PRESETS[name][0]


def _known(name: str) -> None:
    if not isinstance(name, str) or name not in PRESETS:
        raise EdgeLLMError(f"scenario: unknown preset {name!r} (known: {', '.join(SCENARIOS)})")


def get_scenario(name: str | ScenarioConfig = "default", **overrides: Any) -> ScenarioConfig:
    """Preset ``name`` (or a given config) with ``overrides`` applied, validated."""
    if isinstance(name, ScenarioConfig):
        return name.replace(**overrides) if overrides else name
    _known(name)
    _check_names(overrides)
    params = {**PRESETS[name][1], **_coerce(overrides)}
    return ScenarioConfig(**params)
