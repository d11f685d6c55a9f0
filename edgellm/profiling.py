"""``edgellm profile``: check the roofline cost model (SPEC 2.2) against a real decoder.

The command builds a randomly initialised, scaled-down Hugging Face ``transformers`` decoder of a
catalog model family (no weights are downloaded), runs batched greedy generation with the KV
cache over a grid of batch sizes and prompt lengths, and

1. measures the prefill time, every decode step's time and the real KV-cache bytes;
2. fits the two effective rates of the roofline, C (FLOP/s) and M (B/s), to the measured pass
   times (least squares on log time, prefill and decode weighted alike);
3. reports predicted against measured compute time per grid point (terminal table, CSV/JSON,
   PNG) with the median and worst relative error;
4. writes a device profile (YAML, the layout of ``system/data/devices.yaml``) that
   :func:`load_device_profile` turns into an :class:`edgellm.system.Device`.

Choices (also printed by the command):

- **What P and W are.** The cost model charges 2 P FLOP per token and reads W bytes of weights per
  pass. Here P = the parameters of every ``nn.Linear`` (attention, MLP and the LM head, tied or
  not): the ones that take part in a matrix multiply. The input token/position embedding tables are
  a gather, not a matmul, and are left out of P (the catalog's ``n_params`` includes them; they are
  2-6 % of a 7B model). W = the bytes of every parameter a forward pass reads in full: P's bytes
  plus the norms, again without untied embedding tables.
- **Precision.** On CUDA the requested precision runs as is. CPUs have no fast fp16 GEMM, so on
  CPU ``--quant fp16`` runs in bf16, which stores 2 bytes per element like fp16, so every byte
  count of the cost model is unchanged. The profile lists the rate under the precision that ran,
  and under the requested one with a source note saying so.
- **KV cache positions.** After prefill the cache holds S positions; decode step j (j = 1..N-1)
  feeds output token j and leaves S + j positions, so generation of N tokens ends with S + N - 1.
  ``kv_cache_bytes(b, S, N, ...)`` reserves S + N (room to append token N); the real cache reaches
  exactly that after one more step, which the tests check.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgellm.errors import EdgeLLMError
from edgellm.io import atomic_path
from edgellm.profile_weights import weight_check, weight_check_text
from edgellm.system import cost

PRECISIONS_RUN = ("fp16", "bf16", "fp32")
BITS = {"fp16": 16, "bf16": 16, "fp32": 32}
STATS = {"min": np.min, "median": np.median}  # estimators of a pass time over repeats
RESERVED_FRACTION = 0.10  # memory held back in the written profile (vLLM's default headroom)
INSTALL_HINT = 'profile needs torch and transformers: pip install -e ".[profile]"'

# Catalog family -> (HF config kind, FFN width / d_model of the full-size model).
FAMILIES: dict[str, tuple[str, float]] = {
    "llama-2": ("llama", 11008 / 4096),
    "llama-3": ("llama", 14336 / 4096),
    "llava-1.5": ("llama", 11008 / 4096),  # its language model (Vicuna v1.5: Llama-2 shapes)
    "mistral": ("mistral", 14336 / 4096),
    "opt": ("opt", 4.0),
    "bloom": ("bloom", 4.0),
}


# ============================================================================ architectures
@dataclass(frozen=True)
class ScaledArch:
    """A scaled-down copy of a catalog architecture (same family, head-group ratio)."""

    model: str        # catalog name it is scaled from
    kind: str         # llama | mistral | opt | bloom
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn: int          # MLP hidden width
    vocab: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def _family(model: str) -> tuple[str, float]:
    for prefix, fam in FAMILIES.items():
        if model.startswith(prefix):
            return fam
    raise EdgeLLMError(f"--model: no transformers family known for {model!r}")


def scaled_arch(model: str, n_layers: int = 8, d_model: int = 1024,
                vocab: int = 4096) -> ScaledArch:
    """Scale catalog ``model`` down to ``n_layers`` x ``d_model``.

    Keeps the family, the FFN/d_model ratio and the query-heads per KV-head ratio; heads are 64
    wide (32 below d_model 512). Raises EdgeLLMError naming the option on bad sizes.
    """
    from edgellm.system import catalog

    known = catalog.models()
    if model not in known:
        raise EdgeLLMError(f"--model: unknown model {model!r}; known: {', '.join(known)}")
    full = catalog.model(model)
    kind, ffn_ratio = _family(model)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise EdgeLLMError(f"--layers: must be an integer >= 1, got {n_layers!r}")
    if not isinstance(vocab, int) or vocab < 16:
        raise EdgeLLMError(f"--vocab: must be an integer >= 16, got {vocab!r}")
    group = full.n_heads // full.n_kv_heads
    head_dim = 64 if d_model >= 512 else 32
    if not isinstance(d_model, int) or d_model < head_dim or d_model % (head_dim * group):
        raise EdgeLLMError(f"--d-model: must be a multiple of {head_dim * group} "
                           f"({group} query heads per KV head of {head_dim}) for {model}, "
                           f"got {d_model!r}")
    n_heads = d_model // head_dim
    ffn = max(32, int(round(ffn_ratio * d_model / 32)) * 32)
    return ScaledArch(model, kind, n_layers, d_model, n_heads, n_heads // group, ffn, vocab)


def hf_config(arch: ScaledArch):
    """The ``transformers`` config of ``arch`` (dropout off, no sliding window)."""
    import transformers as tf

    if arch.kind in ("llama", "mistral"):
        cls = tf.LlamaConfig if arch.kind == "llama" else tf.MistralConfig
        extra = {} if arch.kind == "llama" else {"sliding_window": None}
        return cls(vocab_size=arch.vocab, hidden_size=arch.d_model,
                   intermediate_size=arch.ffn, num_hidden_layers=arch.n_layers,
                   num_attention_heads=arch.n_heads, num_key_value_heads=arch.n_kv_heads,
                   head_dim=arch.head_dim, max_position_embeddings=4096,
                   tie_word_embeddings=False, **extra)
    if arch.kind == "opt":
        return tf.OPTConfig(vocab_size=arch.vocab, hidden_size=arch.d_model,
                            ffn_dim=arch.ffn, num_hidden_layers=arch.n_layers,
                            num_attention_heads=arch.n_heads, word_embed_proj_dim=arch.d_model,
                            max_position_embeddings=4096, dropout=0.0, attention_dropout=0.0,
                            do_layer_norm_before=True, enable_bias=True)
    if arch.kind == "bloom":
        return tf.BloomConfig(vocab_size=arch.vocab, hidden_size=arch.d_model,
                              n_layer=arch.n_layers, n_head=arch.n_heads,
                              hidden_dropout=0.0, attention_dropout=0.0)
    raise EdgeLLMError(f"--model: no transformers config for family {arch.kind!r}")


def build_model(arch: ScaledArch, dtype, device: str = "cpu", seed: int = 0):
    """Randomly initialised causal LM of ``arch`` in ``dtype`` on ``device``, in eval mode."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(hf_config(arch))
    return model.to(device=device, dtype=dtype).eval()


