"""Per-policy summary of an eval run: terminal table, ``summary.csv``, ``summary.json``.

Metrics (means over every slot of every episode; all policies ran the same seeds):

* ``value_per_slot``: the objective served per slot (requests or tokens, per scenario);
  ``requests_per_slot``, ``tokens_per_slot``: served requests and generated tokens;
* ``ratio_to_oracle``: value per slot over the oracle's (blank without an oracle run). Not
  clipped at 1: the oracle is optimal per slot only, and a policy that keeps better queues
  can beat it over an episode; ``episodes_above_oracle`` counts such episodes;
* ``ratio_to_bound`` (``x bound``, with ``--bound``): total value over the sum of the
  hindsight upper bounds of the same seeds and slots (``edgellm bound``); no policy exceeds 1;
* ``regret_per_slot``: DFTSP optimum of the policy's own state minus the value it served,
  averaged; ``regret_slot_frac``: share of slots with positive regret; ``opt_unproven``:
  slot states whose DFTSP solve stopped at its node limit before proving the optimum (its
  best batch then stands for the optimum; the table says so when any did);
* ``dropped_<cause>_per_slot`` and ``deadline_misses_per_slot`` (drops whose cause is a
  deadline that can no longer be met);
* timing columns (``decision_ms_*``, wall-clock time of the decision per slot [ms]) are the
  only ones that vary between identical runs; :data:`TIMING_COLUMNS` names them, and
  ``summary.json`` keeps them apart under ``"timing"``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgellm.io import atomic_write_text, csv_text, write_json

SUMMARY_SCHEMA = "edgellm.eval-summary/1"
TIMING_COLUMNS = ("decision_ms_mean", "decision_ms_p95", "decision_ms_max")
_ROUND = 6


def _r(x) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), _ROUND)


def _ci95(per_episode: np.ndarray) -> float | None:
    """Half-width of a normal 95% interval of the mean over episodes."""
    if per_episode.size < 2:
        return None
    return 1.96 * float(per_episode.std(ddof=1)) / math.sqrt(per_episode.size)


def per_slot(records: list[dict], key: str) -> np.ndarray:
    """Column ``key`` of the episode records' per-slot lists, concatenated over episodes."""
    return np.concatenate([np.asarray(r["per_slot"][key], float) for r in records])


def ratio_to_oracle(value_per_slot: float, oracle_value_per_slot: float) -> float:
    """Value per slot over the oracle's (NaN when the oracle served nothing). Not clipped
    at 1: the oracle is optimal per slot only."""
    return (value_per_slot / oracle_value_per_slot if oracle_value_per_slot > 0
            else float("nan"))


def summarize(spec, config: dict, config_hash: str, records: dict,
              bounds: dict | None = None) -> dict:
    """Summary dict from ``{(policy, seed): record}`` for the policies and seeds of ``spec``;
    ``bounds`` (``{seed: edgellm bound dict}``) adds ``ratio_to_bound``."""
    seeds = spec.seeds
    causes = sorted({"expired", "overflow"}.union(
        *[set(r["dropped"]) for r in records.values()]))
    rows, timing = [], []
    per_ep_value = {}
    for name in spec.policies:
        recs = [records[name, s] for s in seeds]
        def col(k, recs=recs):
            return per_slot(recs, k)

        value = col("value")
        has_opt = all(v is not None for r in recs for v in r["per_slot"]["opt_value"])
        opt = col("opt_value") if has_opt else np.full(value.size, np.nan)
        n = value.size
        per_ep_value[name] = np.array([np.sum(r["per_slot"]["value"]) for r in recs], float)
        regret = opt - value
        row = {
            "policy": name, "episodes": len(recs), "slots": n,
            "value_per_slot": _r(value.mean()),
            "value_per_slot_ci95": _r(_ci95(np.array(
                [np.mean(r["per_slot"]["value"]) for r in recs]))),
            "requests_per_slot": _r(col("served").mean()),
            "tokens_per_slot": _r(col("served_tokens").mean()),
            "ratio_to_oracle": None,
            "ratio_to_bound": None,
            "episodes_above_oracle": None,
            "regret_per_slot": _r(regret.mean()) if has_opt else None,
            "regret_max": _r(regret.max()) if has_opt else None,
            "regret_slot_frac": _r((regret > 0).mean()) if has_opt else None,
            "opt_value_per_slot": _r(opt.mean()) if has_opt else None,
            "opt_unproven": int(sum(r.get("opt_unproven") or 0 for r in recs)),
            "candidates_per_slot": _r(col("candidates").mean()),
            "dropped_per_slot": _r(col("dropped").mean()),
        }
        for c in causes:
            row[f"dropped_{c}_per_slot"] = _r(sum(r["dropped"].get(c, 0) for r in recs) / n)
        row["deadline_misses_per_slot"] = _r(col("deadline_misses").mean())
        row["invalid_actions"] = int(sum(r["invalid_actions"] for r in recs))
        row["repaired"] = int(sum(r["repaired"] for r in recs))
        rows.append(row)
        dec = col("decision_s") * 1e3
        timing.append({"policy": name, "decision_ms_mean": _r(dec.mean()),
                       "decision_ms_p95": _r(np.percentile(dec, 95)),
                       "decision_ms_max": _r(dec.max())})
    if "oracle" in per_ep_value:
        base = next(r for r in rows if r["policy"] == "oracle")
        for row in rows:
            row["ratio_to_oracle"] = _r(ratio_to_oracle(row["value_per_slot"],
                                                        base["value_per_slot"] or 0.0))
            row["episodes_above_oracle"] = int(np.sum(per_ep_value[row["policy"]]
                                                      > per_ep_value["oracle"]))
    if bounds:
        upper = sum(bounds[s]["upper_bound"] for s in seeds)
        for row in rows:
            row["ratio_to_bound"] = (_r(per_ep_value[row["policy"]].sum() / upper)
                                     if upper else None)
    objective = config.get("scenario_config", {}).get("objective")
    return {"schema": SUMMARY_SCHEMA, "scenario": spec.scenario, "config_hash": config_hash,
            "config": config, "objective": objective, "seeds": seeds,
            "episodes": spec.episodes, "drop_causes": causes, "policies": rows,
            "timing": timing, "bounds": _bound_summary(bounds, seeds)}


