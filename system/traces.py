"""Real request traces: the Azure LLM inference trace 2023 (SPEC section 9).

The package ships the two CSV files of the trace (``data/traces/``, CC-BY 4.0, attribution
in ``data/traces/README.md``): one row per request with ``TIMESTAMP`` (invocation time),
``ContextTokens`` (prompt) and ``GeneratedTokens`` (output). :func:`load_trace` reads one
into arrays; the environment samples rows from it (``workload="empirical"``) or replays
its arrivals (``workload="replay"``, :class:`Replay`).

Replay rule (documented, seedable). The trace's arrival times t_i [s from its first row]
are scaled by a factor chosen so the mean number of arrivals per slot is
``K * arrival_rate``: slot(i) = floor((t_i + offset) * rate_trace / (K * arrival_rate)),
with rate_trace = (n - 1) / (t_last - t_first) requests per second of trace time. The
``offset`` is uniform over the trace's span (drawn from the seed), so each seed replays a
different stretch; at the end the trace starts over (its span plus one mean gap later).
Request i goes to user ``u_i = hash_seed(i) mod K`` (a seeded integer hash), or, when that
user already has an arrival in the slot, to the next free user (u_i + 1, u_i + 2, ... mod
K); when all K users have one, the request waits for the next slot. Lengths come from the
same row. Everything depends on the seed only, never on actions.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from edgellm.errors import EdgeLLMError

HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
TRACE_FILES = {
    "azure-conversation-2023": "AzureLLMInferenceTrace_conv.csv",
    "azure-code-2023": "AzureLLMInferenceTrace_code.csv",
}


class TraceError(EdgeLLMError):
    """A trace file breaks the format; the message names the file and line."""


@dataclass(frozen=True)
class Trace:
    """A request trace as arrays, in file order (arrival times non-decreasing)."""

    name: str
    time_s: np.ndarray   # arrival time [s] after the first row
    prompt: np.ndarray   # prompt tokens (int64, >= 1)
    output: np.ndarray   # output tokens (int64, >= 1)

    @property
    def n(self) -> int:
        return self.time_s.size

    @property
    def rate_per_s(self) -> float:
        """Mean arrival rate [requests / s]: (n - 1) / (t_last - t_first)."""
        span = float(self.time_s[-1])
        return (self.n - 1) / span if span > 0 else math.inf


def parse_trace(text: str, where: str) -> Trace:
    """Parse trace CSV ``text``; ``where`` (a file name) prefixes every error."""
    lines = text.splitlines()
    if not lines or tuple(c.strip() for c in lines[0].split(",")) != HEADER:
        raise TraceError(f"{where}, line 1: header must be {','.join(HEADER)}, "
                         f"got {lines[0] if lines else ''!r}")
    times, prompt, output = [], [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 3:
            raise TraceError(f"{where}, line {lineno}: expected 3 comma-separated fields "
                             f"({','.join(HEADER)}), got {line!r}")
        try:
            t = np.datetime64(parts[0].strip().replace(" ", "T"), "ns")
        except ValueError:
            raise TraceError(f"{where}, line {lineno}: TIMESTAMP {parts[0]!r} is not a "
                             "date and time (YYYY-MM-DD HH:MM:SS.fffffff)") from None
        if np.isnat(t):
            raise TraceError(f"{where}, line {lineno}: TIMESTAMP {parts[0]!r} is not a date")
        nums = []
        for name, v in zip(HEADER[1:], parts[1:]):
            try:
                x = int(v)
            except ValueError:
                x = 0
            if x < 1:
                raise TraceError(f"{where}, line {lineno}: {name} must be an integer >= 1, "
                                 f"got {v.strip()!r}")
            nums.append(x)
        if times and t < times[-1]:
            raise TraceError(f"{where}, line {lineno}: TIMESTAMP {parts[0]!r} is earlier than "
                             "the line before (rows must be in time order)")
        times.append(t)
        prompt.append(nums[0])
        output.append(nums[1])
    if len(times) < 2:
        raise TraceError(f"{where}: needs at least 2 requests, got {len(times)}")
    t = np.array(times)
    return Trace(Path(where).stem, (t - t[0]).astype(np.int64) / 1e9,
                 np.array(prompt, dtype=np.int64), np.array(output, dtype=np.int64))


@functools.cache
def _shipped(name: str) -> Trace:
    path = resources.files("edgellm.system").joinpath("data", "traces", TRACE_FILES[name])
    tr = parse_trace(path.read_text(), f"data/traces/{TRACE_FILES[name]}")
    for a in (tr.time_s, tr.prompt, tr.output):
        a.flags.writeable = False
    return Trace(name, tr.time_s, tr.prompt, tr.output)


def load_trace(name_or_path: str) -> Trace:
    """A shipped trace by name (:data:`TRACE_FILES`) or any CSV file of the same format."""
    if name_or_path in TRACE_FILES:
        return _shipped(name_or_path)
    path = Path(name_or_path)
    if path.suffix != ".csv":
        raise TraceError(f"trace: unknown trace {name_or_path!r} (shipped: "
                         f"{', '.join(TRACE_FILES)}; or a .csv file)")
    try:
        text = path.read_text()
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e.strerror})") from None
    return parse_trace(text, str(path))


def _hash_users(seed: int, n: int, K: int) -> np.ndarray:
    """u_i = splitmix64(seed * 2^32 + i) mod K: a seeded integer hash of the row index."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)) + np.arange(n, dtype=np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(K)).astype(np.int64)


