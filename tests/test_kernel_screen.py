"""The screened feasibility check gives the exact check's answer, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgellm.system import prepare
from edgellm.system._kernel import LN2, check_row, check_row_screened, uplink_bw, uplink_screen
from edgellm.system.generate import FAMILIES, family_instance


def _both(p, ids, B_U=None):
    """(check_row's result, check_row_screened's result, the exact uplink sum or NaN)."""
    B_U = p.uplink_hz if B_U is None else B_U
    b = ids.size
    D, c, up, down = (np.full(b, np.nan) for _ in range(4))
    args = (ids, p.prefill_tokens, p.output_tokens, p.window, p.admissible, p.up_bits,
            p.snr_hz, p.down_c, p.enc_s, *p.cost_constants, p.kv_capacity, p.padded, B_U,
            p.downlink_hz, p.slot_s)
    exact = check_row(*args, D, c, up, down)
    total = up.sum() if exact[0] in (0, 6) else math.nan
    return exact, check_row_screened(*args, D, c, up, down), total


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: "-".join(f))
def test_screened_check_equals_the_exact_one_on_every_subset(family):
    n = 7
    rows = uplink_rows = 0
    for seed in range(4):
        rng = np.random.default_rng([seed, FAMILIES.index(family)])
        p = prepare(family_instance(rng, n, *family))
        for mask in range(1, 2 ** n):
            ids = np.array([k for k in range(n) if mask >> k & 1], np.int64)
            exact, screened, total = _both(p, ids)
            assert screened == exact[:5], (seed, ids)
            rows += 1
            if math.isfinite(total) and total > 0:
                uplink_rows += 1
                # B_U set just around the exact sum: the screen must defer to the exact test
                for rel in (-1e-6, -1e-12, 0.0, 1e-12, 1e-6):
                    exact, screened, _ = _both(p, ids, total * (1.0 + rel))
                    assert screened == exact[:5], (seed, ids, rel)
    assert rows == 4 * (2 ** n - 1) and uplink_rows > 0


def test_uplink_screen_is_sound_and_decides_clear_cases():
    rng = np.random.default_rng(0)
    ids = np.arange(3)
    refuted = 0
    for _ in range(4000):
        snr = 10.0 ** rng.uniform(3, 12, 3)
        T = 10.0 ** rng.uniform(-3, 1)
        # c = bits ln2 / (snr T) spread over (1e-9, 1.2), the rate limit included
        cs = 10.0 ** rng.uniform(-9, np.log10(1.2), 3)
        bits = cs * snr * T / LN2
        bits[rng.random(3) < 0.1] = 0.0
        total = sum(uplink_bw(bits[k], T, snr[k]) for k in range(3))
        if not math.isfinite(total):  # a prompt beyond the rate limit
            assert uplink_screen(ids, bits, snr, T, 1e300) == -1
            continue
        for B_U in (total * 30.0, total / 3.0, total * (1 + 1e-8), total * (1 - 1e-8)):
            s = uplink_screen(ids, bits, snr, T, B_U)
            if s > 0:
                assert total <= B_U
            elif s < 0:
                assert not total <= B_U
                refuted += 1
        # the upper bound is within a factor ln(1/c) / 2 <= 11 of each term
        assert uplink_screen(ids, bits, snr, T, 30.0 * total) == 1 or cs[bits > 0].max() > 0.999
    assert refuted > 500
    assert uplink_screen(ids, np.ones(3), np.ones(3), 0.0, 1e9) == -1  # no time to upload
    assert uplink_screen(ids, np.zeros(3), np.ones(3), 0.0, 0.0) == 1  # nothing to upload
