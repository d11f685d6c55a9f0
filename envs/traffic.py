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
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic
from numba.np.random import random_methods
from numba.np.random.distributions import (
    random_lognormal,
    random_standard_normal,
    random_uniform,
)
from numba.np.random.generator_core import next_double

from edgellm.envs.config import ScenarioConfig
from edgellm.system import catalog, channel, traces
from edgellm.system.media import MediaMix
from edgellm.system.workloads import length_params

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
    instances too); arrivals, trace rows, media and fading are the environment's own."""

    def __init__(self, cfg: ScenarioConfig, seed: int | np.random.SeedSequence):
        self.cfg = cfg
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.rng = dict(zip(_STREAMS, (np.random.default_rng(s) for s in ss.spawn(len(_STREAMS))),
                            strict=True))
        self._media = None
        if cfg.has_media:  # a fifth stream, spawned after the others: they stay unchanged
            self.rng["media"] = np.random.default_rng(ss.spawn(1)[0])
            self._media = media_mix(cfg)
        K = cfg.n_users
        self.distributions = cfg.distributions
        if cfg.workload != "lognormal":
            self._trace = traces.load_trace(cfg.trace)
            self._context = catalog.max_context(cfg.model)
        self.distance_m, self.shadowing_db, self.large_gain = self.distributions.layout(
            self.rng["layout"], K)
        fad = self.rng["fading"]
        self._h = channel.gauss_markov(fad, np.zeros((2, 2 * K)), 0.0)  # users' up, then down
        self._update_gain()
        # bursty arrivals: initial states from the chain's stationary law
        a = self.rng["arrivals"]
        pe, pl = cfg.p_enter_burst, cfg.p_leave_burst
        p_burst = pe / (pe + pl) if pe + pl > 0 else 0.0
        self.burst = a.random(K) < p_burst
        if cfg.workload == "replay":
            self._replay = traces.Replay(self._trace, K, cfg.arrival_rate,
                                         int(a.integers(0, 2**63)))

    def _update_gain(self) -> None:
        """``gain``: the current linear power gains, (2, K) read-only, rows uplink and
        downlink (a fresh array every slot)."""
        p = np.maximum(channel.power_gain(self._h), _MIN_GAIN)
        self.gain = self.large_gain * p.reshape(2, self.cfg.n_users)
        self.gain.flags.writeable = False

    def draw(self, advance_fading: bool = True) -> SlotDraw:
        """The next slot's arrivals and potential requests; fading moves one step first."""
        cfg, K = self.cfg, self.cfg.n_users
        if advance_fading:
            self._h = channel.gauss_markov(self.rng["fading"], self._h, cfg.fading_rho)
            self._update_gain()
        a = self.rng["arrivals"]
        u_state, u_arr = a.random(K), a.random(K)
        if cfg.arrival == "bursty":
            self.burst = np.where(self.burst, u_state >= cfg.p_leave_burst,
                                  u_state < cfg.p_enter_burst)
            rate = np.where(self.burst, cfg.burst_rate, cfg.arrival_rate)
        else:
            rate = cfg.arrival_rate
        r = self.rng["requests"]
        if cfg.workload == "lognormal":
            req = self.distributions.requests(r, K)
            return self._with_media(SlotDraw(u_arr < rate, *req, self.gain[0], self.gain[1]))
        tr = self._trace
        if cfg.workload == "empirical":
            rows = r.integers(0, tr.n, K)
            arrive = u_arr < rate
        else:
            users, idx = self._replay.next_slot()
            rows = np.zeros(K, dtype=np.int64)
            rows[users] = idx
            arrive = np.zeros(K, dtype=bool)
            arrive[users] = True
        prompt, output = tr.prompt[rows], np.minimum(tr.output[rows], cfg.max_output)
        deadline, tol = self.distributions.deadlines_and_tolerances(r, K)
        long = arrive & (prompt + output > self._context)
        if cfg.overlength == "truncate":
            prompt = np.where(long, self._context - output, prompt)
        else:
            arrive = arrive & ~long
        return self._with_media(SlotDraw(arrive, prompt, output, deadline, tol, self.gain[0],
                                         self.gain[1], int(long.sum())))

    def _with_media(self, d: SlotDraw) -> SlotDraw:
        """``d`` with its media drawn (last, from the media stream), if the mix has any."""
        if self._media is None:
            return d
        prompt, media = self._media.draw(self.rng["media"], d.prompt_tokens, d.output_tokens)
        return dataclasses.replace(d, prompt_tokens=prompt, media=media)


