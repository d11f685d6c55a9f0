"""DFTSP against brute force: tree nodes evaluated and wall time, side by side.

For each K, the same random instances (catalog systems, seeds 0..n-1) are solved by DFTSP
and, where it finishes in reasonable time, by brute force (2^K subsets). Prints median
and worst nodes and times, their ratios, and the targets of issue 2:
DFTSP nodes <= 2% of brute force's at K = 16; median decision at K = 32 under 1% of a
5-second slot (50 ms).

    python benchmarks/bench_dftsp.py                # full run (several minutes)
    python benchmarks/bench_dftsp.py --quick        # fewer instances
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from edgellm.dftsp import solve
from edgellm.system import prepare
from edgellm.system.generate import random_instance

# Systems cycled over the instances: (model, quantization, device).
SYSTEMS = (
    ("llama-2-7b", "w4a16", "rtx-4090"),
    ("llama-3-8b", "w8a8", "l4"),
    ("mistral-7b", "w4a16", "jetson-agx-orin-64gb"),
    ("opt-6.7b", "fp16", "a100-40gb-pcie"),
)


def instances(K: int, n: int, kv_cache: str, objective: str):
    for seed in range(n):
        model, quant, device = SYSTEMS[seed % len(SYSTEMS)]
        rng = np.random.default_rng([K, seed])
        yield prepare(random_instance(rng, K, model=model, quant=quant, device=device,
                                      kv_cache=kv_cache, objective=objective))


def run(Ks, n, brute_max, kv_cache="padded", objective="requests"):
    print(f"\n## kv_cache={kv_cache}, objective={objective}, {n} instances per K")
    print(f"{'K':>3} {'method':>10} {'nodes med':>11} {'nodes max':>11} "
          f"{'ms med':>9} {'ms max':>9} {'node ratio med':>15} {'node ratio max':>15}")
    rows = {}
    for K in Ks:
        d_nodes, d_ms, b_nodes, b_ms, ratios = [], [], [], [], []
        for p in instances(K, n, kv_cache, objective):
            d = solve(p, "dftsp")
            d_nodes.append(d.nodes)
            d_ms.append(d.wall_s * 1e3)
            if K <= brute_max:
                b = solve(p, "bruteforce")
                if b.value != d.value:
                    raise SystemExit(f"MISMATCH at K={K}: dftsp {d.value} != brute {b.value}")
                b_nodes.append(b.nodes)
                b_ms.append(b.wall_s * 1e3)
                ratios.append(d.nodes / b.nodes)
        line = (f"{K:>3} {'dftsp':>10} {statistics.median(d_nodes):>11.0f} {max(d_nodes):>11} "
                f"{statistics.median(d_ms):>9.2f} {max(d_ms):>9.2f}")
        if ratios:
            line += f" {statistics.median(ratios):>15.5f} {max(ratios):>15.5f}"
        print(line)
        if b_nodes:
            print(f"{K:>3} {'bruteforce':>10} {statistics.median(b_nodes):>11.0f} "
                  f"{max(b_nodes):>11} {statistics.median(b_ms):>9.2f} {max(b_ms):>9.2f}")
        rows[K] = dict(d_nodes=d_nodes, d_ms=d_ms, b_nodes=b_nodes, b_ms=b_ms, ratios=ratios)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer instances, K up to 32")
    ap.add_argument("--instances", type=int, default=None)
    args = ap.parse_args()
    n = args.instances or (8 if args.quick else 24)
    print(f"machine: {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}, numpy {np.__version__}")
    t0 = time.perf_counter()
    Ks = (8, 12, 16, 20, 32) if args.quick else (8, 12, 16, 20, 32, 64)
    rows = run(Ks, n, brute_max=16 if args.quick else 20)
    for kv, obj in (("exact", "requests"), ("padded", "tokens")):
        run((8, 16, 32), max(n // 2, 4), brute_max=16, kv_cache=kv, objective=obj)
    r16 = statistics.median(rows[16]["ratios"])
    m32 = statistics.median(rows[32]["d_ms"])
    print("\n## targets (padded, requests)")
    print(f"K=16 median DFTSP/brute-force nodes: {100 * r16:.3f}% (target <= 2%; "
          f"source paper: 55%)  {'PASS' if r16 <= 0.02 else 'FAIL'}")
    print(f"K=32 median DFTSP decision: {m32:.1f} ms = {100 * m32 / 5000:.2f}% of a 5 s slot "
          f"(target < 1%)  {'PASS' if m32 < 50 else 'FAIL'}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
