"""``rollout``: a model-predictive scheduler that plans on sampled futures (SPEC section 7).

Each slot it scores a few candidate batches (the urgent oracle's, the myopic oracle's, and
the urgent optimum with one of its members deferred) by simulating ``depth`` further slots
on ``width`` futures and serving, in the simulation, the urgent oracle's batch each slot.
It picks the candidate with the largest value now plus mean simulated value.

The futures come from the scenario's *own distributions* (``env.unwrapped.config``: arrival
probabilities, trace lengths, photos and speech of the media mix, deadlines, tolerances,
Gauss-Markov fading) drawn by the policy's own generator; it never reads the env's
generators or the real future. What it knows of the present is what the observation holds:
the head-of-line requests (with their media), queue lengths and the current gains; requests
queued behind a head are sampled. Large-scale gains are estimated per user as the running
mean of the gains seen. The same sampled futures score every candidate (common random
numbers). Costs go through the one cost model
(:func:`edgellm.system.check_rows` via DFTSP).
"""

from __future__ import annotations

import math

import numpy as np

from edgellm.agents.base import Policy, SlotViewLike, indices_to_users
from edgellm.agents.foresight import lexicographic_weights, urgency_rank
from edgellm.dftsp.solver import ORACLE_NODE_LIMIT, solve
from edgellm.envs.traffic import media_mix
from edgellm.system import prepare_arrays
from edgellm.system._kernel import served_alone
from edgellm.system.feasibility import MEDIA_COLUMNS, REQUEST_COLUMNS, encoder_rate
from edgellm.system.workloads import length_sampler


