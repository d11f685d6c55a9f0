"""The exogenous process of one episode, generated ahead (SPEC section 7).

Arrivals, request attributes and channel gains never depend on the actions (common random
numbers), so a scenario, a seed and a horizon H fix them all. :func:`episode_trace` steps
the env's own traffic generator exactly as ``reset`` and H dispatches do, and applies the
action-independent parts of admission (rejection of unservable requests, expiry at
arrival). What stays action-dependent is only whether a request ever reaches the head of
its queue (FIFO order, overflow): the bounds treat that separately.

A request's remaining deadline at slot t is its deadline at arrival minus (t - arrival)
slot lengths, whatever the policy did (the env ages every queued request by slot_s per
slot); it can be served at slot t only while that exceeds its compute time alone, so its
possible slots form one window [arrival, last].

Requests with media (scenarios with a ``media_mix``) keep their four media columns
(:data:`edgellm.system.media.COLUMNS`); :meth:`Trace.prepared` hands them to
:func:`~edgellm.system.prepare_arrays`, the env's and the oracle's cost model, so uplink
bits, downlink demand, prefill tokens and encoder time include them exactly as there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgellm.envs.env import EdgeLLMEnv
from edgellm.envs.traffic import Traffic
from edgellm.system import prepare_arrays
from edgellm.system._kernel import served_alone
from edgellm.system.feasibility import Prepared
from edgellm.system.media import COLUMNS as MEDIA_COLUMNS

_TOKENS, _ENC = MEDIA_COLUMNS.index("media_tokens"), MEDIA_COLUMNS.index("encoder_flops")


@dataclass(frozen=True, eq=False)
class Trace:
    """Every admissible request of an episode and every slot's channel gains.

    Request arrays (index r, in arrival order = the env's request id order):
    ``rid`` env request id, ``user``, ``arrival`` (first slot it can be served), ``last``
    (last slot it can be served, capped at H - 1), ``prompt`` (text tokens), ``output``,
    ``deadline`` (at arrival [s]), ``tolerance``, ``weight`` (objective value), ``media``
    ((n, 4) media columns, :data:`~edgellm.system.media.COLUMNS`; zeros for text).
    ``gain[t]`` is the (2, K) array of uplink and downlink gains of slot t.
    """

    env: EdgeLLMEnv
    slots: int
    rid: np.ndarray
    user: np.ndarray
    arrival: np.ndarray
    last: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    deadline: np.ndarray
    tolerance: np.ndarray
    weight: np.ndarray
    media: np.ndarray  # (n, 4)
    gain: np.ndarray  # (H, 2, K)

    @property
    def n(self) -> int:
        return self.rid.size

    def remaining(self, r: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Remaining deadline [s] of requests r at slots t (the env's repeated subtraction,
        so equal bit for bit to what the env's queue holds)."""
        slot_s = self.env.config.slot_s
        out = self.deadline[r].astype(float)
        age = np.asarray(t) - self.arrival[r]
        for _ in range(int(age.max(initial=0))):
            out = np.where(age > 0, out - slot_s, out)
            age = age - 1
        return out

    def prepared(self, r: np.ndarray, t: np.ndarray) -> Prepared:
        """The cost model's arrays of requests ``r`` served at slots ``t`` (their slot's
        gains and remaining deadlines; media columns where the scenario has media)."""
        env = self.env
        u = self.user[r]
        media = self.media[r].T if env.config.has_media else ()
        return prepare_arrays(env._system, self.prompt[r], self.output[r],
                              self.remaining(r, t), self.tolerance[r], self.gain[t, 0, u],
                              self.gain[t, 1, u], np.full(r.size, env.config.tx_power_w),
                              *media)


def episode_trace(env: EdgeLLMEnv, seed: int, slots: int) -> Trace:
    """The exogenous process that ``env.reset(seed=seed)`` and ``slots`` dispatches produce.

    Requests that the env rejects or expires at arrival, or that no batch could ever serve
    (inadmissible accuracy, KV alone over capacity, compute alone at least the slot), are
    left out: no schedule serves them. The tests are the env's own (envs/queues.py), with
    prefill tokens s + media tokens and the encoder's seconds in the compute time.
    """
    env.reset(seed=seed)  # applies the scenario; the trace uses its own generator copy
    cfg, rules = env.config, env._rules
    no_media = np.zeros((cfg.n_users, len(MEDIA_COLUMNS)))
    traffic = Traffic(cfg, np.random.SeedSequence(seed))
    P, L, d, W, kv, C, M = rules.cost
    rows, kept, gains, next_id = [], [], [], 0
    for t in range(slots):
        draw = traffic.draw(advance_fading=t > 0)
        gains.append(np.array([draw.uplink_gain, draw.downlink_gain]))
        media = no_media if draw.media is None else draw.media
        for k in np.flatnonzero(draw.arrive):
            rid, next_id = next_id, next_id + 1
            s, n = float(draw.prompt_tokens[k]), float(draw.output_tokens[k])
            tau, tol = float(draw.deadline_s[k]), float(draw.ppl_tolerance[k])
            pre = s + media[k, _TOKENS]  # prefill tokens: text + media
            tc, fits = served_alone(pre, n, media[k, _ENC] / rules.encoder_rate,
                                    P, L, d, W, kv, C, M, rules.kv_capacity, rules.padded)
            if rules.ppl_increase > tol or tc >= cfg.slot_s or not fits or tc >= tau:
                continue  # rejected, expired at arrival, or never servable
            last, left = t, tau
            while last + 1 < slots:  # the env's ageing: subtract, expire when tc >= left
                left -= cfg.slot_s
                if tc >= left:
                    break
                last += 1
            rows.append((rid, k, t, last, s, n, tau, tol, n if rules.tokens else 1))
            kept.append(media[k])
    cols = list(zip(*rows)) if rows else [()] * 9
    i64, f64 = np.int64, float
    types = (i64, i64, i64, i64, f64, f64, f64, f64, i64)
    arr = [np.asarray(c, dtype=ty) for c, ty in zip(cols, types)]
    if cfg.overflow == "drop_oldest":
        _pushed_out(arr[1], arr[2], arr[3], cfg.queue_capacity)
    media_cols = np.array(kept, dtype=float).reshape(len(kept), len(MEDIA_COLUMNS))
    return Trace(env, slots, *arr, media=media_cols, gain=np.asarray(gains))


def _pushed_out(user: np.ndarray, arrival: np.ndarray, last: np.ndarray, Q: int) -> None:
    """Shorten windows (in place) by the pushes of ``drop_oldest``, which no policy avoids.

    While request r waits, the later requests of its user queue behind it, so none of them
    is served before r; they leave only by expiring, which their windows fix. When a later
    arrival comes after every older request of the user has surely left (its window, already
    final since requests are taken in arrival order, has closed) and finds r with Q - 1 of
    those later ones still waiting, the queue is full and r is its head, so r is pushed out:
    r's last slot is the one before that arrival. (Requests left out of the trace are not
    counted, which can only keep r longer: still a relaxation.)
    """
    for u in np.unique(user):
        mine = np.flatnonzero(user == u)  # arrival order
        for p, r in enumerate(mine):
            older = mine[:p]
            for j in mine[p + 1:]:
                a = arrival[j]
                if last[r] < a:
                    break
                if older.size and last[older].max() >= a:
                    continue  # an older request may still be the head
                behind = mine[p + 1:np.searchsorted(mine, j)]
                if 1 + int(np.sum(last[behind] >= a)) >= Q:
                    last[r] = a - 1
                    break
