"""Run artifacts: atomic file writes, results.json, metrics.csv reading, and the curves plot.

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written results.json, config.yaml, model or plot that looks complete.
"""
from __future__ import annotations

import errno
import json
import math
import os
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np

METRICS_FILE = "metrics.csv"
RESULTS_FILE = "results.json"
MODEL_FILE = "model.keras"
CURVES_FILE = "curves.png"
CONFIG_FILE = "config.yaml"
# Leading columns of metrics.csv, in this order; any other logged metric follows, sorted.
METRIC_COLUMNS = ["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"]


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on every OS: rundir.links.refuse_links, at the run's start, is the gate


def nofollow(path, flags: int) -> int:
    """open()'s `opener` for every file dnn_train writes itself: a symbolic link at the name is not
    followed (OSError ELOOP) but refused, e.g. one planted in the run directory while it runs."""
    return os.open(path, flags | NOFOLLOW, 0o666)


def make_dir(path: Path) -> Path:
    """A folder of the run's, made if missing; a symbolic link at its name is refused (ELOOP), where
    mkdir(exist_ok=True) would accept it and the run write (and remove old files) wherever it points."""
    path = Path(path)
    path.mkdir(exist_ok=True)
    if path.is_symlink():
        raise OSError(errno.ELOOP, "a symbolic link, not a folder of the run's", str(path))
    return path


@contextmanager
def atomic_path(path: Path, suffix: str = ""):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.
    Whatever was at the temporary name is removed first (a link there would be written through
    by the writers we do not open files for: Keras' model.save, matplotlib's savefig)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+", opener=nofollow) as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", opener=nofollow) as f:
        f.write(text)


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def flatten(node, prefix: str = "", keep_empty: bool = False) -> dict:
    """A nested dict as one level, its keys joined with dots: {"a": {"b": 1}} -> {"a.b": 1}; an empty
    mapping is dropped, or kept as a value ({"a": {}} -> {"a": {}}) with `keep_empty` (a comparison's view)."""
    if not isinstance(node, dict) or (keep_empty and not node):
        return {prefix[:-1]: node}
    return {k: v for key, value in node.items() for k, v in flatten(value, f"{prefix}{key}.", keep_empty).items()}


def write_json(path: Path, obj: dict) -> None:
    write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")


def read_metrics(path: Path):
    """metrics.csv as a DataFrame (only whole rows)."""
    import pandas as pd

    return pd.read_csv(path, on_bad_lines="skip")


def _mark_phases(ax, metrics) -> None:
    """A dotted line where a new training phase starts (transfer: frozen -> finetune)."""
    if "phase" not in metrics:
        return
    starts = metrics.loc[metrics["phase"] != metrics["phase"].shift(), ["epoch", "phase"]]
    for epoch, phase in starts.iloc[1:].itertuples(index=False):
        ax.axvline(epoch - 0.5, color="grey", ls=":", lw=1)
        ax.annotate(phase, (epoch - 0.5, 1), xycoords=("data", "axes fraction"), ha="left", va="top",
                    fontsize=8, color="grey")


def best_epoch(metrics) -> dict:
    """best_val_accuracy and its (1-based) best_epoch from a metrics table."""
    if "val_accuracy" not in metrics or metrics["val_accuracy"].isna().all():
        return {"best_val_accuracy": None, "best_epoch": None}
    row = metrics.loc[metrics["val_accuracy"].idxmax()]
    return {"best_val_accuracy": float(row["val_accuracy"]), "best_epoch": int(row["epoch"])}


def restored(metrics, epoch) -> dict:
    """The epoch whose weights the run saved (early stopping restores its best by the monitored
    value) and that epoch's validation metrics."""
    row = metrics[metrics["epoch"] == epoch] if epoch is not None else metrics.iloc[0:0]
    if not len(row):
        return {"restored_epoch": epoch, "restored_val_accuracy": None, "restored_val_loss": None}
    row = row.iloc[-1]
    return {"restored_epoch": int(epoch),
            "restored_val_accuracy": float(row["val_accuracy"]) if "val_accuracy" in row else None,
            "restored_val_loss": float(row["val_loss"]) if "val_loss" in row else None}


def figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """(fig, axes) from pyplot on the Agg backend: plots go to files, never to a display. Titles sit
    at the top of their axes (axes.titley=1.0): matplotlib's automatic placement measured every tick
    label at each draw to clear a top axis these plots do not have, half of a plot's drawing time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"axes.titley": 1.0}):
        return plt.subplots(nrows, ncols, **kwargs)


def row_of_panels(n: int, figsize: tuple, title: str = ""):
    """(fig, axes): n panels side by side with fixed margins, for the plots every run draws.
    Fixed margins, not constrained layout: its measuring of every label took a third of a plot's
    time (0.29 s a plot against 0.19 s here; every run draws curves.png and gradients.png)."""
    fig, axes = figure(1, n, figsize=figsize)
    lines = title_lines(title, int(figsize[0] * 11))  # ~11 characters an inch at the title's 12 points
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.13, top=0.9 - 0.06 * len(lines), wspace=0.24)
    if lines:
        fig.suptitle("\n".join(lines))
    return fig, axes


def title_lines(title: str, width: int, most: int = 3) -> list[str]:
    """`title` wrapped at `width` characters, on at most `most` lines (the last shortened with "...")."""
    lines = textwrap.wrap(title, width, break_on_hyphens=False)
    if len(lines) > most:
        lines = lines[:most - 1] + [textwrap.shorten(" ".join(lines[most - 1:]), width, placeholder=" ...")]
    return lines


def integer_epochs(ax) -> None:
    """Ticks on whole epochs only (a single epoch: one tick, not 0.96 to 1.04)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def save_figure(fig, path: Path) -> None:
    """Write `fig` as a PNG, atomically, and free it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_curves(metrics, path: Path, title: str = "") -> None:
    """Loss, accuracy (train and validation) and learning rate against epochs."""
    fig, axes = row_of_panels(3, (14, 4), title)
    epochs = metrics["epoch"]
    for ax, name in zip(axes[:2], ("loss", "accuracy")):
        for prefix, label, style in (("", "train", "-"), ("val_", "validation", "--")):
            if prefix + name in metrics:
                ax.plot(epochs, metrics[prefix + name], style, marker="o", markersize=3, label=label)
        ax.set(xlabel="epoch", ylabel=name, title=name)
        integer_epochs(ax)
        _mark_phases(ax, metrics)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if "learning_rate" in metrics:
        axes[2].plot(epochs, metrics["learning_rate"], marker="o", markersize=3, color="tab:green")
        axes[2].set_yscale("log")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of epoch)")
    integer_epochs(axes[2])
    axes[2].grid(alpha=0.3, which="both")
    save_figure(fig, path)
