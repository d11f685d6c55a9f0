"""``edgellm sweep``: the source paper's experiments as figures with CSV beside them.

* ``users``: throughput per slot of every policy against the number of users K;
* ``bandwidth``: against the radio bandwidth B = B_U = B_D [MHz] (both links);
* ``quant``: per quantization (FP16, W8A8, W4A16);
* ``nodes``: DFTSP against brute force, tree nodes evaluated and wall time against the
  number of candidate requests, on random single-slot instances.

The first three run :func:`edgellm.eval.runner.run_eval` once per point, each in its own
folder under ``OUT/<experiment>/``, so an interrupted sweep resumes where it stopped.
Regret is not computed in sweeps (it needs one extra DFTSP solve per slot per policy).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgellm.eval.plots import plot_lines
from edgellm.eval.runner import EvalSpec, run_eval
from edgellm.io import atomic_write_text, csv_text, write_json

EXPERIMENTS = ("users", "bandwidth", "quant", "nodes")
#: ScenarioConfig fields each env experiment varies (see edgellm.envs).
USERS_FIELD = "n_users"
BANDWIDTH_FIELDS = ("uplink_hz", "downlink_hz")
QUANT_FIELD = "quant"
QUANTS = ("fp16", "w8a8", "w4a16")


@dataclass(frozen=True)
class SweepSpec:
    """Sweep settings; the defaults finish in a few minutes on two CPU cores."""

    scenario: str = "paper"
    policies: tuple[str, ...] = ("oracle", "fcfs", "sjf", "edf", "best-channel",
                                 "static-batch", "random")
    episodes: int = 2
    slots: int = 20
    seed: int = 0
    users: tuple[int, ...] = (4, 8, 16, 24, 32)
    bandwidth_mhz: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 2.0, 20.0)
    quants: tuple[str, ...] = QUANTS
    nodes_k: tuple[int, ...] = (4, 6, 8, 10, 12, 14, 16, 18)
    nodes_instances: int = 20
    experiments: tuple[str, ...] = EXPERIMENTS
    overrides: dict = field(default_factory=dict)


def _env_experiment(spec: SweepSpec, out: Path, name: str, key: str, xs, to_override,
                    progress: bool, backend: dict) -> list[dict]:
    rows = []
    for x in xs:
        ev = EvalSpec(scenario=spec.scenario, policies=spec.policies, episodes=spec.episodes,
                      seed=spec.seed, slots=spec.slots,
                      overrides={**spec.overrides, **to_override(x)}, regret=False)
        summary = run_eval(ev, out / name / f"{key}-{x}", progress=progress, plots=False,
                           **backend)
        for r in summary["policies"]:
            rows.append({key: x, "policy": r["policy"],
                         "value_per_slot": r["value_per_slot"],
                         "value_per_slot_ci95": r["value_per_slot_ci95"],
                         "requests_per_slot": r["requests_per_slot"],
                         "tokens_per_slot": r["tokens_per_slot"],
                         "ratio_to_oracle": r["ratio_to_oracle"],
                         "dropped_per_slot": r["dropped_per_slot"],
                         "deadline_misses_per_slot": r["deadline_misses_per_slot"]})
    return rows


def nodes_rows(ks, instances: int, seed: int = 0, progress: bool = False) -> list[dict]:
    """DFTSP vs brute force on ``instances`` random instances per K (catalog defaults:
    Llama-2-7B, W4A16, RTX 4090, ShareGPT lengths)."""
    from edgellm.dftsp.solver import solve
    from edgellm.system.feasibility import prepare
    from edgellm.system.generate import random_instance

    rows = []
    it = ks
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(ks, desc="dftsp vs brute force", unit="K", leave=False)
    for k in it:
        rng = np.random.default_rng([seed, k])
        stats = {"dftsp": ([], []), "bruteforce": ([], [])}
        agree = 0
        for _ in range(instances):
            p = prepare(random_instance(rng, k))
            sols = {m: solve(p, m) for m in stats}
            agree += sols["dftsp"].value == sols["bruteforce"].value
            for m, s in sols.items():
                stats[m][0].append(s.nodes)
                stats[m][1].append(s.wall_s)
        bf_nodes = float(np.mean(stats["bruteforce"][0]))
        for m, (nodes, wall) in stats.items():
            rows.append({"K": k, "method": m, "instances": instances,
                         "nodes_mean": round(float(np.mean(nodes)), 3),
                         "nodes_max": int(np.max(nodes)),
                         "node_reduction": round(1.0 - float(np.mean(nodes)) / bf_nodes, 6),
                         "wall_ms_mean": round(1e3 * float(np.mean(wall)), 4),
                         "agree_with_bruteforce": f"{agree}/{instances}"})
    return rows


def run_sweep(spec: SweepSpec, out: str | Path, progress: bool = True, backend: str = "local",
              ray_address: str | None = None) -> dict[str, Path]:
    """Run the chosen experiments; return {experiment: csv path}. PNGs sit beside the CSVs.
    ``backend="ray"`` runs each point's episodes as Ray tasks (see ``run_eval``)."""
    out = Path(out)
    bk = {"backend": backend, "ray_address": ray_address}
    written: dict[str, Path] = {}
    t0 = time.perf_counter()
    for exp in spec.experiments:
        if exp == "users":
            rows = _env_experiment(spec, out, exp, "users", spec.users,
                                   lambda x: {USERS_FIELD: int(x)}, progress, bk)
            kw = dict(x="users", xlabel="number of users K", title=f"{spec.scenario}: "
                      "throughput against the number of users")
        elif exp == "bandwidth":
            rows = _env_experiment(spec, out, exp, "bandwidth_mhz", spec.bandwidth_mhz,
                                   lambda x: {f: float(x) * 1e6 for f in BANDWIDTH_FIELDS},
                                   progress, bk)
            kw = dict(x="bandwidth_mhz", xlabel="uplink = downlink bandwidth [MHz]", logx=True,
                      title=f"{spec.scenario}: throughput against radio bandwidth")
        elif exp == "quant":
            rows = _env_experiment(spec, out, exp, "quant", spec.quants,
                                   lambda x: {QUANT_FIELD: x}, progress, bk)
            kw = dict(x="quant", xlabel="quantization", categorical=True,
                      title=f"{spec.scenario}: throughput per quantization")
        elif exp == "nodes":
            rows = nodes_rows(spec.nodes_k, spec.nodes_instances, spec.seed, progress)
            path = out / "nodes.csv"
            atomic_write_text(path, csv_text(rows))
            plot_lines(rows, "K", "nodes_mean", out / "nodes.png", series="method", logy=True,
                       xlabel="candidate requests K", ylabel="tree nodes evaluated (mean)",
                       title="DFTSP vs brute force: nodes")
            plot_lines(rows, "K", "wall_ms_mean", out / "nodes_time.png", series="method",
                       logy=True, xlabel="candidate requests K",
                       ylabel="solve time [ms] (mean)", title="DFTSP vs brute force: time")
            written[exp] = path
            continue
        else:
            from edgellm.errors import EdgeLLMError

            raise EdgeLLMError(f"sweep: unknown experiment {exp!r}; valid: "
                               f"{', '.join(EXPERIMENTS)}")
        path = out / f"{exp}.csv"
        atomic_write_text(path, csv_text(rows))
        plot_lines(rows, y="requests_per_slot", path=out / f"{exp}.png",
                   ylabel="requests served per slot", **kw)
        plot_lines(rows, y="tokens_per_slot", path=out / f"{exp}_tokens.png",
                   ylabel="tokens generated per slot", **kw)
        written[exp] = path
    write_json(out / "sweep.json", {"spec": asdict(spec),
                                    "wall_s": round(time.perf_counter() - t0, 1),
                                    "files": {k: str(v) for k, v in written.items()}})
    return written
