"""Slot instances: the system description plus the slot's candidate requests (SPEC 2.1, 2.5).

All parts are frozen dataclasses validated on construction. ``from_dict`` is strict: a
missing key, an unknown key, a wrong type, a negative or non-finite number or an unknown
precision raises :class:`InstanceError` whose message names the offending key, e.g.
``requests[3].deadline_s: must be a finite number > 0, got -1.0``.

Schema versions: ``edgellm.slot-instance/2`` (written) adds optional keys: the dataclass
fields that have a default, written only when not at their default. Model:
``vocab_size`` / ``tied_embeddings`` (weight bytes, see ``cost.model_costs``) and
``encoder_params``; quant: ``covers`` / ``group_size`` / ``scale_bits`` / ``zero_bits``;
radio: ``uplink_noise_psd_w_per_hz`` / ``downlink_noise_psd_w_per_hz`` (per-link N0);
requests: the media payloads. Version 1 files (no optional keys) read unchanged and
describe the same problem as in version 0.1: W = n_params * weight_bits / 8, one N0 on
both links, text-only requests.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.system import validate

SCHEMA_PREFIX = "edgellm.slot-instance/"
SCHEMA_VERSION = 2
SCHEMA = f"{SCHEMA_PREFIX}{SCHEMA_VERSION}"
SCHEMAS = (f"{SCHEMA_PREFIX}1", SCHEMA)
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")
KV_MODES = ("padded", "exact")
OBJECTIVES = ("requests", "tokens")
# which weights a quantization covers: the transformer blocks only (embeddings and output
# layer stay 16-bit, as in AWQ, GPTQ, SmoothQuant) or every weight (version-0.1 meaning)
QUANT_COVERS = ("blocks", "all")


class InstanceError(EdgeLLMError):
    """A slot instance (or one of its parts) breaks the schema; the message names the key."""


# ----------------------------------------------------------------------------- checks
def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_number(value: Any, where: str, **rule) -> float | int:
    """:func:`edgellm.system.validate.check_number` raising :class:`InstanceError`."""
    return validate.check_number(value, where, error=InstanceError, **rule)


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    return validate.check_choice(value, where, allowed, error=InstanceError)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InstanceError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _mapping(d: Any, where: str, cls: type, version: int = SCHEMA_VERSION) -> dict:
    """Check ``d`` is a dict holding the required fields of dataclass ``cls`` and, from
    schema version 2 on, any of its optional ones."""
    if not isinstance(d, dict):
        raise InstanceError(f"{where or 'instance'}: must be an object, got {type(d).__name__}")
    names = _keys(cls, optional=False)
    missing = [n for n in names if n not in d]
    if missing:
        raise InstanceError(f"{_where(where, missing[0])}: missing key")
    allowed = _keys(cls) if version >= 2 else names
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        extra = (f"; optional keys need schema {SCHEMA!r}"
                 if version < 2 and unknown[0] in _keys(cls) else "")
        raise InstanceError(f"{_where(where, unknown[0])}: unknown key "
                            f"(allowed: {', '.join(allowed)}){extra}")
    return d


def _keys(cls, optional: bool = True) -> list[str]:
    """The schema keys of a part: its init fields, less the private path helper; the
    fields with a default are the optional keys of schema version 2."""
    return [f.name for f in fields(cls) if f.init and not f.name.startswith("_")
            and (optional or f.default is MISSING)]


class _Part:
    """Shared from_dict / to_dict for the parts: validation lives in ``_check``."""

    _path = ""

    @classmethod
    def from_dict(cls, d: Any, path: str | None = None, version: int = SCHEMA_VERSION):
        path = cls._path if path is None else path
        _mapping(d, path, cls, version)
        return cls(**{k: d[k] for k in d}, _where=path)

    def to_dict(self) -> dict:
        """Required keys always; optional (version 2) keys only where not at their default."""
        req = set(_keys(type(self), optional=False))
        return {k: getattr(self, k) for k in _keys(type(self))
                if k in req or getattr(self, k) != _default(type(self), k)}

    def __post_init__(self):
        path = self._where if self._where is not None else self._path
        for name, value in self._check(path).items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_where", None)


def _default(cls, name: str):
    return cls.__dataclass_fields__[name].default


# ----------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class Model(_Part):
    """Decoder-only transformer architecture."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    n_params: float
    vocab_size: int | None = None          # optional: embedding rows (see cost.weight_bytes)
    tied_embeddings: bool | None = None    # optional: output layer shares the input embedding
    # optional (schema 2): parameters of media encoders kept resident beside the LLM
    # (vision tower + projector), held at 16 bits; their compute comes with each request
    encoder_params: float = 0.0
    _where: str | None = field(default=None, repr=False, compare=False)
    _path = "model"

    def _check(self, p: str) -> dict:
        out = {"name": _text(self.name, _where(p, "name"))}
        for k in ("n_layers", "d_model", "n_heads", "n_kv_heads"):
            out[k] = check_number(getattr(self, k), _where(p, k), lo=1, integer=True)
        out["n_params"] = check_number(self.n_params, _where(p, "n_params"), lo=0, lo_open=True)
        if out["n_kv_heads"] > out["n_heads"] or out["n_heads"] % out["n_kv_heads"]:
            raise InstanceError(f"{_where(p, 'n_kv_heads')}: must divide n_heads "
                                f"({out['n_heads']}), got {out['n_kv_heads']}")
        if (self.vocab_size is None) != (self.tied_embeddings is None):
            raise InstanceError(f"{_where(p, 'vocab_size')}: vocab_size and tied_embeddings "
                                "go together (give both or neither)")
        if self.vocab_size is not None:
            out["vocab_size"] = check_number(self.vocab_size, _where(p, "vocab_size"), lo=1,
                                             integer=True)
            validate.check_bool(self.tied_embeddings, _where(p, "tied_embeddings"),
                                error=InstanceError)
            if out["n_params"] < self.embedding_params(out["vocab_size"], out["d_model"]):
                raise InstanceError(f"{_where(p, 'n_params')}: smaller than the embedding "
                                    "parameters vocab_size * d_model (x2 if untied)")
        out.update(self._check_encoder(p))
        return out

    def _check_encoder(self, p: str) -> dict:
        return {"encoder_params": check_number(self.encoder_params,
                                               _where(p, "encoder_params"), lo=0)}

    def embedding_params(self, vocab: int | None = None, d: int | None = None) -> float:
        """Parameters of the input embedding plus the output layer (once if tied); 0 when
        the model gives no ``vocab_size``."""
        vocab = self.vocab_size if vocab is None else vocab
        d = self.d_model if d is None else d
        if vocab is None:
            return 0.0
        return float(vocab) * d * (1 if self.tied_embeddings else 2)

    @property
    def d_kv(self) -> float:
        """Width of the K (or V) projection: d * n_kv_heads / n_heads."""
        return self.d_model * self.n_kv_heads / self.n_heads


