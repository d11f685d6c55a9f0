"""Large- and small-scale channel gains (linear power gains, dimensionless).

Path loss PL[dB] = A + B log10(d / 1 km) from a selectable 3GPP model
(:data:`PATH_LOSS_MODELS`, each with the distances it is valid for), with log-normal
shadowing (standard deviation in dB) and Rayleigh fading (exponential power gain with unit
mean). ``legacy`` is the version-0.1 behaviour (the macro formula clipped at 1 m), kept so
that existing scenarios replay unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numba.np.random.distributions import random_standard_normal

from edgellm.system._rng import bitgen, pointers

PL_A_DB = 128.1   # 3GPP TR 36.814, macro-cell path loss at a 2 GHz carrier
PL_B_DB = 37.6
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@dataclass(frozen=True)
class PathLossModel:
    """PL[dB] = a_db + b_db log10(d / 1 km), valid for min_m <= d <= max_m [m]."""

    a_db: float
    b_db: float
    min_m: float
    max_m: float
    source: str


PATH_LOSS_MODELS: dict[str, PathLossModel] = {
    "3gpp-macro": PathLossModel(
        128.1, 37.6, 35.0, 2000.0,
        "3GPP TR 36.814 V9.0.0, Table A.2.1.1.2-3: macro cell to UE, L = 128.1 + 37.6 "
        "log10(R), R in km, 2 GHz carrier; Table A.2.1.1-1: minimum UE-to-cell distance 35 m; "
        "the layouts of Table A.2.1.1-1 use inter-site distances up to 1732 m, so distances "
        "beyond 2 km are outside the evaluated range"),
    "3gpp-pico": PathLossModel(
        140.7, 36.7, 10.0, 1000.0,
        "3GPP TR 36.814 V9.0.0, Table A.2.1.1.2-3: pico cell to UE (NLOS), L = 140.7 + 36.7 "
        "log10(R), R in km, 2 GHz carrier; Table A.2.1.1.2-1 (heterogeneous deployments): "
        "minimum pico-to-UE distance 10 m; pico cells cover a few hundred metres inside a "
        "macro cell, so distances beyond 1 km are outside the evaluated range"),
    "legacy": PathLossModel(
        128.1, 37.6, 1.0, math.inf,
        "edgellm-gym 0.1: the macro formula of 3GPP TR 36.814, clipped at 1 m (no "
        "validity range); kept so that scenarios of version 0.1 replay unchanged"),
}


def path_loss_db(distance_m, model: str = "legacy"):
    """Path loss [dB] at ``distance_m`` metres under ``model`` (distances below the
    model's minimum distance are clipped to it)."""
    pl = PATH_LOSS_MODELS[model]
    d_km = np.maximum(np.asarray(distance_m, dtype=float), pl.min_m) / 1000.0
    return pl.a_db + pl.b_db * np.log10(d_km)


def large_scale_gain(distance_m, shadowing_db, model: str = "legacy"):
    """Linear gain of path loss plus a shadowing term [dB] (positive shadowing = extra loss)."""
    return 10.0 ** (-(path_loss_db(distance_m, model)
                      + np.asarray(shadowing_db, dtype=float)) / 10.0)


# Receiver noise figures [dB] of the 3GPP evaluation assumptions: the base station receives
# the uplink, the user equipment the downlink.
NOISE_FIGURE_DB = {"bs": 5.0, "ue": 9.0}
NOISE_FIGURE_SOURCE = ("3GPP TR 36.814 V9.0.0, Table A.2.1.1-3 (eNB noise figure 5 dB, UE "
                       "noise figure 9 dB); the same values in 3GPP TR 38.901, Table 7.8-1 "
                       "(BS noise figure 5 dB, UE noise figure 9 dB)")
THERMAL_DBM_PER_HZ = -174.0  # kT at 290 K


def noise_psd(noise_figure_db: float) -> float:
    """Noise power spectral density [W/Hz]: thermal kT (-174 dBm/Hz) times the figure."""
    return 10.0 ** ((THERMAL_DBM_PER_HZ + noise_figure_db - 30.0) / 10.0)


def rayleigh_power(rng: np.random.Generator, size) -> np.ndarray:
    """Unit-mean exponential power gains |h|^2 of Rayleigh fading."""
    return rng.exponential(1.0, size)


def gauss_markov(rng: np.random.Generator, h: np.ndarray, rho: float) -> np.ndarray:
    """Next complex fading coefficients: rho h + sqrt(1 - rho^2) w, w ~ CN(0, 1).

    ``h`` holds the real parts in ``h[0]`` and the imaginary parts in ``h[1]`` (shape
    (2, ...)); the power gain is ``h[0]**2 + h[1]**2``. ``rho = 0`` draws independent fading
    each slot; the power gain stays unit-mean exponential. Draws ``h.size`` standard normals
    (``rng.standard_normal(h.shape)``, real parts first) through :func:`fading_step`.
    """
    out = np.array(h, dtype=float).reshape(2, -1)
    _fading_at(pointers(rng), out, rho, math.sqrt(1.0 - rho * rho))
    return out.reshape(np.shape(h))


@njit(cache=True, nogil=True)
def fading_step(bg, h, rho, srho):
    """:func:`gauss_markov` in place on ``h`` (2, M) from bit generator ``bg``: 2M
    standard normals z (the real parts' M, then the imaginary parts'), then
    ``h <- rho h + srho z / sqrt(2)`` with ``srho = sqrt(1 - rho^2)``."""
    M = h.shape[1]
    z = np.empty(2 * M)
    for i in range(2 * M):
        z[i] = random_standard_normal(bg)
    for r in range(2):
        for i in range(M):
            h[r, i] = rho * h[r, i] + srho * (z[r * M + i] * _INV_SQRT2)


@njit(cache=True, nogil=True)
def _fading_at(ptrs, h, rho, srho):
    fading_step(bitgen(ptrs), h, rho, srho)


def power_gain(h: np.ndarray) -> np.ndarray:
    """|h|^2 of coefficients stored as (real, imaginary) in ``h[0]``, ``h[1]``."""
    return h[0] * h[0] + h[1] * h[1]
