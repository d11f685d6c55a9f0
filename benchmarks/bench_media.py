"""Cost of media in the one cost model, measured side by side in one run.

Times (best of 5) of: ``check_rows`` over all pairs of 16 requests, DFTSP on 30 random
14-request instances, and 3000 random sequential-mode env steps, for text-only requests and
for a text/image/voice mix on the same system (LLaVA-1.5-13B W8A8, RTX 4090). Prints the
media/text ratio of each.

    .venv/bin/python benchmarks/bench_media.py
"""

from __future__ import annotations

import platform
import time

import numpy as np

from edgellm.dftsp import solve
from edgellm.envs import EdgeLLMEnv
from edgellm.system import check_rows, prepare
from edgellm.system.generate import random_instance
from edgellm.system.media import MediaMix

SYSTEM = dict(model="llava-1.5-13b", quant="w8a8", trace="azure-conversation-2023",
              max_prompt=4096, max_output=256)


def best(f, reps: int = 5) -> float:
    f()  # warm (compilation, caches)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return min(out)


def cases(mix):
    p = prepare(random_instance(np.random.default_rng(0), 16, media=mix, **SYSTEM))
    pairs = np.array([[i, j] for i in range(16) for j in range(i + 1, 16)])
    insts = [random_instance(np.random.default_rng(s), 14, media=mix, **SYSTEM)
             for s in range(30)]
    env = EdgeLLMEnv("default" if mix else "text-only", action_mode="sequential")

    def rows():
        for _ in range(2000):
            check_rows(p, pairs)

    def dftsp():
        for inst in insts:
            solve(inst)

    def steps():
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(3000):
            env.step(int(rng.integers(env.n_users + 1)))

    return {"check_rows x2000 (120 pairs)": rows, "DFTSP x30 (K=14)": dftsp,
            "env 3000 steps": steps}


def main() -> None:
    print(f"# bench_media: {platform.machine()}, python {platform.python_version()}")
    text = cases(None)
    media = cases(MediaMix((0.3, 0.3, 0.4), "llava-1.5-13b"))
    print(f"{'case':<30} {'text s':>9} {'media s':>9} {'media/text':>10}")
    for name in text:
        t, m = best(text[name]), best(media[name])
        print(f"{name:<30} {t:>9.4f} {m:>9.4f} {m / t:>10.2f}")


if __name__ == "__main__":
    main()