# ----------------------------------------------------------------------------- compiled draws
# The per-slot draws of many Traffic objects in one compiled call (the vector env's). numba
# ports NumPy's distributions (ziggurat normal, Lemire bounded integers, ...) line by line and
# calls the generators' own bit generators, so each stream gives exactly the values (and
# leaves exactly the state) that NumPy's Generator methods would. A Generator is reached
# through the addresses of its bit generator (:func:`_pointers`), which avoids unboxing
# Python objects in every call; the Traffic objects that own the generators stay alive.
_BITGEN = types.NumPyRandomBitGeneratorType("bit_generator")
_jit = njit(cache=True, nogil=True)
_ARRIVALS, _REQUESTS, _FADING, _MEDIA = range(4)  # rows of TrafficBatch.pointers
_LOGNORMAL, _EMPIRICAL = range(2)  # workloads drawn here (replay draws in Python)


@intrinsic
def _bitgen(tyctx, ptrs):
    """The bit generator whose addresses (:func:`_pointers`) are the uint64 array ``ptrs``."""
    sig = _BITGEN(ptrs)

    def codegen(cgctx, builder, sig, args):
        data = cgutils.create_struct_proxy(sig.args[0])(cgctx, builder, value=args[0]).data
        v = [builder.load(cgutils.gep(builder, data, i)) for i in range(5)]
        bg = cgutils.create_struct_proxy(_BITGEN)(cgctx, builder)
        bg.state_address, bg.state = v[0], v[0]
        bg.fnptr_next_uint64, bg.fnptr_next_uint32, bg.fnptr_next_double = v[1], v[2], v[3]
        bg.bit_generator = v[4]
        bg.parent = cgutils.get_null_value(bg.parent.type)
        return bg._getvalue()

    return sig, codegen


def _pointers(rng: np.random.Generator) -> np.ndarray:
    """Addresses of ``rng``'s bit generator: state, next_uint64, next_uint32, next_double,
    the bitgen_t struct (valid while ``rng`` lives)."""
    c = rng.bit_generator.ctypes
    fn = [ctypes.cast(f, ctypes.c_void_p).value for f in (c.next_uint64, c.next_uint32,
                                                            c.next_double)]
    return np.array([c.state_address, *fn, c.bit_generator.value], dtype=np.uint64)


@_jit
def _lengths(b, mu, sigma, cap, out):
    """``length_sampler``: rint(lognormal), at least 1, at most ``cap``."""
    for k in range(out.size):
        out[k] = np.int64(min(max(np.rint(random_lognormal(b, mu, sigma)), 1.0), cap))


