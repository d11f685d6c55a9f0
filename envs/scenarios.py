"""Scenario presets: named :class:`ScenarioConfig` overrides, each with a stated purpose.

``get_scenario(name, **overrides)`` returns the preset with ``overrides`` applied; an
unknown preset or field, or a bad value, raises :class:`~edgellm.errors.EdgeLLMError`.

Version history of ``default``:

* after 0.1: text, photos and speech (LLaVA-1.5-13B) on 5 MHz up and down, a quarter of a
  20 MHz LTE/NR carrier: the radio binds because of what is sent. This is the
  ``multimodal`` preset of the first media release, renamed; that name is gone.
* 0.1: text only (Llama-2-13B W8A8) on a 40 kHz up / 2.5 kHz down slice; kept, unchanged,
  as ``thin-slice`` to reproduce earlier results.
"""

from __future__ import annotations

from typing import Any

from edgellm.envs.config import ScenarioConfig, _check_names, _coerce
from edgellm.errors import EdgeLLMError
from edgellm.system import channel

# system, radio and replay rule shared by the two Azure trace presets
_AZURE: dict[str, Any] = dict(
    n_users=16, model="llama-3-8b", quant="w4a16", device="rtx-4090", kv_cache="exact",
    uplink_hz=100e3, downlink_hz=10e3,
    uplink_noise_psd_w_per_hz=channel.noise_psd(channel.NOISE_FIGURE_DB["bs"]),
    downlink_noise_psd_w_per_hz=channel.noise_psd(channel.NOISE_FIGURE_DB["ue"]),
    en_power_w=1.0, tx_power_w=0.2, path_loss="3gpp-pico", distance_m=(10.0, 300.0),
    shadowing_db=8.0, fading_rho=0.9, workload="replay", max_prompt=8192, max_output=2048,
    overlength="truncate", queue_capacity=8, max_slots=200)

# The realistic carrier of `default` and `text-only`: a 20 MHz LTE/NR carrier (the largest
# LTE channel bandwidth, 3GPP TS 36.101 Table 5.6-1; one of the NR ones, TS 38.101-1 Table
# 5.3.2-1) of which the LLM service's 16 users get a quarter in each direction (5 MHz: about
# 1 MHz per scheduled user, as when a carrier is shared by ~20 active users); the base station
# keeps the power density of 40 dBm per 20 MHz (catalog DEFAULT_RADIO en_power_w), so 2.5 W
# over 5 MHz; handsets transmit 23 dBm (0.2 W), the maximum of UE power class 3
# (TS 38.101-1 Table 6.2.1-1).
_CARRIER = dict(
    n_users=16, model="llava-1.5-13b", quant="w8a8", device="rtx-4090", kv_cache="padded",
    slot_s=8.0, uplink_hz=5e6, downlink_hz=5e6, en_power_w=2.5, tx_power_w=0.2,
    distance_m=(20.0, 1000.0), shadowing_db=8.0, fading_rho=0.9, arrival="bernoulli",
    arrival_rate=0.5, trace="azure-conversation-2023", max_prompt=4096, max_output=256,
    deadline_s=(6.0, 24.0), ppl_tolerance=(0.05, 0.2, 0.5, 2.0), queue_capacity=8,
    max_slots=200, speech_codec="opus-fullband", question_s=(2.0, 10.0))

