"""Random slot instances for tests and benchmarks, drawn from catalog profiles.

Requests and users come from a :class:`~edgellm.system.workloads.Workload` (the same
distributions as the environment's); uplink and downlink gains add one Rayleigh fading draw
each to the large-scale gain (:mod:`edgellm.system.channel`).
"""

from __future__ import annotations

import numpy as np

from edgellm.system import catalog, channel
from edgellm.system.catalog import DEFAULT_SYSTEM
from edgellm.system.instance import Request, SlotInstance
from edgellm.system.media import MediaMix
from edgellm.system.workloads import Workload


def random_requests(rng: np.random.Generator, n: int, *, media: MediaMix | None = None,
                    **workload) -> list[Request]:
    """``n`` independent requests of ``Workload(**workload)`` (keywords: its fields), in
    this order of draws from ``rng``: the requests, the layout, uplink then downlink
    fading; with ``media``, images and speech last (so the text draws are the same)."""
    w = Workload(**workload)
    req = w.requests(rng, n)
    large = w.layout(rng, n).large_gain
    g_up = large * channel.rayleigh_power(rng, n)
    g_down = large * channel.rayleigh_power(rng, n)
    prompt, extra = req.prompt_tokens, np.zeros((n, 4))
    if media is not None:
        prompt, extra = media.draw(rng, prompt, req.output_tokens)
    return [Request(int(prompt[k]), int(req.output_tokens[k]),
                    float(req.deadline_s[k]), float(req.ppl_tolerance[k]),
                    float(g_up[k]), float(g_down[k]), w.tx_power_w, int(extra[k, 0]),
                    *map(float, extra[k, 1:])) for k in range(n)]


def random_instance(rng: np.random.Generator, n: int, *, model: str = DEFAULT_SYSTEM["model"],
                    quant: str = DEFAULT_SYSTEM["quant"], device: str = DEFAULT_SYSTEM["device"],
                    kv_cache: str = DEFAULT_SYSTEM["kv_cache"],
                    objective: str = DEFAULT_SYSTEM["objective"],
                    slot_s: float = DEFAULT_SYSTEM["slot_s"],
                    radio: dict | None = None, **workload) -> SlotInstance:
    """A slot instance with ``n`` random requests (:func:`random_requests`) on a catalog
    system; the defaults are :data:`~edgellm.system.catalog.DEFAULT_SYSTEM`'s."""
    return catalog.build_instance(model, quant, device, random_requests(rng, n, **workload),
                                  radio=radio, slot_s=slot_s, kv_cache=kv_cache,
                                  objective=objective)


# ----------------------------------------------------------------------------- families
# Instance families for solver tests and benchmarks: (objective, KV mode, slot range [s]).
# Within a family every instance draws its own catalog system, trace, radio and deadlines.
SLOT_RANGES = {"short": (3.0, 6.0), "medium": (6.0, 15.0), "long": (15.0, 30.0)}
FAMILIES = tuple((obj, kv, slot) for obj in ("requests", "tokens")
                 for kv in ("padded", "exact") for slot in SLOT_RANGES)


def catalog_systems() -> list[tuple[str, str, str]]:
    """Every (model, quantization, device) of the catalog with a published perplexity
    whose weights leave room for a KV cache on the device."""
    from edgellm.system.feasibility import prepare
    from edgellm.system.instance import InstanceError

    out = []
    for m in catalog.models():
        for q in catalog.quantizations():
            for d in catalog.devices():
                try:
                    p = prepare(catalog.build_instance(m, q, d))
                except InstanceError:  # no published perplexity for this pair
                    continue
                if p.kv_capacity > 0:
                    out.append((m, q, d))
    return out


def family_instance(rng: np.random.Generator, n: int, objective: str = "requests",
                    kv_cache: str = "padded", slot: str = "short") -> SlotInstance:
    """A random instance of the family (``objective``, ``kv_cache``, ``slot``): slot length
    log-uniform over :data:`SLOT_RANGES` [slot]; system uniform over
    :func:`catalog_systems`; lengths from a random catalog trace (prompts capped at 512 to
    8192, outputs at 256 to 2048); deadlines uniform in (0.1, 1.5) slots; users 20 m to
    300-2000 m away; uplink and downlink bandwidths log-uniform in 1-50 MHz."""
    systems = _systems()
    model, quant, device = systems[rng.integers(len(systems))]
    lo, hi = SLOT_RANGES[slot]
    slot_s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    radio = {k: float(np.exp(rng.uniform(np.log(1e6), np.log(50e6))))
             for k in ("uplink_hz", "downlink_hz")}
    trace = str(rng.choice(sorted(catalog.traces())))
    return random_instance(rng, n, model=model, quant=quant, device=device,
                           kv_cache=kv_cache, objective=objective, slot_s=slot_s, radio=radio,
                           trace=trace, max_prompt=int(rng.choice([512, 2048, 8192])),
                           max_output=int(rng.choice([256, 1024, 2048])),
                           deadline_s=(0.1 * slot_s, 1.5 * slot_s),
                           distance_m=(20.0, float(rng.choice([300.0, 1000.0, 2000.0]))))


_SYSTEMS: list = []


def _systems() -> list:
    if not _SYSTEMS:
        _SYSTEMS.extend(catalog_systems())
    return _SYSTEMS
