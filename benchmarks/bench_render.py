"""Milliseconds per rendered frame (``rgb_array`` and ``ansi``), next to the env step.

Each mode renders the state after every step of a masked random policy (sequential mode,
so the batch changes between frames); the first frame (figure construction) is timed
separately. Prints median and worst ms per frame over the run, and the ratio to the median
env step. ``--figure PATH`` also writes one frame as a PNG (the README's picture).

    .venv/bin/python benchmarks/bench_render.py [--frames N] [--users K] [--figure PATH]
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import edgellm.envs  # noqa: F401  (registers the ids)


def measure(mode: str, frames: int, users: int, seed: int = 0) -> dict:
    env = gym.make("edgellm.envs:EdgeLLM-Sequential-v0", render_mode=mode, n_users=users)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    last = env.render()
    first = time.perf_counter() - t0
    step_s, frame_s = [], []
    for _ in range(frames):
        a = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
        t0 = time.perf_counter()
        _, _, _, trunc, _ = env.step(a)
        step_s.append(time.perf_counter() - t0)
        if trunc:
            env.reset()
        t0 = time.perf_counter()
        last = env.render()
        frame_s.append(time.perf_counter() - t0)
    env.close()
    return {"mode": mode, "first_ms": 1e3 * first, "median_ms": 1e3 * np.median(frame_s),
            "max_ms": 1e3 * np.max(frame_s), "step_ms": 1e3 * np.median(step_s),
            "last": last}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--figure", default=None, help="write the last rgb frame here (PNG)")
    args = ap.parse_args(argv)
    print(f"# bench_render: {platform.machine()}, python {platform.python_version()}, "
          f"K={args.users}, {args.frames} frames per mode")
    print(f"{'mode':<10} {'first ms':>9} {'median ms':>10} {'max ms':>8} {'step ms':>8} "
          f"{'frame/step':>11}")
    rgb = None
    for mode in ("rgb_array", "ansi"):
        r = measure(mode, args.frames, args.users)
        rgb = r["last"] if mode == "rgb_array" else rgb
        print(f"{mode:<10} {r['first_ms']:9.1f} {r['median_ms']:10.2f} {r['max_ms']:8.2f} "
              f"{r['step_ms']:8.3f} {r['median_ms'] / r['step_ms']:11.0f}")
    if args.figure:
        import matplotlib.image

        matplotlib.image.imsave(args.figure, rgb)
        print(f"wrote {args.figure} {rgb.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
