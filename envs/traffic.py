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

import dataclasses
from dataclasses import dataclass

import numpy as np

from edgellm.envs.config import ScenarioConfig
from edgellm.system import catalog, channel, traces
from edgellm.system.media import MediaMix

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
            self._media = MediaMix(cfg.media_mix, cfg.model, cfg.image_source,
                                   cfg.speech_codec, cfg.question_s)
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
