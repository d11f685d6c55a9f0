"""Result files: atomic writes (a reader never sees a half-written file), JSON and CSV
text, and the configuration hash that keys resumable runs."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (same suffix, so writers that go by the
    extension still work); when the block ends without error it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def jsonable(x):
    """``json.dumps`` fallback: numpy scalars and arrays, tuples and sets as plain values,
    anything else (paths included) as its ``str``."""
    import numpy as np

    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (tuple, set)):
        return list(x)
    return str(x)


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as JSON (sorted keys, one space of indent) atomically."""
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=jsonable) + "\n")


def config_hash(config) -> str:
    """Stable short hash (16 hex digits) of a JSON-able configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def csv_text(rows: list[dict]) -> str:
    """CSV text of a list of equal-keyed dicts (None as an empty cell)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def atomic_savefig(fig, path: str | os.PathLike, **kw) -> None:
    """Save a matplotlib figure via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kw)