class RolloutPolicy(Policy):
    """Rollout over ``width`` sampled futures of ``depth`` slots, at most ``candidates``
    batches scored per slot (module docstring)."""

    name = "rollout"

    def __init__(self, depth: int = 2, width: int = 4, candidates: int = 4, seed: int = 0):
        self.depth, self.width, self.candidates = int(depth), int(width), int(candidates)
        self.cfg = None
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._gain_sum = self._gain_n = None

    def play_slot(self, env, obs):
        self.cfg = env.unwrapped.config  # the scenario's distributions, not its generators
        return super().play_slot(env, obs)

    # ------------------------------------------------------------------ decision
    def select(self, view: SlotViewLike) -> tuple[int, ...]:
        if not view.users:
            return ()
        p = view.prepared
        self._learn_gains(view)
        cands = self._candidates(view)
        if len(cands) == 1 or self.cfg is None:
            return indices_to_users(view, cands[0])
        futures = [self._sample_future(view) for _ in range(self.width)]
        scores = []
        for batch in cands:
            now = float(p.weight[list(batch)].sum())
            later = np.mean([self._simulate(view, batch, f) for f in futures])
            scores.append(now + later)
        return indices_to_users(view, cands[int(np.argmax(scores))])

    def _candidates(self, view) -> list[tuple[int, ...]]:
        p = view.prepared
        w = lexicographic_weights(p.weight, urgency_rank(p, view.users))
        urgent = solve(p, "dftsp", weights=w, node_limit=ORACLE_NODE_LIMIT).batch
        out = [tuple(urgent), tuple(solve(p, "dftsp", node_limit=ORACLE_NODE_LIMIT).batch)]
        for j in urgent:  # defer one member: the rest and whatever else fits best
            if len(out) >= self.candidates:
                break
            wj = w.copy()
            wj[j] = 1
            rest = [i for i in range(p.n) if i != j]
            sub = solve(prepare_arrays(p.system, *(p.columns[k][rest] for k in _COLS)),
                        "dftsp", weights=wj[rest], node_limit=ORACLE_NODE_LIMIT).batch
            out.append(tuple(rest[i] for i in sub))
        return list(dict.fromkeys(tuple(sorted(b)) for b in out))[:self.candidates]

    # ------------------------------------------------------------------ model of the future
    def _learn_gains(self, view) -> None:
        K = self.cfg.n_users if self.cfg is not None else max(view.users) + 1
        if self._gain_sum is None or self._gain_sum.shape[1] != K:
            self._gain_sum, self._gain_n = np.zeros((2, K)), np.zeros(K)
        u = np.asarray(view.users)
        c = view.prepared.columns
        self._gain_sum[0, u] += c["uplink_gain"]
        self._gain_sum[1, u] += c["downlink_gain"]
        self._gain_n[u] += 1

    def _sample_future(self, view) -> dict:
        """One future: per slot ahead, arrivals with attributes and every user's gains."""
        cfg, rng, K, D = self.cfg, self.rng, self.cfg.n_users, self.depth
        prompt = length_sampler(cfg.trace, "prompt", cfg.max_prompt)
        output = length_sampler(cfg.trace, "output", cfg.max_output)
        if cfg.arrival == "bursty":
            pe, pl = cfg.p_enter_burst, cfg.p_leave_burst
            pb = pe / (pe + pl) if pe + pl > 0 else 0.0
            rate = pb * cfg.burst_rate + (1 - pb) * cfg.arrival_rate
        else:
            rate = cfg.arrival_rate
        mean = np.where(self._gain_n > 0, self._gain_sum / np.maximum(self._gain_n, 1), np.nan)
        mean = np.where(np.isnan(mean), np.nanmean(mean) if np.isfinite(mean).any() else 1e-12,
                        mean)
        g = mean.copy()  # current gains where known, else the mean
        u = np.asarray(view.users)
        g[0, u] = view.prepared.columns["uplink_gain"]
        g[1, u] = view.prepared.columns["downlink_gain"]
        rho = cfg.fading_rho
        gains = []
        for _ in range(D):  # |h'|^2 = |rho |h| + sqrt(1 - rho^2) w|^2 in units of the mean
            amp = np.sqrt(g / mean)
            w = rng.standard_normal((2, 2, K)) * math.sqrt(0.5)
            g = mean * ((rho * amp + math.sqrt(1 - rho * rho) * w[0]) ** 2
                        + (math.sqrt(1 - rho * rho) * w[1]) ** 2)
            gains.append(g)
        behind = np.maximum(view.queue_lengths - 1, 0) if hasattr(view, "queue_lengths") \
            else np.zeros(K, int)
        n_behind = int(behind.sum())
        f = dict(arrive=rng.random((D, K)) < rate, prompt=prompt(rng, (D, K)),
                 output=output(rng, (D, K)), deadline=rng.uniform(*cfg.deadline_s, (D, K)),
                 tol=rng.choice(np.asarray(cfg.ppl_tolerance), (D, K)), gains=gains,
                 behind=behind,
                 behind_req=[prompt(rng, n_behind), output(rng, n_behind),
                             rng.uniform(*cfg.deadline_s, n_behind),
                             rng.choice(np.asarray(cfg.ppl_tolerance), n_behind)])
        f["media"] = np.zeros((D, K, len(MEDIA_COLUMNS)))
        f["behind_media"] = np.zeros((n_behind, len(MEDIA_COLUMNS)))
        if cfg.has_media:  # photos and speech from the scenario's media mix
            mix = media_mix(cfg)
            for d in range(D):
                f["prompt"][d], f["media"][d] = mix.draw(rng, f["prompt"][d], f["output"][d])
            br = f["behind_req"]
            br[0], f["behind_media"] = mix.draw(rng, br[0], br[1])
        return f

    def _simulate(self, view, batch, f) -> float:
        """Value of ``depth`` simulated slots after serving ``batch`` now, on future ``f``,
        serving the urgent oracle's batch each simulated slot."""
        cfg, p = self.cfg, view.prepared
        K, slot_s = cfg.n_users, cfg.slot_s
        c = p.columns
        cost = p.cost_constants
        c_enc = encoder_rate(p.system)
        # a queued request: text prompt, output, deadline, tolerance, then its media columns
        queues: list[list[list[float]]] = [[] for _ in range(K)]
        served = set(batch)
        k_b = 0
        br, bm = f["behind_req"], f["behind_media"]
        for i, u in enumerate(view.users):
            if i not in served:
                queues[u].append([c[k][i] for k in _COLS[:4] + MEDIA_COLUMNS])
            for _ in range(int(f["behind"][u])):
                queues[u].append([float(br[0][k_b]), float(br[1][k_b]), float(br[2][k_b]),
                                  float(br[3][k_b]), *bm[k_b]])
                k_b += 1
        system, Q = p.system, cfg.queue_capacity

        def alone(r):  # compute time alone [s] and whether its KV cache fits alone
            return served_alone(r[0] + r[4], r[1], r[7] / c_enc, *cost, p.kv_capacity,
                                p.padded)

        total = 0.0
        for t in range(self.depth):
            for u in range(K):  # age and expire
                kept = []
                for r in queues[u]:
                    r[2] -= slot_s
                    if alone(r)[0] < r[2]:
                        kept.append(r)
                queues[u] = kept
            for u in np.flatnonzero(f["arrive"][t]):  # admit
                r = [float(f["prompt"][t, u]), float(f["output"][t, u]),
                     float(f["deadline"][t, u]), float(f["tol"][t, u]), *f["media"][t, u]]
                tc, fits = alone(r)
                if p.system.quant.ppl_increase > r[3] or tc >= slot_s or tc >= r[2] or not fits:
                    continue
                if len(queues[u]) < Q:
                    queues[u].append(r)
            users = [u for u in range(K) if queues[u]]
            if not users:
                continue
            heads = np.array([queues[u][0] for u in users])
            g = f["gains"][t]
            media = heads[:, 4:].T if cfg.has_media else ()
            ps = prepare_arrays(system, heads[:, 0], heads[:, 1], heads[:, 2], heads[:, 3],
                                g[0, users], g[1, users], np.full(len(users), cfg.tx_power_w),
                                *media)
            w = lexicographic_weights(ps.weight, urgency_rank(ps, users))
            sol = solve(ps, "dftsp", weights=w, node_limit=ORACLE_NODE_LIMIT)
            for i in sol.batch:
                total += float(ps.weight[i])
                queues[users[i]].pop(0)
        return total


_COLS = REQUEST_COLUMNS + MEDIA_COLUMNS  # a request with its media (zeros for text)
