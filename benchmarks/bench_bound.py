"""Hindsight bounds (issue 15): the targets, the validity margin on tiny episodes, and the
foresight baselines as shares of the upper bound per preset.

    nice -n 5 .venv/bin/python benchmarks/bench_bound.py [--tiny 200] [--preset-slots 40]

1. ``edgellm bound`` on ``default``, K = 16, H = 100 (targets: <= 120 s, gap <= 5%).
2. Tiny episodes (tests' generator, text and media presets): (upper - exact) / exact and
   (exact - lower) / exact.
3. Per preset: the myopic oracle, urgent oracle, rollout, best heuristic, and the bounds, as
   shares of the upper bound (sums over the seeds).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _policy_value(name, scenario, seed, H, over):
    from edgellm.agents import make_policy
    from edgellm.horizon.bound import make_env, replay

    pol = make_policy(name)
    pol.reset(seed)
    times = []

    def choose(env, t):
        if hasattr(pol, "cfg"):
            pol.cfg = env.config
        t0 = time.perf_counter()
        b = pol.select(env.slot_view())
        times.append(time.perf_counter() - t0)
        return b

    value, _ = replay(make_env(scenario, H, over), seed, choose)
    return value, float(np.mean(times)) if times else 0.0


def main() -> None:
    from edgellm.agents import HEURISTICS
    from edgellm.envs import SCENARIOS
    from edgellm.horizon.bound import bound

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2, help="seeds of the default target")
    ap.add_argument("--tiny", type=int, default=200)
    ap.add_argument("--preset-slots", type=int, default=40)
    ap.add_argument("--preset-seeds", type=int, default=2)
    ap.add_argument("--presets", default="", help="comma list of presets of part 3 (all)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: target,tiny,presets")
    a = ap.parse_args()
    skip = set(a.skip.split(","))
    print(f"# bench_bound: {platform.machine()}, python {platform.python_version()}, "
          f"shared machine (2 cores, other jobs running)")
    if "target" not in skip:
        print("\n## 1. default, K = 16, H = 100, time limit 120 s")
        for seed in range(a.seeds):
            r = bound("default", seed, 100, time_limit=120)
            ok_t, ok_g = r.wall_s <= 120, r.gap <= 0.05
            print(f"seed {seed}: upper {r.upper_bound:g}  lower {r.lower_bound:g} ({r.best})  "
                  f"oracle {r.policies['oracle']:g}  urgent {r.policies['oracle-urgent']:g}  "
                  f"gap {100 * r.gap:.2f}% [{'met' if ok_g else 'MISSED'} <= 5%]  "
                  f"{r.wall_s:.1f} s [{'met' if ok_t else 'MISSED'} <= 120 s]  "
                  f"upper MILP {r.detail['upper_status']} {r.detail['upper_s']:.1f} s, "
                  f"{r.detail['exact_slots']} exact slots")
    if "tiny" not in skip:
        from test_horizon import MEDIA_SCENARIOS, TEXT_SCENARIOS, tiny_case

        from edgellm.horizon.bound import make_env
        from edgellm.horizon.exact import exact_optimum

        print(f"\n## 2. {a.tiny} tiny episodes (K <= 4, H <= 8): bounds against the exact optimum")
        for label, cap, pool in (("enumerated", None, TEXT_SCENARIOS),
                                 ("linear only", 0, TEXT_SCENARIOS),
                                 ("media, enum.", None, MEDIA_SCENARIOS),
                                 ("media, linear", 0, MEDIA_SCENARIOS)):
            over_up, under_lo, bad = [], [], 0
            t0 = time.perf_counter()
            for i in range(a.tiny):
                sc, seed, H, over = tiny_case(i, pool)
                kw = {} if cap is None else {"node_cap": cap}
                r = bound(sc, seed, H, over, time_limit=30, **kw)
                ex = exact_optimum(make_env(sc, H, over), seed)
                bad += not (r.lower_bound <= ex <= r.upper_bound)
                if ex > 0:
                    over_up.append((r.upper_bound - ex) / ex)
                    under_lo.append((ex - r.lower_bound) / ex)
            up, lo = np.array(over_up), np.array(under_lo)
            print(f"{label:12s}: violations {bad}; (upper-exact)/exact mean {up.mean():.4f} "
                  f"median {np.median(up):.4f} p90 {np.percentile(up, 90):.4f} max {up.max():.4f} "
                  f"zero in {np.mean(up == 0):.0%}; (exact-lower)/exact mean {lo.mean():.4f} "
                  f"max {lo.max():.4f}; {time.perf_counter() - t0:.0f} s")
    if "presets" not in skip:
        H = a.preset_slots
        print(f"\n## 3. per preset, {a.preset_seeds} seeds x {H} slots: shares of the upper bound")
        print("preset        upper  lower  oracle  urgent  rollout  best-heur  (name)  "
              "rollout ms/slot")
        for sc in (a.presets.split(",") if a.presets else SCENARIOS):
            tot = dict(upper=0.0, lower=0.0)
            vals: dict[str, float] = {}
            ms = []
            for seed in range(a.preset_seeds):
                r = bound(sc, seed, H, time_limit=60)
                tot["upper"] += r.upper_bound
                tot["lower"] += r.lower_bound
                for name in ("oracle", "oracle-urgent", "rollout", *HEURISTICS):
                    v, dt = _policy_value(name, sc, seed, H, {})
                    vals[name] = vals.get(name, 0.0) + v
                    if name == "rollout":
                        ms.append(dt * 1e3)
            u = tot["upper"]
            best = max(HEURISTICS, key=lambda n: vals[n])
            print(f"{sc:12s} {u:6g} {tot['lower'] / u:6.3f} {vals['oracle'] / u:7.3f} "
                  f"{vals['oracle-urgent'] / u:7.3f} {vals['rollout'] / u:8.3f} "
                  f"{vals[best] / u:10.3f}  ({best})  {np.mean(ms):.0f}")


if __name__ == "__main__":
    main()
