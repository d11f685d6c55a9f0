"""``edgellm profile`` (see :mod:`edgellm.profiling`)."""

from __future__ import annotations

import argparse

from edgellm.errors import EdgeLLMError
from edgellm.profiling.report import format_table, summary_text
from edgellm.profiling.timing import CLOCKS, STATS


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
    from edgellm.profiling.run import profile

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