@dataclass(frozen=True)
class ModelStats:
    """What the cost model needs to know about a built model."""

    n_params_total: int    # every parameter (unique tensors)
    n_params_matmul: int   # P: parameters of nn.Linear modules (LM head included)
    weight_bytes_read: int  # W: bytes a forward pass reads in full (untied embeddings excluded)
    weight_bytes_total: int  # bytes of every parameter (memory footprint)
    element_bytes: int     # bytes per weight / KV element of the dtype that ran


def model_stats(model) -> ModelStats:
    """Count P and W of a built ``transformers`` model (see the module docstring)."""
    import torch.nn as nn

    linear_ids: set[int] = set()
    p_matmul = 0
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            for prm in (mod.weight, mod.bias):
                if prm is not None:
                    p_matmul += prm.numel()
                    linear_ids.add(id(prm))
    embed_only: set[int] = set()
    for mod in model.modules():
        if isinstance(mod, nn.Embedding) and id(mod.weight) not in linear_ids:
            embed_only.add(id(mod.weight))
    total = read = 0
    total_n = 0
    elem = 0
    for prm in model.parameters():  # unique tensors
        nbytes = prm.numel() * prm.element_size()
        elem = prm.element_size()
        total += nbytes
        total_n += prm.numel()
        if id(prm) not in embed_only:
            read += nbytes
    return ModelStats(total_n, p_matmul, read, total, elem)


