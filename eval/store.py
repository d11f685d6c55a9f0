"""Files of an eval run: one JSON record per (policy, episode), written atomically, so an
interrupted run resumes by skipping the records already there.

Layout under ``OUT``::

    OUT/run.json                           configuration fingerprint of the run
    OUT/episodes/<policy-slug>/seed-<S>.json   one finished episode
    OUT/summary.csv, OUT/summary.json      per-policy summary (written last)
    OUT/*.png                              plots
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from edgellm.errors import EdgeLLMError
from edgellm.io import write_json

RECORD_SCHEMA = "edgellm.eval-episode/1"


def slug(name: str) -> str:
    """A file-system-safe folder name for a policy name (``learned:a/b.zip`` included)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "policy"
    if s != name:  # keep distinct names distinct
        s += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return s


def without_timing(record: dict) -> dict:
    """A copy of an episode record without its wall-clock entries (``wall_s`` and the
    per-slot ``decision_s``): what two identical runs, on any backend, agree on."""
    out = {k: v for k, v in record.items() if k != "wall_s"}
    out["per_slot"] = {k: v for k, v in record["per_slot"].items() if k != "decision_s"}
    return out


def record_path(out: Path, policy: str, seed: int) -> Path:
    return Path(out) / "episodes" / slug(policy) / f"seed-{seed}.json"


def load_record(out: Path, policy: str, seed: int, config_hash: str) -> dict | None:
    """The finished record for (policy, seed) if present and made with this configuration.

    A record from another configuration raises EdgeLLMError (results are never mixed); an
    unreadable one (impossible with atomic writes, but e.g. hand-edited) is redone.
    """
    path = record_path(out, policy, seed)
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rec.get("schema") != RECORD_SCHEMA or rec.get("policy") != policy:
        return None
    if rec.get("config_hash") != config_hash:
        raise EdgeLLMError(f"{path}: made with another configuration (hash "
                           f"{rec.get('config_hash')}, this run {config_hash}); "
                           f"use another --out or --fresh")
    return rec


def check_run_file(out: Path, config: dict, config_hash: str, fresh: bool) -> None:
    """Write ``run.json``; refuse to resume into a folder made with another configuration."""
    out = Path(out)
    run = out / "run.json"
    if fresh and out.exists():
        import shutil

        for sub in ("episodes",):
            shutil.rmtree(out / sub, ignore_errors=True)
        run.unlink(missing_ok=True)
    if run.is_file():
        try:
            old = json.loads(run.read_text()).get("config_hash")
        except (OSError, json.JSONDecodeError):
            old = None
        if old not in (None, config_hash):
            raise EdgeLLMError(f"{out}: holds an eval with another configuration "
                               f"(hash {old}, this run {config_hash}); "
                               f"use another --out or --fresh")
    write_json(run, {"config_hash": config_hash, "config": config})
