"""Benchmark: calibrate the roofline cost model on this machine's CPU (issue 6).

Runs ``edgellm profile`` on the issue's grid (batch 1,2,4,8 x prompt 64,256, 32 output tokens)
with a scaled llama-3-8b (8 layers, d_model 1024, GQA 4:1, ~117M parameters), prints the table
and the median / worst relative error of the predicted compute time after calibration, plus a
held-out check (fit on a checkerboard half of the grid, scored on the other half).

    .venv/bin/python benchmarks/bench_profile.py                  # 1 torch thread, wall clock
    .venv/bin/python benchmarks/bench_profile.py --threads 0      # torch's default threads
    .venv/bin/python benchmarks/bench_profile.py --clock cpu      # process CPU time
    .venv/bin/python benchmarks/bench_profile.py --md benchmarks/results/profile.md

Timing protocol (printed with the results): every grid point first runs ``--warmup`` untimed
generations (at least 1: CPU backends build kernels per tensor shape, and a first pass can cost
10-100x a steady one), then ``--repeats`` timed ones; each pass time reported is the best
(``--stat min``, the default) or the median of those repeats.

``--threads 1`` is the default because the project's dev box is a shared 2-core VM: with other
jobs on the cores, a 2-thread run's wall times measure the neighbours (the two OpenMP threads
stall on each other whenever one is descheduled), while a 1-thread run loses only its share of
the core. ``--clock cpu`` (process CPU time) removes even that.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def machine() -> str:
    """`lscpu` model name and core count (falls back to /proc/cpuinfo)."""
    name = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    if not name:
        from edgellm.profiling import cpu_name

        name = cpu_name()
    return f"{name}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def timing_protocol(res) -> str:
    """One line saying how each reported pass time was obtained (best-of-N stated)."""
    m = res.profile["measurement"]
    how = (f"best (min) of {m['repeats']}" if m["stat"] == "min"
           else f"{m['stat']} of {m['repeats']}")
    return (f"timing: each pass time is the {how} timed runs, after {m['warmup']} untimed "
            f"warm-up run(s) per grid point; {m['clock']} clock, {m['threads']} thread(s)")


def markdown(res, command: str, wall_s: float) -> str:
    """The results section for BENCHMARKS.md."""
    from edgellm.profiling import point_rows

    m = res.profile["measurement"]
    e, h = res.errors, res.holdout
    lines = [
        "## Cost model against a real decoder (`edgellm profile`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}; torch {m['torch']}, transformers {m['transformers']}, "
        f"{res.device}, "
        f"{timing_protocol(res)}; wall time {wall_s:.0f} s.  ",
        f"Model: {res.arch.model} scaled to {res.arch.n_layers} layers x d_model "
        f"{res.arch.d_model} ({res.arch.n_heads} heads, {res.arch.n_kv_heads} KV heads, FFN "
        f"{res.arch.ffn}, vocab {res.arch.vocab}), P = {res.stats.n_params_matmul:,} matmul "
        f"parameters, run in {res.precision} (requested {m['precision_requested']}).",
        "",
        f"Fitted: C = {res.C / 1e9:.1f} GFLOP/s, M = {res.M / 1e9:.2f} GB/s.",
        "",
        f"**Median relative error of predicted compute time T_C: {100 * e['median']:.1f}%, "
        f"worst {100 * e['worst']:.1f}%** over {e['n']} grid points (target: median < 15%).",
    ]
    if h:
        lines.append(f"Held-out: fitted on {h['n_train']} points (checkerboard of the grid), "
                     f"scored on the other {h['n']}: median {100 * h['median']:.1f}%, "
                     f"worst {100 * h['worst']:.1f}%.")
    lines += ["", "| batch | prompt | prefill ms | pred | decode ms/tok | pred | T_C ms | pred | "
                  "error |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in point_rows(res.points):
        lines.append(f"| {r['batch']} | {r['prompt']} | {1e3 * r['prefill_s']:.1f} | "
                     f"{1e3 * r['pred_prefill_s']:.1f} | {1e3 * r['decode_tok_s']:.2f} | "
                     f"{1e3 * r['pred_decode_tok_s']:.2f} | {1e3 * r['total_s']:.0f} | "
                     f"{1e3 * r['pred_total_s']:.0f} | {100 * r['rel_error']:.1f}% |")
    kv_ok = all(p.kv_bytes_real == p.kv_bytes_model for p in res.points)
    lines += ["", f"KV cache: the real `transformers` cache equals the cost model's bytes at "
                  f"every point: {'yes' if kv_ok else 'NO'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="llama-3-8b")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--d-model", type=int, default=1024)
    ap.add_argument("--batch", default="1,2,4,8")
    ap.add_argument("--prompt", default="64,256")
    ap.add_argument("--output", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="0: torch's default")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per grid point")
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed warm-up runs per grid point (>= 1)")
    ap.add_argument("--stat", default="min", choices=("min", "median"),
                    help="pass time over the repeats: min (best-of-N) or median")
    ap.add_argument("--out", default="runs/bench-profile")
    ap.add_argument("--md", default=None, help="also write the markdown section here")
    args = ap.parse_args(argv)
    if args.warmup < 1:
        ap.error("--warmup: must be >= 1 (timing without warm-up measures kernel builds)")

    from edgellm.io import atomic_write_text
    from edgellm.profiling import format_table, parse_int_list, profile, summary_text

    threads = args.threads or None
    command = (f"edgellm profile --model {args.model} --quant fp16 --batch {args.batch} "
               f"--prompt {args.prompt} --output {args.output} --layers {args.layers} "
               f"--d-model {args.d_model}"
               + (f" --threads {threads}" if threads else "")
               + (f" --clock {args.clock}" if args.clock != "wall" else "")
               + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
               + (f" --warmup {args.warmup}" if args.warmup != 1 else "")
               + (f" --stat {args.stat}" if args.stat != "min" else ""))
    t0 = time.perf_counter()
    res = profile(args.model, "fp16", parse_int_list(args.batch, "--batch"),
                  parse_int_list(args.prompt, "--prompt"), args.output, args.layers,
                  args.d_model, repeats=args.repeats, warmup=args.warmup, out=args.out,
                  command=command, clock=args.clock, threads=threads, stat=args.stat)
    wall = time.perf_counter() - t0
    print(format_table(res.points))
    print(summary_text(res))
    print(f"command: {command}\nmachine: {machine()}\nwall time: {wall:.0f} s")
    print(timing_protocol(res))
    if args.md:
        atomic_write_text(Path(args.md), markdown(res, command, wall))
        print(f"wrote {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