# ============================================================================ KV cache
def cache_nbytes(cache) -> int:
    """Bytes of every key and value tensor a ``transformers`` cache holds."""
    import torch

    if cache is None:
        return 0
    layers = getattr(cache, "layers", None)
    if layers is not None:
        tensors = [t for layer in layers for t in (getattr(layer, "keys", None),
                                                   getattr(layer, "values", None))]
    else:  # legacy tuple-of-tuples
        tensors = [t for layer in cache for t in layer]
    return int(sum(t.numel() * t.element_size() for t in tensors
                   if isinstance(t, torch.Tensor)))


def kv_per_token(arch: ScaledArch, element_bytes: int) -> float:
    """Cost-model KV bytes per token position of ``arch`` at ``element_bytes`` per element."""
    return cost.kv_bytes_per_token(arch.n_layers, arch.d_model, arch.n_heads, arch.n_kv_heads,
                                   8 * element_bytes)


# ============================================================================ measurement
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


# ============================================================================ fitting
@dataclass(frozen=True)
class CostParams:
    """Cost-model inputs of the built model (SPEC 2.2 symbols)."""

    P: float   # matmul parameters
    L: int
    d: int
    W: float   # weight bytes read per pass
    kv: float  # KV bytes per token position

    @classmethod
    def of(cls, arch: ScaledArch, stats: ModelStats) -> CostParams:
        return cls(float(stats.n_params_matmul), arch.n_layers, arch.d_model,
                   float(stats.weight_bytes_read), kv_per_token(arch, stats.element_bytes))


def predict(cp: CostParams, b, S, N, C: float, M: float) -> tuple[np.ndarray, np.ndarray]:
    """Predicted prefill and total decode seconds (cost.prefill_time / cost.decode_time)."""
    pre = cost.prefill_time(b, S, cp.P, cp.L, cp.d, cp.W, cp.kv, C, M)
    dec = cost.decode_time(b, S, N, cp.P, cp.L, cp.d, cp.W, cp.kv, C, M)
    return np.asarray(pre, float), np.asarray(dec, float)


def fit_rates(cp: CostParams, b, S, N, t_prefill, t_decode) -> tuple[float, float]:
    """Effective compute rate C [FLOP/s] and bandwidth M [B/s] that best explain the times.

    Minimises the mean squared log ratio predicted/measured over every prefill and every
    (N > 1) decode total, each weighted alike; a coarse log grid then Nelder-Mead.
    """
    from scipy.optimize import minimize

    b, S, N = (np.asarray(x, float) for x in (b, S, N))
    tp, td = np.asarray(t_prefill, float), np.asarray(t_decode, float)
    if b.size == 0 or np.any(tp <= 0):
        raise EdgeLLMError("fit: needs at least one point with positive prefill time")
    has_dec = (N > 1) & (td > 0)

    lo_x, hi_x = 0.0, 20.0  # search 1 .. 1e20 FLOP/s and B/s; outside, a quadratic wall

    def loss(x):
        xc = np.clip(x, lo_x, hi_x)
        C, M = 10.0 ** xc[0], 10.0 ** xc[1]
        pre, dec = predict(cp, b, S, N, C, M)
        r = [np.log(pre / tp)]
        if has_dec.any():
            r.append(np.log(dec[has_dec] / td[has_dec]))
        r = np.concatenate(r)
        return float(np.mean(r * r) + np.sum((np.asarray(x) - xc) ** 2))

    # starting scales: prefill is compute-like, decode memory-like
    F_pre = b * (2 * cp.P * S + 2 * cp.L * cp.d * S * (S + 1))
    c0 = np.log10(np.median(F_pre / tp))
    if has_dec.any():
        Q_dec = (N - 1) * (cp.W + b * (S + N / 2) * cp.kv)
        m0 = np.log10(np.median(Q_dec[has_dec] / td[has_dec]))
    else:
        m0 = np.log10(np.median((cp.W + b * S * cp.kv) / tp))
    span = np.linspace(-2.0, 2.0, 41)
    best = min((loss((c0 + u, m0 + v)), (c0 + u, m0 + v)) for u in span for v in span)
    res = minimize(loss, np.array(best[1]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 4000})
    x = np.clip(res.x if res.fun <= best[0] else np.array(best[1]), lo_x, hi_x)
    return float(10.0 ** x[0]), float(10.0 ** x[1])