# name -> (purpose, overrides of the ScenarioConfig defaults). The defaults are the base
# system (Llama-2-7B W4A16, 20 MHz, ShareGPT lengths; see ScenarioConfig); "default" is the
# recommended benchmark scenario and overrides that base like every other preset.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": (
        "Text, photos and speech on a realistic carrier: 16 users of LLaVA-1.5-13B (SmoothQuant "
        "W8A8 on the Vicuna-13B language model, FP16 CLIP ViT-L/14-336 vision tower) on an RTX "
        "4090. 30% of the requests are text (Azure-conversation lengths), 30% a phone photo as "
        "messaging apps send it (median 200 kB; 576 image tokens) with a short typed question "
        "(LMSYS-Chat-1M prompt lengths), 40% spoken questions (2-10 s) answered by speech "
        "(Opus fullband speech, 32 kbit/s, 150 words per minute). The LLM service gets 5 MHz "
        "up and 5 MHz down, a quarter of a 20 MHz LTE/NR carrier, at the carrier's power "
        "density (2.5 W over 5 MHz), with 23 dBm handsets up to 1 km away. KV memory, "
        "deadlines, the uplink (photos) and the downlink (spoken answers) each bind in at "
        "least 5% of the oracle's slots (`edgellm scenario stats default`).",
        dict(_CARRIER, media_mix=(0.3, 0.3, 0.4)),
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
        "Radio-bound: the base system (Llama-2-7B W4A16) with short LMSYS-Chat-1M requests, "
        "users up to 1.5 km away and a very thin slice (20 kHz up, 1.5 kHz down), so the "
        "uplink and downlink, not the GPU, decide the batch; best-channel scheduling matters.",
        dict(model="llama-2-7b", quant="w4a16", uplink_hz=20e3, downlink_hz=1.5e3,
             en_power_w=0.2, tx_power_w=0.1, distance_m=(50.0, 1500.0),
             trace="lmsys-chat-1m", max_prompt=1024, max_output=512, fading_rho=0.5,
             arrival_rate=0.5, deadline_s=(3.0, 12.0), slot_s=6.0),
    ),
    "memory-tight": (
        "Memory-bound: the base system (Llama-2-7B W4A16 on a 24 GiB RTX 4090, padded KV "
        "cache, ShareGPT lengths) with 32 busy users, a wide 20 MHz carrier "
        "and long deadlines and slots, so how many requests fit in GPU memory decides the batch.",
        dict(n_users=32, uplink_hz=20e6, downlink_hz=20e6, en_power_w=10.0,
             deadline_s=(20.0, 60.0),
             slot_s=20.0, arrival_rate=0.9),
    ),
    "azure-conv": (
        "Replay of the Azure LLM inference trace 2023, conversation service (CC-BY 4.0, "
        "Patel et al., Splitwise, ISCA 2024): real arrivals and (prompt, output) lengths, "
        "time-scaled to 0.6 arrivals per user per slot and spread over 16 users by a seeded "
        "hash (system.traces). Llama-3-8B (AWQ W4A16, 16-bit embeddings) on an RTX 4090 with "
        "a paged KV cache; a 3GPP pico cell (TR 36.814 path loss 140.7 + 36.7 log10 d, "
        "users 10-300 m away) with receiver noise figures 5 dB at the base station (uplink) "
        "and 9 dB at the user (downlink), and a thin radio slice (100 kHz up, 10 kHz down). "
        "Prompts longer than the 8192-token context keep their last tokens (truncate).",
        dict(_AZURE, slot_s=6.0, trace="azure-conversation-2023", arrival_rate=0.6,
             deadline_s=(8.0, 30.0), ppl_tolerance=(0.2, 0.5, 1.0, 2.0)),
    ),
    "azure-code": (
        "Replay of the Azure LLM inference trace 2023, coding service (long prompts, median "
        "1469 tokens, short answers, median 13): the azure-conv system, radio (3GPP pico "
        "cell, noise figures 5 dB up / 9 dB down) and replay rule, with the code trace's "
        "arrivals time-scaled to 0.4 per user per slot and tight code-completion deadlines.",
        dict(_AZURE, slot_s=2.0, trace="azure-code-2023", arrival_rate=0.4,
             deadline_s=(2.0, 8.0), ppl_tolerance=(0.2, 0.5, 2.0)),
    ),
    "text-only": (
        "The `default` system and carrier with text requests only: on a realistic carrier "
        "text payloads are a few kbit, so the radio almost never binds and memory and "
        "deadlines decide the batch.",
        dict(_CARRIER, media_mix=(1.0, 0.0, 0.0)),
    ),
    "thin-slice": (
        "The `default` of version 0.1, kept to reproduce earlier results: text only, on a "
        "radio slice thousands of times narrower than a real cell gives a user. 16 users of "
        "Llama-2-13B (SmoothQuant W8A8) on an RTX 4090, Azure-conversation-like requests "
        "(median prompt 1020 tokens, answers capped at 256), users up to 1 km away, "
        "correlated fading, and 40 kHz up, 2.5 kHz down (text payloads are a few kbit, so "
        "only a slice this thin makes the radio matter). The per-slot oracle is stopped by KV "
        "memory, deadlines, the uplink and the downlink, each in at least 5% of slots "
        "(`edgellm scenario stats thin-slice`), the radio only because the slice is thin.",
        dict(n_users=16, model="llama-2-13b", quant="w8a8", device="rtx-4090",
             kv_cache="padded", slot_s=8.0, uplink_hz=40e3, downlink_hz=2.5e3,
             en_power_w=0.2, tx_power_w=0.1, distance_m=(20.0, 1000.0), shadowing_db=8.0,
             fading_rho=0.9, arrival="bernoulli", arrival_rate=0.5,
             trace="azure-conversation-2023", max_prompt=4096, max_output=256,
             deadline_s=(6.0, 24.0), ppl_tolerance=(0.05, 0.2, 0.5, 2.0), queue_capacity=8,
             max_slots=200),
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
        hint = (" (the multimodal preset of the first media release is `default` now)"
                if name == "multimodal" else "")
        raise EdgeLLMError(f"scenario: unknown preset {name!r}{hint} "
                           f"(known: {', '.join(SCENARIOS)})")


def get_scenario(name: str | ScenarioConfig = "default", **overrides: Any) -> ScenarioConfig:
    """Preset ``name`` (or a given config) with ``overrides`` applied, validated."""
    if isinstance(name, ScenarioConfig):
        return name.replace(**overrides) if overrides else name
    _known(name)
    _check_names(overrides)
    params = {**PRESETS[name][1], **_coerce(overrides)}
    return ScenarioConfig(**params)
