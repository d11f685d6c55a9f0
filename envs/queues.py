"""Per-user FIFO request queues and the end-of-slot mechanics, compiled (numba).

Queue k holds up to Q requests, oldest first, as the rows ``data[k, :length[k]]``; a row
holds the fields of :data:`FIELDS` (token counts and ids are stored exactly as float64;
``prompt_tokens`` is the text prompt, the prefill adds ``media_tokens``).
Rows at or beyond ``length[k]`` are stale and never read.

:meth:`Queues.end_slot` runs everything that happens between two decisions in one compiled
call, in this order: serve (pop the batch users' heads), age (every remaining deadline
shrinks by the slot length; a request whose remaining deadline is at most its compute time
alone can never be served and expires), admit the next slot's arrivals (unservable ones are
rejected, already-late ones expire, a full queue overflows). The compute time and KV bytes
come from the compiled formulas of :mod:`edgellm.system._kernel`, the oracle's cost model.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from edgellm.system._kernel import served_alone

FIELDS = ("prompt_tokens", "output_tokens", "deadline_s", "ppl_tolerance", "compute_s", "id",
          "media_tokens", "uplink_media_bits", "downlink_media_bits", "encoder_flops")
PROMPT_TOKENS, OUTPUT_TOKENS, DEADLINE_S, PPL_TOLERANCE, COMPUTE_S, ID = range(6)
MEDIA_TOKENS, UPLINK_MEDIA_BITS, DOWNLINK_MEDIA_BITS, ENCODER_FLOPS = range(6, len(FIELDS))
_ENC = ENCODER_FLOPS - MEDIA_TOKENS  # column of encoder FLOPs in a (K, 4) media draw
DROP_CAUSES = ("expired", "overflow", "rejected")
EXPIRED, OVERFLOW, REJECTED = range(len(DROP_CAUSES))

_jit = njit(cache=True, nogil=True)


class Rules(NamedTuple):
    """What the end of a slot needs from the scenario and the system (fixed per episode)."""

    slot_s: float                 # slot length [s]
    tokens: bool                  # objective weights: output tokens (else 1 per request)
    reject_unservable: bool       # drop arrivals that no batch could serve
    drop_new: bool                # overflow drops the arrival (else the queue's head)
    ppl_increase: float           # perplexity increase of the served model
    kv_capacity: float            # KV-cache bytes available [B]
    padded: bool                  # padded KV cache (else exact)
    cost: tuple                   # Prepared.cost_constants: (P, L, d, W, kv, C, M)
    encoder_rate: float = 1.0     # C_enc of the media encoders [FLOP/s]


@_jit
def _pop(data, length, k):
    """Remove the head of queue k."""
    n = length[k]
    for j in range(n - 1):
        for f in range(data.shape[2]):  # explicit loops: a slice copy costs more here
            data[k, j, f] = data[k, j + 1, f]
    length[k] = n - 1


@_jit
def _push(data, length, k, s, n, tau, tol, tc, rid, media):
    j = length[k]
    for f in range(media.size):
        data[k, j, MEDIA_TOKENS + f] = media[f]
    data[k, j, PROMPT_TOKENS] = s
    data[k, j, OUTPUT_TOKENS] = n
    data[k, j, DEADLINE_S] = tau
    data[k, j, PPL_TOLERANCE] = tol
    data[k, j, COMPUTE_S] = tc
    data[k, j, ID] = rid
    length[k] = j + 1


@_jit
def _end_slot(data, length, served, arrive, prompt_tokens, output_tokens, deadline_s,
              ppl_tolerance, media, first_id, slot_s, tokens, reject_unservable, drop_new,
              ppl_increase, kv_capacity, padded, cost, encoder_rate):
    P, L, d, W, kv, C, M = cost
    drops = np.zeros(3, np.int64)
    weight = 0.0  # objective weight of the drops (exact: sums of integers)
    for k in served:
        _pop(data, length, k)
    K, Q = length.size, data.shape[1]
    for k in range(K):  # age and expire, keeping the order of the survivors
        kept = 0
        for j in range(length[k]):
            data[k, j, DEADLINE_S] -= slot_s
            if data[k, j, COMPUTE_S] >= data[k, j, DEADLINE_S]:
                drops[EXPIRED] += 1
                weight += data[k, j, OUTPUT_TOKENS] if tokens else 1.0
            else:
                if kept != j:
                    for f in range(data.shape[2]):
                        data[k, kept, f] = data[k, j, f]
                kept += 1
        length[k] = kept
    rid = first_id
    for k in range(K):  # arrivals, ids in user order
        if not arrive[k]:
            continue
        n, tau, tol = float(output_tokens[k]), deadline_s[k], ppl_tolerance[k]
        s = float(prompt_tokens[k]) + media[k, 0]  # prefill tokens: text + media tokens
        w = n if tokens else 1.0
        tc, fits = served_alone(s, n, media[k, _ENC] / encoder_rate, P, L, d, W, kv, C, M,
                                kv_capacity, padded)
        this_id = float(rid)
        rid += 1
        if reject_unservable and (ppl_increase > tol or tc >= slot_s or not fits):
            drops[REJECTED] += 1
            weight += w
            continue
        if tc >= tau:
            drops[EXPIRED] += 1
            weight += w
            continue
        if length[k] >= Q:
            drops[OVERFLOW] += 1
            if drop_new:
                weight += w
                continue
            weight += data[k, 0, OUTPUT_TOKENS] if tokens else 1.0
            _pop(data, length, k)
        _push(data, length, k, float(prompt_tokens[k]), n, tau, tol, tc, this_id, media[k])
    return drops, weight, rid


class Queues:
    """K FIFO queues of capacity Q (see the module docstring)."""

    def __init__(self, n_users: int, capacity: int):
        self.data = np.zeros((n_users, capacity, len(FIELDS)))
        self.length = np.zeros(n_users, dtype=np.int64)
        self.next_id = 0
        self._no_media = np.zeros((n_users, len(FIELDS) - MEDIA_TOKENS))

    def field(self, name: str) -> np.ndarray:
        """(K, Q) view of one field (stale beyond ``length``)."""
        return self.data[:, :, FIELDS.index(name)]

    def live(self) -> np.ndarray:
        """(K, Q) mask of the live rows."""
        return np.arange(self.data.shape[1])[None, :] < self.length[:, None]

    def end_slot(self, served: np.ndarray, draw, rules: Rules) -> tuple[np.ndarray, float]:
        """Serve the heads of ``served`` (int64 user ids), age, and admit the arrivals of
        ``draw`` (a :class:`~edgellm.envs.traffic.SlotDraw`). Returns the drop counts
        (indexed like :data:`DROP_CAUSES`) and their total objective weight."""
        media = self._no_media if draw.media is None else draw.media
        drops, weight, self.next_id = _end_slot(
            self.data, self.length, served, draw.arrive, draw.prompt_tokens,
            draw.output_tokens, draw.deadline_s, draw.ppl_tolerance, media, self.next_id,
            *rules)
        return drops, weight
