"""Resuming a run (`trainer.resume=true`): a checkpoint written at the end of every epoch.

Keras' BackupAndRestore has the idea (weights, optimizer state and epoch, restored at
`on_train_begin`) but writes its weights and its epoch counter as two non-atomic files and knows
nothing of our training phases, metrics.csv or the early-stopping and plateau state. This is the
same idea with those: `checkpoint/epoch-N.npz` (model and optimizer variables, so the step
count and with it every schedule's position; NumPy's format, because HDF5 crashed the process when
the disk filled up mid-write) and `checkpoint/state.json`, which names it and is
renamed into place last, so a kill at any moment leaves the previous complete checkpoint.
The data order and dropout masks are functions of (seed, epoch) (callbacks.EpochSeeds), so a
resumed run repeats exactly what the uninterrupted one would have done.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from dnn_train.rundir import artifacts

log = logging.getLogger("dnn_train")

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
# What EarlyStopping and ReduceLROnPlateau keep between epochs (and reset in on_train_begin).
CALLBACK_STATE = ("wait", "best", "best_epoch", "cooldown_counter")


TRAINED = "trained"  # state.json's stage once every epoch is done: a resume goes straight to the test


def prepare(run_dir: Path, resuming: bool):
    """Before training: None to start afresh, or the checkpoint state to go on from (the run's
    record, dnn_train/rundir/record.py, has already judged that resuming is right). Rows written to
    metrics.csv and diagnostics.csv after the checkpoint are dropped: those epochs run again."""
    run_dir = Path(run_dir)
    if not resuming:
        return None
    state = load_state(run_dir)
    kept = state["epoch"] if state else 0
    metrics_path = run_dir / artifacts.METRICS_FILE
    for path in (metrics_path, run_dir / "diagnostics.csv"):
        if path.is_file():
            lines = path.read_text().splitlines(keepends=True)
            rows = [ln for ln in lines[1:] if ln.endswith("\n") and ln.split(",", 1)[0].isdigit()
                    and int(ln.split(",", 1)[0]) <= kept]
            if rows or path == metrics_path:
                artifacts.write_text(path, "".join(lines[:1] + rows) if rows else "")
            else:
                path.unlink()
    log.info("resuming %s after epoch %d", run_dir, kept) if state else \
        log.info("trainer.resume=true: no checkpoint in %s; starting from the first epoch", run_dir)
    return state


def save_trained(run_dir: Path, model: keras.Model, epochs: int, restored_epoch: int) -> None:
    """After the last epoch: the final weights (early stopping's best, restored) as the checkpoint,
    so a run killed while testing or saving resumes to these weights, not the last epoch's."""
    folder = artifacts.make_dir(Path(run_dir) / CHECKPOINT_DIR)
    weights = "trained.npz"
    _save_arrays(folder / weights, [keras.ops.convert_to_numpy(v) for v in _state_variables(model)])
    artifacts.write_json(folder / STATE_FILE, {"stage": TRAINED, "epoch": epochs, "weights": weights,
                                               "restored_epoch": restored_epoch})
    for old in folder.iterdir():
        if old.name not in (STATE_FILE, weights):
            old.unlink(missing_ok=True)


def _state_variables(model: keras.Model) -> list:
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return list(model.weights) + list(optimizer.variables)


def restore_weights(model: keras.Model, run_dir: Path, state: dict) -> None:
    """Model and optimizer variables as they were at the checkpoint."""
    variables = _state_variables(model)
    with np.load(Path(run_dir) / CHECKPOINT_DIR / state["weights"]) as saved:
        if len(saved.files) != len(variables):
            raise RuntimeError(f"checkpoint holds {len(saved.files)} variables, the model and optimizer "
                               f"{len(variables)}")
        for i, v in enumerate(variables):
            v.assign(saved[f"v{i}"])


def _save_arrays(path: Path, arrays: list) -> None:
    with artifacts.atomic_path(path, ".npz") as tmp:
        with open(tmp, "wb", opener=artifacts.nofollow) as f:
            np.savez(f, **{f"v{i}": a for i, a in enumerate(arrays)})


def load_state(run_dir: Path) -> Optional[dict]:
    import json

    path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def remove(run_dir: Path) -> None:
    import shutil

    shutil.rmtree(Path(run_dir) / CHECKPOINT_DIR, ignore_errors=True)


class Checkpoint(keras.callbacks.Callback):
    """Saves the training state after every epoch; restores it at the start of a resumed phase.

    Put it last in the callback list: it must see the epoch after every other callback has
    updated its state, and restore theirs after their own on_train_begin has reset it.
    """

    def __init__(self, run_dir: Path, phase: int, phase_start: int, stateful: list, resume: Optional[dict] = None):
        super().__init__()
        self.folder = Path(run_dir) / CHECKPOINT_DIR
        self.phase, self.phase_start = phase, phase_start
        self.stateful = stateful  # callbacks whose CALLBACK_STATE is saved and restored
        self.resume = resume

    def on_train_begin(self, logs=None):
        if self.resume is None:
            return
        restore_weights(self.model, self.folder.parent, self.resume)
        for cb, saved in zip(self.stateful, self.resume["callbacks"]):
            for attr, value in saved.items():
                if value is not None:  # None: not finite when saved (e.g. no best yet): keep the reset value
                    setattr(cb, attr, value)
            if self.resume.get("best_weights") and hasattr(cb, "best_weights"):
                with np.load(self.folder / self.resume["best_weights"]) as f:
                    cb.best_weights = [f[f"v{i}"] for i in range(len(f.files))]
        log.info("resumed from the checkpoint after epoch %d", self.resume["epoch"])
        self.resume = None

    def on_epoch_end(self, epoch, logs=None):
        artifacts.make_dir(self.folder)
        weights = f"epoch-{epoch + 1}.npz"
        _save_arrays(self.folder / weights, [keras.ops.convert_to_numpy(v) for v in _state_variables(self.model)])
        best = None
        best_weights = next((cb.best_weights for cb in self.stateful if getattr(cb, "best_weights", None)), None)
        if best_weights is not None:
            best = f"epoch-{epoch + 1}.best.npz"
            _save_arrays(self.folder / best, best_weights)
        state = {"stage": "training", "epoch": epoch + 1, "phase": self.phase, "phase_start": self.phase_start,
                 "stopped": bool(self.model.stop_training), "weights": weights, "best_weights": best,
                 "callbacks": [{a: _plain(getattr(cb, a)) for a in CALLBACK_STATE if hasattr(cb, a)}
                               for cb in self.stateful]}
        artifacts.write_json(self.folder / STATE_FILE, state)  # the commit point
        for old in self.folder.iterdir():
            if old.name not in (STATE_FILE, weights, best):
                old.unlink(missing_ok=True)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
