"""Shannon-rate radio model of the uplink and downlink (SPEC section 2.3).

Pure functions that broadcast over NumPy arrays. Units: Hz, W, W/Hz, bit, bit/s, s.

Uplink: user k with bandwidth beta gets r = beta log2(1 + p g / (N0 beta)). Writing
a = p g / N0 [Hz], the rate is increasing and concave in beta and tends to a / ln 2 as
beta grows, so a prompt of u bits cannot be sent in less than u ln 2 / a seconds.
The least bandwidth that sends u bits in time T solves x = a / beta in
ln(1 + x) = c x with c = u ln 2 / (a T) in (0, 1); its positive root is
x = -W_{-1}(-c e^{-c}) / c - 1 (Lambert W, lower branch), polished by Newton's method.

Downlink: the node spreads P_EN evenly over B_D, so user k's spectral efficiency is the
constant rho_k = log2(1 + P_EN h_k / (N0 B_D)) bit/s/Hz.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import lambertw

LN2 = math.log(2.0)


def uplink_rate(beta, power_w, gain, noise_psd):
    """Uplink Shannon rate [bit/s] of bandwidth ``beta`` [Hz]."""
    beta = np.asarray(beta, dtype=float)
    return beta * np.log2(1.0 + power_w * gain / (noise_psd * beta))


def uplink_snr_hz(power_w, gain, noise_psd):
    """a = p g / N0 [Hz]: the received power over the noise density."""
    return np.asarray(power_w, dtype=float) * gain / noise_psd


def uplink_min_time(bits, snr_hz):
    """Infimum of upload times [s] at unbounded bandwidth: bits ln 2 / a."""
    return np.asarray(bits, dtype=float) * LN2 / snr_hz


def uplink_min_bandwidth(bits, t, snr_hz):
    """Least bandwidth [Hz] that uploads ``bits`` within ``t`` seconds.

    ``inf`` where ``t`` is at or below :func:`uplink_min_time` (no bandwidth suffices).
    """
    bits, t, snr_hz = np.broadcast_arrays(np.asarray(bits, dtype=float),
                                          np.asarray(t, dtype=float),
                                          np.asarray(snr_hz, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = bits * LN2 / (snr_hz * t)
    ok = (c > 0.0) & (c < 1.0)
    cs = np.where(ok, c, 0.5)
    z = -cs * np.exp(-cs)
    with np.errstate(invalid="ignore", over="ignore"):
        x = (-lambertw(z, k=-1).real / cs) - 1.0
    x = np.where(np.isfinite(x) & (x > 0.0), x, 1.0 / cs)
    # Newton on F(x) = ln(1 + x) - c x, concave with its root right of its peak: started
    # right of the root (F <= 0) it converges monotonically. Near c = 1 (upload time close
    # to the floor) W_{-1} loses accuracy, so first make sure the start is right of the root.
    for _ in range(80):
        right = np.log1p(x) - cs * x <= 0.0
        if right.all():
            break
        x = np.where(right, x, 2.0 * x)
    for _ in range(60):
        f = np.log1p(x) - cs * x
        step = f / (1.0 / (1.0 + x) - cs)
        x = x - step
        if np.all(np.abs(step) <= 1e-15 * x):
            break
    beta = snr_hz / x
    beta = np.where(ok, beta, np.where(c <= 0.0, 0.0, np.inf))
    return beta if beta.ndim else float(beta)


def downlink_efficiency(en_power_w, gain, noise_psd, downlink_hz):
    """rho_k = log2(1 + P_EN h_k / (N0 B_D)) [bit/s/Hz]."""
    return np.log2(1.0 + en_power_w * np.asarray(gain, dtype=float) / (noise_psd * downlink_hz))


def downlink_min_bandwidth(bits, t, efficiency):
    """Least bandwidth [Hz] that sends ``bits`` within ``t`` seconds; inf where t <= 0."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        out = np.where(t > 0.0, np.asarray(bits, dtype=float) / (np.where(t > 0, t, 1.0)
                                                                  * efficiency), np.inf)
    return out if out.ndim else float(out)