@_jit
def _draw_slots(envs, advance, ptr, h, large_gain, burst, rho, srho, bursty, p_leave,
                p_enter, burst_rate, arrival_rate, workload, lengths, deadline_lo,
                deadline_span, tolerances, tr_prompt, tr_output, max_output, context,
                truncate, has_media, media_c, cum, arrive, prompt, output, deadline, tol,
                gains, media, overlength):
    """Traffic.draw for each env of ``envs`` (row j of the outputs for envs[j]).
    ``lengths``: (mu, sigma, cap) of prompt and output; ``media_c``: image tokens, encoder
    FLOPs, image size mu and sigma, question seconds lo and span, codec bit/s, speech
    tokens/s, typed question mu, sigma and cap."""
    K = burst.shape[1]
    u_state = np.empty(K)
    u_arr = np.empty(K)
    z = np.empty(4 * K)
    rows = np.empty(K, np.int64)
    size = np.empty(K)
    question = np.empty(K)
    typed = np.empty(K, np.int64)
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    for j in range(envs.size):
        e = envs[j]
        if advance:  # channel.gauss_markov, then _update_gain
            bf = _bitgen(ptr[e, _FADING])
            for i in range(4 * K):
                z[i] = random_standard_normal(bf)
            for r in range(2):
                for i in range(2 * K):
                    h[e, r, i] = rho * h[e, r, i] + srho * (z[r * 2 * K + i] * inv_sqrt2)
        for r in range(2):
            for k in range(K):
                i = r * K + k
                p = max(h[e, 0, i] * h[e, 0, i] + h[e, 1, i] * h[e, 1, i], _MIN_GAIN)
                gains[j, r, k] = large_gain[e, k] * p
        ba = _bitgen(ptr[e, _ARRIVALS])
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
        br = _bitgen(ptr[e, _REQUESTS])
        overlength[j] = 0
        if workload == _LOGNORMAL:
            _lengths(br, lengths[0], lengths[1], lengths[2], prompt[j])
            _lengths(br, lengths[3], lengths[4], lengths[5], output[j])
        else:  # empirical: uniformly random trace rows
            rows[:] = random_methods.random_bounded_uint64_fill(
                br, np.int64(0), np.int64(tr_prompt.size - 1), K, np.int64)
            for k in range(K):
                prompt[j, k] = tr_prompt[rows[k]]
                output[j, k] = min(tr_output[rows[k]], max_output)
        for k in range(K):
            deadline[j, k] = random_uniform(br, deadline_lo, deadline_span)
        rows[:] = random_methods.random_bounded_uint64_fill(
            br, np.int64(0), np.int64(tolerances.size - 1), K, np.int64)
        for k in range(K):
            tol[j, k] = tolerances[rows[k]]
        if workload == _EMPIRICAL:
            for k in range(K):
                if arrive[j, k] and prompt[j, k] + output[j, k] > context:
                    overlength[j] += 1
                    if truncate:
                        prompt[j, k] = context - output[j, k]
                    else:
                        arrive[j, k] = False
        if not has_media:
            continue
        bm = _bitgen(ptr[e, _MEDIA])  # MediaMix.draw
        for k in range(K):
            u_arr[k] = next_double(bm)
        for k in range(K):
            size[k] = random_lognormal(bm, media_c[2], media_c[3])
        for k in range(K):
            question[k] = random_uniform(bm, media_c[4], media_c[5])
        _lengths(bm, media_c[8], media_c[9], media_c[10], typed)
        for k in range(K):
            kind = 0
            for c in range(cum.size):
                kind += cum[c] <= u_arr[k]
            media[j, k, :] = 0.0
            if kind == 1:  # image
                media[j, k, 0] = media_c[0]
                media[j, k, 1] = np.rint(size[k])
                media[j, k, 3] = media_c[1]
                prompt[j, k] = typed[k]
            elif kind == 2:  # voice
                media[j, k, 0] = max(np.rint(question[k] * media_c[7]), 1.0)
                media[j, k, 1] = np.rint(question[k] * media_c[6])
                media[j, k, 2] = np.rint(output[j, k] / media_c[7] * media_c[6])
                prompt[j, k] = 0


