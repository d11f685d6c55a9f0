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

Modules, by concern: :mod:`~edgellm.profiling.models` (the scaled decoders),
:mod:`~edgellm.profiling.accounting` (parameters, weight and KV-cache bytes),
:mod:`~edgellm.profiling.weights` (the cost model's W against really quantized tensors),
:mod:`~edgellm.profiling.timing` (timed generation over a grid),
:mod:`~edgellm.profiling.fit` (the fitted rates and their errors),
:mod:`~edgellm.profiling.device` (the machine, device profiles in and out),
:mod:`~edgellm.profiling.report` (table, plot, files), :mod:`~edgellm.profiling.run`
(:func:`profile`, everything end to end) and :mod:`~edgellm.profiling.cli`.
"""

from edgellm.profiling.accounting import ModelStats, cache_nbytes, kv_per_token, model_stats
from edgellm.profiling.cli import parse_int_list, register
from edgellm.profiling.device import cpu_name, device_profile, load_device_profile
from edgellm.profiling.fit import (
    CostParams,
    apply_fit,
    error_summary,
    fit_rates,
    predict,
)
from edgellm.profiling.models import ScaledArch, build_model, hf_config, scaled_arch
from edgellm.profiling.report import format_table, point_rows, summary_text
from edgellm.profiling.run import ProfileResult, profile
from edgellm.profiling.timing import BatchRun, Point, measure_grid, padded_prompts, run_batch

__all__ = [
    "BatchRun", "CostParams", "ModelStats", "Point", "ProfileResult", "ScaledArch",
    "apply_fit", "build_model", "cache_nbytes", "cpu_name", "device_profile", "error_summary",
    "fit_rates", "format_table", "hf_config", "kv_per_token", "load_device_profile",
    "measure_grid", "model_stats", "padded_prompts", "parse_int_list", "point_rows", "predict",
    "profile", "register", "run_batch", "scaled_arch", "summary_text",
]