def apply_fit(points: list[Point], cp: CostParams, C: float, M: float) -> list[Point]:
    """Fill each point's predictions at rates C, M (in place; returns ``points``)."""
    arr = lambda k: np.array([getattr(p, k) for p in points], float)  # noqa: E731
    pre, dec = predict(cp, arr("batch"), arr("prompt"), arr("output"), C, M)
    for p, a, d in zip(points, np.atleast_1d(pre), np.atleast_1d(dec), strict=True):
        p.pred_prefill_s, p.pred_decode_s = float(a), float(d)
    return points


def fit_points(points: list[Point], cp: CostParams) -> tuple[float, float]:
    arr = lambda k: np.array([getattr(p, k) for p in points], float)  # noqa: E731
    return fit_rates(cp, arr("batch"), arr("prompt"), arr("output"), arr("prefill_s"),
                     arr("decode_s"))


def error_summary(points: list[Point]) -> dict[str, float]:
    """Median and worst relative error of predicted compute time."""
    errs = [p.rel_error for p in points]
    return {"median": float(np.median(errs)), "worst": float(np.max(errs)), "n": len(errs)}


def holdout_check(points: list[Point], cp: CostParams) -> dict[str, Any] | None:
    """Fit on a checkerboard half of the (batch, prompt) grid, score on the other half."""
    bs = sorted({p.batch for p in points})
    ss = sorted({p.prompt for p in points})
    parity = [(bs.index(p.batch) + ss.index(p.prompt)) % 2 for p in points]
    train = [p for p, k in zip(points, parity, strict=True) if k == 0]
    test = [Point(**{k: v for k, v in asdict(p).items()})
            for p, k in zip(points, parity, strict=True) if k == 1]
    if len(train) < 2 or not test:
        return None
    C, M = fit_points(train, cp)
    apply_fit(test, cp, C, M)
    return {"C": C, "M": M, "n_train": len(train), **error_summary(test)}


# ============================================================================ device profile
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def hardware(device: str) -> dict[str, Any]:
    """Name, memory [B] and a slug of the machine ``device`` runs on."""
    if device.startswith("cuda"):
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        name = props.name
        mem = int(props.total_memory)
        label = name
    else:
        name = _cpu_name()
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            mem = 16 * 2**30
        label = f"{name}, {os.cpu_count()} cores"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"
    prefix = "cuda" if device.startswith("cuda") else "cpu"
    return {"name": name, "label": label, "memory_bytes": mem,
            "slug": f"{prefix}-{slug}" if not slug.startswith(prefix) else slug}


def match_catalog_device(gpu_name: str) -> str | None:
    """The catalog device whose name matches a CUDA device name, if any."""
    from edgellm.system import catalog

    have = set(re.split(r"[^a-z0-9]+", gpu_name.lower()))
    for name in catalog.devices():  # every word of the catalog name in the CUDA name
        if set(name.lower().split("-")) <= have:
            return name
    return None


