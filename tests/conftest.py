"""Shared fixtures: a tiny hand-computable system and random catalog instances."""

from __future__ import annotations

import numpy as np
import pytest

from edgellm.system import Device, Model, Quant, Radio, Request, SlotInstance

# Tiny system whose numbers are easy to compute by hand:
# L=2, d=4, 2 heads, 1 KV head -> d_kv = 2; kv_bits 16 -> kv = 2*2*2*16/8 = 16 B/token.
# P = 100, weight_bits 8 -> W = 100 B. C = 2000 * 0.5 = 1000 FLOP/s; M = 125 * 0.8 = 100 B/s.
TINY_MODEL = Model("tiny", n_layers=2, d_model=4, n_heads=2, n_kv_heads=1, n_params=100)
TINY_QUANT = Quant("w8", weight_bits=8, kv_bits=16, compute="fp16", ppl_increase=0.5)
TINY_DEVICE = Device("toy", memory_bytes=10_000, reserved_bytes=1_000,
                     peak_flops={"fp16": 2000.0}, mem_bandwidth=125.0,
                     compute_efficiency=0.5, memory_efficiency=0.8)
TINY_RADIO = Radio(uplink_hz=1e6, downlink_hz=1e6, noise_psd_w_per_hz=1e-20, en_power_w=1.0,
                   bits_per_token=10.0)


def tiny_request(**kw) -> Request:
    base = dict(prompt_tokens=3, output_tokens=4, deadline_s=100.0, ppl_tolerance=1.0,
                uplink_gain=1e-10, downlink_gain=1e-13, tx_power_w=1.0)
    base.update(kw)
    return Request(**base)


@pytest.fixture
def tiny():
    def make(requests, **kw):
        args = dict(model=TINY_MODEL, quant=TINY_QUANT, device=TINY_DEVICE, radio=TINY_RADIO,
                    slot_s=100.0, kv_cache="padded", objective="requests")
        args.update(kw)
        return SlotInstance(requests=tuple(requests), **args)

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
