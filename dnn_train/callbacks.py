"""Keras callbacks for what Keras' own do not cover: the learning rate and epoch time in the logs,
a metrics.csv with 1-based epochs and fixed columns written as whole rows, the progress display
(Keras' CSVLogger and progress bar cover neither the columns nor the log file, nor fused steps),
randomness that is a function of the epoch (for exact resume), stopping on a diverging loss with a record of where
(Keras' TerminateOnNaN only sets stop_training, after which the run would evaluate and save garbage), and stopping on
a signal whose exception TensorFlow swallowed.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np

from dnn_train.errors import Diverged
from dnn_train.optim import current_learning_rate
from dnn_train.rundir.artifacts import METRIC_COLUMNS, nofollow
from dnn_train.rundir.signals import raise_if_signalled

log = logging.getLogger("dnn_train")


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # start, since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class EpochStats(keras.callbacks.Callback):
    """Adds `learning_rate` and `epoch_seconds` (training + validation) to the epoch logs, and
    logs when the first training step is done (start-up time: imports, data, build, tracing)."""

    first_step_logged = False

    def on_train_batch_end(self, batch, logs=None):
        if not EpochStats.first_step_logged:
            EpochStats.first_step_logged = True  # once per process
            age = process_age()
            log.info("first training step done, %s after the command started",
                     f"{age:.1f}s" if age is not None else "?")

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)
            logs["epoch_seconds"] = time.perf_counter() - self._start


class MetricsCSV(keras.callbacks.Callback):
    """Appends one row per finished epoch to metrics.csv, each row in one write, flushed to disk."""

    def __init__(self, path: Path, phase: str = "train", run=None):
        super().__init__()
        self.path = Path(path)
        self.phase = phase  # transfer learning: frozen | finetune
        self.run = run  # its record learns how many epochs are done
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
        if self.run is not None:
            self.run.update(epochs=epoch + 1)

    def _append(self, text: str) -> None:
        with open(self.path, "a", opener=nofollow) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, str)):
        return str(value)
    return f"{float(value):.6g}"


class Progress(keras.callbacks.Callback):
    """The run's progress during fit, every way it is shown (trainer.progress): `bar` (`auto` on a
    terminal) draws one bar per epoch, then its one log line; `line` the log line alone; `none`
    nothing. The bar is Keras' Progbar fed the optimizer's step count: Keras' own bar counts graph
    calls (the fused loop's groups of trainer.fuse_steps, or steps_per_execution's, whose last one
    overshoots the epoch's total) and prints the epoch's metrics itself, before our line. While the
    bar is drawn, a log line first erases it (a filter on the console's handlers) and the bar comes
    back below it: no line holds both."""

    def __init__(self, epochs: int, steps: int, mode: str = "auto"):
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.bar = mode == "bar" or (mode == "auto" and sys.stdout.isatty())
        self.line = mode != "none"
        self._progbar, self._done = None, 0  # the epoch's bar while it is drawn on the line; its steps
        self._gate = _EraseBar(self)

    def on_train_begin(self, logs=None):
        if self.bar:
            for handler in console_handlers():
                handler.addFilter(self._gate)

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """End the bar's line (where the bar stands) and remove the filter: at fit's end, or however
        fit ended (`showing`)."""
        self._end_bar(self._done)
        for handler in console_handlers():
            handler.removeFilter(self._gate)

    def on_epoch_begin(self, epoch, logs=None):
        if self.bar:
            self._first_step, self._done = int(self.model.optimizer.iterations), 0
            self._progbar = keras.utils.Progbar(self.steps)
            self._progbar.update(0, finalize=False)

    def on_train_batch_end(self, batch, logs=None):
        if self._progbar is not None:
            self._done = min(int(self.model.optimizer.iterations) - self._first_step, self.steps)
            self._progbar.update(self._done, finalize=False)  # the epoch's end ends the line

    def on_epoch_end(self, epoch, logs=None):
        self._end_bar(self.steps)
        if self.line:
            log.info("epoch %d/%d  %s", epoch + 1, self.epochs, epoch_summary(logs or {}))

    def _end_bar(self, done: int) -> None:
        """Draw the bar at `done` steps and end its line."""
        if self._progbar is not None:
            bar, self._progbar = self._progbar, None
            bar.update(done, finalize=True)

    def erase_bar(self) -> None:
        """Erase the bar from its line (it is drawn again at the next step)."""
        if self._progbar is not None:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()


@contextmanager
def showing(callbacks: list):
    """Around fit: a Progress among `callbacks` ends its bar's line and removes its filter however
    fit ends (Keras calls on_train_end only when fit returns)."""
    try:
        yield
    finally:
        for callback in callbacks:
            if isinstance(callback, Progress):
                callback.close()


class _EraseBar(logging.Filter):
    """On a console handler: a log record first erases the progress bar from its line."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def filter(self, record) -> bool:
        self.progress.erase_bar()
        return True


def console_handlers() -> list:
    """The logging handlers that write to the console: stream handlers (not files) of the root
    logger and of dnn_train's (where the Python API adds its own)."""
    handlers = logging.getLogger().handlers + log.handlers
    return [h for h in handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


def epoch_summary(logs: dict) -> str:
    """An epoch's metrics, learning rate and time on one line."""
    parts = [f"{k}={logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs]
    if "learning_rate" in logs:
        parts.append(f"lr={logs['learning_rate']:.3g}")
    if "epoch_seconds" in logs:
        parts.append(f"{logs['epoch_seconds']:.1f}s")
    return "  ".join(parts)


class EpochSeeds(keras.callbacks.Callback):
    """At each epoch's start, sets the data order's epoch (the variable data.make_dataset reads)
    and reseeds every dropout layer's seed generator from (seed, epoch): an epoch's randomness then
    does not depend on what ran before it in the process, and a resumed run repeats it exactly."""

    def __init__(self, seed: int, epoch_var):
        super().__init__()
        self.seed, self.epoch_var = seed, epoch_var

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_var.assign(epoch)
        weights = {id(v) for v in self.model.weights}
        seed_states = [v for v in self.model.variables if id(v) not in weights]  # SeedGenerator states
        for i, state in enumerate(seed_states):
            state.assign(np.array(seed_state(self.seed, i, epoch), dtype=state.dtype))


def seed_state(seed: int, layer: int, epoch: int) -> list[int]:
    """A SeedGenerator's state at an epoch's start. Keras adds 1 to the second word at every draw,
    so the first word separates the layers (a hash of seed and layer: states [seed, e + i] would
    make layer i at step t repeat layer i+1's mask of step t-1) and the second the epochs (2**20
    draws apart: more than any epoch's steps)."""
    return [int(np.random.SeedSequence([seed, layer]).generate_state(1, np.uint32)[0]) >> 1, epoch << 20]


class StopOnSignal(keras.callbacks.Callback):
    """Ends the run at a step's or an epoch's end when a Ctrl-C or SIGTERM arrived whose exception
    TensorFlow swallowed (rundir.signals.raise_if_signalled)."""

    def on_train_batch_end(self, batch, logs=None):
        raise_if_signalled()

    def on_epoch_end(self, epoch, logs=None):
        raise_if_signalled()


class StopOnDivergence(keras.callbacks.Callback):
    """Raises Diverged as soon as the training loss is not finite. Batch-end callbacks fire once per
    graph call (trainer.fuse_steps steps, or steps_per_execution with fuse_steps=1): the loss is
    checked that often (a NaN stays in the running mean)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise Diverged(self.epoch + 1, int(self.model.optimizer.iterations), float(loss))
