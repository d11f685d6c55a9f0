"""Exogenous randomness of the environment: user layout, arrivals, requests, fading.

Everything here is independent of the agent's actions. Each stream has its own generator,
spawned from one :class:`numpy.random.SeedSequence`, each stream draws one kind of value and
every slot draws the same number of values from each stream whatever the queues hold (a
potential request is drawn for every user every slot and discarded when none arrives). Two
policies run with the same seed therefore face identical arrivals, request attributes and
channel gains (common random numbers).

Slots are drawn in blocks (:meth:`Traffic.draw_block`); since every stream draws the same
values one slot at a time or many at once, the block size never changes the draws: the
single env (blocks of :data:`BLOCK` slots) and the vector env (larger blocks) agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgellm.dftsp import channel
from edgellm.dftsp.generate import length_sampler
from edgellm.envs.config import ScenarioConfig

_STREAMS = ("layout", "arrivals", "prompts", "fading", "outputs", "deadlines", "tolerances")
_MIN_GAIN = 1e-300  # guards the (measure-zero) exact-zero fading draw
BLOCK = 16          # slots drawn at once by :meth:`Traffic.draw`


@dataclass(frozen=True)
class SlotDraw:
    """Exogenous draws, one entry per user (arrays of shape (K,)), or per slot and user
    ((B, K); gains (B, K) each) for a block of B slots."""

    arrive: np.ndarray      # bool: a request arrives
    prompt: np.ndarray      # s [tokens] of the potential request
    output: np.ndarray      # n [tokens]
    deadline: np.ndarray    # tau at arrival [s]
    tolerance: np.ndarray   # A [perplexity points]
    uplink_gain: np.ndarray
    downlink_gain: np.ndarray


class Traffic:
    """Seeded generator of layouts, arrivals, requests and fading for one scenario.

    The first slot drawn has the initial fading; every later slot moves the fading one
    Gauss-Markov step first. ``gain`` holds the gains of the slot last returned by
    :meth:`draw` as a read-only (2, K) array (rows uplink, downlink).
    """

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
        self._first = True
        # bursty arrivals: initial states from the chain's stationary law
        a = self.rng["arrivals"]
        pe, pl = cfg.p_enter_burst, cfg.p_leave_burst
        p_burst = pe / (pe + pl) if pe + pl > 0 else 0.0
        self.burst = a.random(K) < p_burst
        self._block: SlotDraw | None = None
        self._next = 0
        self.gain = np.zeros((2, K))

    def draw_block(self, slots: int) -> SlotDraw:
        """The next ``slots`` slots' arrivals, potential requests and gains, (slots, K) each."""
        cfg, K, B = self.cfg, self.cfg.n_users, int(slots)
        h = np.empty((B, 2, 2 * K))
        start = 0
        if self._first:  # the first slot keeps the initial fading
            h[0] = self._h
            start, self._first = 1, False
        if B > start:
            h[start:] = channel.gauss_markov_path(self.rng["fading"], self._h, cfg.fading_rho,
                                                  B - start)
        self._h = h[-1]
        gain = self.large_gain * np.maximum(channel.power_gain(h.transpose(1, 0, 2)),
                                            _MIN_GAIN).reshape(B, 2, K)
        u = self.rng["arrivals"].random((B, 2, K))
        if cfg.arrival == "bursty":
            rate = np.empty((B, K))
            for t in range(B):
                self.burst = np.where(self.burst, u[t, 0] >= cfg.p_leave_burst,
                                      u[t, 0] < cfg.p_enter_burst)
                rate[t] = np.where(self.burst, cfg.burst_rate, cfg.arrival_rate)
        else:
            rate = cfg.arrival_rate
        prompt = self._prompt(self.rng["prompts"], (B, K))
        output = self._output(self.rng["outputs"], (B, K))
        deadline = self.rng["deadlines"].uniform(cfg.deadline_s[0], cfg.deadline_s[1], (B, K))
        pick = (self.rng["tolerances"].random((B, K)) * self._tol.size).astype(np.int64)
        return SlotDraw(u[:, 1] < rate, prompt, output, deadline, self._tol[pick],
                        gain[:, 0], gain[:, 1])

    def draw(self) -> SlotDraw:
        """The next slot's arrivals and potential requests (fading moves one step first,
        except in the first slot); sets :attr:`gain`."""
        if self._block is None or self._next == self._block.arrive.shape[0]:
            self._block, self._next = self.draw_block(BLOCK), 0
        b, t = self._block, self._next
        self._next += 1
        self.gain = np.stack((b.uplink_gain[t], b.downlink_gain[t]))
        self.gain.flags.writeable = False
        return SlotDraw(b.arrive[t], b.prompt[t], b.output[t], b.deadline[t], b.tolerance[t],
                        self.gain[0], self.gain[1])
