"""Exogenous randomness of the environment: user layout, arrivals, requests, fading.

Everything here is independent of the agent's actions. Each stream has its own generator,
spawned from one :class:`numpy.random.SeedSequence`, and every slot draws the same number of
values from each stream whatever the queues hold (a potential request is drawn for every
user every slot and discarded when none arrives). Two policies run with the same seed
therefore face identical arrivals, request attributes and channel gains (common random
numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgellm.dftsp import channel
from edgellm.dftsp.generate import length_sampler
from edgellm.envs.config import ScenarioConfig

_STREAMS = ("layout", "arrivals", "requests", "fading")
_MIN_GAIN = 1e-300  # guards the (measure-zero) exact-zero fading draw


@dataclass(frozen=True)
class SlotDraw:
    """One slot's exogenous draws, one entry per user."""

    arrive: np.ndarray      # bool: a request arrives
    prompt: np.ndarray      # s [tokens] of the potential request
    output: np.ndarray      # n [tokens]
    deadline: np.ndarray    # tau at arrival [s]
    tolerance: np.ndarray   # A [perplexity points]
    uplink_gain: np.ndarray
    downlink_gain: np.ndarray


class Traffic:
    """Seeded generator of layouts, arrivals, requests and fading for one scenario."""

    def __init__(self, cfg: ScenarioConfig, seed: int | np.random.SeedSequence):
        self.cfg = cfg
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.rng = dict(zip(_STREAMS, (np.random.default_rng(s) for s in ss.spawn(len(_STREAMS))),
                            strict=True))
        K = cfg.n_users
        self._prompt = length_sampler(cfg.trace, "prompt", cfg.max_prompt)
        self._output = length_sampler(cfg.trace, "output", cfg.max_output)
        self._tol = np.asarray(cfg.ppl_tolerance, dtype=float)
        lay = self.rng["layout"]
        r0, r1 = cfg.distance_m
        self.distance_m = np.sqrt(lay.uniform(r0 * r0, r1 * r1, K))
        self.shadowing_db = cfg.shadowing_db * lay.standard_normal(K)
        self.large_gain = channel.large_scale_gain(self.distance_m, self.shadowing_db)
        fad = self.rng["fading"]
        self._h = channel.gauss_markov(fad, np.zeros((2, 2 * K)), 0.0)  # users' up, then down
        self._update_gain()
        # bursty arrivals: initial states from the chain's stationary law
        a = self.rng["arrivals"]
        pe, pl = cfg.p_enter_burst, cfg.p_leave_burst
        p_burst = pe / (pe + pl) if pe + pl > 0 else 0.0
        self.burst = a.random(K) < p_burst

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
        prompt = self._prompt(r, K)
        output = self._output(r, K)
        deadline = r.uniform(cfg.deadline_s[0], cfg.deadline_s[1], K)
        tol = self._tol[r.integers(0, len(self._tol), K)]
        return SlotDraw(u_arr < rate, prompt, output, deadline, tol, self.gain[0], self.gain[1])
