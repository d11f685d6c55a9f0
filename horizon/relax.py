"""Linear necessary conditions of the slot problem, per (request, slot) item.

An *item* (r, t) says "request r is served at slot t". For each item whose request is
feasible alone at t (with t's gains and remaining deadline) this module computes
coefficients of linear conditions that every feasible batch containing it satisfies
(docs/model.md, "The horizon problem", lists each with why it holds). With media, s is
the prefill (text + media tokens), the uplink and downlink demands include the media bits
and compute times the encoder seconds e_k, all from the one cost model (``Prepared``):

* ``mem``: KV tokens s + n. Padded: b (S + N) >= sum (s_k + n_k); exact: equal.
* ``down``: least downlink bandwidth with T_C >= its own compute time and T_U >= its own
  least upload time at the full uplink band.
* ``up``: least uplink bandwidth at the latest T_U its own window allows (its compute time
  alone and its least download time at the full downlink band follow the uplink).
* ``bmax``: the largest batch size with which its compute time (e_k + T_C(b, s, n) <= T_C
  of any batch of b holding it), least upload and download times still fit its window, and
  (padded) b (s + n) KV tokens fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgellm.horizon.trace import Trace
from edgellm.system import _kernel, check_rows
from edgellm.system.radio import uplink_min_bandwidth

SLACK = 1e-9  # relative slack on capacities, so rounding never cuts a feasible batch


@dataclass(frozen=True, eq=False)
class Items:
    """The feasible (request, slot) items of a trace and their coefficients (arrays)."""

    req: np.ndarray     # request index into the trace
    slot: np.ndarray
    user: np.ndarray
    weight: np.ndarray  # objective value
    mem: np.ndarray     # KV tokens s + n
    down: np.ndarray    # lower bound on the downlink bandwidth [Hz]
    up: np.ndarray      # lower bound on the uplink bandwidth [Hz]
    bmax: np.ndarray    # largest batch size it can be part of
    conflicts: np.ndarray  # (c, 2) item pairs of one slot that are infeasible together
    mem_cap: float      # KV tokens available
    down_cap: float
    up_cap: float

    @property
    def n(self) -> int:
        return self.req.size


def items_of(trace: Trace) -> Items:
    """Every (request, slot) pair of the trace's windows that is feasible alone."""
    cfg = trace.env.config
    span = trace.last - trace.arrival + 1
    req = np.repeat(np.arange(trace.n), span)
    slot = trace.arrival[req] + (np.arange(req.size) - np.repeat(np.cumsum(span) - span, span))
    user = trace.user[req]
    p = trace.prepared(req, slot)
    if req.size:
        rc = check_rows(p, np.arange(req.size)[:, None])
        ok = rc.code == _kernel.OK
        tc1 = rc.t_compute
    else:
        ok, tc1 = np.zeros(0, bool), np.zeros(0)
    B_U, B_D = p.uplink_hz, p.downlink_hz
    up_min = p.up_bits / (B_U * np.log2(1.0 + p.snr_hz / B_U))  # least upload time
    down_min = p.down_c / B_D                                   # least download time
    # demand lower bounds; 0 (always valid) where rounding leaves no positive time
    den = p.window - tc1 - up_min
    t_up = p.window - tc1 - down_min
    down = np.where(den > 0, p.down_c / np.where(den > 0, den, 1.0), 0.0)
    up = np.where(t_up > 0, uplink_min_bandwidth(p.up_bits, np.where(t_up > 0, t_up, 1.0),
                                                 p.snr_hz), 0.0)
    up = np.where(np.isfinite(up), up, 0.0)
    K = cfg.n_users
    mem = p.prefill_tokens + p.output_tokens
    cap_tokens = p.kv_capacity / p.kv_per_token
    bs = np.arange(1, K + 1, dtype=float)
    tcb = p.enc_s[:, None] + p.compute_time(bs[None, :], p.prefill_tokens[:, None],
                                            p.output_tokens[:, None])
    fits = tcb + (up_min + down_min)[:, None] <= p.window[:, None] * (1 + SLACK)
    if p.padded:
        fits &= bs[None, :] * mem[:, None] <= cap_tokens * (1 + SLACK)
    bmax = np.where(fits, bs[None, :], 0).max(axis=1, initial=0).astype(np.int64)
    bmax = np.maximum(bmax, 1)  # feasible alone: a batch of one fits
    sel = np.flatnonzero(ok)
    return Items(req[sel], slot[sel], user[sel], trace.weight[req[sel]], mem[sel], down[sel],
                 up[sel], bmax[sel], _conflicts(p, sel, slot[sel], user[sel]),
                 cap_tokens * (1 + SLACK), B_D * (1 + SLACK), B_U * (1 + SLACK))


def _conflicts(p, sel: np.ndarray, slot: np.ndarray, user: np.ndarray) -> np.ndarray:
    """Pairs (a, b), a < b, of items (indices into ``sel``) of one slot and two users that
    no feasible batch holds together (exact check of the pair)."""
    order = np.argsort(slot, kind="stable")
    cuts = np.flatnonzero(np.diff(slot[order])) + 1
    pairs = []
    for g in np.split(order, cuts):
        if g.size < 2:
            continue
        a, b = np.triu_indices(g.size, 1)
        a, b = g[a], g[b]
        keep = user[a] != user[b]
        pairs.append(np.stack([a[keep], b[keep]], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(pairs)
    if pairs.size == 0:
        return pairs
    bad = check_rows(p, sel[pairs]).code != _kernel.OK
    return pairs[bad]


def prepared_items(trace: Trace, items: Items, idx: np.ndarray):
    """Prepared arrays of the items ``idx`` (their slot's gains and remaining deadlines)."""
    return trace.prepared(items.req[idx], items.slot[idx])


def minimal_infeasible(trace: Trace, items: Items, batch: np.ndarray, limit: int = 3):
    """Up to ``limit`` minimal infeasible subsets (item indices) of the items ``batch`` (one
    slot, distinct users); none when the batch is feasible."""
    batch = np.asarray(batch, dtype=np.int64)
    p = prepared_items(trace, items, batch)
    pos = np.arange(batch.size)
    out = []

    def feasible(rows):
        return check_rows(p, rows[None, :]).code[0] == _kernel.OK

    live = pos
    while len(out) < limit and live.size >= 2 and not feasible(live):
        core = live
        for i in sorted(live, key=lambda k: -items.weight[batch[k]]):
            trial = core[core != i]
            if trial.size and not feasible(trial):
                core = trial
        out.append(batch[core])
        heavy = core[np.argmax(items.mem[batch[core]])]
        live = live[live != heavy]
    return out