@dataclass(frozen=True)
class Quant(_Part):
    """Deployed quantization: bit widths, compute precision, perplexity cost vs FP16."""

    name: str
    weight_bits: float
    kv_bits: float
    compute: str
    ppl_increase: float
    covers: str | None = None          # optional: "blocks" | "all" (None: "all")
    group_size: int | None = None      # optional: weights per scale group (None or 0: none)
    scale_bits: float | None = None    # optional: bits of each group's scale
    zero_bits: float | None = None     # optional: bits of each group's zero point
    _where: str | None = field(default=None, repr=False, compare=False)
    _path = "quant"

    def _check(self, p: str) -> dict:
        out = {
            "name": _text(self.name, _where(p, "name")),
            "weight_bits": check_number(self.weight_bits, _where(p, "weight_bits"), lo=0,
                                   lo_open=True, hi=32),
            "kv_bits": check_number(self.kv_bits, _where(p, "kv_bits"), lo=0, lo_open=True, hi=32),
            "compute": _choice(self.compute, _where(p, "compute"), PRECISIONS),
            "ppl_increase": check_number(self.ppl_increase, _where(p, "ppl_increase"), lo=0),
        }
        if self.covers is not None:
            out["covers"] = _choice(self.covers, _where(p, "covers"), QUANT_COVERS)
        if self.group_size is not None:
            out["group_size"] = check_number(self.group_size, _where(p, "group_size"), lo=0,
                                             integer=True)
        for k in ("scale_bits", "zero_bits"):
            if getattr(self, k) is not None:
                out[k] = check_number(getattr(self, k), _where(p, k), lo=0, hi=32)
        return out


