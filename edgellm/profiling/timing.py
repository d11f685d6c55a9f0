"""Timed batched generation: prefill and every decode step, over a grid of batch sizes and
prompt lengths, with warm-up runs before the timed ones."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.profiling.accounting import ModelStats, cache_nbytes, kv_per_token
from edgellm.profiling.models import ScaledArch

STATS = {"min": np.min, "median": np.median}  # estimators of a pass time over repeats


@dataclass
class BatchRun:
    """One timed generation: prefill, decode steps, and the real cache after each pass."""

    prefill_s: float
    step_s: list[float]           # decode step j = 1..n_steps
    kv_bytes: list[int]           # after prefill (S positions), then after step j (S + j)
    cache_positions: list[int]


def padded_prompts(b: int, S: int, vocab: int, seed: int = 0, ragged: bool = True):
    """A left-padded batch: ``input_ids`` and ``attention_mask`` of shape (b, S).

    Prompt 0 has S tokens; with ``ragged`` the others have between S/2 and S (padding in front).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (b, S), generator=g)
    mask = torch.ones(b, S, dtype=torch.long)
    if ragged and b > 1 and S > 1:
        lens = torch.randint(max(1, S // 2), S + 1, (b,), generator=g)
        lens[0] = S
        for i, n in enumerate(lens.tolist()):
            mask[i, : S - n] = 0
            ids[i, : S - n] = 0
    return ids, mask


class _Runner:
    """Calls a causal LM with whichever cache / position keyword it takes."""

    def __init__(self, model):
        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.positions = "position_ids" in params

    def __call__(self, ids, mask, cache, n_new: int):
        kw = {"input_ids": ids, "attention_mask": mask, "use_cache": True}
        if cache is not None:
            kw[self.cache_kw] = cache
        if self.positions:
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            kw["position_ids"] = pos[:, -n_new:]
        out = self.model(**kw)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1].argmax(-1, keepdim=True), new_cache


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run_batch(model, ids, mask, n_steps: int, device: str = "cpu",
              clock: str = "wall") -> BatchRun:
    """Prefill ``ids`` then ``n_steps`` greedy decode steps with the KV cache, timing each pass.

    Generating N output tokens takes ``n_steps = N - 1`` (prefill yields the first token).
    ``clock``: ``wall`` (perf_counter) or ``cpu`` (process CPU time; with one torch thread it
    is the wall time the pass would take on an idle core, whatever else the machine runs).
    """
    import torch

    now = CLOCKS[clock]

    run = _Runner(model)
    ids, mask = ids.to(device), mask.to(device)
    ones = torch.ones(mask.shape[0], 1, dtype=mask.dtype, device=device)
    with torch.inference_mode():
        _sync(device)
        t0 = now()
        tok, cache = run(ids, mask, None, ids.shape[1])
        _sync(device)
        prefill = now() - t0
        kv = [cache_nbytes(cache)]
        pos = [cache.get_seq_length()]
        steps = []
        for _ in range(n_steps):
            mask = torch.cat([mask, ones], dim=1)
            t0 = now()
            tok, cache = run(tok, mask, cache, 1)
            _sync(device)
            steps.append(now() - t0)
            kv.append(cache_nbytes(cache))
            pos.append(cache.get_seq_length())
    return BatchRun(prefill, steps, kv, pos)


@dataclass
class Point:
    """Measured (median over repeats) and predicted times of one grid point [s]."""

    batch: int
    prompt: int
    output: int
    prefill_s: float
    decode_s: float               # sum of the N - 1 decode steps
    kv_bytes_real: int            # real cache at the end (S + N - 1 positions)
    kv_bytes_model: float         # b * (S + N - 1) * kv of the cost model
    pred_prefill_s: float = float("nan")
    pred_decode_s: float = float("nan")

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.decode_s

    @property
    def pred_total_s(self) -> float:
        return self.pred_prefill_s + self.pred_decode_s

    @property
    def rel_error(self) -> float:
        """|predicted - measured| / measured compute time."""
        return abs(self.pred_total_s - self.total_s) / self.total_s


def measure_grid(model, arch: ScaledArch, stats: ModelStats, batches, prompts, output: int,
                 repeats: int = 3, warmup: int = 1, device: str = "cpu", seed: int = 0,
                 progress: bool = True, stat: str = "min", clock: str = "wall") -> list[Point]:
    """Time every (batch, prompt) point ``repeats`` times after ``warmup`` untimed runs.

    Each point gets its own warm-up because CPU backends build kernels per tensor shape (the
    first pass of a new shape can cost 10-100x a steady one). Prefill is the ``stat`` (min or
    median) over the repeats; the decode total is the sum over steps of each step's ``stat``.
    The default, min, is the usual estimator on a shared machine: interference only adds time.
    """
    if stat not in STATS:
        raise EdgeLLMError(f"--stat: must be one of {', '.join(STATS)}, got {stat!r}")
    reduce = STATS[stat]
    from tqdm import tqdm

    kv = kv_per_token(arch, stats.element_bytes)
    grid = [(b, S) for S in prompts for b in batches]
    points = []
    bar = tqdm(grid, desc="profile", unit="point", disable=not progress, leave=False)
    for b, S in bar:
        bar.set_postfix(batch=b, prompt=S)
        ids, mask = padded_prompts(b, S, arch.vocab, seed + 1000 * b + S)
        for _ in range(max(0, warmup)):
            run_batch(model, ids, mask, output - 1, device, clock)
        runs = [run_batch(model, ids, mask, output - 1, device, clock)
                for _ in range(max(1, repeats))]
        prefill = float(reduce([r.prefill_s for r in runs], axis=0))
        decode = float(np.sum(reduce([r.step_s for r in runs], axis=0))) if output > 1 else 0.0
        points.append(Point(b, S, output, prefill, decode, runs[-1].kv_bytes[-1],
                            b * (S + output - 1) * kv))
    return points
