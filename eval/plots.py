"""PNG plots of eval summaries and sweeps (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgellm.io import atomic_savefig

_DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, names, values, err=None, color="C0", ref=None, ref_label=None,
          labels: bool = False):
    x = np.arange(len(names))
    vals = [np.nan if v is None else v for v in values]
    errs = None if err is None else [0.0 if e is None else e for e in err]
    bars = ax.bar(x, vals, yerr=errs, color=color, capsize=3)
    if labels:
        ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.3f}" for v in vals],
                     fontsize=6, padding=1)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    if ref is not None:
        ax.axhline(ref, color="k", lw=0.8, ls="--", label=ref_label)
        if ref_label:
            ax.legend(fontsize=7)


def plot_summary(summary: dict, out: str | Path) -> list[Path]:
    """``throughput.png`` (value, requests and tokens per slot; ratio to the oracle),
    ``regret.png``, ``drops.png`` and ``decision_time.png`` under ``out``."""
    plt = _plt()
    out = Path(out)
    rows = summary["policies"]
    names = [r["policy"] if len(r["policy"]) <= 24 else "..." + r["policy"][-21:]
             for r in rows]
    obj = summary.get("objective") or "value"
    paths = []

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    _bars(axes[0], names, [r["requests_per_slot"] for r in rows])
    axes[0].set_ylabel("requests served per slot")
    _bars(axes[1], names, [r["tokens_per_slot"] for r in rows], color="C1")
    axes[1].set_ylabel("tokens generated per slot")
    ratio = [r["ratio_to_oracle"] for r in rows]
    _bars(axes[2], names, ratio, color="C2", ref=1.0 if any(v is not None for v in ratio)
          else None, ref_label="oracle", labels=True)
    axes[2].set_ylabel(f"{obj} per slot / oracle's")
    fig.suptitle(f"{summary['scenario']}: throughput ({summary['episodes']} episodes)",
                 fontsize=10)
    fig.tight_layout()
    paths.append(out / "throughput.png")
    atomic_savefig(fig, paths[-1], dpi=_DPI)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    _bars(ax, names, [r["regret_per_slot"] for r in rows], color="C3", labels=True)
    ax.set_ylabel(f"regret per slot [{obj}]")
    ax.set_title("DFTSP optimum minus value served, on each policy's own states", fontsize=9)
    fig.tight_layout()
    paths.append(out / "regret.png")
    atomic_savefig(fig, paths[-1], dpi=_DPI)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bottom = np.zeros(len(rows))
    x = np.arange(len(rows))
    for i, c in enumerate(summary["drop_causes"]):
        v = np.array([r[f"dropped_{c}_per_slot"] or 0.0 for r in rows])
        ax.bar(x, v, bottom=bottom, label=c, color=f"C{i + 4}")
        bottom += v
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("requests dropped per slot")
    ax.legend(fontsize=7, title="cause", title_fontsize=7)
    fig.tight_layout()
    paths.append(out / "drops.png")
    atomic_savefig(fig, paths[-1], dpi=_DPI)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    timing = {t["policy"]: t for t in summary["timing"]}
    _bars(ax, names, [max(timing[r["policy"]]["decision_ms_mean"], 1e-4) for r in rows],
          color="C9")
    ax.set_yscale("log")
    ax.set_ylabel("decision time per slot [ms]")
    fig.tight_layout()
    paths.append(out / "decision_time.png")
    atomic_savefig(fig, paths[-1], dpi=_DPI)
    plt.close(fig)
    return paths


def plot_lines(rows: list[dict], x: str, y: str, path: str | Path, *, xlabel: str,
               ylabel: str, title: str, series: str = "policy", logx: bool = False,
               logy: bool = False, categorical: bool = False) -> Path:
    """One line per ``series`` value of ``y`` against ``x`` (rows as in a sweep CSV)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.8, 3.8))
    xs = list(dict.fromkeys(r[x] for r in rows))
    for i, name in enumerate(dict.fromkeys(r[series] for r in rows)):
        pts = {r[x]: r[y] for r in rows if r[series] == name and r[y] is not None}
        xv = [xs.index(k) if categorical else k for k in xs if k in pts]
        style = dict(marker="o", ms=4, lw=1.2)
        if name == "oracle" or name == "dftsp":
            style.update(color="k", lw=2.0)
        else:
            style.update(color=f"C{i}")
        ax.plot(xv, [pts[k] for k in xs if k in pts], label=name, **style)
    if categorical:
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([str(v) for v in xs])
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=_DPI)
    plt.close(fig)
    return Path(path)
