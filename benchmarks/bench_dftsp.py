"""DFTSP at cell scale: time, tree nodes and certified gap per instance family.

Families (``edgellm.system.generate.FAMILIES``): both objectives x both KV modes x three
slot ranges (3-6, 6-15, 15-30 s); every instance draws its own catalog system (every
model, quantization and device pair that fits), trace, radio and deadlines. For each
family and K, the same seeded instances are solved with a time limit; the script prints
median and worst wall time and nodes, how many hit the limit and their worst certified
gap, then the targets of issue 14. At K = 16 brute force checks every optimum.

A warm-up solve per family runs first (with more than 16 candidates, so that the box
search is compiled too), so numba compilation (cached on disk after the first run) is
never timed. ``--baseline`` also solves every instance under the same limit with another
search: the plain depth-first search of the previous version (one tree over all
candidates, no boxes; the default), ``box`` (this box search without its Lagrangian box
bound), or the search of a git revision (e.g. ``main``: its dftsp/solver.py and
dftsp/_search.py on this tree's system model), and prints its figures (time, nodes,
stops, worst certified gap) and the ratios beside; optimal values must agree.

    python benchmarks/bench_dftsp.py                 # full run (about 20 minutes)
    python benchmarks/bench_dftsp.py --quick         # 3 instances per family and K
    python benchmarks/bench_dftsp.py --peer          # also the HiGHS relaxation bound
    python benchmarks/bench_dftsp.py --baseline      # also the plain search, side by side
    python benchmarks/bench_dftsp.py --baseline box --families tokens/exact/long --ks 256
                                                     # against the box search without the
                                                     # Lagrangian box bound, one family
    python benchmarks/bench_dftsp.py --baseline main # against the search of a git revision
    python benchmarks/bench_dftsp.py --diagnose --ks 256 --instances 4
                                                     # weak incumbent or weak bound, per
                                                     # slow or stopped instance
"""

from __future__ import annotations

import argparse
import importlib
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgellm.dftsp import solve, solver
from edgellm.system import prepare
from edgellm.system.generate import FAMILIES, family_instance


def family_name(fam) -> str:
    return "/".join(fam)


def instances(fam, K: int, n: int):
    for seed in range(n):
        rng = np.random.default_rng([K, seed, FAMILIES.index(fam)])
        yield prepare(family_instance(rng, K, *fam))


def plain_search(p, limit: float):
    """The search without boxes (one depth-first tree over every candidate)."""
    saved, solver.BOX_MIN = solver.BOX_MIN, 1 << 62
    try:
        return solve(p, time_limit=limit)
    finally:
        solver.BOX_MIN = saved


def untightened_search(p, limit: float):
    """The box search without the Lagrangian box bound."""
    saved, solver.CLOSE_AFTER = solver.CLOSE_AFTER, math.inf
    try:
        return solve(p, time_limit=limit)
    finally:
        solver.CLOSE_AFTER = saved


BASELINES = {"plain": plain_search, "box": untightened_search}


