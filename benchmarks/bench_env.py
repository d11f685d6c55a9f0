"""Env throughput, measured side by side in one run: the native vector env, gymnasium's
SyncVectorEnv of single envs, CartPole-v1's native vector env, and MaskablePPO training.

1. Masked-random sequential steps/s at N = 1, 16, 256, 1024 (``--sizes``): the native
   ``EdgeLLMVectorEnv`` (``gym.make_vec``, vector_entry_point) with full info and with
   ``slot_info=False`` ("lean": what training steps, see train/vec.py), ``SyncVectorEnv`` of
   ``gym.make`` single envs, and CartPole-v1's own vector env (random actions). The
   masked-random policy picks uniformly among each env's allowed actions (dispatch
   included), the worst case for the env since every step changes a batch.
2. Subset mode (one step per slot): random subsets, slots/s, native vs SyncVectorEnv.
3. MaskablePPO end-to-end training throughput (env steps/s, rollouts + updates), one torch
   thread: the throughput settings :data:`THROUGHPUT` (many envs, a small network, few
   epochs: what reaches the 10k steps/s target), ``edgellm train``'s settings
   (train/hyperparams/maskable-ppo.yml, chosen for learning quality) and the previous setup
   (4 single envs in a DummyVecEnv), all on the native vector env but the last.

Every measurement warms up first (numba compilation, caches), then counts steps for
``--seconds`` per window; the best of ``--repeats`` windows is reported (best-of-N).

    .venv/bin/python benchmarks/bench_env.py [--seconds S] [--repeats R] [--sizes 1,16,256]

``--single`` prints the single env's own figures instead: microseconds per slot of traffic
(``Traffic.draw``), masked-random sequential steps/s and random-subset slots/s, for the
scenarios default, text-only (no media) and azure-conv (trace replay).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np

import edgellm.envs  # noqa: F401  (registers the ids)

SEQ, SUB = "edgellm.envs:EdgeLLM-Sequential-v0", "edgellm.envs:EdgeLLM-Subset-v0"
TARGET_SEQ_256 = 500_000
TARGET_SUBSET = 150_000
TARGET_TRAIN = 10_000
# MaskablePPO settings that reach TARGET_TRAIN end to end on a 2-core machine (one torch
# thread): 256 envs x 32 steps per rollout, 4 minibatches of 2048, 2 epochs, a 64x64 MLP.
# The learning results use the YAML's settings; these measure what the pipeline can do.
THROUGHPUT = dict(n_envs=256, n_steps=32, batch_size=2048, n_epochs=2,
                  policy_kwargs="dict(net_arch=[64, 64])")


def masked_random(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random allowed action per row of ``masks`` (N, A)."""
    return np.argmax(np.where(masks, rng.random(masks.shape), -1.0), axis=1)


def _masks(venv) -> np.ndarray:
    if hasattr(venv, "action_masks"):
        return venv.action_masks()
    return np.stack(venv.call("action_masks"))


def rate(venv, policy: str, seconds: float, repeats: int, warmup: int = 20) -> float:
    """Env steps per second (num_envs per vector step), best of ``repeats`` windows."""
    N = venv.num_envs
    venv.reset(seed=0)
    venv.action_space.seed(0)
    rng = np.random.default_rng(0)

    def act():
        if policy == "masked":
            return masked_random(_masks(venv), rng)
        return venv.action_space.sample()

    for _ in range(warmup):
        venv.step(act())
    best = 0.0
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            venv.step(act())
            n += N
        best = max(best, n / (time.perf_counter() - t0))
    return best


def train_rate(vec_env: str, n_envs: int, hyperparams: dict, seconds: float) -> float:
    """MaskablePPO env steps/s over ``seconds`` of ``learn`` (after one warm-up rollout),
    with one torch thread as ``edgellm train`` uses by default."""
    import torch
    from sb3_contrib import MaskablePPO

    from edgellm.envs import get_scenario
    from edgellm.train.config import policy_kwargs, schedule
    from edgellm.train.rl import make_vec_env

    torch.set_num_threads(1)
    venv = make_vec_env(get_scenario("default"), "sequential", n_envs, vec_env)
    hp = {k: schedule(v) for k, v in hyperparams.items()  # lin_<x> as edgellm train reads it
          if k not in ("n_timesteps", "policy", "n_envs", "policy_kwargs")}
    model = MaskablePPO("MlpPolicy", venv, seed=0, device="cpu",
                        policy_kwargs=policy_kwargs("maskable-ppo",
                                                    hyperparams.get("policy_kwargs")), **hp)
    per_iter = model.n_steps * n_envs
    model.learn(per_iter)  # warm-up: one rollout + update
    t0 = time.perf_counter()
    start = model.num_timesteps
    while time.perf_counter() - t0 < seconds:
        model.learn(per_iter, reset_num_timesteps=False)
    steps = model.num_timesteps - start
    venv.close()
    return steps / (time.perf_counter() - t0)


