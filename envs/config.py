"""Scenario configuration of the multi-slot environment: one frozen dataclass (SPEC section 4).

A :class:`ScenarioConfig` holds every scenario parameter as plain data. Presets live in
:mod:`edgellm.envs.scenarios`; a config is built as ``preset defaults + overrides`` and
validated on construction: a bad value raises :class:`~edgellm.errors.EdgeLLMError` naming
the field, the value and the allowed range.

Units: seconds, Hz, W, W/Hz, metres, dB, tokens, bits.

``has_media`` is False for a text-only mix; then no media is drawn at all and the
environment runs exactly as without media.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.system import catalog, channel
from edgellm.system.catalog import DEFAULT_RADIO
from edgellm.system.instance import KV_MODES, OBJECTIVES, check_number
from edgellm.system.traces import TRACE_FILES

ARRIVALS = ("bernoulli", "bursty")
OVERFLOW = ("drop_new", "drop_oldest")
SUBSET_INFEASIBLE = ("repair", "reject")
WORKLOADS = ("lognormal", "empirical", "replay")
OVERLENGTH = ("truncate", "reject")


@dataclass(frozen=True)
class ScenarioConfig:
    """All parameters of one scenario. Every field has a default; see ``FIELD_DOCS``."""

    # system (catalog names, SPEC 6)
    n_users: int = 16
    model: str = "llama-2-7b"
    quant: str = "w4a16"
    device: str = "rtx-4090"
    kv_cache: str = "padded"
    objective: str = "requests"
    slot_s: float = 5.0
    # radio
    uplink_hz: float = DEFAULT_RADIO["uplink_hz"]
    downlink_hz: float = DEFAULT_RADIO["downlink_hz"]
    noise_psd_w_per_hz: float = DEFAULT_RADIO["noise_psd_w_per_hz"]
    en_power_w: float = DEFAULT_RADIO["en_power_w"]
    bits_per_token: float = DEFAULT_RADIO["bits_per_token"]
    tx_power_w: float = 0.2
    uplink_noise_psd_w_per_hz: float | None = None
    downlink_noise_psd_w_per_hz: float | None = None
    # channels
    path_loss: str = "legacy"
    distance_m: tuple[float, float] = (20.0, 300.0)
    shadowing_db: float = 8.0
    fading_rho: float = 0.0
    # traffic
    arrival: str = "bernoulli"
    arrival_rate: float = 0.3
    burst_rate: float = 0.9
    p_enter_burst: float = 0.05
    p_leave_burst: float = 0.3
    trace: str = "sharegpt"
    workload: str = "lognormal"
    overlength: str = "truncate"
    max_prompt: int = 2048
    max_output: int = 1024
    deadline_s: tuple[float, float] = (2.0, 12.0)
    ppl_tolerance: tuple[float, ...] = (0.05, 0.2, 0.5, 2.0)
    # media (system/media.py; catalog media.yaml)
    media_mix: tuple[float, float, float] = (1.0, 0.0, 0.0)
    image_source: str = "phone-photo-messaging"
    speech_codec: str = "opus-wideband"
    question_s: tuple[float, float] = (2.0, 10.0)
    # queues and episode
    queue_capacity: int = 8
    overflow: str = "drop_new"
    reject_unservable: bool = True
    max_slots: int = 200
    # reward and actions
    drop_penalty: float = 0.0
    invalid_penalty: float = 0.0
    subset_infeasible: str = "repair"

    def __post_init__(self):
        _validate(self)

    def replace(self, **overrides: Any) -> ScenarioConfig:
        """A copy with ``overrides`` applied (validated; unknown names raise)."""
        _check_names(overrides)
        return replace(self, **_coerce(overrides))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def has_media(self) -> bool:
        """Some requests carry images or speech (``media_mix`` is not text only)."""
        return any(self.media_mix[1:])


FIELD_DOCS = {
    "n_users": "K, number of users (fixed per env)",
    "model": "catalog model name", "quant": "catalog quantization scheme",
    "device": "catalog GPU name", "kv_cache": "padded | exact", "objective": "requests | tokens",
    "slot_s": "epoch length [s]", "uplink_hz": "B_U [Hz]", "downlink_hz": "B_D [Hz]",
    "noise_psd_w_per_hz": "N0 [W/Hz] of both links unless set per link below",
    "uplink_noise_psd_w_per_hz": "N0 of the uplink receiver, the base station [W/Hz] "
                                 "(None: noise_psd_w_per_hz)",
    "downlink_noise_psd_w_per_hz": "N0 of the downlink receiver, the user [W/Hz] "
                                   "(None: noise_psd_w_per_hz)",
    "path_loss": "path-loss model (system.channel.PATH_LOSS_MODELS: 3gpp-macro, 3gpp-pico, "
                 "legacy = version-0.1 macro clipped at 1 m); distance_m must lie in its range",
    "en_power_w": "P_EN [W]",
    "bits_per_token": "bits per token on air", "tx_power_w": "user transmit power p_k [W]",
    "distance_m": "users uniform over an annulus with these radii [m], drawn at reset",
    "shadowing_db": "log-normal shadowing std [dB], per user, drawn at reset",
    "fading_rho": "Gauss-Markov fading correlation per slot in [0, 1] (0: i.i.d. Rayleigh)",
    "arrival": "bernoulli | bursty (two-state Markov-modulated Bernoulli)",
    "arrival_rate": "arrival probability per user per slot (calm state when bursty; replay: "
                    "mean arrivals per user per slot)",
    "burst_rate": "arrival probability per user per slot in the burst state",
    "p_enter_burst": "probability per slot that a calm user enters the burst state",
    "p_leave_burst": "probability per slot that a bursting user calms down",
    "trace": "workload trace (catalog workloads.yaml; empirical and replay need a shipped "
             "trace file: azure-conversation-2023, azure-code-2023)",
    "workload": "lognormal (lengths fitted to the trace's statistics, Bernoulli/bursty "
                "arrivals) | empirical (lengths of random trace rows) | replay (arrivals and "
                "lengths of the trace, time-scaled to arrival_rate; system.traces)",
    "overlength": "empirical/replay: a row with prompt + output > the model's max_context is "
                  "truncate (prompt keeps its last max_context - output tokens) or reject "
                  "(never enters a queue); counted in info['overlength']",
    "max_prompt": "cap on prompt tokens (lognormal workload); the observation's prompt scale",
    "max_output": "cap on output tokens (a trace row's output too: the server's max_tokens)",
    "deadline_s": "(lo, hi): deadline at arrival, uniform [s]",
    "ppl_tolerance": "perplexity tolerances, one drawn uniformly per request",
    "media_mix": "shares of text, image and voice requests (image needs a vision-language "
                 "model); (1, 0, 0): text only",
    "image_source": "photo sizes of image requests (catalog media.yaml images)",
    "speech_codec": "codec of spoken questions and answers (catalog media.yaml speech)",
    "question_s": "(lo, hi): length of a spoken question, uniform [s]",
    "queue_capacity": "Q, requests per user queue",
    "overflow": "drop_new (tail drop) | drop_oldest (the head is pushed out)",
    "reject_unservable": "drop at arrival requests no batch can ever serve (cause 'rejected')",
    "max_slots": "episode length in slots (then truncated)",
    "drop_penalty": "reward penalty per dropped request, times its objective weight",
    "invalid_penalty": "reward penalty per invalid action",
    "subset_infeasible": "repair | reject: what the subset mode does with an infeasible choice",
}


def _err(name: str, value: Any, rule: str) -> EdgeLLMError:
    return EdgeLLMError(f"scenario.{name}: must be {rule}, got {value!r}")


def _check_names(overrides: dict) -> None:
    names = [f.name for f in fields(ScenarioConfig)]
    for k in overrides:
        if k not in names:
            raise EdgeLLMError(f"scenario.{k}: unknown field (allowed: {', '.join(names)})")


def _coerce(overrides: dict) -> dict:
    """Lists (e.g. from JSON or gym.make kwargs) become tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


