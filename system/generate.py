"""Random slot instances for tests and benchmarks, drawn from catalog profiles.

Request lengths are log-normal, fitted to a trace's published mean and median (or to the
one of them that is published, with sigma = 1) and capped. Channels use path
loss, log-normal shadowing and Rayleigh fading (:mod:`edgellm.system.channel`).
"""

from __future__ import annotations

import math

import numpy as np

from edgellm.system import catalog, channel
from edgellm.system.instance import Request, SlotInstance


def lognormal_params(mean: float | None = None,
                     median: float | None = None) -> tuple[float, float]:
    """(mu, sigma) of a log-normal with this mean and median; sigma = 1 when only one of
    them is published (or the mean does not exceed the median)."""
    if mean is None and median is None:
        raise ValueError("lognormal_params: need a mean or a median")
    if mean is None:
        return math.log(median), 1.0
    if median is None or median >= mean:
        return math.log(mean) - 0.5, 1.0
    return math.log(median), math.sqrt(2.0 * math.log(mean / median))


def length_sampler(trace: str, which: str, cap: int):
    """Sampler of capped log-normal token counts for ``which`` in {'prompt', 'output'}."""
    stats = catalog.traces()[trace]
    mu, sigma = lognormal_params(stats.get(f"{which}_tokens_mean"),
                                 stats.get(f"{which}_tokens_median"))

    def draw(rng: np.random.Generator, size=None):
        x = np.rint(rng.lognormal(mu, sigma, size))
        return np.minimum(np.maximum(x, 1.0), cap).astype(np.int64)

    return draw


def random_requests(rng: np.random.Generator, n: int, *, trace: str = "sharegpt",
                    max_prompt: int = 2048, max_output: int = 1024,
                    deadline_s: tuple[float, float] = (2.0, 12.0),
                    ppl_tolerance: tuple[float, ...] = (0.05, 0.2, 0.5, 2.0),
                    distance_m: tuple[float, float] = (20.0, 300.0),
                    shadowing_db: float = 8.0, tx_power_w: float = 0.2,
                    path_loss: str = "legacy", media=None) -> list[Request]:
    """``n`` independent requests: lengths from ``trace``, uniform deadlines, tolerances
    drawn from ``ppl_tolerance``, users uniform over an annulus of radii ``distance_m``
    (path loss from ``channel.PATH_LOSS_MODELS[path_loss]``);
    with ``media`` (a :class:`~edgellm.system.media.MediaMix`), images and speech too
    (drawn after everything else, so the text draws are the same)."""
    prompt = length_sampler(trace, "prompt", max_prompt)(rng, n)
    output = length_sampler(trace, "output", max_output)(rng, n)
    deadline = rng.uniform(*deadline_s, n)
    tol = rng.choice(np.asarray(ppl_tolerance, dtype=float), n)
    r0, r1 = distance_m
    dist = np.sqrt(rng.uniform(r0 * r0, r1 * r1, n))
    large = channel.large_scale_gain(dist, shadowing_db * rng.standard_normal(n), path_loss)
    g_up = large * channel.rayleigh_power(rng, n)
    g_down = large * channel.rayleigh_power(rng, n)
    extra = np.zeros((n, 4))
    if media is not None:
        prompt, extra = media.draw(rng, prompt, output)
    return [Request(int(prompt[k]), int(output[k]), float(deadline[k]), float(tol[k]),
                    float(g_up[k]), float(g_down[k]), tx_power_w, int(extra[k, 0]),
                    *map(float, extra[k, 1:])) for k in range(n)]


def random_instance(rng: np.random.Generator, n: int, *, model: str = "llama-2-7b",
                    quant: str = "w4a16", device: str = "rtx-4090", kv_cache: str = "padded",
                    objective: str = "requests", slot_s: float = 5.0,
                    radio: dict | None = None, **request_kw) -> SlotInstance:
    """A slot instance with ``n`` random requests on a catalog system."""
    return catalog.build_instance(model, quant, device, random_requests(rng, n, **request_kw),
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
