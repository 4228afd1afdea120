"""Comparing runs: a table (summary.csv, summary.md) and two plots (validation curves overlaid, the
final metric per run) built from any set of run or sweep directories.

A sweep writes them at its root as each job ends (dnn_train.sweep.SweepSummary); the same can be
rebuilt later, for runs made on different days, with `python -m dnn_train.report PATH... `.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from dnn_train import artifacts

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
CURVES_PLOT = "sweep_curves.png"
METRIC_PLOT = "sweep_metric.png"
COLUMNS = ["job", "overrides", "status", "epochs", "best_val_accuracy", "test_accuracy", "grad_ratio_epoch1",
           "wall_seconds", "error", "run_dir"]


def find_runs(paths: list) -> list[Path]:
    """Run directories (holding results.json or Hydra's record) under each path, in job order."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such run or sweep directory")
        candidates = [path] if _is_run(path) else sorted((p for p in path.rglob("*") if p.is_dir() and _is_run(p)),
                                                         key=_job_key)
        found.extend(c for c in candidates if c not in found)
    return found


def _is_run(path: Path) -> bool:
    return (path / artifacts.RESULTS_FILE).is_file() or (path / ".hydra" / "overrides.yaml").is_file()


def _job_key(path: Path):
    return (str(path.parent), int(path.name) if path.name.isdigit() else math.inf, path.name)


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    import yaml

    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])]


def collect(run_dirs: list[Path]):
    """One row per run: the COLUMNS above (overrides: only those that differ between the runs)."""
    import pandas as pd

    rows, all_overrides = [], []
    for run_dir in run_dirs:
        results = {}
        if (run_dir / artifacts.RESULTS_FILE).is_file():
            results = json.loads((run_dir / artifacts.RESULTS_FILE).read_text())
        overrides = _overrides(run_dir)
        all_overrides.append(dict(o.split("=", 1) if "=" in o else (o, "") for o in overrides
                                  if not o.startswith("hydra.")))
        rows.append({"job": int(run_dir.name) if run_dir.name.isdigit() else run_dir.name,
                     "status": results.get("status", "not started"), "epochs": results.get("epochs"),
                     "best_val_accuracy": results.get("best_val_accuracy"), "test_accuracy": results.get("test_accuracy"),
                     "grad_ratio_epoch1": results.get("grad_ratio_epoch1"),
                     "wall_seconds": results.get("wall_seconds"), "error": results.get("error", ""),
                     "run_dir": str(run_dir)})
    keys = sorted({k for o in all_overrides for k in o})
    varying = [k for k in keys if len({o.get(k) for o in all_overrides}) > 1]
    for row, o in zip(rows, all_overrides):
        row["overrides"] = " ".join(f"{k}={_short(o[k])}" for k in varying if k in o) or "defaults"
    return pd.DataFrame(rows, columns=COLUMNS)


def _short(value: str) -> str:
    """Numbers as a reader wants them in a label: 0.0046225890 -> 0.00462, 1000000000.0 -> 1e+09."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and abs(number) < 1e6 and "." not in value else f"{number:.3g}"


def sort_table(table, metric: str, ascending: bool = False):
    """Best first by `metric` (missing values last)."""
    return table.sort_values(metric, ascending=ascending, na_position="last", kind="stable")


def write(table, out_dir: Path, metric: str = "best_val_accuracy", ascending: bool = False) -> None:
    """summary.csv (job order), summary.md (sorted by `metric`) and the two plots, in `out_dir`."""
    out_dir = Path(out_dir)
    artifacts.write_text(out_dir / SUMMARY_CSV, table.to_csv(index=False))
    artifacts.write_text(out_dir / SUMMARY_MD, markdown(sort_table(table, metric, ascending), metric))
    plot_curves(table, out_dir / CURVES_PLOT)
    plot_metric(table, out_dir / METRIC_PLOT, metric)


def markdown(table, metric: str) -> str:
    failed = table[~table["status"].isin(["completed"])]
    lines = [f"# {len(table)} runs, sorted by {metric}", ""]
    shown = [c for c in COLUMNS if c not in ("error", "run_dir") and not table[c].isna().all()]
    lines.append("| " + " | ".join(shown) + " |")
    lines.append("| " + " | ".join("---" for _ in shown) + " |")
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[c], c) for c in shown) + " |")
    if len(failed):
        lines += ["", f"{len(failed)} not completed:", ""]
        lines += [f"- job {r.job} ({r.overrides}): {r.status}{': ' + r.error if r.error else ''}"
                  for r in failed.itertuples()]
    return "\n".join(lines) + "\n"


FORMATS = {"wall_seconds": "{:.1f}", "grad_ratio_epoch1": "{:.3g}", "epochs": "{:.0f}"}


def _cell(value, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return FORMATS.get(column, "{:.4f}").format(value)
    return str(value).replace("|", "\\|")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(table, path: Path) -> None:
    """Validation accuracy against epochs, one line per run, labelled by its varying overrides."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 5.5), constrained_layout=True)
    for row in table.itertuples():
        metrics_path = Path(row.run_dir) / artifacts.METRICS_FILE
        if not metrics_path.is_file() or metrics_path.stat().st_size == 0:
            continue
        metrics = artifacts.read_metrics(metrics_path)
        if "val_accuracy" in metrics and len(metrics):
            style = "-" if row.status == "completed" else ":"
            ax.plot(metrics["epoch"], metrics["val_accuracy"], style, marker="o", markersize=3,
                    label=f"{row.overrides} ({row.status})" if row.status != "completed" else row.overrides)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy per run")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot, not over it
    with artifacts.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_metric(table, path: Path, metric: str) -> None:
    """A horizontal bar per run: its final `metric`; runs that did not complete are marked."""
    plt = _pyplot()
    table = sort_table(table, metric, ascending=True)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.4 * len(table)), constrained_layout=True)
    values = [0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in table[metric]]
    colors = ["tab:blue" if s == "completed" else "tab:red" for s in table["status"]]
    labels = [o if s == "completed" else f"{o} ({s})" for o, s in zip(table["overrides"], table["status"])]
    bars = ax.barh(range(len(table)), values, color=colors)
    ax.set_yticks(range(len(table)), labels, fontsize=8)
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:.4f}", (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    finite = [v for v in values if v > 0]
    if finite:  # zoom on the spread between runs rather than on 0..1
        low, high = min(finite), max(finite)
        ax.set_xlim(max(0.0, low - (high - low) * 0.5 - 0.01), high + (high - low) * 0.25 + 0.02)
    ax.set(xlabel=metric, title=f"{metric} per run (red: not completed)")
    ax.grid(alpha=0.3, axis="x")
    with artifacts.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
