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
draw with the same code, so the two agree on every distribution: :meth:`Workload.layout`,
and the compiled draws behind :meth:`Workload.requests` (:func:`length_sampler`, then
:func:`draw_deadlines_and_tolerances`), which the environment's compiled slot loop calls
directly (trace workloads take the lengths from the trace and draw the rest with
:meth:`Workload.deadlines_and_tolerances`). The field defaults here are the defaults of
:class:`edgellm.envs.ScenarioConfig` as well.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.np.random import random_methods
from numba.np.random.distributions import random_uniform

from edgellm.system import catalog, channel
from edgellm.system._rng import bitgen, draw_lengths, pointers
from edgellm.system.validate import check_numbers

_jit = njit(cache=True, nogil=True)


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
    log-normal (``rng.lognormal(mu, sigma, size)``), at least 1, at most ``cap``, as int64
    (compiled: :func:`~edgellm.system._rng.draw_lengths`)."""
    mu, sigma, cap_f = length_params(trace, which, cap)

    def draw(rng: np.random.Generator, size=None):
        out = np.empty(1 if size is None else int(np.prod(size)), np.int64)
        _lengths_at(pointers(rng), mu, sigma, cap_f, out)
        return out[0] if size is None else out.reshape(size)

    return draw


@_jit
def draw_deadlines_and_tolerances(bg, lo, span, tolerances, deadline, tol):
    """:meth:`Workload.deadlines_and_tolerances` from bit generator ``bg`` into ``deadline``
    and ``tol``: n ``uniform(lo, lo + span)``, then n indices ``integers(0,
    tolerances.size)`` into ``tolerances``."""
    for k in range(deadline.size):
        deadline[k] = random_uniform(bg, lo, span)
    idx = random_methods.random_bounded_uint64_fill(
        bg, np.int64(0), np.int64(tolerances.size - 1), deadline.size, np.int64)
    for k in range(deadline.size):
        tol[k] = tolerances[idx[k]]


@_jit
def _lengths_at(ptrs, mu, sigma, cap, out):
    draw_lengths(bitgen(ptrs), mu, sigma, cap, out)


@_jit
def _requests_at(ptrs, lengths, lo, span, tolerances, prompt, output, deadline, tol):
    """:meth:`Workload.requests`: ``lengths`` holds (mu, sigma, cap) of the prompt, then
    the output lengths."""
    bg = bitgen(ptrs)
    draw_lengths(bg, lengths[0], lengths[1], lengths[2], prompt)
    draw_lengths(bg, lengths[3], lengths[4], lengths[5], output)
    draw_deadlines_and_tolerances(bg, lo, span, tolerances, deadline, tol)


@_jit
def _deadlines_and_tolerances_at(ptrs, lo, span, tolerances, deadline, tol):
    draw_deadlines_and_tolerances(bitgen(ptrs), lo, span, tolerances, deadline, tol)


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
    def _length_params(self) -> np.ndarray:
        """(mu, sigma, cap) of the prompt, then the output lengths."""
        return np.array([*length_params(self.trace, "prompt", self.max_prompt),
                         *length_params(self.trace, "output", self.max_output)])

    @functools.cached_property
    def _tolerances(self):
        # checked here: the compiled draw indexes this array without bounds checks
        return np.asarray(check_numbers(self.ppl_tolerance, "Workload.ppl_tolerance"),
                          dtype=float)

    def requests(self, rng: np.random.Generator, n: int) -> RequestDraw:
        """``n`` independent requests, drawn in this order: prompt lengths, output lengths,
        deadlines, tolerances."""
        lo, hi = self.deadline_s
        r = RequestDraw(np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n), np.empty(n))
        _requests_at(pointers(rng), self._length_params, float(lo), float(hi - lo),
                     self._tolerances, *r)
        return r

    def deadlines_and_tolerances(self, rng: np.random.Generator,
                                 n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` deadlines [s], then ``n`` tolerances [perplexity points] (the draws after
        the lengths, also for lengths taken from a trace)."""
        lo, hi = self.deadline_s
        tau, tol = np.empty(n), np.empty(n)
        _deadlines_and_tolerances_at(pointers(rng), float(lo), float(hi - lo),
                                     self._tolerances, tau, tol)
        return tau, tol

    def layout(self, rng: np.random.Generator, n: int) -> Layout:
        """``n`` users uniform over the annulus, then their shadowing terms."""
        r0, r1 = self.distance_m
        dist = np.sqrt(rng.uniform(r0 * r0, r1 * r1, n))
        shadow = self.shadowing_db * rng.standard_normal(n)
        return Layout(dist, shadow, channel.large_scale_gain(dist, shadow, self.path_loss))


#: The default workload (the field defaults of :class:`Workload`).
DEFAULT_WORKLOAD = Workload()
