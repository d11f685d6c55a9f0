"""Steps per second of the EdgeLLM environment next to CartPole-v1, measured in one run.

Every env is created with ``gym.make`` (the same wrappers as a user gets) and driven by
``env.action_space.sample()`` (unmasked random actions, like CartPole's usual benchmark);
the sequential mode is also driven by a random *masked* policy (random among allowed
actions), the worst case for it since every step then changes the batch. Prints a table of
steps/s and the ratio to CartPole-v1's steps/s.

    .venv/bin/python benchmarks/bench_env.py [--steps N] [--seconds S]
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np

import edgellm.envs  # noqa: F401  (registers the ids)

TARGET = 0.25  # sequential mode at K = 16: at least 25% of CartPole's steps/s


def rate(env, steps: int, seconds: float, masked: bool = False, seed: int = 0) -> float:
    """Steps per second of ``env`` under random actions (best of two timed halves)."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    best = 0.0
    for _ in range(2):
        n, t0 = 0, time.perf_counter()
        while n < steps and time.perf_counter() - t0 < seconds:
            if masked:
                a = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
            else:
                a = env.action_space.sample()
            _, _, term, trunc, _ = env.step(a)
            n += 1
            if term or trunc:
                env.reset()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000, help="max steps per measurement")
    ap.add_argument("--seconds", type=float, default=3.0, help="max seconds per measurement")
    args = ap.parse_args(argv)
    cart = rate(gym.make("CartPole-v1"), args.steps * 5, args.seconds)
    print(f"# bench_env: {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, gymnasium {gym.__version__}")
    print(f"{'env':<40} {'K':>3} {'steps/s':>10} {'x CartPole':>10}")
    print(f"{'CartPole-v1':<40} {'':>3} {cart:>10.0f} {1.0:>10.3f}")
    seq16 = None
    for mode, env_id in edgellm.envs.ENV_IDS.items():
        for K in (8, 16, 32):
            env = gym.make(f"edgellm.envs:{env_id}", n_users=K)
            r = rate(env, args.steps, args.seconds)
            print(f"{env_id:<40} {K:>3} {r:>10.0f} {r / cart:>10.3f}", flush=True)
            if mode == "sequential":
                if K == 16:
                    seq16 = r
                rm = rate(env, args.steps, args.seconds, masked=True)
                print(f"{env_id + ' (masked random)':<40} {K:>3} {rm:>10.0f} {rm / cart:>10.3f}",
                      flush=True)
    ok = seq16 / cart >= TARGET
    print(f"target: sequential K=16 >= {TARGET:.0%} of CartPole: {seq16 / cart:.1%} "
          f"({'met' if ok else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
