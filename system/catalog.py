"""Catalog of models, devices, quantizations and workload traces (SPEC section 6).

The numbers live in ``data/*.yaml`` next to this module; every entry carries a
``sources`` map from each of its keys to a citation. This module reads them and builds
validated parts and slot instances from names.
"""

from __future__ import annotations

import functools
from importlib import resources

import yaml

from edgellm.system.instance import (
    Device,
    InstanceError,
    Model,
    Quant,
    Radio,
    Request,
    SlotInstance,
)

# The default system: the base of every scenario (edgellm.envs.ScenarioConfig's defaults)
# and of the random instances (edgellm.system.generate).
DEFAULT_SYSTEM = {
    "model": "llama-2-7b",
    "quant": "w4a16",
    "device": "rtx-4090",
    "kv_cache": "padded",
    "objective": "requests",
    "slot_s": 5.0,
}

# Radio defaults: a 5G-NR-like small cell. Each value carries its source.
DEFAULT_RADIO = {
    "uplink_hz": 20e6,
    "downlink_hz": 20e6,
    # -174 dBm/Hz thermal noise at 290 K plus a 9 dB receiver noise figure
    "noise_psd_w_per_hz": 10 ** ((-174 + 9 - 30) / 10),
    "en_power_w": 10.0,
    "bits_per_token": 32.0,
    # optional per-link noise (None: noise_psd_w_per_hz on both links)
    "uplink_noise_psd_w_per_hz": None,
    "downlink_noise_psd_w_per_hz": None,
}
RADIO_SOURCES = {
    "uplink_hz": "edgellm-gym assumption: a 20 MHz carrier share, one of the NR channel "
                 "bandwidths of 3GPP TS 38.101-1",
    "downlink_hz": "edgellm-gym assumption: as uplink_hz",
    "noise_psd_w_per_hz": "thermal noise kT = -174 dBm/Hz at 290 K plus a 9 dB noise figure, "
                          "the UE noise figure of the 3GPP TR 38.901 calibration assumptions",
    "en_power_w": "edgellm-gym assumption: 40 dBm, a small-cell base station power",
    "bits_per_token": "edgellm-gym assumption: about 4 characters of UTF-8 text per token, "
                      "8 bits each",
    "uplink_noise_psd_w_per_hz": "unset: noise_psd_w_per_hz; set it to "
                                 "channel.noise_psd(channel.NOISE_FIGURE_DB['bs']) for the 5 dB "
                                 "base-station noise figure (channel.NOISE_FIGURE_SOURCE)",
    "downlink_noise_psd_w_per_hz": "unset: noise_psd_w_per_hz (9 dB, the UE noise figure)",
}


@functools.cache
def _load(name: str) -> dict:
    text = resources.files("edgellm.system").joinpath("data", f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def _entry(table: str, section: str, name: str) -> dict:
    entries = _load(table)[section]
    if name not in entries:
        kind = section[:-1] if section.endswith("s") else section
        raise InstanceError(f"{table}.yaml: unknown {kind} {name!r}; "
                            f"known: {', '.join(sorted(entries))}")
    return {k: v for k, v in entries[name].items() if k != "sources"}


def models() -> list[str]:
    return sorted(_load("models")["models"])


def devices() -> list[str]:
    return sorted(_load("devices")["devices"])


def quantizations() -> list[str]:
    return sorted(_load("quantization")["schemes"])


def traces() -> dict:
    """Workload trace statistics, by trace name (with their ``sources``)."""
    return _load("workloads")["traces"]


_CATALOG_ONLY = ("max_context",)  # model facts that are not part of a slot instance


def model(name: str) -> Model:
    entry = _entry("models", "models", name)
    return Model(name=name, **{k: v for k, v in entry.items() if k not in _CATALOG_ONLY})


def max_context(name: str) -> int:
    """Context length [tokens] model ``name`` was trained for (catalog ``max_context``)."""
    return int(_entry("models", "models", name)["max_context"])


def device(name: str) -> Device:
    return Device(name=name, **_entry("devices", "devices", name))


def perplexity(model_name: str, scheme: str) -> float:
    """Published WikiText-2 perplexity of ``model_name`` under ``scheme``."""
    table = _load("quantization")["perplexity"]
    if model_name not in table or scheme not in table[model_name]:
        known = sorted(k for k in table.get(model_name, {}) if k != "sources")
        raise InstanceError(f"quantization.yaml: no published perplexity for model "
                            f"{model_name!r} under {scheme!r} "
                            f"(known: {', '.join(known) or 'none'})")
    return float(table[model_name][scheme])


def quant(scheme: str, model_name: str) -> Quant:
    """Quantization ``scheme`` applied to ``model_name``: ppl_increase from the catalog."""
    spec = _entry("quantization", "schemes", scheme)
    if scheme == "fp16":
        increase = 0.0
    else:
        increase = max(perplexity(model_name, scheme) - perplexity(model_name, "fp16"), 0.0)
    return Quant(name=scheme, ppl_increase=round(increase, 6), **spec)


def build_instance(model_name: str, quant_name: str, device_name: str, requests=(),
                   *, radio: dict | None = None, slot_s: float = DEFAULT_SYSTEM["slot_s"],
                   kv_cache: str = DEFAULT_SYSTEM["kv_cache"],
                   objective: str = DEFAULT_SYSTEM["objective"]) -> SlotInstance:
    """A slot instance from catalog names plus requests (``Request`` objects or dicts).

    ``radio`` overrides entries of :data:`DEFAULT_RADIO`.
    """
    rad = dict(DEFAULT_RADIO)
    for k, v in (radio or {}).items():
        if k not in rad:
            raise InstanceError(f"radio.{k}: unknown key (allowed: {', '.join(rad)})")
        rad[k] = v
    reqs = tuple(r if isinstance(r, Request) else Request.from_dict(r, f"requests[{i}]")
                 for i, r in enumerate(requests))
    return SlotInstance(model=model(model_name), quant=quant(quant_name, model_name),
                        device=device(device_name), radio=Radio(**rad), slot_s=slot_s,
                        kv_cache=kv_cache, objective=objective, requests=reqs)
