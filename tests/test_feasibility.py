"""evaluate(): hand-computed timing, memory, bandwidths and the reason of each failure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import tiny_request

from edgellm.system import evaluate, prepare


def test_single_request_by_hand(tiny):
    ev = evaluate(tiny([tiny_request()]), [0])
    # prefill b=1,S=3: F=792 -> 0.792 s, Q=148 B -> 1.48 s; decode Q_j=164,180,196 -> 5.4 s
    assert ev.feasible and ev.reason is None and ev.value == 1
    assert ev.t_prefill_s == pytest.approx(1.48)
    assert ev.t_decode_s == pytest.approx(5.4)
    assert ev.t_compute_s == pytest.approx(6.88)
    assert ev.kv_bytes == 7 * 16 and ev.memory_bytes == 100 + 7 * 16
    # uplink: 30 bits at the whole 1 MHz with a = 1e10 Hz -> T_U = 30 / (1e6 log2(1 + 1e4))
    assert ev.t_uplink_s == pytest.approx(30 / (1e6 * math.log2(1 + 1e4)), rel=1e-9)
    assert ev.uplink_hz[0] == pytest.approx(1e6, rel=1e-9)
    # downlink: rho = log2(1 + 1e-13 / (1e-20 * 1e6)) = log2(11); window 100 - T_C - T_U
    window = 100 - 6.88 - ev.t_uplink_s
    assert ev.download_s[0] == pytest.approx(window)
    assert ev.downlink_hz[0] == pytest.approx(40 / (math.log2(11) * window))
    assert ev.epoch_s == pytest.approx(100.0)


def test_padded_and_exact_memory(tiny):
    reqs = [tiny_request(), tiny_request(prompt_tokens=100)]
    assert evaluate(tiny(reqs), [0, 1]).kv_bytes == 2 * (100 + 4) * 16
    assert evaluate(tiny(reqs, kv_cache="exact"), [0, 1]).kv_bytes == (7 + 104) * 16


def test_objective_weights(tiny):
    reqs = [tiny_request(output_tokens=4), tiny_request(output_tokens=9)]
    assert evaluate(tiny(reqs), [0, 1]).value == 2
    assert evaluate(tiny(reqs, objective="tokens"), [0, 1]).value == 13


@pytest.mark.parametrize("req,kw,reason", [
    (dict(ppl_tolerance=0.1), {}, "accuracy"),            # ppl_increase 0.5 > 0.1
    (dict(prompt_tokens=600), {}, "memory"),               # (600+4)*16 > 10000-1000-100
    (dict(deadline_s=5.0), {}, "deadline"),                # T_C = 6.88 > 5
    ({}, dict(slot_s=5.0), "slot"),                        # T_C > slot
    (dict(downlink_gain=2e-21), {}, "downlink"),           # 40 bits need 1.49 MHz
    (dict(uplink_gain=1e-21), {}, "uplink"),               # 30 ln2 / 0.1 s > window
])
def test_each_reason(tiny, req, kw, reason):
    ev = evaluate(tiny([tiny_request(**req)], **kw), [0])
    assert not ev.feasible and ev.reason == reason and ev.value == 0


def test_feasible_allocation_meets_every_constraint(rng):
    from edgellm.system.generate import random_instance

    checked = 0
    for _ in range(60):
        inst = random_instance(rng, 6, radio={"uplink_hz": 2e6, "downlink_hz": 1e5})
        for mask in range(1, 64):
            batch = [k for k in range(6) if mask >> k & 1]
            ev = evaluate(inst, batch)
            if not ev.feasible:
                continue
            checked += 1
            assert sum(ev.uplink_hz) <= inst.radio.uplink_hz * (1 + 1e-9)
            assert sum(ev.downlink_hz) <= inst.radio.downlink_hz * (1 + 1e-9)
            assert ev.memory_bytes <= inst.device.memory_bytes - inst.device.reserved_bytes
            for k, t in zip(batch, ev.download_s):
                r = inst.requests[k]
                assert ev.t_uplink_s + ev.t_compute_s + t <= min(r.deadline_s, inst.slot_s) + 1e-9
                assert inst.quant.ppl_increase <= r.ppl_tolerance
            assert ev.epoch_s <= inst.slot_s + 1e-9
            assert 0 < ev.t_uplink_s <= ev.t_uplink_max_s
    assert checked > 50


def test_bad_batches_raise_clear_errors(tiny):
    inst = tiny([tiny_request(), tiny_request()])
    with pytest.raises(ValueError, match="out of range"):
        evaluate(inst, [2])
    with pytest.raises(ValueError, match="repeated"):
        evaluate(inst, [1, 1])
    assert evaluate(inst, []).feasible and evaluate(inst, []).value == 0


def test_prepared_and_instance_agree(rng):
    from edgellm.system.generate import random_instance

    inst = random_instance(rng, 5)
    p = prepare(inst)
    for b in ([0], [1, 3], [0, 2, 4]):
        assert evaluate(inst, b).to_dict() == evaluate(p, b).to_dict()
    assert np.all(p.window <= inst.slot_s)
