"""Large- and small-scale channel gains (linear power gains, dimensionless).

Path loss follows the 3GPP TR 36.814 macro-cell model, PL[dB] = 128.1 + 37.6 log10(d / 1 km),
with log-normal shadowing (standard deviation in dB) and Rayleigh fading (exponential power
gain with unit mean).
"""

from __future__ import annotations

import math

import numpy as np

PL_A_DB = 128.1   # 3GPP TR 36.814, macro-cell path loss at a 2 GHz carrier
PL_B_DB = 37.6
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def path_loss_db(distance_m):
    """Path loss [dB] at ``distance_m`` metres (clipped below at 1 m)."""
    d_km = np.maximum(np.asarray(distance_m, dtype=float), 1.0) / 1000.0
    return PL_A_DB + PL_B_DB * np.log10(d_km)


def large_scale_gain(distance_m, shadowing_db):
    """Linear gain of path loss plus a shadowing term [dB] (positive shadowing = extra loss)."""
    return 10.0 ** (-(path_loss_db(distance_m) + np.asarray(shadowing_db, dtype=float)) / 10.0)


def rayleigh_power(rng: np.random.Generator, size) -> np.ndarray:
    """Unit-mean exponential power gains |h|^2 of Rayleigh fading."""
    return rng.exponential(1.0, size)


def gauss_markov(rng: np.random.Generator, h: np.ndarray, rho: float) -> np.ndarray:
    """Next complex fading coefficients: rho h + sqrt(1 - rho^2) w, w ~ CN(0, 1).

    ``h`` holds the real parts in ``h[0]`` and the imaginary parts in ``h[1]`` (shape
    (2, ...)); the power gain is ``h[0]**2 + h[1]**2``. ``rho = 0`` draws independent fading
    each slot; the power gain stays unit-mean exponential.
    """
    w = rng.standard_normal(h.shape) * _INV_SQRT2  # real parts first, then imaginary
    return rho * h + math.sqrt(1.0 - rho * rho) * w


def power_gain(h: np.ndarray) -> np.ndarray:
    """|h|^2 of coefficients stored as (real, imaginary) in ``h[0]``, ``h[1]``."""
    return h[0] * h[0] + h[1] * h[1]
