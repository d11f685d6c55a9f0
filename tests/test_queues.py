"""The compiled end-of-slot queue mechanics, on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from edgellm.envs.queues import DROP_CAUSES, Queues, Rules
from edgellm.envs.traffic import SlotDraw
from edgellm.system import catalog, prepare

SYSTEM = catalog.build_instance("llama-2-7b", "w4a16", "rtx-4090", ())
P0 = prepare(SYSTEM)
PPL = SYSTEM.quant.ppl_increase
SLOT = 5.0
NONE = np.zeros(0, dtype=np.int64)


def rules(**kw) -> Rules:
    base = dict(slot_s=SLOT, tokens=False, reject_unservable=True, drop_new=True,
                ppl_increase=PPL, kv_capacity=P0.kv_capacity, padded=P0.padded,
                cost=P0.cost_constants)
    return Rules(**{**base, **kw})


def tc(s, n) -> float:
    """Compute time of one request alone, from the oracle's cost model."""
    return float(P0.compute_time(1, s, n))


def draw(K, arrivals: dict) -> SlotDraw:
    """Arrivals {user: (prompt_tokens, output_tokens, deadline_s, ppl_tolerance)}; the
    other users send nothing."""
    arrive = np.zeros(K, dtype=bool)
    cols = np.ones((4, K))
    for k, req in arrivals.items():
        arrive[k] = True
        cols[:, k] = req
    g = np.ones(K)
    return SlotDraw(arrive, cols[0].astype(np.int64), cols[1].astype(np.int64), cols[2],
                    cols[3], g, g)


def counts(drops) -> dict:
    return dict(zip(DROP_CAUSES, drops.tolist()))


def test_admission_assigns_ids_in_user_order_and_stores_fields():
    q = Queues(3, 2)
    drops, w = q.end_slot(NONE, draw(3, {2: (100, 20, 4.0, 9.0), 0: (50, 10, 3.0, 9.0)}),
                          rules())
    assert counts(drops) == {"expired": 0, "overflow": 0, "rejected": 0} and w == 0.0
    assert q.length.tolist() == [1, 0, 1] and q.next_id == 2
    assert q.field("id")[[0, 2], 0].tolist() == [0.0, 1.0]
    assert q.data[2, 0].tolist() == [100.0, 20.0, 4.0, 9.0, tc(100, 20), 1.0, 0.0, 0.0, 0.0, 0.0]


def test_serve_pops_heads_and_aging_expires():
    q = Queues(1, 4)
    r = rules()
    assert tc(100, 20) < 3.0
    for tau in (20.0, 8.0, 30.0):  # one arrival per slot, nothing served
        q.end_slot(NONE, draw(1, {0: (100, 20, tau, 9.0)}), r)
    assert q.field("deadline_s")[0, :3].tolist() == [20.0 - 2 * SLOT, 8.0 - SLOT, 30.0]
    drops, w = q.end_slot(np.array([0]), draw(1, {}), r)  # serve the head (id 0), age
    # id 1 had 3 s left, now -2 s: expired; id 2 moves to the front
    assert counts(drops) == {"expired": 1, "overflow": 0, "rejected": 0} and w == 1.0
    assert q.length.tolist() == [1]
    assert q.data[0, 0, [2, 5]].tolist() == [30.0 - SLOT, 2.0]


def test_expiry_in_the_middle_of_a_queue():
    q = Queues(1, 3)
    r = rules()
    t = tc(10, 5)
    q.end_slot(NONE, draw(1, {0: (10, 5, 30.0, 9.0)}), r)        # id 0: 30 s
    # id 1 arrives with t + 4 s: after one aging (5 s) it has t - 1 s left: expires
    drops, _ = q.end_slot(NONE, draw(1, {0: (10, 5, t + 4.0, 9.0)}), r)
    assert q.length.tolist() == [2]
    drops, w = q.end_slot(NONE, draw(1, {0: (10, 5, 40.0, 9.0)}), r)  # id 2 arrives
    assert counts(drops)["expired"] == 1 and w == 1.0
    assert q.length.tolist() == [2] and q.field("id")[0, :2].tolist() == [0.0, 2.0]
    assert q.field("deadline_s")[0, :2].tolist() == [30.0 - 2 * SLOT, 40.0]


@pytest.mark.parametrize("tokens", [False, True])
def test_rejected_arrivals_and_their_weight(tokens):
    q = Queues(4, 2)
    arrivals = {0: (10, 7, 30.0, PPL / 2),     # inadmissible: tolerance below the increase
                1: (2048, 1024, 30.0, 9.0),    # compute alone exceeds the slot
                2: (10, 3, 30.0, 9.0),         # fine
                3: (10, 2, tc(10, 2), 9.0)}    # already late: expires on arrival
    assert tc(2048, 1024) >= SLOT
    drops, w = q.end_slot(NONE, draw(4, arrivals), rules(tokens=tokens))
    assert counts(drops) == {"expired": 1, "overflow": 0, "rejected": 2}
    assert w == (7 + 1024 + 2 if tokens else 3.0)
    assert q.length.tolist() == [0, 0, 1, 0] and q.next_id == 4
    assert q.field("id")[2, 0] == 2.0
    # without rejection the unservable ones wait (and expire later)
    q2 = Queues(4, 2)
    drops, _ = q2.end_slot(NONE, draw(4, arrivals), rules(tokens=tokens,
                                                           reject_unservable=False))
    assert counts(drops)["rejected"] == 0 and q2.length[0] == 1


def test_memory_rejection():
    q = Queues(1, 1)
    drops, _ = q.end_slot(NONE, draw(1, {0: (10, 3, 30.0, 9.0)}),
                          rules(kv_capacity=13 * P0.kv_per_token - 1.0))
    assert counts(drops)["rejected"] == 1 and q.length[0] == 0


@pytest.mark.parametrize("drop_new", [True, False])
def test_overflow(drop_new):
    q = Queues(1, 2)
    r = rules(drop_new=drop_new, tokens=True)
    for n in (4, 5):
        q.end_slot(NONE, draw(1, {0: (10, n, 60.0, 9.0)}), r)
    drops, w = q.end_slot(NONE, draw(1, {0: (10, 6, 60.0, 9.0)}), r)
    assert counts(drops) == {"expired": 0, "overflow": 1, "rejected": 0}
    assert q.length[0] == 2
    if drop_new:  # the arrival (6 tokens) is dropped
        assert w == 6.0 and q.field("id")[0, :2].tolist() == [0.0, 1.0]
    else:  # the head (4 tokens) is pushed out
        assert w == 4.0 and q.field("id")[0, :2].tolist() == [1.0, 2.0]
