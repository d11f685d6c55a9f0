"""Shannon-rate radio model of the uplink and downlink (SPEC section 2.3).

Pure functions that broadcast over NumPy arrays. Units: Hz, W, W/Hz, bit, bit/s, s.

Uplink: user k with bandwidth beta gets r = beta log2(1 + p g / (N0 beta)). Writing
a = p g / N0 [Hz], the rate is increasing and concave in beta and tends to a / ln 2 as
beta grows, so a prompt of u bits cannot be sent in less than u ln 2 / a seconds.
The least bandwidth that sends u bits in time T solves x = a / beta in
ln(1 + x) = c x with c = u ln 2 / (a T) in (0, 1); its positive root is
x = -W_{-1}(-c e^{-c}) / c - 1 (Lambert W, lower branch): ``_kernel.uplink_bw`` starts
from its asymptotic expansion and converges with Newton's method to machine precision.

Downlink: the node spreads P_EN evenly over B_D, so user k's spectral efficiency is the
constant rho_k = log2(1 + P_EN h_k / (N0 B_D)) bit/s/Hz.
"""

from __future__ import annotations

import numpy as np
from numba import vectorize

from edgellm.system import _kernel

LN2 = _kernel.LN2


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


_uplink_bw = vectorize(["float64(float64, float64, float64)"], cache=True)(_kernel.uplink_bw)


def uplink_min_bandwidth(bits, t, snr_hz):
    """Least bandwidth [Hz] that uploads ``bits`` within ``t`` seconds.

    ``inf`` where ``t`` is at or below :func:`uplink_min_time` (no bandwidth suffices).
    """
    out = _uplink_bw(bits, t, snr_hz)
    return out if np.ndim(out) else float(out)


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