class TrafficBatch:
    """The traffic of N envs, drawn slot by slot in one compiled call.

    ``seed(e, seed)`` starts env e's :class:`Traffic` (layout and initial fading and burst
    states drawn in Python, as the single env does); ``draw(envs, first)`` returns the next
    slot's draws of the listed envs as (E, ...) arrays, each row equal to what env e's
    ``Traffic.draw(advance_fading=not first)`` returns. The fading and burst states live
    here (the Traffic objects only own the generators). The replay workload draws through
    the Traffic objects in Python. A copy (``copy.deepcopy``, pickle) points to its own
    generators."""

    def __init__(self, cfg: ScenarioConfig, num_envs: int):
        self.cfg = cfg
        N, K = num_envs, cfg.n_users
        self.traffic: list[Traffic | None] = [None] * N
        self.pointers = np.zeros((N, 4, 5), dtype=np.uint64)
        self.h = np.zeros((N, 2, 2 * K))
        self.large_gain = np.zeros((N, K))
        self.burst = np.zeros((N, K), dtype=bool)
        w = cfg.distributions
        self._tolerances = np.asarray(w.ppl_tolerance, dtype=float)
        self._lengths = np.array([*length_params(w.trace, "prompt", w.max_prompt),
                                  *length_params(w.trace, "output", w.max_output)])
        self._trace = (traces.load_trace(cfg.trace) if cfg.workload == "empirical"
                       else None)
        self._media_c = np.zeros(11)
        self._cum = np.zeros(3)
        if cfg.has_media:
            mix = media_mix(cfg)
            tokens, flops, (mu, sigma), bps, tps = mix.constants
            self._media_c[:] = (tokens, flops, mu, sigma, mix.question_s[0],
                                mix.question_s[1] - mix.question_s[0], bps, tps,
                                *length_params(mix.question_trace, "prompt", mix.max_question))
            self._cum[:] = mix.cumulative_shares

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for e, t in enumerate(self.traffic):
            if t is not None:
                self._point(e, t)

    def _point(self, e: int, t: Traffic) -> None:
        for row, name in enumerate(_STREAMS[1:] + ("media",)):
            if name in t.rng:
                self.pointers[e, row] = _pointers(t.rng[name])

    def seed(self, e: int, seed: int | np.random.SeedSequence) -> None:
        t = self.traffic[e] = Traffic(self.cfg, seed)
        self._point(e, t)
        self.h[e] = t._h
        self.large_gain[e] = t.large_gain
        self.burst[e] = t.burst

    def draw(self, envs: np.ndarray, first: bool = False):
        """(arrive, prompt, output, deadline, tolerance, gains (E, 2, K), media (E, K, 4),
        overlength (E,)) of the next slot of each env in ``envs``."""
        cfg, K, E = self.cfg, self.cfg.n_users, envs.size
        arrive = np.empty((E, K), bool)
        prompt = np.empty((E, K), np.int64)
        output = np.empty((E, K), np.int64)
        deadline = np.empty((E, K))
        tol = np.empty((E, K))
        gains = np.empty((E, 2, K))
        media = np.zeros((E, K, 4))
        overlength = np.zeros(E, np.int64)
        if cfg.workload == "replay":
            for j, e in enumerate(envs.tolist()):
                d = self.traffic[e].draw(advance_fading=not first)
                arrive[j], prompt[j], output[j] = d.arrive, d.prompt_tokens, d.output_tokens
                deadline[j], tol[j] = d.deadline_s, d.ppl_tolerance
                gains[j] = d.uplink_gain, d.downlink_gain
                overlength[j] = d.overlength
                if d.media is not None:
                    media[j] = d.media
            return arrive, prompt, output, deadline, tol, gains, media, overlength
        rho = cfg.fading_rho
        tr = self._trace
        empty = np.zeros(1, np.int64)
        _draw_slots(envs, not first, self.pointers, self.h, self.large_gain, self.burst,
                    rho, math.sqrt(1.0 - rho * rho), cfg.arrival == "bursty",
                    cfg.p_leave_burst, cfg.p_enter_burst, cfg.burst_rate, cfg.arrival_rate,
                    _EMPIRICAL if tr is not None else _LOGNORMAL, self._lengths,
                    cfg.deadline_s[0], cfg.deadline_s[1] - cfg.deadline_s[0],
                    self._tolerances, empty if tr is None else tr.prompt,
                    empty if tr is None else tr.output, cfg.max_output,
                    catalog.max_context(cfg.model) if tr is not None else 0,
                    cfg.overlength == "truncate", cfg.has_media, self._media_c, self._cum,
                    arrive, prompt, output, deadline, tol, gains, media, overlength)
        return arrive, prompt, output, deadline, tol, gains, media, overlength