@dataclass(frozen=True)
class Device(_Part):
    """GPU of the edge node."""

    name: str
    memory_bytes: float
    reserved_bytes: float
    peak_flops: dict
    mem_bandwidth: float
    compute_efficiency: float
    memory_efficiency: float
    _where: str | None = field(default=None, repr=False, compare=False)
    _path = "device"

    def _check(self, p: str) -> dict:
        out = {"name": _text(self.name, _where(p, "name"))}
        out["memory_bytes"] = check_number(self.memory_bytes, _where(p, "memory_bytes"), lo=0,
                                      lo_open=True)
        out["reserved_bytes"] = check_number(self.reserved_bytes, _where(p, "reserved_bytes"), lo=0)
        if out["reserved_bytes"] >= out["memory_bytes"]:
            raise InstanceError(f"{_where(p, 'reserved_bytes')}: must be below memory_bytes "
                                f"({out['memory_bytes']:g}), got {out['reserved_bytes']:g}")
        pf = self.peak_flops
        if not isinstance(pf, dict) or not pf:
            raise InstanceError(f"{_where(p, 'peak_flops')}: must be a non-empty object "
                                f"{{precision: FLOP/s}}, got {pf!r}")
        peaks = {}
        for prec, v in pf.items():
            _choice(prec, _where(p, "peak_flops") + " key", PRECISIONS)
            peaks[prec] = check_number(v, f"{_where(p, 'peak_flops')}.{prec}", lo=0, lo_open=True)
        out["peak_flops"] = peaks
        out["mem_bandwidth"] = check_number(self.mem_bandwidth, _where(p, "mem_bandwidth"), lo=0,
                                       lo_open=True)
        for k in ("compute_efficiency", "memory_efficiency"):
            out[k] = check_number(getattr(self, k), _where(p, k), lo=0, lo_open=True, hi=1)
        return out

    def __hash__(self):
        return hash((self.name, self.memory_bytes, tuple(sorted(self.peak_flops.items()))))


@dataclass(frozen=True)
class Radio(_Part):
    """Radio resources of the base station."""

    uplink_hz: float
    downlink_hz: float
    noise_psd_w_per_hz: float
    en_power_w: float
    bits_per_token: float
    uplink_noise_psd_w_per_hz: float | None = None     # optional: N0 at the base station
    downlink_noise_psd_w_per_hz: float | None = None   # optional: N0 at the user
    _where: str | None = field(default=None, repr=False, compare=False)
    _path = "radio"

    def _check(self, p: str) -> dict:
        return {k: check_number(getattr(self, k), _where(p, k), lo=0, lo_open=True)
                for k in _keys(type(self)) if getattr(self, k) is not None}

    @property
    def uplink_noise(self) -> float:
        """N0 of the uplink receiver (base station) [W/Hz]; ``noise_psd_w_per_hz`` if unset."""
        v = self.uplink_noise_psd_w_per_hz
        return self.noise_psd_w_per_hz if v is None else v

    @property
    def downlink_noise(self) -> float:
        """N0 of the downlink receiver (user) [W/Hz]; ``noise_psd_w_per_hz`` if unset."""
        v = self.downlink_noise_psd_w_per_hz
        return self.noise_psd_w_per_hz if v is None else v


@dataclass(frozen=True)
class Request(_Part):
    """One candidate request (the head of one user's queue)."""

    prompt_tokens: int
    output_tokens: int
    deadline_s: float
    ppl_tolerance: float
    uplink_gain: float
    downlink_gain: float
    tx_power_w: float
    # optional (schema 2): media payloads, see docs/model.md "Media"
    media_tokens: int = 0             # prefill tokens the uplink media become
    uplink_media_bits: float = 0.0    # media sent with the prompt [bit]
    downlink_media_bits: float = 0.0  # media sent with the answer, e.g. speech [bit]
    encoder_flops: float = 0.0        # media encoder compute, e.g. a vision tower [FLOP]
    _where: str | None = field(default=None, repr=False, compare=False)
    _path = "request"

    def _check(self, p: str) -> dict:
        out = {"prompt_tokens": check_number(self.prompt_tokens, _where(p, "prompt_tokens"),
                                             lo=0, integer=True),
               "output_tokens": check_number(self.output_tokens, _where(p, "output_tokens"),
                                             lo=1, integer=True)}
        out["ppl_tolerance"] = check_number(self.ppl_tolerance, _where(p, "ppl_tolerance"), lo=0)
        for k in ("deadline_s", "uplink_gain", "downlink_gain", "tx_power_w"):
            out[k] = check_number(getattr(self, k), _where(p, k), lo=0, lo_open=True)
        out.update(self._check_media(p))
        return out

    def _check_media(self, p: str) -> dict:
        """Media keys; a request whose prompt is all media (a spoken question) may have
        prompt_tokens = 0."""
        out = {"media_tokens": check_number(self.media_tokens, _where(p, "media_tokens"), lo=0,
                                            integer=True)}
        if self.prompt_tokens == 0 and out["media_tokens"] == 0:
            raise InstanceError(f"{_where(p, 'prompt_tokens')}: must be >= 1 when "
                                f"media_tokens is 0, got 0")
        for k in ("uplink_media_bits", "downlink_media_bits", "encoder_flops"):
            out[k] = check_number(getattr(self, k), _where(p, k), lo=0)
        return out


