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