def _bound_summary(bounds: dict | None, seeds) -> dict | None:
    """Sums over the seeds of the hindsight bounds (value over the whole episodes)."""
    if not bounds:
        return None
    return {"upper_bound": sum(bounds[s]["upper_bound"] for s in seeds),
            "lower_bound": sum(bounds[s]["lower_bound"] for s in seeds),
            "status": sorted({bounds[s]["status"] for s in seeds}),
            "method": bounds[seeds[0]]["method"]}


def table_rows(summary: dict) -> list[dict]:
    """Summary rows with their timing columns merged in (the CSV rows)."""
    timing = {t["policy"]: t for t in summary["timing"]}
    return [{**row, **{k: timing[row["policy"]][k] for k in TIMING_COLUMNS}}
            for row in summary["policies"]]


def to_csv(summary: dict) -> str:
    return csv_text(table_rows(summary))


def format_table(summary: dict) -> str:
    """The terminal table: one line per policy."""
    causes = summary["drop_causes"]
    has_bound = bool(summary.get("bounds"))
    head = (["policy", "req/slot", "tok/slot", "value/slot", "x oracle"]
            + (["x bound"] if has_bound else []) + ["regret/slot"]
            + [f"{c}/slot" for c in causes] + ["misses/slot", "ms/slot"])
    lines = []
    for row in table_rows(summary):
        ratio = row["ratio_to_oracle"]
        lines.append([row["policy"], f"{row['requests_per_slot']:.3f}",
                      f"{row['tokens_per_slot']:.1f}", f"{row['value_per_slot']:.3f}",
                      "-" if ratio is None else f"{ratio:.3f}"]
                     + ([f"{row['ratio_to_bound']:.3f}" if row["ratio_to_bound"] is not None
                         else "-"] if has_bound else [])
                     + ["-" if row["regret_per_slot"] is None
                        else f"{row['regret_per_slot']:.3f}"]
                     + [f"{row[f'dropped_{c}_per_slot']:.3f}" for c in causes]
                     + [f"{row['deadline_misses_per_slot']:.3f}",
                        f"{row['decision_ms_mean']:.2f}"])
    widths = [max(len(h), *(len(x[i]) for x in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    obj = summary.get("objective") or "value"
    title = (f"scenario {summary['scenario']}: {summary['episodes']} episodes x "
             f"{summary['policies'][0]['slots'] // summary['episodes']} slots, seeds "
             f"{summary['seeds'][0]}..{summary['seeds'][-1]}, objective {obj}")
    out = [title, fmt(head), fmt(["-" * w for w in widths]), *(fmt(x) for x in lines)]
    unproven = sum(row.get("opt_unproven") or 0 for row in summary["policies"])
    if unproven:
        out.append(f"regret reference: {unproven} slot states not proven optimal "
                   "(DFTSP node limit, edgellm.dftsp.ORACLE_NODE_LIMIT)")
    if has_bound:
        b = summary["bounds"]
        out.append(f"hindsight bounds (sum over seeds): upper {b['upper_bound']:g}, best "
                   f"schedule found {b['lower_bound']:g} ({', '.join(b['status'])})")
    return "\n".join(out)


def write_outputs(summary: dict, out: str | Path, plots: bool = True) -> list[Path]:
    """Write summary.csv, summary.json and the plots under ``out``; return the paths."""
    out = Path(out)
    atomic_write_text(out / "summary.csv", to_csv(summary))
    write_json(out / "summary.json", summary)
    paths = [out / "summary.csv", out / "summary.json"]
    if plots:
        from edgellm.eval.plots import plot_summary

        paths += plot_summary(summary, out)
    return paths