def breakdown(mode: str, N: int, seconds: float) -> tuple[float, dict[str, float]]:
    """Where an env step's time goes: microseconds per env step in each compiled stage of
    ``EdgeLLMVectorEnv.step`` (timed by wrapping the module's functions), masked random
    (sequential) or random subsets, ``slot_info=False``. Returns (steps/s, parts)."""
    import edgellm.envs.traffic as traffic
    import edgellm.envs.vector as vector

    acc: dict[str, float] = {}
    saved = []

    def wrap(mod, name, label):
        f = getattr(mod, name)
        saved.append((mod, name, f))

        def timed(*a, **k):
            t0 = time.perf_counter()
            out = f(*a, **k)
            acc[label] = acc.get(label, 0.0) + time.perf_counter() - t0
            return out

        setattr(mod, name, timed)

    stages = {"_step_sequential": "add users, recheck candidates (kernel)",
              "_step_subset": "add subset / repair, recheck (kernel)",
              "_begin_slots": "slot start: singleton checks, obs (kernel)",
              "_dispatch": "dispatch: value of the batch",
              "_end_slots": "queues: serve, age, admit (compiled)",
              "prepare_arrays": "prepare_arrays (NumPy, cost model)"}
    for name, label in stages.items():
        wrap(vector, name, label)
    wrap(traffic, "_draw_slots", "traffic draws (compiled)")
    try:
        venv = vector.EdgeLLMVectorEnv(N, "default", action_mode=mode, slot_info=False)
        venv.reset(seed=0)
        rng = np.random.default_rng(0)
        K = venv.n_users

        def act():
            if mode == "sequential":
                return masked_random(venv.action_masks(), rng)
            return rng.random((N, K)) < 0.5

        for _ in range(20):
            venv.step(act())
        acc.clear()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            t1 = time.perf_counter()
            a = act()
            acc["action sampler"] = acc.get("action sampler", 0.0) + time.perf_counter() - t1
            venv.step(a)
            n += N
        total = time.perf_counter() - t0
    finally:
        for mod, name, f in saved:
            setattr(mod, name, f)
    parts = {k: v / n * 1e6 for k, v in acc.items()}
    parts["Python glue of step()"] = total / n * 1e6 - sum(parts.values())
    return n / total, parts


def kernel_rows(steps: int = 60, N: int = 256) -> tuple[int, float, float]:
    """The feasibility rows a masked-random sequential run re-checks (batch + candidate
    after every addition, ``default``), each timed with the exact kernel (``check_row``:
    a Newton solve for T_hi, one per member for the uplink) and with the screened one
    (``check_row_screened``), in one compiled loop each, best of 3. Both must give the same
    codes. Returns (rows, ns per row exact, ns per row screened)."""
    from numba import njit

    from edgellm.envs.vector import EdgeLLMVectorEnv
    from edgellm.system._kernel import check_row, check_row_screened

    venv = EdgeLLMVectorEnv(N, "default", action_mode="sequential", slot_info=False)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    K = venv.n_users
    cols, rows, owner = [], [], []
    for _ in range(steps):
        ok, present, inb = venv._ok.copy(), venv._present.copy(), venv._inb.copy()
        cand = [c.copy() for c in venv._cand]
        a = masked_random(venv.action_masks(), rng)
        venv.step(a)
        for e in np.flatnonzero(a < K):
            batch = inb[e].copy()
            batch[a[e]] = True
            others = np.flatnonzero(present[e] & ~batch & ok[e])
            if others.size:
                owner += [len(cols)] * others.size
                cols.append([c[e] for c in cand])
                rows += [np.flatnonzero(batch | (np.arange(K) == k)) for k in others]
    width = np.array([r.size for r in rows])
    idx = np.zeros((len(rows), K), np.int64)
    for r, ids in enumerate(rows):
        idx[r, :ids.size] = ids
    stacked = [np.array([c[j] for c in cols]) for j in range(8)]
    sysc = venv._sysc

    @njit
    def run(exact, owner, idx, width, prompt, output, window, adm, up_bits, snr, down_c, enc,
            sysc, codes):
        P, L, d, W, kv, C, M, cap, padded, B_U, B_D, slot = sysc
        K = idx.shape[1]
        D, c, up, down = np.empty(K), np.empty(K), np.empty(K), np.empty(K)
        for r in range(owner.size):
            j = owner[r]
            ids = idx[r, :width[r]]
            if exact:
                codes[r] = check_row(ids, prompt[j], output[j], window[j], adm[j], up_bits[j],
                                     snr[j], down_c[j], enc[j], P, L, d, W, kv, C, M, cap,
                                     padded, B_U, B_D, slot, D, c, up, down)[0]
            else:
                codes[r] = check_row_screened(ids, prompt[j], output[j], window[j], adm[j],
                                              up_bits[j], snr[j], down_c[j], enc[j], P, L, d,
                                              W, kv, C, M, cap, padded, B_U, B_D, slot, D, c,
                                              up, down)[0]

    owner_a = np.array(owner, np.int64)
    out = []
    codes = [np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)]
    for exact in (True, False):
        args = (owner_a, idx, width, *stacked, sysc, codes[exact])
        run(exact, *args)
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            run(exact, *args)
            best = min(best, time.perf_counter() - t0)
        out.append(best / len(rows) * 1e9)
    if not np.array_equal(codes[0], codes[1]):
        raise AssertionError("screened and exact checks disagree")
    return len(rows), out[0], out[1]


