"""Uplink inversion and downlink bandwidth against the rate formulas (SPEC 2.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgellm.system import radio


def test_uplink_bandwidth_by_hand():
    # a = p g / N0 = 1 * 1e-10 / 1e-20 = 1e10 Hz; at 1 MHz the rate is 1e6 log2(1 + 1e4)
    bits = 1e6 * math.log2(1 + 1e4)
    assert radio.uplink_min_bandwidth(bits, 1.0, 1e10) == pytest.approx(1e6, rel=1e-12)
    assert radio.uplink_rate(1e6, 1.0, 1e-10, 1e-20) == pytest.approx(bits, rel=1e-15)


def test_uplink_inversion_matches_rate_formula(rng):
    bits = 10 ** rng.uniform(2, 8, 2000)
    snr = 10 ** rng.uniform(3, 12, 2000)
    floor = radio.uplink_min_time(bits, snr)
    t = floor * (1 + 10 ** rng.uniform(-6, 4, 2000))  # from barely above the floor to far
    beta = radio.uplink_min_bandwidth(bits, t, snr)
    assert np.all(np.isfinite(beta)) and np.all(beta > 0)
    rate = beta * np.log2(1 + snr / beta)
    np.testing.assert_allclose(rate * t, bits, rtol=1e-9)


def test_uplink_below_rate_limit_is_impossible():
    bits, snr = 1e5, 1e8
    floor = radio.uplink_min_time(bits, snr)
    assert floor == pytest.approx(bits * math.log(2) / snr)
    assert radio.uplink_min_bandwidth(bits, floor, snr) == math.inf
    assert radio.uplink_min_bandwidth(bits, 0.5 * floor, snr) == math.inf
    assert math.isfinite(radio.uplink_min_bandwidth(bits, 1.01 * floor, snr))


def test_uplink_bandwidth_falls_with_time(rng):
    t = np.linspace(0.01, 1.0, 50)
    beta = radio.uplink_min_bandwidth(2e5, t, 1e9)
    assert np.all(np.diff(beta) < 0)


def test_downlink_by_hand():
    # P_EN h / (N0 B_D) = 1 * 1e-13 / (1e-20 * 1e7) = 1 -> rho = log2(2) = 1 bit/s/Hz
    rho = radio.downlink_efficiency(1.0, 1e-13, 1e-20, 1e7)
    assert rho == pytest.approx(1.0)
    assert radio.downlink_min_bandwidth(1e6, 0.5, rho) == pytest.approx(2e6)
    assert radio.downlink_min_bandwidth(1e6, 0.0, rho) == math.inf


def test_uplink_lower_bound_is_below_and_close_to_the_least_bandwidth(rng):
    """uplink_bw_lower (two Newton steps, the search's relaxations) never exceeds
    uplink_bw beyond rounding and is close to it; the edge cases are uplink_bw's."""
    from edgellm.system._kernel import uplink_bw, uplink_bw_lower

    bits = 10 ** rng.uniform(2, 8, 3000)
    snr = 10 ** rng.uniform(3, 12, 3000)
    floor = radio.uplink_min_time(bits, snr)
    t = floor * (1 + 10 ** rng.uniform(-6, 4, 3000))
    exact = np.array([uplink_bw(*v) for v in zip(bits, t, snr)])
    lower = np.array([uplink_bw_lower(*v) for v in zip(bits, t, snr)])
    assert np.all(lower < exact)
    rel = 1 - lower / exact
    assert np.median(rel) < 1e-4 and rel.max() < 1e-2
    assert uplink_bw_lower(0.0, 1.0, 1e9) == 0.0
    assert uplink_bw_lower(1e5, 0.0, 1e9) == math.inf
    below_floor = 0.5 * radio.uplink_min_time(1e5, 1e9)
    assert uplink_bw_lower(1e5, below_floor, 1e9) == math.inf
