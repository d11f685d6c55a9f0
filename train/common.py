"""Shared pieces of the trainers: envs, held-out evaluation against the oracle, saving.

Seeds: training episodes never use the held-out seeds. Periodic evaluation plays seeds
``EVAL_SEED, EVAL_SEED + 1, ...``; the final evaluation (``eval.json``) and the learning
benchmark play ``FINAL_SEED, ...``; training envs start from ``1_000_000 * (seed + 1)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from edgellm.agents.base import Policy
from edgellm.agents.learned import SIDECAR_SCHEMA
from edgellm.errors import EdgeLLMError
from edgellm.eval.report import per_slot, ratio_to_oracle
from edgellm.io import (
    atomic_path,
    atomic_write_text,
    config_hash,
    jsonable,
    write_json,  # noqa: F401  (benchmarks/bench_learning.py imports it here)
)

EVAL_SEED = 10_000
FINAL_SEED = 20_000
OBS_VERSION = 1


def train_seed(seed: int) -> int:
    """First episode seed of the training envs (disjoint from the held-out seeds)."""
    return 1_000_000 * (int(seed) + 1)


# ----------------------------------------------------------------------------- evaluation
def _summ(recs: list[dict]) -> dict:
    """Means over all slots of the given episode records (eval.runner format)."""
    value = per_slot(recs, "value")
    return {"value_per_slot": float(value.mean()),
            "served_per_slot": float(per_slot(recs, "served").mean()),
            "tokens_per_slot": float(per_slot(recs, "served_tokens").mean()),
            "dropped_per_slot": float(per_slot(recs, "dropped").mean()),
            "decision_ms_per_slot": float(1e3 * per_slot(recs, "decision_s").mean()),
            "per_episode_value": [float(np.mean(r["per_slot"]["value"])) for r in recs],
            "slots": int(value.size)}


class HeldOut:
    """Held-out evaluation: fixed seeds, the oracle's figures computed once (and cached
    on disk under ``cache``, keyed by the scenario config and seeds)."""

    def __init__(self, cfg, seeds: list[int], cache: Path | None = None):
        self.cfg, self.seeds, self.cache = cfg, list(seeds), cache
        self._oracle: dict | None = None

    def _key(self) -> str:
        return config_hash({"cfg": self.cfg.to_dict(), "seeds": self.seeds})

    def oracle(self) -> dict:
        if self._oracle is not None:
            return self._oracle
        if self.cache is not None and self.cache.is_file():
            data = json.loads(self.cache.read_text())
            if data.get("key") == self._key():
                self._oracle = data["oracle"]
                return self._oracle
        from edgellm.agents import OraclePolicy
        from edgellm.eval.runner import run_episode

        recs = [run_episode(OraclePolicy(), self.cfg, s, "subset") for s in self.seeds]
        self._oracle = _summ(recs)
        if self.cache is not None:
            atomic_write_text(self.cache, json.dumps({"key": self._key(),
                                                      "oracle": self._oracle}, indent=1))
        return self._oracle

    def evaluate(self, policy: Policy) -> dict:
        """The policy's figures on the held-out seeds, with ``oracle_ratio`` (value per
        slot over the oracle's; can exceed 1 over whole episodes)."""
        from edgellm.eval.runner import run_episode

        recs = [run_episode(policy, self.cfg, s, policy.action_mode or "subset")
                for s in self.seeds]
        out = _summ(recs)
        ref = self.oracle()
        out["oracle_value_per_slot"] = ref["value_per_slot"]
        out["oracle_ratio"] = ratio_to_oracle(out["value_per_slot"], ref["value_per_slot"])
        out["seeds"] = self.seeds
        return out


# ----------------------------------------------------------------------------- files
def atomic_save(path: Path, save: Callable[[str], None]) -> None:
    """Write a binary file atomically: ``save(tmp)`` (a path in the same folder with the
    same suffix), then rename."""
    with atomic_path(path) as tmp:
        save(str(tmp))


def write_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(json.loads(json.dumps(data, default=jsonable)),
                                           sort_keys=False))


def sidecar(args, *, algo: str, fmt: str, weights: str, obs_dim: int, n_users: int,
            extra: dict | None = None) -> dict:
    """The ``edgellm.policy/1`` sidecar (see :mod:`edgellm.agents.learned`)."""
    d = {"schema": SIDECAR_SCHEMA, "algo": algo, "action_mode": args.mode,
         "scenario": args.scenario, "format": fmt, "weights": weights,
         "overrides": dict(args.scenario_overrides), "obs_version": OBS_VERSION,
         "obs_dim": int(obs_dim), "n_users": int(n_users)}
    d.update(extra or {})
    return d


def checkpoints(run_dir: Path, suffix: str) -> list[tuple[int, Path]]:
    """Checkpoints ``checkpoints/step_<N><suffix>`` of a run, by step count."""
    out = []
    for p in (run_dir / "checkpoints").glob(f"step_*{suffix}"):
        try:
            out.append((int(p.name[5:len(p.name) - len(suffix)]), p))
        except ValueError:
            continue
    return sorted(out)


def prepare_run_dir(args, suffix: str) -> tuple[int, Path] | None:
    """Create the run folder; return the checkpoint to resume from (with ``--resume``).

    Without ``--resume`` a run folder that already holds checkpoints or a model is an
    error (pick another ``--run-name``, or ``--resume``)."""
    run = args.run_dir
    found = checkpoints(run, suffix)
    if args.resume:
        if not found:
            raise EdgeLLMError(f"--resume: no checkpoint under {run}/checkpoints "
                               f"(start without --resume)")
        return found[-1]
    if found or (run / "model.json").exists():
        raise EdgeLLMError(f"run folder {run} already holds a training run; pass --resume to "
                           f"continue it or --run-name NAME for a new one")
    run.mkdir(parents=True, exist_ok=True)
    return None


def prune_checkpoints(run_dir: Path, suffix: str, keep: int = 3) -> None:
    for _, p in checkpoints(run_dir, suffix)[:-keep]:
        p.unlink(missing_ok=True)


def progress_bar(total: int, initial: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                smoothing=0.1)
