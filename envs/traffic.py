"""Exogenous randomness of the environment: user layout, arrivals, requests, fading.

Everything here is independent of the agent's actions. Each stream has its own generator,
spawned from one :class:`numpy.random.SeedSequence`, and every slot draws the same number of
values from each stream whatever the queues hold (a potential request is drawn for every
user every slot and discarded when none arrives). Two policies run with the same seed
therefore face identical arrivals, request attributes and channel gains (common random
numbers).

Workloads (``cfg.workload``): ``lognormal`` draws lengths from the fitted log-normals and
arrivals from the Bernoulli / bursty process; ``empirical`` draws each potential request's
(prompt, output) from a uniformly random row of the trace (same arrivals); ``replay`` takes
arrivals and lengths from the trace rows (:class:`edgellm.system.traces.Replay`, seeded from
the arrivals stream). For the trace workloads the output is capped at ``max_output`` and a
request with prompt + output above the model's ``max_context`` is truncated (the prompt
keeps its last max_context - output tokens) or rejected (never enters a queue) as
``cfg.overlength`` says; ``SlotDraw.overlength`` counts them.

One code draws every slot, for the single env (:meth:`Traffic.draw`, whose docstring lists
what is drawn in which order) and for the vector env (:class:`TrafficBatch`, many envs per
call): a compiled loop that runs NumPy's own distributions (as ported by numba) on the
streams' bit generators, so the values and the generators' states are exactly those of the
NumPy ``Generator`` calls the docstring names (``tests/test_envs_traffic_batch.py`` checks
this on every preset against those NumPy calls).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numba.np.random import random_methods
from numba.np.random.generator_core import next_double

from edgellm.envs.config import ScenarioConfig
from edgellm.system import catalog, channel, traces
from edgellm.system._rng import bitgen, draw_lengths, pointers
from edgellm.system.channel import fading_step
from edgellm.system.media import MediaMix, draw_media
from edgellm.system.workloads import draw_deadlines_and_tolerances

_STREAMS = ("layout", "arrivals", "requests", "fading")
_MIN_GAIN = 1e-300  # guards the (measure-zero) exact-zero fading draw


@dataclass(frozen=True)
class SlotDraw:
    """One slot's exogenous draws, one entry per user (request fields as in SPEC 2.1)."""

    arrive: np.ndarray         # bool: a request arrives
    prompt_tokens: np.ndarray  # text tokens of the potential request (0 for speech only)
    output_tokens: np.ndarray  # [tokens]
    deadline_s: np.ndarray     # time left at arrival [s]
    ppl_tolerance: np.ndarray  # [perplexity points]
    uplink_gain: np.ndarray
    downlink_gain: np.ndarray
    overlength: int = 0        # trace arrivals over the model context (truncated or rejected)
    media: np.ndarray | None = None  # (K, 4) media columns (system.media.COLUMNS), or None


@functools.lru_cache(maxsize=16)
def media_mix(cfg: ScenarioConfig) -> MediaMix:
    """The media mix of scenario ``cfg`` (which has media), built once per scenario."""
    return MediaMix(cfg.media_mix, cfg.model, cfg.image_source, cfg.speech_codec,
                    cfg.question_s)


