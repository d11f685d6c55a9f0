"""One profiling run end to end: build, measure, fit, report (:func:`profile`)."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgellm.errors import EdgeLLMError
from edgellm.profiling.accounting import ModelStats, model_stats
from edgellm.profiling.device import (
    device_profile,
    hardware,
    match_catalog_device,
    resolve_device,
    resolve_precision,
)
from edgellm.profiling.fit import (
    CostParams,
    apply_fit,
    error_summary,
    fit_points,
    holdout_check,
)
from edgellm.profiling.models import ScaledArch, build_model, scaled_arch
from edgellm.profiling.report import write_outputs
from edgellm.profiling.timing import CLOCKS, Point, measure_grid
from edgellm.profiling.weights import weight_check

INSTALL_HINT = 'profile needs torch and transformers: pip install -e ".[profile]"'


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