def device_profile(name: str, hw: dict, precision: str, requested: str, C: float, M: float,
                   command: str, catalog_device: str | None = None) -> dict[str, Any]:
    """A device entry in the layout of ``system/data/devices.yaml`` (with ``sources``).

    With ``catalog_device`` the datasheet peaks are kept and the efficiencies are the fitted
    rates over them (where a fitted rate beats the datasheet, the peak is replaced by it and
    the efficiency is 1). Without one, peak = fitted rate and efficiency = 1.
    """
    when = _dt.date.today().isoformat()
    how = f"measured by `{command}` on {when}, {hw['label']}"
    src: dict[str, str] = {}
    peak_c, eff_c, bw, eff_m = C, 1.0, M, 1.0
    if catalog_device is not None:
        from edgellm.system import catalog

        ref = catalog.device(catalog_device)
        sheet = f"datasheet figure of catalog device {catalog_device!r}"
        if precision in ref.peak_flops and C <= ref.peak_flops[precision]:
            peak_c, eff_c = ref.peak_flops[precision], C / ref.peak_flops[precision]
            src[f"peak_flops.{precision}"] = sheet
        if M <= ref.mem_bandwidth:
            bw, eff_m = ref.mem_bandwidth, M / ref.mem_bandwidth
            src["mem_bandwidth"] = sheet
    src.setdefault(f"peak_flops.{precision}",
                   f"fitted effective {precision} rate (no datasheet peak known), {how}")
    src.setdefault("mem_bandwidth",
                   f"fitted effective bandwidth (no datasheet figure known), {how}")
    src["compute_efficiency"] = (f"fitted C / peak_flops.{precision}, {how}"
                                 if eff_c < 1 else f"1.0: peak_flops is the fitted rate, {how}")
    src["memory_efficiency"] = (f"fitted M / mem_bandwidth, {how}"
                                if eff_m < 1 else f"1.0: mem_bandwidth is the fitted rate, {how}")
    src["memory_bytes"] = ("torch.cuda.get_device_properties().total_memory"
                           if "cuda" in hw["slug"] else "os.sysconf physical pages x page size")
    src["memory_bytes"] += f", {how}"
    src["reserved_bytes"] = (f"edgellm-gym assumption: {RESERVED_FRACTION:.0%} of memory_bytes "
                             "(runtime, activations, fragmentation; vLLM's default headroom)")
    peaks = {precision: float(peak_c)}
    if requested != precision:
        peaks[requested] = float(peak_c)
        src[f"peak_flops.{requested}"] = (f"the {precision} figure: {requested} was requested "
                                          f"and {precision} ran instead (same bytes per "
                                          f"element), {how}")
    mem = int(hw["memory_bytes"])
    entry = {"memory_bytes": mem, "reserved_bytes": int(mem * RESERVED_FRACTION),
             "peak_flops": peaks, "mem_bandwidth": float(bw),
             "compute_efficiency": float(min(1.0, eff_c)),
             "memory_efficiency": float(min(1.0, eff_m)), "sources": src}
    return {"devices": {name: entry}}


def load_device_profile(path: str | os.PathLike, name: str | None = None):
    """Read a profile written by ``edgellm profile`` (or ``devices.yaml``) into a ``Device``.

    ``name`` picks an entry when the file holds several. Errors name the file.
    """
    import yaml

    from edgellm.system import Device, InstanceError

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise EdgeLLMError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise EdgeLLMError(f"{path}: not valid YAML ({e})") from None
    devs = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devs, dict) or not devs:
        raise EdgeLLMError(f"{path}: devices: missing or empty (expected a map of device entries)")
    if name is None:
        if len(devs) > 1:
            raise EdgeLLMError(f"{path}: holds {len(devs)} devices ({', '.join(devs)}); pick one")
        name = next(iter(devs))
    if name not in devs:
        raise EdgeLLMError(f"{path}: no device {name!r}; it holds {', '.join(devs)}")
    entry = devs[name]
    if not isinstance(entry, dict):
        raise EdgeLLMError(f"{path}: devices.{name}: must be a map")
    fields_ = {k: v for k, v in entry.items() if k != "sources"}
    try:
        return Device.from_dict({"name": name, **fields_}, f"devices.{name}")
    except InstanceError as e:
        raise EdgeLLMError(f"{path}: {e}") from None


# ============================================================================ report
HEADER = ("batch", "prompt", "output", "prefill_s", "pred_prefill_s", "decode_tok_s",
          "pred_decode_tok_s", "total_s", "pred_total_s", "rel_error")


def point_rows(points: list[Point]) -> list[dict[str, float]]:
    """One flat record per point; decode per token = decode total / (N - 1)."""
    rows = []
    for p in points:
        steps = max(p.output - 1, 1)
        rows.append({"batch": p.batch, "prompt": p.prompt, "output": p.output,
                     "prefill_s": p.prefill_s, "pred_prefill_s": p.pred_prefill_s,
                     "decode_tok_s": p.decode_s / steps,
                     "pred_decode_tok_s": p.pred_decode_s / steps,
                     "total_s": p.total_s, "pred_total_s": p.pred_total_s,
                     "rel_error": p.rel_error, "kv_bytes_real": p.kv_bytes_real,
                     "kv_bytes_model": p.kv_bytes_model})
    return rows


