"""Workloads: where users are and what they ask (SPEC sections 4 and 6).

One :class:`Workload` describes the random part of the requests and of the user layout:

* **lengths**: ``prompt_tokens`` and ``output_tokens`` are log-normal, fitted to a catalog
  trace's published mean and median (or to the one of them that is published, with
  sigma = 1), rounded, at least 1 and capped at ``max_prompt`` / ``max_output``;
* **deadlines**: ``deadline_s`` uniform on ``deadline_s = (lo, hi)`` [s];
* **tolerances**: ``ppl_tolerance`` drawn uniformly from the listed values [perplexity points];
* **layout**: users uniform over the annulus of radii ``distance_m`` [m], each with a
  log-normal shadowing term of standard deviation ``shadowing_db`` [dB]; the large-scale
  gain is :func:`edgellm.system.channel.large_scale_gain` of the two under the path-loss
  model ``path_loss`` (a key of ``channel.PATH_LOSS_MODELS``).

Both the environment (:mod:`edgellm.envs.traffic`, one seeded stream per kind of draw) and
the random slot instances (:mod:`edgellm.system.generate`, one generator for everything)
draw through :meth:`Workload.requests` and :meth:`Workload.layout`, so the two agree on
every distribution (trace workloads take the lengths from the trace and draw the rest with
:meth:`Workload.deadlines_and_tolerances`). The field defaults here are the defaults of
:class:`edgellm.envs.ScenarioConfig` as well.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from edgellm.system import catalog, channel


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


def length_params(trace: str, which: str, cap: int) -> tuple[float, float, float]:
    """(mu, sigma, cap) of the capped log-normal token counts of catalog trace ``trace``;
    ``which`` is ``"prompt"`` or ``"output"``."""
    stats = catalog.traces()[trace]
    return (*lognormal_params(stats.get(f"{which}_tokens_mean"),
                              stats.get(f"{which}_tokens_median")), float(cap))


def length_sampler(trace: str, which: str, cap: int):
    """Sampler ``draw(rng, size)`` of :func:`length_params`' token counts: rint of the
    log-normal, at least 1, at most ``cap``."""
    mu, sigma, _ = length_params(trace, which, cap)

    def draw(rng: np.random.Generator, size=None):
        x = np.rint(rng.lognormal(mu, sigma, size))
        return np.minimum(np.maximum(x, 1.0), cap).astype(np.int64)

    return draw


class RequestDraw(NamedTuple):
    """``n`` requests' random attributes, one array each (names as in SPEC 2.1)."""

    prompt_tokens: np.ndarray   # int64 [tokens]
    output_tokens: np.ndarray   # int64 [tokens]
    deadline_s: np.ndarray      # time left at arrival [s]
    ppl_tolerance: np.ndarray   # [perplexity points]


class Layout(NamedTuple):
    """``n`` users' positions and large-scale gains."""

    distance_m: np.ndarray      # [m]
    shadowing_db: np.ndarray    # [dB], positive = extra loss
    large_gain: np.ndarray      # linear power gain of path loss and shadowing


@dataclass(frozen=True)
class Workload:
    """Request and layout distributions (see the module docstring); units in the names."""

    trace: str = "sharegpt"
    max_prompt: int = 2048
    max_output: int = 1024
    deadline_s: tuple[float, float] = (2.0, 12.0)
    ppl_tolerance: tuple[float, ...] = (0.05, 0.2, 0.5, 2.0)
    distance_m: tuple[float, float] = (20.0, 300.0)
    shadowing_db: float = 8.0
    tx_power_w: float = 0.2
    path_loss: str = "legacy"

    @functools.cached_property
    def _lengths(self):
        return (length_sampler(self.trace, "prompt", self.max_prompt),
                length_sampler(self.trace, "output", self.max_output))

    @functools.cached_property
    def _tolerances(self):
        return np.asarray(self.ppl_tolerance, dtype=float)

    def requests(self, rng: np.random.Generator, n: int) -> RequestDraw:
        """``n`` independent requests, drawn in this order: prompt lengths, output lengths,
        deadlines, tolerances."""
        prompt, output = self._lengths
        s = prompt(rng, n)
        o = output(rng, n)
        return RequestDraw(s, o, *self.deadlines_and_tolerances(rng, n))

    def deadlines_and_tolerances(self, rng: np.random.Generator,
                                 n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` deadlines [s], then ``n`` tolerances [perplexity points] (the draws after
        the lengths, also for lengths taken from a trace)."""
        tolerances = self._tolerances
        tau = rng.uniform(self.deadline_s[0], self.deadline_s[1], n)
        return tau, tolerances[rng.integers(0, len(tolerances), n)]

    def layout(self, rng: np.random.Generator, n: int) -> Layout:
        """``n`` users uniform over the annulus, then their shadowing terms."""
        r0, r1 = self.distance_m
        dist = np.sqrt(rng.uniform(r0 * r0, r1 * r1, n))
        shadow = self.shadowing_db * rng.standard_normal(n)
        return Layout(dist, shadow, channel.large_scale_gain(dist, shadow, self.path_loss))


#: The default workload (the field defaults of :class:`Workload`).
DEFAULT_WORKLOAD = Workload()