class Replay:
    """Arrivals of a trace, slot by slot, for K users (rule in the module docstring).

    ``next_slot()`` returns (user ids, row indices) of the slot's arrivals, at most one per
    user, users in increasing order.
    """

    def __init__(self, trace: Trace, n_users: int, arrival_rate: float, seed: int,
                 offset_s: float | None = None):
        self.trace, self.K = trace, n_users
        span = float(trace.time_s[-1])
        period = span + span / (trace.n - 1)  # the trace starts over one mean gap later
        rng = np.random.default_rng(seed)
        offset = rng.uniform(0.0, span)  # drawn even when given: same hash either way
        if offset_s is not None:
            offset = float(offset_s)
        # slots per second of trace time: rate_trace / (K * arrival_rate)
        self._scale = trace.rate_per_s / (n_users * arrival_rate)
        self._period, self._offset = period, offset
        self._users = _hash_users(int(rng.integers(0, 2**32)), trace.n, n_users)
        self._first = int(np.searchsorted(trace.time_s, offset, side="left"))
        self._row = self._first
        self._slot = 0
        self._backlog: list[int] = []  # rows (absolute counters) waiting for a free user

    def _time(self, k: int) -> float:
        """Scaled arrival slot (float) of the k-th replayed row (k counts from the start
        row and runs past the end, wrapping)."""
        n = self.trace.n
        i, cyc = k % n, k // n
        return (self.trace.time_s[i] + cyc * self._period - self._offset) * self._scale

    def next_slot(self) -> tuple[np.ndarray, np.ndarray]:
        end = self._slot + 1.0
        rows = self._backlog
        while self._time(self._row) < end:
            rows.append(self._row)
            self._row += 1
        self._slot += 1
        taken = np.zeros(self.K, dtype=bool)
        users, idx, wait = [], [], []
        n = self.trace.n
        for k in rows:  # in arrival order: the earliest requests choose first
            if len(users) == self.K:
                wait.append(k)
                continue
            u = int(self._users[k % n])
            while taken[u]:
                u = (u + 1) % self.K
            taken[u] = True
            users.append(u)
            idx.append(k % n)
        self._backlog = wait
        order = np.argsort(users, kind="stable")
        return np.asarray(users, dtype=np.int64)[order], np.asarray(idx, dtype=np.int64)[order]