def format_table(points: list[Point]) -> str:
    """Terminal table of measured against predicted times (ms)."""
    head = (f"{'batch':>5} {'prompt':>6} {'out':>4} | {'prefill ms':>10} {'pred':>8} | "
            f"{'decode ms/tok':>13} {'pred':>8} | {'total ms':>9} {'pred':>9} | {'error':>6}")
    lines = [head, "-" * len(head)]
    for r in point_rows(points):
        lines.append(f"{r['batch']:>5} {r['prompt']:>6} {r['output']:>4} | "
                     f"{1e3 * r['prefill_s']:>10.1f} {1e3 * r['pred_prefill_s']:>8.1f} | "
                     f"{1e3 * r['decode_tok_s']:>13.2f} {1e3 * r['pred_decode_tok_s']:>8.2f} | "
                     f"{1e3 * r['total_s']:>9.1f} {1e3 * r['pred_total_s']:>9.1f} | "
                     f"{100 * r['rel_error']:>5.1f}%")
    return "\n".join(lines)


def plot(points: list[Point], path: Path, title: str) -> None:
    """PNG of predicted against measured time (prefill, decode step, total), log-log, y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = point_rows(points)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    series = (("prefill_s", "pred_prefill_s", "prefill", "o"),
              ("decode_tok_s", "pred_decode_tok_s", "decode step (mean)", "s"),
              ("total_s", "pred_total_s", "compute time T_C", "^"))
    vals = []
    for m, p, label, marker in series:
        x = [r[m] for r in rows]
        y = [r[p] for r in rows]
        vals += x + y
        ax.scatter(x, y, label=label, marker=marker, alpha=0.8)
    lo, hi = min(vals) / 1.5, max(vals) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="measured [s]", ylabel="predicted by the roofline [s]", title=title)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)


# ============================================================================ the command
def parse_int_list(text: str, option: str, lo: int = 1) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; EdgeLLMError naming ``option`` on anything else."""
    try:
        vals = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < lo for v in vals):
        raise EdgeLLMError(f"{option}: must be a comma-separated list of integers >= {lo}, "
                           f"got {text!r}")
    return sorted(set(vals))


def resolve_device(choice: str) -> str:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise EdgeLLMError(f"--device: {choice} requested but torch sees no CUDA device")
    return choice


def resolve_precision(requested: str, device: str) -> str:
    """The precision that actually runs (CPU: fp16 -> bf16, same bytes per element)."""
    if requested not in PRECISIONS_RUN:
        raise EdgeLLMError(f"--quant: must be one of {', '.join(PRECISIONS_RUN)}, "
                           f"got {requested!r}")
    if device == "cpu" and requested == "fp16":
        return "bf16"
    return requested


@dataclass
class ProfileResult:
    """Everything one ``edgellm profile`` run produced."""

    arch: ScaledArch
    stats: ModelStats
    precision: str
    device: str
    points: list[Point]
    C: float
    M: float
    errors: dict[str, float]
    holdout: dict[str, Any] | None
    profile: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)


