"""DFTSP at cell scale: time, tree nodes and certified gap per instance family.

Families (``edgellm.system.generate.FAMILIES``): both objectives x both KV modes x three
slot ranges (3-6, 6-15, 15-30 s); every instance draws its own catalog system (every
model, quantization and device pair that fits), trace, radio and deadlines. For each
family and K, the same seeded instances are solved with a time limit; the script prints
median and worst wall time and nodes, how many hit the limit and their worst certified
gap, then the targets of issue 14. At K = 16 brute force checks every optimum.

A warm-up solve per family runs first, so numba compilation (cached on disk after the
first run) is never timed.

    python benchmarks/bench_dftsp.py                 # full run (about 20 minutes)
    python benchmarks/bench_dftsp.py --quick         # 3 instances per family and K
    python benchmarks/bench_dftsp.py --peer          # also the HiGHS relaxation bound
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from edgellm.dftsp import solve
from edgellm.system import prepare
from edgellm.system.generate import FAMILIES, family_instance


def family_name(fam) -> str:
    return "/".join(fam)


def instances(fam, K: int, n: int):
    for seed in range(n):
        rng = np.random.default_rng([K, seed, FAMILIES.index(fam)])
        yield prepare(family_instance(rng, K, *fam))


def run_family(fam, K: int, n: int, limit: float, check: bool) -> dict:
    ms, nodes, gaps, stopped = [], [], [], 0
    for p in instances(fam, K, n):
        s = solve(p, time_limit=limit)
        ms.append(s.wall_s * 1e3)
        nodes.append(s.nodes)
        if s.status != "optimal":
            stopped += 1
            gaps.append(s.gap)
        if check:
            b = solve(p, "bruteforce")
            if b.value != s.value:
                raise SystemExit(f"MISMATCH {family_name(fam)} K={K}: dftsp {s.value} != "
                                 f"brute force {b.value}")
    return dict(ms_med=statistics.median(ms), ms_max=max(ms),
                nodes_med=statistics.median(nodes), nodes_max=max(nodes), stopped=stopped,
                gap_max=max(gaps, default=0.0), n=n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 instances per family and K")
    ap.add_argument("--instances", type=int, default=None)
    ap.add_argument("--ks", default="16,64,256,1024", help="comma list of K")
    ap.add_argument("--limit", type=float, default=5.0,
                    help="time limit [s] per solve for K < 1024 (default 5)")
    ap.add_argument("--peer", action="store_true",
                    help="also solve the MILP relaxation with HiGHS (see dftsp/relax.py)")
    args = ap.parse_args()
    n = args.instances or (3 if args.quick else 8)
    Ks = [int(k) for k in args.ks.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}, numpy {np.__version__}; {n} instances per family "
          f"and K; time limit {args.limit:g} s (1 s at K = 1024)")
    t0 = time.perf_counter()
    for fam in FAMILIES:  # warm-up: compile (or load) the search, untimed
        solve(next(instances(fam, 12, 1)))
    print(f"warm-up (numba compile or cache load, not timed): {time.perf_counter() - t0:.1f} s")
    rows = {}
    print(f"\n{'family':<26} {'K':>5} {'ms med':>9} {'ms max':>9} {'nodes med':>10} "
          f"{'nodes max':>10} {'limited':>8} {'gap max':>8}")
    for K in Ks:
        limit = 1.0 if K >= 1024 else args.limit
        for fam in FAMILIES:
            r = run_family(fam, K, n, limit, check=K <= 16)
            rows[fam, K] = r
            print(f"{family_name(fam):<26} {K:>5} {r['ms_med']:>9.2f} {r['ms_max']:>9.1f} "
                  f"{r['nodes_med']:>10.0f} {r['nodes_max']:>10} {r['stopped']:>8} "
                  f"{100 * r['gap_max']:>7.2f}%", flush=True)
    if args.peer:
        from edgellm.dftsp.relax import peer_table

        peer_table(Ks=[k for k in Ks if k <= 256], n=min(n, 2), time_limit=args.limit)
    print("\n## targets (issue 14), per family")
    verdicts = []

    def target(label, K, ok_fn, what):
        if all((f, K) in rows for f in FAMILIES):
            bad = [family_name(f) for f in FAMILIES if not ok_fn(rows[f, K])]
            worst = max(rows[f, K][what] for f in FAMILIES)
            verdicts.append(f"{label}: worst family {worst:.1f} ms; "
                            f"{'PASS' if not bad else 'FAIL on ' + ', '.join(bad)}")

    target("K=256 median <= 50 ms", 256, lambda r: r["ms_med"] <= 50, "ms_med")
    target("K=256 worst <= 2 s", 256, lambda r: r["ms_max"] <= 2000 and not r["stopped"],
           "ms_max")
    target("K=64 worst <= 200 ms", 64, lambda r: r["ms_max"] <= 200 and not r["stopped"],
           "ms_max")
    target("K=1024 median <= 1 s or gap <= 1% at 1 s", 1024,
           lambda r: r["ms_med"] <= 1000 or r["gap_max"] <= 0.01, "ms_med")
    print("\n".join(verdicts))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
