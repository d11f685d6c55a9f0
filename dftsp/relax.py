"""A linear relaxation of the slot problem, solved by a MILP solver (HiGHS, through
``scipy.optimize.milp``): the peer DFTSP is compared with.

Why no exact linear formulation: feasibility couples every member through one uplink
phase T_U, a continuous variable, and through T_C(b, S, N). Enumerating the batch's size
b, longest prompt S* and longest output N* as configurations fixes T_C and makes memory
and deadlines linear (cardinality and membership limits), but the radio constraints stay
non-linear in T_U: sum_k beta_k(T_U) x_k <= B_U with beta_k the inverse of a Shannon
rate (a Lambert-W expression), and sum_k c_k / (w_k - T_C - T_U) x_k <= B_D. A fixed T_U
grid gives a restriction (T_U at a grid point: a lower bound) or a relaxation (demands at
the ends of a grid cell: an upper bound), never the exact problem, and the configurations
multiply the model size by up to K^3. So the peer here is the relaxation below, which is
an upper bound on the optimum:

    max  sum_j w_j x_j  over the requests feasible alone, x_j in {0, 1}
    s.t. sum_j (s_j + n_j) x_j <= KV capacity / kv            (KV memory; padded >= exact)
         sum_j c_j / (w_j - T_C(1, s_j, n_j)) x_j <= B_D      (downlink, T_U >= 0)
         sum_j beta_j(w_j - T_C(1, s_j, n_j)) x_j <= B_U       (uplink, T_U <= w_j - T_C)
         sum_k F_k / C x_k <= w_j + (sum_k F_k / C)(1 - x_j)   (for each j: compute time
                                                              is at least the batch's
                                                              FLOPs, at least each
                                                              member's own, over C)
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from edgellm.system._kernel import OK
from edgellm.system.feasibility import Prepared, check_additions
from edgellm.system.radio import uplink_min_bandwidth


def own_flops(p: Prepared, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """FLOPs of one request alone (prefill plus its n - 1 decode steps; SPEC 2.2)."""
    L, d, P = float(p.n_layers), float(p.d_model), p.n_params
    steps = n - 1.0
    decode = steps * (2 * P + 4 * L * d * s) + 4 * L * d * steps * (steps + 1) / 2
    return 2 * P * s + 2 * L * d * s * (s + 1) + decode


def relaxation_bound(p: Prepared, time_limit: float = 60.0) -> tuple[float, float, bool]:
    """(bound, wall seconds, solved to optimality) of the MILP relaxation above."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    t0 = time.perf_counter()
    rc = check_additions(p, [], np.arange(p.n))
    F = np.flatnonzero(rc.code == OK)
    if F.size == 0:
        return 0.0, time.perf_counter() - t0, True
    s, n, w = p.prefill_tokens[F], p.output_tokens[F], p.window[F]
    tc = rc.t_compute[F]
    f = own_flops(p, s, n) / p.flops
    rows = [s + n, p.down_c[F] / (w - tc),
            uplink_min_bandwidth(p.up_bits[F], w - tc, p.snr_hz[F])]
    ub = [p.kv_capacity / p.kv_per_token, p.downlink_hz, p.uplink_hz]
    big = f.sum()
    A = np.vstack(rows + [np.tile(f, (F.size, 1)) + big * np.eye(F.size)])
    hi = np.concatenate([ub, w + big])
    with _quiet():
        res = milp(-p.weight[F].astype(float), integrality=np.ones(F.size),
                   bounds=Bounds(0, 1), constraints=LinearConstraint(A, -np.inf, hi),
                   options={"time_limit": time_limit})
    wall = time.perf_counter() - t0
    if res.x is None:
        return float(p.weight[F].sum()), wall, False
    # a stopped solve's dual bound is still an upper bound; scipy reports it as mip_dual_bound
    bound = -float(getattr(res, "mip_dual_bound", res.fun)) if res.status != 0 else -res.fun
    return bound, wall, res.status == 0


@contextlib.contextmanager
def _quiet():
    """Silence what the HiGHS library prints to the process's stdout (file descriptor 1)
    even with display off."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def peer_table(Ks, n: int = 4, time_limit: float = 10.0) -> None:
    """Print DFTSP's time beside the HiGHS relaxation's time and its bound as a multiple of
    DFTSP's value (the optimum unless DFTSP hit the time limit)."""
    from edgellm.dftsp.solver import solve
    from edgellm.system.generate import FAMILIES, family_instance

    print(f"\n## peer: HiGHS (scipy.optimize.milp) on the linear relaxation, {n} instances "
          f"per family and K, limit {time_limit:g} s each")
    print(f"{'family':<26} {'K':>5} {'dftsp ms med':>13} {'highs ms med':>13} "
          f"{'bound/dftsp med':>16} {'bound/dftsp max':>16} {'highs done':>10}")
    for K in Ks:
        for fam in FAMILIES:
            d_ms, h_ms, ratio, done = [], [], [], 0
            for seed in range(n):
                rng = np.random.default_rng([K, seed, FAMILIES.index(fam)])
                from edgellm.system.feasibility import prepare

                p = prepare(family_instance(rng, K, *fam))
                sol = solve(p, time_limit=time_limit)
                bound, wall, ok = relaxation_bound(p, time_limit)
                d_ms.append(sol.wall_s * 1e3)
                h_ms.append(wall * 1e3)
                ratio.append(bound / sol.value if sol.value else 1.0)
                done += ok
            print(f"{'/'.join(fam):<26} {K:>5} {np.median(d_ms):>13.1f} "
                  f"{np.median(h_ms):>13.1f} {np.median(ratio):>16.2f} {max(ratio):>16.2f} "
                  f"{done:>7}/{n}", flush=True)