class Traffic:
    """Seeded generator of layouts, arrivals, requests and fading for one scenario.

    Layouts, deadlines, tolerances and (lognormal workload) lengths come from the scenario's
    :class:`~edgellm.system.workloads.Workload` (the distributions of the random slot
    instances too); arrivals, trace rows, media and fading are the environment's own.
    The slot draws (:meth:`draw`) run compiled, in the same code as the vector env's
    (:class:`TrafficBatch`)."""

    def __init__(self, cfg: ScenarioConfig, seed: int | np.random.SeedSequence):
        self.cfg = cfg
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.rng = dict(zip(_STREAMS, (np.random.default_rng(s) for s in ss.spawn(len(_STREAMS))),
                            strict=True))
        if cfg.has_media:  # a fifth stream, spawned after the others: they stay unchanged
            self.rng["media"] = np.random.default_rng(ss.spawn(1)[0])
        K = cfg.n_users
        self.distributions = cfg.distributions
        self._c = _constants(cfg)
        self.distance_m, self.shadowing_db, self.large_gain = self.distributions.layout(
            self.rng["layout"], K)
        fad = self.rng["fading"]
        self._h = channel.gauss_markov(fad, np.zeros((2, 2 * K)), 0.0)  # users' up, then down
        self.gain: np.ndarray | None = None  # (2, K) power gains of the last draw (read-only)
        # bursty arrivals: initial states from the chain's stationary law
        a = self.rng["arrivals"]
        pe, pl = cfg.p_enter_burst, cfg.p_leave_burst
        p_burst = pe / (pe + pl) if pe + pl > 0 else 0.0
        self.burst = a.random(K) < p_burst
        self._replay = None
        if cfg.workload == "replay":
            self._replay = traces.Replay(self._c.trace, K, cfg.arrival_rate,
                                         int(a.integers(0, 2**63)))
        self._gens: tuple = ()
        self._ptr = np.zeros((1, 4, 5), dtype=np.uint64)

    def __getstate__(self) -> dict:
        # a copy's generators are new objects: its pointers are taken afresh
        return {**self.__dict__, "_gens": (), "_ptr": np.zeros((1, 4, 5), dtype=np.uint64)}

    def pointers(self) -> np.ndarray:
        """(4, 5) addresses (:func:`~edgellm.system._rng.pointers`) of the arrivals,
        requests, fading and media generators (zeros without media), refreshed when a
        generator was replaced (a copy, or a test that swaps one)."""
        gens = tuple(self.rng.values())
        if len(gens) != len(self._gens) or any(a is not b for a, b in zip(gens, self._gens)):
            for row, name in enumerate(_STREAMS[1:] + ("media",)):
                if name in self.rng:
                    self._ptr[0, row] = pointers(self.rng[name])
            self._gens = gens
        return self._ptr[0]

    def draw(self, advance_fading: bool = True) -> SlotDraw:
        """The next slot's arrivals and potential requests; fading moves one step first
        (not on an episode's first slot: ``advance_fading=False``).

        Drawn per slot, stream by stream, always the same number of values:

        1. fading (if ``advance_fading``): 4K standard normals, the real parts of the K
           uplink then K downlink coefficients, then their imaginary parts;
           ``h <- rho h + sqrt(1 - rho^2) z / sqrt(2)`` (:func:`channel.gauss_markov`), and
           ``gain = large_gain * max(|h|^2, 1e-300)`` (rows uplink, downlink).
        2. arrivals: K uniforms ``u_state``, then K uniforms ``u_arr``. Bursty: a user in
           a burst stays in it if ``u_state >= p_leave_burst``, one out of it enters if
           ``u_state < p_enter_burst``; a request arrives if ``u_arr`` is below the user's
           rate (``burst_rate`` in a burst, else ``arrival_rate``). Replay: the arrivals
           and their trace rows come from :class:`~edgellm.system.traces.Replay` (its own
           generator) and the uniforms are drawn all the same.
        3. requests: lognormal workload: K prompt lengths, then K output lengths
           (``rint(lognormal(mu, sigma))`` clipped to [1, cap],
           :func:`~edgellm.system.workloads.length_sampler`); empirical: K trace rows,
           ``integers(0, rows)``; replay: nothing. Then K deadlines,
           ``uniform(*deadline_s)``, and K tolerance indices, ``integers(0,
           len(ppl_tolerance))``. Trace workloads cap outputs at ``max_output`` and then
           truncate or reject arrivals with prompt + output above the model's context.
        4. media (media mixes only), :meth:`MediaMix.draw
           <edgellm.system.media.MediaMix.draw>`: K uniforms (the kind), K log-normal image
           sizes, K uniform question seconds, K typed question lengths.
        """
        out = _draw(self._c, _ENV0, advance_fading, self.pointers()[None], self._h[None],
                    self.large_gain[None], self.burst[None], (self._replay,))
        arrive, prompt, output, deadline, tol, gains, media, over = (x[0] for x in out)
        gains.flags.writeable = False
        self.gain = gains
        return SlotDraw(arrive, prompt, output, deadline, tol, gains[0], gains[1], int(over),
                        media if self._c.has_media else None)


# ----------------------------------------------------------------------------- compiled draws
# The per-slot draws of one or many Traffic objects in one compiled call, on the streams' own
# bit generators (:mod:`edgellm.system._rng`: the values and states of NumPy's Generator
# methods); the Traffic objects that own the generators stay alive.
_jit = njit(cache=True, nogil=True)
_ARRIVALS, _REQUESTS, _FADING, _MEDIA = range(4)  # rows of TrafficBatch.pointers
_LOGNORMAL, _EMPIRICAL, _REPLAY = range(3)  # cfg.workload
_ENV0 = np.zeros(1, np.int64)  # the one env of a Traffic


