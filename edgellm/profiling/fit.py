"""Fitting the roofline's effective rates C [FLOP/s] and M [B/s] to measured pass times."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.profiling.accounting import ModelStats, kv_per_token
from edgellm.profiling.models import ScaledArch
from edgellm.profiling.timing import Point
from edgellm.system import cost


@dataclass(frozen=True)
class CostParams:
    """Cost-model inputs of the built model (SPEC 2.2 symbols)."""

    P: float   # matmul parameters
    L: int
    d: int
    W: float   # weight bytes read per pass
    kv: float  # KV bytes per token position

    @classmethod
    def of(cls, arch: ScaledArch, stats: ModelStats) -> CostParams:
        return cls(float(stats.n_params_matmul), arch.n_layers, arch.d_model,
                   float(stats.weight_bytes_read), kv_per_token(arch, stats.element_bytes))


def predict(cp: CostParams, b, S, N, C: float, M: float) -> tuple[np.ndarray, np.ndarray]:
    """Predicted prefill and total decode seconds (cost.prefill_time / cost.decode_time)."""
    pre = cost.prefill_time(b, S, cp.P, cp.L, cp.d, cp.W, cp.kv, C, M)
    dec = cost.decode_time(b, S, N, cp.P, cp.L, cp.d, cp.W, cp.kv, C, M)
    return np.asarray(pre, float), np.asarray(dec, float)


def fit_rates(cp: CostParams, b, S, N, t_prefill, t_decode) -> tuple[float, float]:
    """Effective compute rate C [FLOP/s] and bandwidth M [B/s] that best explain the times.

    Minimises the mean squared log ratio predicted/measured over every prefill and every
    (N > 1) decode total, each weighted alike; a coarse log grid then Nelder-Mead.
    """
    from scipy.optimize import minimize

    b, S, N = (np.asarray(x, float) for x in (b, S, N))
    tp, td = np.asarray(t_prefill, float), np.asarray(t_decode, float)
    if b.size == 0 or np.any(tp <= 0):
        raise EdgeLLMError("fit: needs at least one point with positive prefill time")
    has_dec = (N > 1) & (td > 0)

    lo_x, hi_x = 0.0, 20.0  # search 1 .. 1e20 FLOP/s and B/s; outside, a quadratic wall

    def loss(x):
        xc = np.clip(x, lo_x, hi_x)
        C, M = 10.0 ** xc[0], 10.0 ** xc[1]
        pre, dec = predict(cp, b, S, N, C, M)
        r = [np.log(pre / tp)]
        if has_dec.any():
            r.append(np.log(dec[has_dec] / td[has_dec]))
        r = np.concatenate(r)
        return float(np.mean(r * r) + np.sum((np.asarray(x) - xc) ** 2))

    # starting scales: prefill is compute-like, decode memory-like
    F_pre = b * (2 * cp.P * S + 2 * cp.L * cp.d * S * (S + 1))
    c0 = np.log10(np.median(F_pre / tp))
    if has_dec.any():
        Q_dec = (N - 1) * (cp.W + b * (S + N / 2) * cp.kv)
        m0 = np.log10(np.median(Q_dec[has_dec] / td[has_dec]))
    else:
        m0 = np.log10(np.median((cp.W + b * S * cp.kv) / tp))
    span = np.linspace(-2.0, 2.0, 41)
    best = min((loss((c0 + u, m0 + v)), (c0 + u, m0 + v)) for u in span for v in span)
    res = minimize(loss, np.array(best[1]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 4000})
    x = np.clip(res.x if res.fun <= best[0] else np.array(best[1]), lo_x, hi_x)
    return float(10.0 ** x[0]), float(10.0 ** x[1])


def apply_fit(points: list[Point], cp: CostParams, C: float, M: float) -> list[Point]:
    """Fill each point's predictions at rates C, M (in place; returns ``points``)."""
    arr = lambda k: np.array([getattr(p, k) for p in points], float)  # noqa: E731
    pre, dec = predict(cp, arr("batch"), arr("prompt"), arr("output"), C, M)
    for p, a, d in zip(points, np.atleast_1d(pre), np.atleast_1d(dec), strict=True):
        p.pred_prefill_s, p.pred_decode_s = float(a), float(d)
    return points


def fit_points(points: list[Point], cp: CostParams) -> tuple[float, float]:
    arr = lambda k: np.array([getattr(p, k) for p in points], float)  # noqa: E731
    return fit_rates(cp, arr("batch"), arr("prompt"), arr("output"), arr("prefill_s"),
                     arr("decode_s"))


def error_summary(points: list[Point]) -> dict[str, float]:
    """Median and worst relative error of predicted compute time."""
    errs = [p.rel_error for p in points]
    return {"median": float(np.median(errs)), "worst": float(np.max(errs)), "n": len(errs)}


def holdout_check(points: list[Point], cp: CostParams) -> dict[str, Any] | None:
    """Fit on a checkerboard half of the (batch, prompt) grid, score on the other half."""
    bs = sorted({p.batch for p in points})
    ss = sorted({p.prompt for p in points})
    parity = [(bs.index(p.batch) + ss.index(p.prompt)) % 2 for p in points]
    train = [p for p, k in zip(points, parity, strict=True) if k == 0]
    test = [Point(**{k: v for k, v in asdict(p).items()})
            for p, k in zip(points, parity, strict=True) if k == 1]
    if len(train) < 2 or not test:
        return None
    C, M = fit_points(train, cp)
    apply_fit(test, cp, C, M)
    return {"C": C, "M": M, "n_train": len(train), **error_summary(test)}