def profile(model: str = "llama-3-8b", quant: str = "fp16", batches=(1, 2, 4, 8),
            prompts=(64, 256), output: int = 32, layers: int = 8, d_model: int = 1024,
            vocab: int = 4096, device: str = "auto", repeats: int = 3, warmup: int = 1,
            seed: int = 0, out: str | os.PathLike | None = None, name: str | None = None,
            catalog_device: str | None = None, command: str = "edgellm profile",
            progress: bool = True, plot_png: bool = True, stat: str = "min",
            clock: str = "wall", threads: int | None = None) -> ProfileResult:
    """Measure, fit and (with ``out``) write profile.yaml, points.csv, profile.json, profile.png."""
    try:
        import torch
        import transformers
    except ImportError:
        raise EdgeLLMError(INSTALL_HINT) from None
    if not isinstance(output, int) or output < 2:
        raise EdgeLLMError(f"--output: must be an integer >= 2 (one prefill plus decode steps), "
                           f"got {output!r}")
    if repeats < 1:
        raise EdgeLLMError(f"--repeats: must be >= 1, got {repeats}")
    arch = scaled_arch(model, layers, d_model, vocab)
    dev = resolve_device(device)
    if clock not in CLOCKS:
        raise EdgeLLMError(f"--clock: must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and dev.startswith("cuda"):
        raise EdgeLLMError("--clock: cpu time does not measure GPU work; use --clock wall on cuda")
    if threads is not None:
        if threads < 1:
            raise EdgeLLMError(f"--threads: must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    precision = resolve_precision(quant, dev)
    hw = hardware(dev)
    if catalog_device is None and dev.startswith("cuda"):
        catalog_device = match_catalog_device(hw["name"])
    elif catalog_device is not None:
        from edgellm.system import catalog

        if catalog_device not in catalog.devices():
            raise EdgeLLMError(f"--catalog-device: unknown device {catalog_device!r}; known: "
                               f"{', '.join(catalog.devices())}")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    net = build_model(arch, dtype, dev, seed)
    stats = model_stats(net)
    cp = CostParams.of(arch, stats)
    points = measure_grid(net, arch, stats, list(batches), list(prompts), output, repeats,
                          warmup, dev, seed, progress, stat, clock)
    C, M = fit_points(points, cp)
    apply_fit(points, cp, C, M)
    errors = error_summary(points)
    hold = holdout_check(points, cp)
    name = name or f"{hw['slug']}-{precision}"
    prof = device_profile(name, hw, precision, quant, C, M, command, catalog_device)
    prof["measurement"] = {
        "command": command, "date": _dt.date.today().isoformat(), "hardware": hw["label"],
        "torch": str(torch.__version__), "transformers": str(transformers.__version__),
        "torch_device": dev, "threads": torch.get_num_threads(), "clock": clock,
        "repeats": repeats, "warmup": warmup, "stat": stat,
        "precision_requested": quant, "precision_run": precision,
        "model": asdict(arch), "n_params_matmul": stats.n_params_matmul,
        "weight_bytes_read": stats.weight_bytes_read, "kv_bytes_per_token": cp.kv,
        "fitted_compute_flops": C, "fitted_bandwidth_bytes_s": M,
        "median_rel_error": errors["median"], "worst_rel_error": errors["worst"],
        "weight_check": weight_check(net, model),
    }
    res = ProfileResult(arch, stats, precision, dev, points, C, M, errors, hold, prof)
    if out is not None:
        write_outputs(res, Path(out), plot_png)
    return res


def write_outputs(res: ProfileResult, out: Path, plot_png: bool = True) -> None:
    """profile.yaml (device profile), points.csv, profile.json and profile.png, atomically."""
    import yaml

    from edgellm.eval.report import rows_to_csv
    from edgellm.io import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    header = ("# Device profile written by `edgellm profile`; load it with "
              "edgellm.profiling.load_device_profile(path).\n"
              "# Units: bytes, FLOP/s, bytes/s; efficiencies in (0, 1].\n")
    files = {"profile": out / "profile.yaml", "csv": out / "points.csv",
             "json": out / "profile.json"}
    atomic_write_text(files["profile"], header + yaml.safe_dump(res.profile, sort_keys=False))
    rows = point_rows(res.points)
    atomic_write_text(files["csv"], rows_to_csv(rows))
    summary = {"device": res.device, "precision": res.precision, "C_flops": res.C,
               "M_bytes_s": res.M, "errors": res.errors, "holdout": res.holdout,
               "measurement": res.profile["measurement"], "points": rows}
    atomic_write_text(files["json"], json.dumps(summary, indent=2) + "\n")
    if plot_png:
        files["png"] = out / "profile.png"
        plot(res.points, files["png"], f"{res.arch.model} (scaled), {res.precision} on "
                                       f"{res.device}")
    res.files = {k: str(v) for k, v in files.items()}


def summary_text(res: ProfileResult) -> str:
    """The lines printed under the table."""
    a, s = res.arch, res.stats
    lines = [
        f"model: {a.model} scaled to {a.n_layers} layers x d_model {a.d_model} "
        f"({a.n_heads} heads, {a.n_kv_heads} KV heads, FFN {a.ffn}, vocab {a.vocab}); "
        f"P = {s.n_params_matmul:,} matmul params of {s.n_params_total:,}",
        f"precision run: {res.precision} on {res.device}"
        + (f" (requested {res.profile['measurement']['precision_requested']})"
           if res.profile["measurement"]["precision_requested"] != res.precision else ""),
        f"fitted: C = {res.C / 1e9:.1f} GFLOP/s, M = {res.M / 1e9:.2f} GB/s",
        f"compute time error over {res.errors['n']} points: median "
        f"{100 * res.errors['median']:.1f}%, worst {100 * res.errors['worst']:.1f}%",
    ]
    if res.holdout:
        h = res.holdout
        lines.append(f"held-out check (fit on {h['n_train']} points, scored on {h['n']}): "
                     f"median {100 * h['median']:.1f}%, worst {100 * h['worst']:.1f}%")
    kv_ok = all(p.kv_bytes_real == p.kv_bytes_model for p in res.points)
    lines.append("KV cache: real bytes " + ("equal" if kv_ok else "DIFFER FROM")
                 + " the cost model's b * (S + N - 1) * kv at every point")
    lines.append(weight_check_text(res.profile["measurement"]["weight_check"]))
    for k, v in res.files.items():
        lines.append(f"wrote {k}: {v}")
    return "\n".join(lines)


def _run(args) -> int:
    batches = parse_int_list(args.batch, "--batch")
    prompts = parse_int_list(args.prompt, "--prompt")
    command = (f"edgellm profile --model {args.model} --quant {args.quant} "
               f"--batch {args.batch} --prompt {args.prompt} --output {args.output} "
               f"--layers {args.layers} --d-model {args.d_model}")
    for flag, value, default in (("--threads", args.threads, None), ("--clock", args.clock, "wall"),
                                 ("--repeats", args.repeats, 3), ("--stat", args.stat, "min"),
                                 ("--device", args.device, "auto")):
        if value != default:
            command += f" {flag} {value}"
    res = profile(args.model, args.quant, batches, prompts, args.output, args.layers,
                  args.d_model, args.vocab, args.device, args.repeats, args.warmup, args.seed,
                  args.out, args.name, args.catalog_device, command,
                  progress=not args.quiet, plot_png=not args.no_plot, stat=args.stat,
                  clock=args.clock, threads=args.threads)
    print(format_table(res.points))
    print(summary_text(res))
    return 0


def register(sub) -> None:
    """Add the ``profile`` subcommand."""
    p = sub.add_parser(
        "profile", help="measure a real transformer decoder and calibrate the cost model",
        description="Build a randomly initialised, scaled-down transformers decoder of a catalog "
                    "model family, time batched generation with the KV cache, fit the device's "
                    "effective compute rate and bandwidth, and write a device profile. "
                    'Needs the profile extra: pip install -e ".[profile]".',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="llama-3-8b", help="catalog model whose family is built")
    p.add_argument("--quant", default="fp16", help="precision: fp16 | bf16 | fp32 "
                   "(fp16 runs as bf16 on CPU, same bytes per element)")
    p.add_argument("--batch", default="1,2,4,8", help="batch sizes, comma-separated")
    p.add_argument("--prompt", default="64,256", help="padded prompt lengths S, comma-separated")
    p.add_argument("--output", type=int, default=32, help="output tokens N per request")
    p.add_argument("--layers", type=int, default=8, help="layers of the scaled model")
    p.add_argument("--d-model", type=int, default=1024, help="hidden width of the scaled model")
    p.add_argument("--vocab", type=int, default=4096, help="vocabulary of the scaled model")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (auto: cuda if available)")
    p.add_argument("--catalog-device", default=None,
                   help="catalog GPU whose datasheet peaks to keep (auto-matched on CUDA)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per point (median kept)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per point")
    p.add_argument("--stat", default="min", choices=sorted(STATS),
                   help="estimator of a pass time over the repeats")
    p.add_argument("--clock", default="wall", choices=sorted(CLOCKS),
                   help="wall time, or process CPU time (CPU only; with --threads 1 it is "
                        "immune to other jobs on a shared machine)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and prompts")
    p.add_argument("--name", default=None,
                   help="device name in the profile (default: from the hardware)")
    p.add_argument("--out", default="runs/profile", help="folder for profile.yaml, points.csv, "
                   "profile.json, profile.png")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


__all__ = [
    "BatchRun", "CostParams", "ModelStats", "Point", "ProfileResult", "ScaledArch",
    "apply_fit", "build_model", "cache_nbytes", "device_profile", "error_summary", "fit_rates",
    "format_table", "hf_config", "kv_per_token", "load_device_profile", "measure_grid",
    "model_stats", "padded_prompts", "profile", "register", "run_batch", "scaled_arch",
]