def revision_search(rev: str):
    """``solve`` of the search of git revision ``rev`` (its dftsp/solver.py and
    dftsp/_search.py, on this tree's system model), loaded under private module names
    from a folder per commit, where numba caches its compiled code across runs."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=True).stdout

    try:
        sha = git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    except subprocess.CalledProcessError:
        raise SystemExit(f"--baseline: {rev!r} is neither {' nor '.join(BASELINES)} nor a "
                         "git revision") from None
    folder = Path(tempfile.gettempdir()) / f"edgellm-dftsp-{sha[:12]}"
    folder.mkdir(exist_ok=True)
    for name in ("_search", "solver"):
        text = git("show", f"{sha}:dftsp/{name}.py").replace(
            "from edgellm.dftsp import _search", f"import _rev{sha[:12]}_search as _search")
        path = folder / f"_rev{sha[:12]}{name}.py"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    sys.path.insert(0, str(folder))
    module = importlib.import_module(f"_rev{sha[:12]}solver")

    def run(p, limit: float):
        return module.solve(p, time_limit=limit)

    return run


def diagnose(name: str, p, s, node_limit: int = 5_000_000) -> None:
    """Where a slow or stopped solve ``s`` loses: its incumbent against the optimum (a solve
    without time limit, up to ``node_limit`` checks), and the work of proving the optimum
    from scratch against the work with the optimum given as the first incumbent (a weak
    incumbent costs the difference; what remains is the bound's)."""
    full = solve(p, node_limit=node_limit)
    given = solve(p, node_limit=node_limit, start=full.batch)
    ref = max(full.value, 1)
    opt = "" if full.status == "optimal" else f" (>= {full.value}, <= {full.upper_bound})"
    print(f"  {name} K={p.n}: at the limit {s.value} <= opt {full.value}{opt} <= bound "
          f"{s.upper_bound}; incumbent {100 * (full.value - s.value) / ref:.1f}% "
          f"below, bound {100 * (s.upper_bound - full.value) / ref:.1f}% above | "
          f"proof from scratch {full.nodes} checks {full.wall_s:.2f} s, optimum given "
          f"{given.nodes} checks {given.wall_s:.2f} s", flush=True)


def run_family(fam, K: int, n: int, limit: float, check: bool, baseline,
               diag: bool = False) -> dict:
    ms, nodes, gaps, stopped = [], [], [], 0
    base_ms, base_nodes, base_gaps, base_stopped = [], [], [], 0
    for seed, p in enumerate(instances(fam, K, n)):
        if baseline:
            b = baseline(p, limit)
            base_ms.append(b.wall_s * 1e3)
            base_nodes.append(b.nodes)
            if b.status != "optimal":
                base_stopped += 1
                base_gaps.append(b.gap)
        s = solve(p, time_limit=limit)
        if baseline and s.status == b.status == "optimal" and s.value != b.value:
            raise SystemExit(f"MISMATCH {family_name(fam)} K={K}: {s.value} != "
                             f"base search {b.value}")
        if diag and (s.status != "optimal" or s.wall_s > 0.1 * limit):
            diagnose(f"{family_name(fam)} seed {seed}", p, s)
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
    r = dict(ms_med=statistics.median(ms), ms_max=max(ms),
             nodes_med=statistics.median(nodes), nodes_max=max(nodes), stopped=stopped,
             gap_max=max(gaps, default=0.0), n=n)
    if baseline:
        r.update(base_ms_med=statistics.median(base_ms), base_ms_max=max(base_ms),
                 base_nodes_med=statistics.median(base_nodes), base_stopped=base_stopped,
                 base_gap_max=max(base_gaps, default=0.0))
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 instances per family and K")
    ap.add_argument("--instances", type=int, default=None)
    ap.add_argument("--ks", default="16,64,256,1024", help="comma list of K")
    ap.add_argument("--limit", type=float, default=5.0,
                    help="time limit [s] per solve for K < 1024 (default 5)")
    ap.add_argument("--baseline", nargs="?", const="plain",
                    help="also solve every instance with 'plain' (default: the search "
                    "without boxes), 'box' (the box search without the Lagrangian box "
                    "bound) or the search of a git revision (e.g. main), side by side")
    ap.add_argument("--families", default=None,
                    help="comma list of families (e.g. tokens/exact/long), default all")
    ap.add_argument("--diagnose", action="store_true",
                    help="for every solve stopped by the limit or slower than a tenth of "
                    "it: the optimum (no time limit, 5e6 checks at most) and the work "
                    "of the proof with the optimum given first (see diagnose)")
    ap.add_argument("--peer", action="store_true",
                    help="also solve the MILP relaxation with HiGHS (see dftsp/relax.py)")
    args = ap.parse_args()
    n = args.instances or (3 if args.quick else 8)
    Ks = [int(k) for k in args.ks.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}, numpy {np.__version__}; {n} instances per family "
          f"and K; time limit {args.limit:g} s (1 s at K = 1024)")
    t0 = time.perf_counter()
    base = None
    if args.baseline:
        base = BASELINES.get(args.baseline) or revision_search(args.baseline)
    fams = FAMILIES
    if args.families:
        fams = [f for f in FAMILIES if family_name(f) in args.families.split(",")]
    for fam in fams:  # warm-up: compile (or load) the search, untimed
        solve(next(instances(fam, 40, 1)))
        if base:
            base(next(instances(fam, 40, 1)), args.limit)
    print(f"warm-up (numba compile or cache load, not timed): {time.perf_counter() - t0:.1f} s")
    rows = {}
    print(f"\n{'family':<26} {'K':>5} {'ms med':>9} {'ms max':>9} {'nodes med':>10} "
          f"{'nodes max':>10} {'limited':>8} {'gap max':>8}"
          + (f" | {'base med':>9} {'base max':>9} {'b.nodes med':>11} {'b.limited':>9} "
             f"{'b.gap max':>9} {'x med':>6}" if args.baseline else ""))
    for K in Ks:
        limit = 1.0 if K >= 1024 else args.limit
        for fam in fams:
            r = run_family(fam, K, n, limit, check=K <= 16, baseline=base,
                           diag=args.diagnose)
            rows[fam, K] = r
            print(f"{family_name(fam):<26} {K:>5} {r['ms_med']:>9.2f} {r['ms_max']:>9.1f} "
                  f"{r['nodes_med']:>10.0f} {r['nodes_max']:>10} {r['stopped']:>8} "
                  f"{100 * r['gap_max']:>7.2f}%"
                  + (f" | {r['base_ms_med']:>9.2f} {r['base_ms_max']:>9.1f} "
                     f"{r['base_nodes_med']:>11.0f} {r['base_stopped']:>9} "
                     f"{100 * r['base_gap_max']:>8.2f}% "
                     f"{r['base_ms_med'] / max(r['ms_med'], 1e-9):>6.1f}"
                     if args.baseline else ""), flush=True)
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