@_jit
def _draw_slots(envs, advance, ptr, h, large_gain, burst, rho, srho, bursty, p_leave,
                p_enter, burst_rate, arrival_rate, workload, lengths, deadline_lo,
                deadline_span, tolerances, tr_prompt, tr_output, max_output, context,
                truncate, has_media, media_c, cum, replay_rows, arrive, prompt, output,
                deadline, tol, gains, media, overlength):
    """:meth:`Traffic.draw` for each env of ``envs`` (row j of the outputs for envs[j]).
    ``lengths``: (mu, sigma, cap) of prompt and output; ``media_c``, ``cum``: the media
    mix's :attr:`~edgellm.system.media.MediaMix.kernel_constants`; ``replay_rows`` (replay
    workload): row j holds each user's trace row, -1 where none arrives."""
    K = burst.shape[1]
    u_state = np.empty(K)
    u_arr = np.empty(K)
    rows = np.empty(K, np.int64)
    for j in range(envs.size):
        e = envs[j]
        if advance:  # channel.gauss_markov, then the power gains
            fading_step(bitgen(ptr[e, _FADING]), h[e], rho, srho)
        for r in range(2):
            for k in range(K):
                i = r * K + k
                p = max(h[e, 0, i] * h[e, 0, i] + h[e, 1, i] * h[e, 1, i], _MIN_GAIN)
                gains[j, r, k] = large_gain[e, k] * p
        ba = bitgen(ptr[e, _ARRIVALS])
        for k in range(K):
            u_state[k] = next_double(ba)
        for k in range(K):
            u_arr[k] = next_double(ba)
        for k in range(K):
            rate = arrival_rate
            if bursty:
                burst[e, k] = u_state[k] >= p_leave if burst[e, k] else u_state[k] < p_enter
                rate = burst_rate if burst[e, k] else arrival_rate
            arrive[j, k] = u_arr[k] < rate
        br = bitgen(ptr[e, _REQUESTS])
        overlength[j] = 0
        if workload == _LOGNORMAL:
            draw_lengths(br, lengths[0], lengths[1], lengths[2], prompt[j])
            draw_lengths(br, lengths[3], lengths[4], lengths[5], output[j])
        else:
            if workload == _EMPIRICAL:  # uniformly random trace rows
                rows[:] = random_methods.random_bounded_uint64_fill(
                    br, np.int64(0), np.int64(tr_prompt.size - 1), K, np.int64)
            else:  # replay: the replayed rows (row 0 where none arrives)
                for k in range(K):
                    arrive[j, k] = replay_rows[j, k] >= 0
                    rows[k] = max(replay_rows[j, k], 0)
            for k in range(K):
                prompt[j, k] = tr_prompt[rows[k]]
                output[j, k] = min(tr_output[rows[k]], max_output)
        draw_deadlines_and_tolerances(br, deadline_lo, deadline_span, tolerances, deadline[j],
                                      tol[j])
        if workload != _LOGNORMAL:
            for k in range(K):
                if arrive[j, k] and prompt[j, k] + output[j, k] > context:
                    overlength[j] += 1
                    if truncate:
                        prompt[j, k] = context - output[j, k]
                    else:
                        arrive[j, k] = False
        if has_media:
            draw_media(bitgen(ptr[e, _MEDIA]), media_c, cum, output[j], prompt[j], media[j])


@dataclass(frozen=True)
class _Constants:
    """What the compiled draws of scenario ``cfg`` need besides the generators and states."""

    cfg: ScenarioConfig
    workload: int
    lengths: np.ndarray      # (mu, sigma, cap) of prompt, then output lengths
    tolerances: np.ndarray
    trace: traces.Trace | None
    tr_prompt: np.ndarray
    tr_output: np.ndarray
    context: int
    has_media: bool
    media_c: np.ndarray      # MediaMix.kernel_constants
    cum: np.ndarray


@functools.lru_cache(maxsize=16)
def _constants(cfg: ScenarioConfig) -> _Constants:
    w = cfg.distributions
    trace = traces.load_trace(cfg.trace) if cfg.workload != "lognormal" else None
    empty = np.zeros(1, np.int64)
    media_c, cum = np.zeros(11), np.zeros(3)
    if cfg.has_media:
        media_c, cum = media_mix(cfg).kernel_constants
    return _Constants(
        cfg, {"lognormal": _LOGNORMAL, "empirical": _EMPIRICAL, "replay": _REPLAY}[cfg.workload],
        w._length_params, w._tolerances, trace,
        empty if trace is None else trace.prompt, empty if trace is None else trace.output,
        catalog.max_context(cfg.model) if trace is not None else 0, cfg.has_media, media_c,
        cum)