def _num(cfg, name, lo=None, hi=None, lo_open=False, integer=False):
    value = check_number(getattr(cfg, name), f"scenario.{name}", lo=lo, hi=hi,
                         lo_open=lo_open, integer=integer)
    object.__setattr__(cfg, name, value)


def _choice(cfg, name, allowed):
    v = getattr(cfg, name)
    if v not in allowed:
        raise _err(name, v, f"one of {', '.join(allowed)}")


def _range(cfg, name, lo_open=True):
    v = getattr(cfg, name)
    rule = "a pair (lo, hi) of finite numbers with 0 < lo <= hi"
    try:
        a, b = (float(x) for x in v)
    except (TypeError, ValueError):
        raise _err(name, v, rule) from None
    if not (math.isfinite(a) and math.isfinite(b) and 0 < a <= b):
        raise _err(name, v, rule)
    object.__setattr__(cfg, name, (a, b))


def _validate(cfg: ScenarioConfig) -> None:
    _num(cfg, "n_users", lo=1, hi=4096, integer=True)
    for name, known in (("model", catalog.models()), ("quant", catalog.quantizations()),
                        ("device", catalog.devices()), ("trace", sorted(catalog.traces()))):
        _choice(cfg, name, tuple(known))
    _choice(cfg, "kv_cache", KV_MODES)
    _choice(cfg, "objective", OBJECTIVES)
    for name in ("slot_s", "uplink_hz", "downlink_hz", "noise_psd_w_per_hz", "en_power_w",
                 "bits_per_token", "tx_power_w"):
        _num(cfg, name, lo=0, lo_open=True)
    for name in ("uplink_noise_psd_w_per_hz", "downlink_noise_psd_w_per_hz"):
        if getattr(cfg, name) is not None:
            _num(cfg, name, lo=0, lo_open=True)
    _range(cfg, "distance_m")
    _choice(cfg, "path_loss", tuple(channel.PATH_LOSS_MODELS))
    pl = channel.PATH_LOSS_MODELS[cfg.path_loss]
    if not pl.min_m <= cfg.distance_m[0] <= cfg.distance_m[1] <= pl.max_m:
        raise _err("distance_m", cfg.distance_m,
                   f"within the {cfg.path_loss} model's range [{pl.min_m:g}, {pl.max_m:g}] m")
    _num(cfg, "shadowing_db", lo=0)
    _num(cfg, "fading_rho", lo=0, hi=1)
    _choice(cfg, "arrival", ARRIVALS)
    for name in ("arrival_rate", "burst_rate", "p_enter_burst", "p_leave_burst"):
        _num(cfg, name, lo=0, hi=1)
    stats = catalog.traces()[cfg.trace]
    def usable(s):
        return all(f"{w}_tokens_mean" in s or f"{w}_tokens_median" in s
                   for w in ("prompt", "output"))

    if not usable(stats):
        raise _err("trace", cfg.trace, "a trace with published prompt and output lengths ("
                   + ", ".join(t for t, s in catalog.traces().items() if usable(s)) + ")")
    _num(cfg, "max_prompt", lo=1, integer=True)
    _num(cfg, "max_output", lo=1, integer=True)
    _choice(cfg, "workload", WORKLOADS)
    _choice(cfg, "overlength", OVERLENGTH)
    if cfg.workload != "lognormal":
        if cfg.trace not in TRACE_FILES:
            raise _err("trace", cfg.trace, f"a shipped trace file for workload "
                       f"{cfg.workload!r} ({', '.join(TRACE_FILES)})")
        if cfg.max_output >= catalog.max_context(cfg.model):
            raise _err("max_output", cfg.max_output,
                       f"below the model's max_context ({catalog.max_context(cfg.model)})")
        if cfg.workload == "replay" and cfg.arrival_rate <= 0:
            raise _err("arrival_rate", cfg.arrival_rate, "> 0 for workload 'replay'")
    _range(cfg, "deadline_s")
    tol = cfg.ppl_tolerance
    if isinstance(tol, (int, float)):
        tol = (tol,)
    try:
        tol = tuple(float(x) for x in tol)
    except (TypeError, ValueError):
        raise _err("ppl_tolerance", cfg.ppl_tolerance,
                   "a non-empty list of finite numbers >= 0") from None
    if not tol or not all(math.isfinite(x) and x >= 0 for x in tol):
        raise _err("ppl_tolerance", cfg.ppl_tolerance, "a non-empty list of finite numbers >= 0")
    object.__setattr__(cfg, "ppl_tolerance", tol)
    _validate_media(cfg)
    _num(cfg, "queue_capacity", lo=1, hi=4096, integer=True)
    _choice(cfg, "overflow", OVERFLOW)
    if not isinstance(cfg.reject_unservable, bool):
        raise _err("reject_unservable", cfg.reject_unservable, "true or false")
    _num(cfg, "max_slots", lo=1, integer=True)
    _num(cfg, "drop_penalty", lo=0)
    _num(cfg, "invalid_penalty", lo=0)
    _choice(cfg, "subset_infeasible", SUBSET_INFEASIBLE)


def _validate_media(cfg: ScenarioConfig) -> None:
    from edgellm.system import media

    rule = "three finite shares >= 0 (text, image, voice) with a positive sum"
    try:
        mix = tuple(float(x) for x in cfg.media_mix)
    except (TypeError, ValueError):
        raise _err("media_mix", cfg.media_mix, rule) from None
    if len(mix) != 3 or not all(math.isfinite(x) and x >= 0 for x in mix) or sum(mix) <= 0:
        raise _err("media_mix", cfg.media_mix, rule)
    object.__setattr__(cfg, "media_mix", mix)
    if mix[media.IMAGE] > 0 and cfg.model not in media.vision_models():
        raise _err("media_mix", cfg.media_mix, "text and voice only (image share 0) for model "
                   f"{cfg.model!r}, which has no vision encoder (vision-language models: "
                   f"{', '.join(media.vision_models())})")
    _choice(cfg, "image_source", tuple(catalog._load("media")["images"]))
    _choice(cfg, "speech_codec", tuple(catalog._load("media")["speech"]))
    _range(cfg, "question_s")