# ----------------------------------------------------------------------------- instance
@dataclass(frozen=True)
class SlotInstance:
    """One slot's scheduling problem: system description and candidate requests."""

    model: Model
    quant: Quant
    device: Device
    radio: Radio
    slot_s: float
    kv_cache: str = "padded"
    objective: str = "requests"
    requests: tuple[Request, ...] = ()

    def __post_init__(self):
        for name, cls in (("model", Model), ("quant", Quant), ("device", Device),
                          ("radio", Radio)):
            if not isinstance(getattr(self, name), cls):
                raise InstanceError(f"{name}: must be a {cls.__name__}")
        object.__setattr__(self, "slot_s", check_number(self.slot_s, "slot_s", lo=0, lo_open=True))
        _choice(self.kv_cache, "kv_cache", KV_MODES)
        _choice(self.objective, "objective", OBJECTIVES)
        reqs = tuple(self.requests)
        for i, r in enumerate(reqs):
            if not isinstance(r, Request):
                raise InstanceError(f"requests[{i}]: must be a Request")
        object.__setattr__(self, "requests", reqs)
        if self.quant.covers == "blocks" and self.model.vocab_size is None:
            raise InstanceError("model.vocab_size: missing key (quant.covers 'blocks' keeps "
                                "the vocab_size * d_model embedding parameters at 16 bits)")
        if self.quant.compute not in self.device.peak_flops:
            raise InstanceError(
                f"quant.compute: precision {self.quant.compute!r} has no device.peak_flops entry "
                f"(device {self.device.name!r} lists {', '.join(self.device.peak_flops)})")

    # -- convenience -----------------------------------------------------------------
    @property
    def n_requests(self) -> int:
        return len(self.requests)

    def with_requests(self, requests) -> SlotInstance:
        """The same system with another list of candidate requests."""
        return replace(self, requests=tuple(requests))

    # -- (de)serialisation -----------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Any) -> SlotInstance:
        if not isinstance(d, dict):
            raise InstanceError(f"instance: must be a JSON object, got {type(d).__name__}")
        keys = ("schema", "model", "quant", "device", "radio", "slot_s", "kv_cache",
                "objective", "requests")
        for k in keys:
            if k not in d:
                raise InstanceError(f"{k}: missing key")
        unknown = sorted(set(d) - set(keys))
        if unknown:
            raise InstanceError(f"{unknown[0]}: unknown key (allowed: {', '.join(keys)})")
        if d["schema"] not in SCHEMAS:
            raise InstanceError(f"schema: must be one of {', '.join(map(repr, SCHEMAS))}, "
                                f"got {d['schema']!r}")
        v = int(d["schema"][len(SCHEMA_PREFIX):])
        if not isinstance(d["requests"], list):
            raise InstanceError(f"requests: must be a list, got {type(d['requests']).__name__}")
        return cls(
            model=Model.from_dict(d["model"], version=v),
            quant=Quant.from_dict(d["quant"], version=v),
            device=Device.from_dict(d["device"], version=v),
            radio=Radio.from_dict(d["radio"], version=v),
            slot_s=d["slot_s"],
            kv_cache=d["kv_cache"],
            objective=d["objective"],
            requests=tuple(Request.from_dict(r, f"requests[{i}]", version=v)
                           for i, r in enumerate(d["requests"])),
        )

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "model": self.model.to_dict(),
            "quant": self.quant.to_dict(),
            "device": self.device.to_dict(),
            "radio": self.radio.to_dict(),
            "slot_s": self.slot_s,
            "kv_cache": self.kv_cache,
            "objective": self.objective,
            "requests": [r.to_dict() for r in self.requests],
        }

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> SlotInstance:
        """Read an instance file; errors name the file and the key."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise InstanceError(f"{path}: cannot read ({e.strerror})") from None
        except json.JSONDecodeError as e:
            raise InstanceError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        try:
            return cls.from_dict(data)
        except InstanceError as e:
            raise InstanceError(f"{path}: {e}") from None

    def to_json(self, path: str | os.PathLike | None = None, indent: int = 2) -> str:
        """The instance as JSON text; also written (atomically) to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            from edgellm.io import atomic_write_text

            atomic_write_text(path, text + "\n")
        return text