def _draw(c: _Constants, envs: np.ndarray, advance: bool, ptr: np.ndarray, h: np.ndarray,
          large_gain: np.ndarray, burst: np.ndarray, replays) -> tuple:
    """The next slot of each env of ``envs``: (arrive, prompt, output, deadline, tolerance,
    gains (E, 2, K), media (E, K, 4), overlength (E,)). ``ptr``, ``h``, ``large_gain`` and
    ``burst`` are indexed by env (``h`` and ``burst`` move on in place); ``replays[j]``:
    the :class:`~edgellm.system.traces.Replay` of envs[j] (replay workload)."""
    cfg, K, E = c.cfg, c.cfg.n_users, envs.size
    arrive = np.empty((E, K), bool)
    prompt = np.empty((E, K), np.int64)
    output = np.empty((E, K), np.int64)
    deadline = np.empty((E, K))
    tol = np.empty((E, K))
    gains = np.empty((E, 2, K))
    media = np.zeros((E, K, 4))
    overlength = np.zeros(E, np.int64)
    replay_rows = _ENV0[None]
    if c.workload == _REPLAY:  # the arrivals first: Replay has its own generator
        replay_rows = np.full((E, K), -1, np.int64)
        for j in range(E):
            users, idx = replays[j].next_slot()
            replay_rows[j, users] = idx
    rho = cfg.fading_rho
    _draw_slots(envs, advance, ptr, h, large_gain, burst, rho, math.sqrt(1.0 - rho * rho),
                cfg.arrival == "bursty", cfg.p_leave_burst, cfg.p_enter_burst,
                cfg.burst_rate, cfg.arrival_rate, c.workload, c.lengths, cfg.deadline_s[0],
                cfg.deadline_s[1] - cfg.deadline_s[0], c.tolerances, c.tr_prompt,
                c.tr_output, cfg.max_output, c.context, cfg.overlength == "truncate",
                c.has_media, c.media_c, c.cum, replay_rows, arrive, prompt, output,
                deadline, tol, gains, media, overlength)
    return arrive, prompt, output, deadline, tol, gains, media, overlength


class TrafficBatch:
    """The traffic of N envs, drawn slot by slot in one compiled call.

    ``seed(e, seed)`` starts env e's :class:`Traffic` (layout and initial fading and burst
    states drawn in Python, as the single env does); ``draw(envs, first)`` returns the next
    slot's draws of the listed envs as (E, ...) arrays, each row equal to what env e's
    ``Traffic.draw(advance_fading=not first)`` returns (the same compiled code). The
    fading and burst states live here (the Traffic objects own the generators and the
    replays). A copy (``copy.deepcopy``, pickle) points to its own generators."""

    def __init__(self, cfg: ScenarioConfig, num_envs: int):
        self.cfg = cfg
        N, K = num_envs, cfg.n_users
        self.traffic: list[Traffic | None] = [None] * N
        self.pointers = np.zeros((N, 4, 5), dtype=np.uint64)
        self.h = np.zeros((N, 2, 2 * K))
        self.large_gain = np.zeros((N, K))
        self.burst = np.zeros((N, K), dtype=bool)
        self._c = _constants(cfg)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for e, t in enumerate(self.traffic):
            if t is not None:
                self.pointers[e] = t.pointers()

    def seed(self, e: int, seed: int | np.random.SeedSequence) -> None:
        t = self.traffic[e] = Traffic(self.cfg, seed)
        self.pointers[e] = t.pointers()
        self.h[e] = t._h
        self.large_gain[e] = t.large_gain
        self.burst[e] = t.burst

    def draw(self, envs: np.ndarray, first: bool = False):
        """(arrive, prompt, output, deadline, tolerance, gains (E, 2, K), media (E, K, 4),
        overlength (E,)) of the next slot of each env in ``envs``."""
        replays = ([self.traffic[e]._replay for e in envs.tolist()]
                   if self._c.workload == _REPLAY else ())
        return _draw(self._c, envs, not first, self.pointers, self.h, self.large_gain,
                     self.burst, replays)