def single_env(seconds: float, repeats: int,
               scenarios=("default", "text-only", "azure-conv")) -> list[tuple]:
    """The single env (``EdgeLLMEnv``, no wrappers) per scenario: microseconds per
    ``Traffic.draw`` (one slot's traffic), masked-random sequential steps/s and random-subset
    slots/s; best of ``repeats`` windows of about ``seconds`` each."""
    from edgellm.envs.env import EdgeLLMEnv
    from edgellm.envs.traffic import Traffic

    def best(run, n):
        run(n // 10)  # warm-up (compilation, caches)
        times = []
        for _ in range(repeats):
            t0, done = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                run(n)
                done += n
            times.append((time.perf_counter() - t0) / done)
        return min(times)

    rows = []
    for name in scenarios:
        tr = Traffic(edgellm.envs.get_scenario(name), 0)
        draw = best(lambda n, tr=tr: [tr.draw() for _ in range(n)], 500)
        rates = []
        for mode in ("sequential", "subset"):
            env = EdgeLLMEnv(name, action_mode=mode)
            env.reset(seed=0)
            rng = np.random.default_rng(0)

            def run(n, env=env, rng=rng, mode=mode):
                for _ in range(n):
                    if mode == "sequential":
                        a = int(masked_random(env.action_masks()[None], rng)[0])
                    else:
                        a = rng.integers(0, 2, env.action_space.n).astype(np.int8)
                    if any(env.step(a)[2:4]):
                        env.reset()

            rates.append(1.0 / best(run, 100))
        rows.append((name, 1e6 * draw, *rates))
    return rows


def edgellm_rates(env_id: str, N: int, policy: str, args) -> tuple[float, float, float]:
    """(native, lean, sync) rates of ``env_id`` with N envs: the native vector env with full
    info, the same with ``slot_info=False``, and gymnasium's SyncVectorEnv of single envs
    (NaN above ``--sync-max``)."""
    native = rate(gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point"),
                  policy, args.seconds, args.repeats)
    lean = rate(gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point",
                             slot_info=False), policy, args.seconds, args.repeats)
    sync = float("nan")
    if N <= args.sync_max:
        sync = rate(gym.make_vec(env_id, num_envs=N, vectorization_mode="sync"), policy,
                    args.seconds, args.repeats, warmup=2)
    return native, lean, sync


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per timed window")
    ap.add_argument("--repeats", type=int, default=2, help="timed windows (best reported)")
    ap.add_argument("--sizes", default="1,16,256,1024", help="numbers of envs N")
    ap.add_argument("--sync-max", type=int, default=256,
                    help="largest N for SyncVectorEnv (slow: one Python env per step)")
    ap.add_argument("--train-seconds", type=float, default=60.0,
                    help="seconds of MaskablePPO training per setup (0: skip)")
    ap.add_argument("--breakdown", action="store_true",
                    help="only print where an env step's time goes (N = 256) and the cost "
                         "of one feasibility row, exact and screened")
    ap.add_argument("--single", action="store_true",
                    help="only print the single env's traffic draw time and step rates")
    args = ap.parse_args(argv)
    if args.single:
        print(f"{'scenario':12s} {'draw us':>8} {'seq steps/s':>12} {'subset slots/s':>15}")
        for name, draw, seq, sub in single_env(args.seconds, args.repeats):
            print(f"{name:12s} {draw:>8.1f} {seq:>12.0f} {sub:>15.0f}", flush=True)
        return 0
    if args.breakdown:
        for mode in ("sequential", "subset"):
            r, parts = breakdown(mode, 256, 4 * args.seconds)
            print(f"{mode}, N = 256, default, slot_info=False: {r:.0f} steps/s; "
                  f"{1e6 / r:.2f} us per env step:")
            for k, v in sorted(parts.items(), key=lambda x: -x[1]):
                print(f"  {k:46s} {v:6.2f} us  {v * r / 1e4:5.1f}%")
        m, exact, screened = kernel_rows()
        print(f"feasibility rows of a masked-random sequential run ({m} rows, same codes): "
              f"exact {exact:.0f} ns per row, screened {screened:.0f} ns per row "
              f"({exact / screened:.1f}x)")
        return 0
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"# bench_env: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, gymnasium {gym.__version__}, load average "
          f"{os.getloadavg()[0]:.1f}; best of {args.repeats} x {args.seconds:.0f} s windows")
    print("\n1. masked-random sequential steps/s (K = 16, scenario default)")
    print(f"{'N':>5} {'native':>10} {'lean':>10} {'sync':>10} {'CartPole':>11} "
          f"{'native/sync':>11} {'native/CartPole':>15}")
    seq: dict[int, tuple[float, float]] = {}  # N -> (full info, lean)
    for N in sizes:
        nat, lean, sync = edgellm_rates(SEQ, N, "masked", args)
        seq[N] = nat, lean
        cart = rate(gym.make_vec("CartPole-v1", num_envs=N,
                                 vectorization_mode="vector_entry_point"), "random",
                    args.seconds, args.repeats)
        print(f"{N:>5} {nat:>10.0f} {lean:>10.0f} {sync:>10.0f} {cart:>11.0f} "
              f"{nat / sync:>11.2f} {nat / cart:>15.3f}", flush=True)
    print("\n2. subset mode, random subsets, slots/s (K = 16)")
    print(f"{'N':>5} {'native':>10} {'lean':>10} {'sync':>10} {'native/sync':>11}")
    sub: dict[int, tuple[float, float]] = {}
    for N in sizes:
        nat, lean, sync = edgellm_rates(SUB, N, "random", args)
        sub[N] = nat, lean
        print(f"{N:>5} {nat:>10.0f} {lean:>10.0f} {sync:>10.0f} {nat / sync:>11.2f}",
              flush=True)
    if args.train_seconds > 0:
        from edgellm.train.config import load_yaml

        hp = load_yaml("maskable-ppo")["EdgeLLM-Sequential-v0"]
        old = {**hp, "n_steps": 512, "batch_size": 256, "n_epochs": 10}
        print(f"\n3. MaskablePPO training, env steps/s including updates "
              f"({args.train_seconds:.0f} s each)")
        t_old = train_rate("dummy", 4, old, args.train_seconds)
        print(f"  DummyVecEnv of 4 single envs (previous setup: n_steps 512, batch 256, "
              f"10 epochs): {t_old:.0f}", flush=True)
        for name, h in (("maskable-ppo.yml", hp), ("throughput settings", {**hp, **THROUGHPUT})):
            t_new = train_rate("native", int(h["n_envs"]), h, args.train_seconds)
            print(f"  native vector env, {name} (n_envs {h['n_envs']}, n_steps "
                  f"{h['n_steps']}, batch {h['batch_size']}, {h['n_epochs']} epochs, "
                  f"{h['policy_kwargs']}): {t_new:.0f} ({t_new / t_old:.1f}x)", flush=True)
        print(f"target: training >= {TARGET_TRAIN:,} steps/s (throughput settings): "
              f"{'met' if t_new >= TARGET_TRAIN else 'NOT met'}")
    # the targets, judged on both info settings: full info is gym.make_vec's default,
    # slot_info=False what training (train/vec.py) steps
    for j, name in enumerate(("full info", "slot_info=False")):
        if 256 in seq:
            r = seq[256][j]
            print(f"target: sequential N=256 >= {TARGET_SEQ_256:,} steps/s, {name}: {r:,.0f} "
                  f"({'met' if r >= TARGET_SEQ_256 else 'NOT met'})")
        if sub:
            n, r = max(((n, v[j]) for n, v in sub.items()), key=lambda x: x[1])
            print(f"target: subset >= {TARGET_SUBSET:,} slots/s, {name}: best {r:,.0f} at "
                  f"N = {n} ({'met' if r >= TARGET_SUBSET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
