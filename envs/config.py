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
from edgellm.system.catalog import DEFAULT_RADIO, DEFAULT_SYSTEM
from edgellm.system.instance import KV_MODES, OBJECTIVES
from edgellm.system.traces import TRACE_FILES
from edgellm.system.validate import (
    check_bool,
    check_choice,
    check_interval,
    check_number,
    check_numbers,
    fail,
)
from edgellm.system.workloads import DEFAULT_WORKLOAD as _W
from edgellm.system.workloads import Workload

ARRIVALS = ("bernoulli", "bursty")
OVERFLOW = ("drop_new", "drop_oldest")
SUBSET_INFEASIBLE = ("repair", "reject")
WORKLOADS = ("lognormal", "empirical", "replay")
OVERLENGTH = ("truncate", "reject")


@dataclass(frozen=True)
class ScenarioConfig:
    """All parameters of one scenario. Every field has a default; see ``FIELD_DOCS``.

    The defaults are the *base system* every preset overrides: Llama-2-7B W4A16 on an
    RTX 4090 (:data:`~edgellm.system.catalog.DEFAULT_SYSTEM`), a 20 MHz radio
    (``DEFAULT_RADIO``) and ShareGPT-like requests
    (:data:`~edgellm.system.workloads.DEFAULT_WORKLOAD`), the system of the random slot
    instances too. They are not the ``default`` preset: that one is the recommended
    benchmark, a harder multi-resource scenario written as overrides of this base (see
    :mod:`edgellm.envs.scenarios`), so ``get_scenario("default") != ScenarioConfig()``.
    """

    # system (catalog names, SPEC 6)
    n_users: int = 16
    model: str = DEFAULT_SYSTEM["model"]
    quant: str = DEFAULT_SYSTEM["quant"]
    device: str = DEFAULT_SYSTEM["device"]
    kv_cache: str = DEFAULT_SYSTEM["kv_cache"]
    objective: str = DEFAULT_SYSTEM["objective"]
    slot_s: float = DEFAULT_SYSTEM["slot_s"]
    # radio
    uplink_hz: float = DEFAULT_RADIO["uplink_hz"]
    downlink_hz: float = DEFAULT_RADIO["downlink_hz"]
    noise_psd_w_per_hz: float = DEFAULT_RADIO["noise_psd_w_per_hz"]
    en_power_w: float = DEFAULT_RADIO["en_power_w"]
    bits_per_token: float = DEFAULT_RADIO["bits_per_token"]
    tx_power_w: float = _W.tx_power_w
    uplink_noise_psd_w_per_hz: float | None = None
    downlink_noise_psd_w_per_hz: float | None = None
    # channels
    path_loss: str = _W.path_loss
    distance_m: tuple[float, float] = _W.distance_m
    shadowing_db: float = _W.shadowing_db
    fading_rho: float = 0.0
    # traffic
    arrival: str = "bernoulli"
    arrival_rate: float = 0.3
    burst_rate: float = 0.9
    p_enter_burst: float = 0.05
    p_leave_burst: float = 0.3
    trace: str = _W.trace
    workload: str = "lognormal"
    overlength: str = "truncate"
    max_prompt: int = _W.max_prompt
    max_output: int = _W.max_output
    deadline_s: tuple[float, float] = _W.deadline_s
    ppl_tolerance: tuple[float, ...] = _W.ppl_tolerance
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
    def distributions(self) -> Workload:
        """The request-length (lognormal workload), deadline, tolerance and layout
        distributions of this scenario."""
        return Workload(**{f.name: getattr(self, f.name) for f in fields(Workload)})

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


def _check_names(overrides: dict) -> None:
    names = [f.name for f in fields(ScenarioConfig)]
    for k in overrides:
        if k not in names:
            raise EdgeLLMError(f"scenario.{k}: unknown field (allowed: {', '.join(names)})")


def _coerce(overrides: dict) -> dict:
    """Lists (e.g. from JSON or gym.make kwargs) become tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


def _set(cfg, name: str, check, *args, **kw) -> None:
    """Validate field ``name`` with ``check`` (from :mod:`edgellm.system.validate`) and store
    the normalised value."""
    value = check(getattr(cfg, name), f"scenario.{name}", *args, **kw)
    object.__setattr__(cfg, name, value)


def _num(cfg, name, **rule):
    _set(cfg, name, check_number, **rule)


def _choice(cfg, name, allowed):
    _set(cfg, name, check_choice, tuple(allowed))


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
    _set(cfg, "distance_m", check_interval)
    _choice(cfg, "path_loss", tuple(channel.PATH_LOSS_MODELS))
    pl = channel.PATH_LOSS_MODELS[cfg.path_loss]
    if not pl.min_m <= cfg.distance_m[0] <= cfg.distance_m[1] <= pl.max_m:
        raise fail("scenario.distance_m", f"within the {cfg.path_loss} model's range "
                   f"[{pl.min_m:g}, {pl.max_m:g}] m", cfg.distance_m)
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
        raise fail("scenario.trace", "a trace with published prompt and output lengths ("
                   + ", ".join(t for t, s in catalog.traces().items() if usable(s)) + ")",
                   cfg.trace)
    _num(cfg, "max_prompt", lo=1, integer=True)
    _num(cfg, "max_output", lo=1, integer=True)
    _choice(cfg, "workload", WORKLOADS)
    _choice(cfg, "overlength", OVERLENGTH)
    if cfg.workload != "lognormal":
        if cfg.trace not in TRACE_FILES:
            raise fail("scenario.trace", f"a shipped trace file for workload "
                       f"{cfg.workload!r} ({', '.join(TRACE_FILES)})", cfg.trace)
        if cfg.max_output >= catalog.max_context(cfg.model):
            raise fail("scenario.max_output",
                       f"below the model's max_context ({catalog.max_context(cfg.model)})",
                       cfg.max_output)
        if cfg.workload == "replay" and cfg.arrival_rate <= 0:
            raise fail("scenario.arrival_rate", "> 0 for workload 'replay'", cfg.arrival_rate)
    _set(cfg, "deadline_s", check_interval)
    _set(cfg, "ppl_tolerance", check_numbers)
    _validate_media(cfg)
    _num(cfg, "queue_capacity", lo=1, hi=4096, integer=True)
    _choice(cfg, "overflow", OVERFLOW)
    _set(cfg, "reject_unservable", check_bool)
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
        raise fail("scenario.media_mix", rule, cfg.media_mix) from None
    if len(mix) != 3 or not all(math.isfinite(x) and x >= 0 for x in mix) or sum(mix) <= 0:
        raise fail("scenario.media_mix", rule, cfg.media_mix)
    object.__setattr__(cfg, "media_mix", mix)
    if mix[media.IMAGE] > 0 and cfg.model not in media.vision_models():
        raise fail("scenario.media_mix", "text and voice only (image share 0) for model "
                   f"{cfg.model!r}, which has no vision encoder (vision-language models: "
                   f"{', '.join(media.vision_models())})", cfg.media_mix)
    _choice(cfg, "image_source", tuple(catalog._load("media")["images"]))
    _choice(cfg, "speech_codec", tuple(catalog._load("media")["speech"]))
    _set(cfg, "question_s", check_interval)
