"""Keras callbacks for what Keras' own do not cover: the learning rate and epoch time in the logs,
a metrics.csv with 1-based epochs and fixed columns written as whole rows, and one log line per
epoch (Keras' CSVLogger and progress bar cover neither the columns nor the log file).
"""
from __future__ import annotations

import csv
import io
import logging
import os
import time
from pathlib import Path

import keras

from dnn_train.optim import current_learning_rate
from dnn_train.report import METRIC_COLUMNS

log = logging.getLogger("dnn_train")


class EpochStats(keras.callbacks.Callback):
    """Adds `learning_rate` and `epoch_seconds` (training + validation) to the epoch logs."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)
            logs["epoch_seconds"] = time.perf_counter() - self._start


class MetricsCSV(keras.callbacks.Callback):
    """Appends one row per finished epoch to metrics.csv, each row in one write, flushed to disk."""

    def __init__(self, path: Path, phase: str = "train"):
        super().__init__()
        self.path = Path(path)
        self.phase = phase  # transfer learning: frozen | finetune
        self.columns = None

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "phase": self.phase, **(logs or {})}
        if self.columns is None:
            self.columns = [c for c in METRIC_COLUMNS if c in row] + sorted(set(row) - set(METRIC_COLUMNS))
            if not self.path.exists() or self.path.stat().st_size == 0:
                self._append(",".join(self.columns) + "\n")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            [_fmt(row.get(c)) for c in self.columns])
        self._append(buf.getvalue())

    def _append(self, text: str) -> None:
        with open(self.path, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, str)):
        return str(value)
    return f"{float(value):.6g}"


class EpochLog(keras.callbacks.Callback):
    """One log line per epoch (console and the run's dnn_train.log)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"{k}={logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs]
        if "learning_rate" in logs:
            parts.append(f"lr={logs['learning_rate']:.3g}")
        if "epoch_seconds" in logs:
            parts.append(f"{logs['epoch_seconds']:.1f}s")
        log.info("epoch %d/%d  %s", epoch + 1, self.epochs, "  ".join(parts))
