"""What a profile run shows and writes: the table, the plot, the summary lines and the
output files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from edgellm.io import atomic_path, atomic_write_text, csv_text
from edgellm.profiling.timing import Point
from edgellm.profiling.weights import weight_check_text

if TYPE_CHECKING:
    from edgellm.profiling.run import ProfileResult


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


def write_outputs(res: ProfileResult, out: Path, plot_png: bool = True) -> None:
    """profile.yaml (device profile), points.csv, profile.json and profile.png, atomically."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    header = ("# Device profile written by `edgellm profile`; load it with "
              "edgellm.profiling.load_device_profile(path).\n"
              "# Units: bytes, FLOP/s, bytes/s; efficiencies in (0, 1].\n")
    files = {"profile": out / "profile.yaml", "csv": out / "points.csv",
             "json": out / "profile.json"}
    atomic_write_text(files["profile"], header + yaml.safe_dump(res.profile, sort_keys=False))
    rows = point_rows(res.points)
    atomic_write_text(files["csv"], csv_text(rows))
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
