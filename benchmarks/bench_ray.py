"""Eval episodes per second: the local backend against Ray tasks, measured in one run.

The same eval (policies x episodes, regret off) runs with ``backend="local"`` and with
``backend="ray"`` into fresh folders; Ray is started once beforehand (its start-up time is
printed separately) and the Ray eval runs twice: *cold* (fresh worker processes: imports
and numba cache loads) and *warm* (workers reused). Overhead per task: the wall time of
N empty Ray tasks, and of one-slot episodes, per task. Checks that the Ray records equal
the local ones (timing entries aside).

    .venv/bin/python benchmarks/bench_ray.py [--episodes E] [--slots S] [--users K]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from edgellm import distributed
from edgellm.eval.runner import EvalSpec, run_eval
from edgellm.eval.store import without_timing


def _records(out: Path) -> dict:
    recs = {}
    for p in sorted((out / "episodes").rglob("*.json")):
        recs[str(p.relative_to(out))] = without_timing(json.loads(p.read_text()))
    return recs


def _timed_eval(spec: EvalSpec, out: Path, backend: str) -> float:
    t0 = time.perf_counter()
    run_eval(spec, out, progress=False, plots=False, backend=backend)
    return time.perf_counter() - t0


def _noop(x):
    return x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--slots", type=int, default=50)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--policies", default="oracle,fcfs,edf")
    ap.add_argument("--tasks", type=int, default=200, help="empty tasks for the overhead")
    args = ap.parse_args(argv)
    policies = tuple(args.policies.split(","))
    spec = EvalSpec(scenario="default", policies=policies, episodes=args.episodes,
                    slots=args.slots, overrides={"n_users": args.users}, regret=False)
    n_eps = len(policies) * args.episodes
    print(f"# bench_ray: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; {n_eps} episodes x {args.slots} slots, "
          f"K={args.users}, policies {','.join(policies)}, regret off")
    t0 = time.perf_counter()
    ray = distributed.init()
    print(f"ray.init (local, num_cpus={os.cpu_count()}): {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_eval(EvalSpec(policies=policies, episodes=1, slots=2,
                          overrides={"n_users": args.users}, regret=False),
                 tmp / "warm-local", progress=False, plots=False)  # kernels loaded here too
        t_local = _timed_eval(spec, tmp / "local", "local")
        t_cold = _timed_eval(spec, tmp / "ray-cold", "ray")
        t_warm = _timed_eval(spec, tmp / "ray-warm", "ray")
        same = _records(tmp / "local") == _records(tmp / "ray-cold") == \
            _records(tmp / "ray-warm")
        one = EvalSpec(policies=("fcfs",), episodes=args.tasks // 4, slots=1,
                       overrides={"n_users": args.users}, regret=False)
        t1_local = _timed_eval(one, tmp / "one-local", "local")
        t1_ray = _timed_eval(one, tmp / "one-ray", "ray")
    task = ray.remote(_noop)
    ray.get([task.remote(i) for i in range(10)])
    t0 = time.perf_counter()
    ray.get([task.remote(i) for i in range(args.tasks)])
    t_noop = (time.perf_counter() - t0) / args.tasks
    print(f"{'backend':<12} {'wall s':>8} {'episodes/s':>11} {'x local':>8}")
    for name, t in (("local", t_local), ("ray (cold)", t_cold), ("ray (warm)", t_warm)):
        print(f"{name:<12} {t:8.2f} {n_eps / t:11.2f} {t_local / t:8.2f}")
    n1 = one.episodes
    print(f"overhead per task: empty task {1e3 * t_noop:.2f} ms (round trip, driver side); "
          f"one-slot episodes: {1e3 * t1_ray / n1:.1f} ms wall per episode on Ray "
          f"({os.cpu_count()} workers) vs {1e3 * t1_local / n1:.1f} ms local")
    print(f"records equal to the local backend's (timing aside): {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
