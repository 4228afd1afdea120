"""The experiment: load data, build and compile the model, fit with validation, evaluate on the
test set, and write the run's artifacts (see README, "Outputs")."""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from dnn_train import checkpoint, data, diagnostics, fused, artifacts, transfer
from dnn_train.callbacks import Diverged, EpochLog, EpochSeeds, EpochStats, MetricsCSV, StopOnDivergence
from dnn_train.config import ConfigError, chapter_warnings, source_file
from dnn_train.evaluate import mc_dropout_predict, mc_metrics
from dnn_train.model import build_autoencoder, build_model, loss_name
from dnn_train.optim import build_optimizer, current_learning_rate
from dnn_train.transfer import describe, reuse_layers

log = logging.getLogger("dnn_train")


@dataclass
class Setup:
    """What every task starts from: the data, the built model, its optimizer."""

    splits: data.Splits
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule_callbacks: list
    steps_per_epoch: int
    reused: list  # names of the layers copied from model.init_from (empty without it)


def setup(cfg, run_dir: Path, autoencoder: bool = False) -> Setup:
    """Seed, load the data, build the model (classifier, or the autoencoder) and optimizer, reuse
    model.init_from's layers if asked, and record the resolved config."""
    t = cfg.trainer
    keras.backend.clear_session()  # a fresh Keras session and seed per job: sweep jobs do not leak
    keras.utils.set_random_seed(t.seed)
    for warning in chapter_warnings(cfg):
        log.warning(warning)
    splits = data.load(cfg.data)
    log.info("data: %s from %s: %d train / %d valid / %d test, %d classes, images %s uint8",
             cfg.data.name, splits.source, len(splits.y_train), len(splits.y_valid), len(splits.y_test),
             splits.num_classes, splits.image_shape)
    stats = data.feature_stats(splits.x_train) if cfg.data.standardize else None
    steps_per_epoch = math.ceil(len(splits.y_train) / t.batch_size)
    with _config_errors():
        model = build_autoencoder(cfg, splits.image_shape, stats) if autoencoder else \
            build_model(cfg, splits.image_shape, splits.num_classes, stats)
        optimizer, schedule_callbacks = build_optimizer(cfg, steps_per_epoch)
    reused = []
    if cfg.model.init_from:
        reused = reuse_layers(cfg, model, splits.image_shape)
        log.info("transfer: %s", describe(reused, cfg.model.init_from))
    log.info("model: %s, %s parameters; optimizer %s", _describe(model), f"{model.count_params():,}",
             type(optimizer).__name__)
    Path(run_dir).mkdir(parents=True, exist_ok=True)  # Hydra makes it; a call from Python may not
    artifacts.write_text(Path(run_dir) / artifacts.CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    return Setup(splits, model, optimizer, schedule_callbacks, steps_per_epoch, reused)


@dataclass
class Phase:
    """A stretch of epochs trained with one compiled optimizer (transfer: frozen, then finetune)."""

    name: str
    epochs: int  # epochs in this phase
    trainable: bool  # state of the reused layers


def phases(cfg, reused: list) -> list[Phase]:
    t, freeze = cfg.trainer, cfg.transfer.freeze_epochs
    if not reused or not freeze:
        return [Phase("finetune" if reused else "train", t.epochs, True)]
    out = [Phase("frozen", min(freeze, t.epochs), False)]
    if t.epochs > freeze:
        out.append(Phase("finetune", t.epochs - freeze, True))
    return out


def phase_optimizer(cfg, phase: Phase, steps_per_epoch: int):
    """A fresh optimizer (and schedule over the phase's epochs) for a phase after the first."""
    overrides = {"trainer": {"epochs": phase.epochs}}
    if phase.name == "finetune" and cfg.transfer.finetune_lr is not None:
        overrides["optimizer"] = {"learning_rate": cfg.transfer.finetune_lr}
    with _config_errors():
        return build_optimizer(OmegaConf.merge(cfg, overrides), steps_per_epoch)


def train(cfg, run_dir: Path) -> dict:
    """Run one experiment into `run_dir` (or resume it there); returns results.json's content."""
    started = time.time()
    run_dir = Path(run_dir)
    t = cfg.trainer
    state = checkpoint.prepare(cfg, run_dir)  # None, or the checkpoint to resume from
    if state == checkpoint.COMPLETED:
        log.info("%s: already completed; nothing to resume", run_dir)
        return json.loads((run_dir / artifacts.RESULTS_FILE).read_text())
    s = setup(cfg, run_dir)
    splits, model = s.splits, s.model
    if t.fuse_steps > 1:
        model = fused.fuse(model, xla=t.jit_compile in (True, "auto"))
    results = {"status": "running", "dataset": cfg.data.name, "params": model.count_params(),
               "train_examples": len(splits.y_train), "valid_examples": len(splits.y_valid),
               "test_examples": len(splits.y_test)}
    if s.reused:
        results.update(init_from=str(source_file(cfg.model.init_from).resolve()), reused_layers=s.reused)
    artifacts.write_json(run_dir / artifacts.RESULTS_FILE, results)  # until the run ends: "running"
    import tensorflow as tf

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # set by EpochSeeds, read by the data order
    train_data = data.make_dataset(splits.x_train, splits.y_train, t.batch_size, shuffle=True, seed=t.seed,
                                   epoch=epoch, group=t.fuse_steps)
    valid_data = data.make_dataset(splits.x_valid, splits.y_valid, data.eval_batch(t.batch_size), False, t.seed)
    done = 0
    try:
        for i, phase in enumerate(phases(cfg, s.reused)):
            resume = state if state is not None and state["phase"] == i else None
            if state is not None and i < state["phase"]:
                continue  # finished before the interruption
            start = resume["phase_start"] if resume else done
            optimizer, schedule_callbacks = (s.optimizer, s.schedule_callbacks) if phase.epochs == t.epochs \
                else phase_optimizer(cfg, phase, s.steps_per_epoch)
            transfer.set_trainable(model, s.reused, phase.trainable)
            model.compile(optimizer=optimizer, loss=loss_name(cfg), metrics=["accuracy"],
                          steps_per_execution=1 if t.fuse_steps > 1 else t.steps_per_execution,
                          jit_compile=False if t.fuse_steps > 1 else t.jit_compile)  # fused: XLA on the loop only
            if s.reused:
                log.info("phase %s: %d epochs, reused layers %s, learning rate %.3g", phase.name, phase.epochs,
                         "trainable" if phase.trainable else "frozen", current_learning_rate(optimizer))
            if resume and resume["stopped"]:  # early stopping had ended this phase: go on to the next
                checkpoint.restore_weights(model, run_dir, resume)
                done = resume["epoch"]
                continue
            done = resume["epoch"] if resume else done
            callbacks = schedule_callbacks + _callbacks(cfg, run_dir, phase.name) + _watch(cfg, run_dir, splits)
            callbacks += [EpochSeeds(t.seed, epoch), StopOnDivergence(),
                          checkpoint.Checkpoint(run_dir, i, start, list(callbacks), resume)]  # last: sees all the others
            history = model.fit(train_data, validation_data=valid_data, initial_epoch=done,
                                epochs=start + phase.epochs, callbacks=callbacks,
                                verbose=_verbosity(t.progress), shuffle=False)  # the dataset shuffles itself
            done += len(history.epoch)
        test_loss, test_accuracy = model.evaluate(
            data.make_dataset(splits.x_test, splits.y_test, data.eval_batch(t.batch_size), False, t.seed), verbose=0)
        if t.mc_samples:
            results.update(mc_metrics(mc_dropout_predict(model, splits.x_test, t.mc_samples), splits.y_test))
            log.info("MC dropout (%d passes): accuracy %.4f, mean predictive std %.4f",
                     t.mc_samples, results["mc_accuracy"], results["mc_mean_std"])
        with artifacts.atomic_path(run_dir / artifacts.MODEL_FILE, ".keras") as tmp:
            fused.plain(model).save(tmp)
        metrics = artifacts.read_metrics(run_dir / artifacts.METRICS_FILE)
        results.update(test_loss=test_loss, test_accuracy=test_accuracy, epochs=len(metrics),
                       **artifacts.best_epoch(metrics))
        artifacts.plot_curves(metrics, run_dir / artifacts.CURVES_FILE, title=_title(cfg))
        if t.diagnostics:
            table = artifacts.read_metrics(run_dir / diagnostics.DIAGNOSTICS_FILE)
            results["grad_ratio_epoch1"] = diagnostics.ratio_at_epoch(table, 1)
            diagnostics.plot(table, run_dir / diagnostics.GRADIENTS_PLOT, title=_title(cfg))
    except KeyboardInterrupt:
        finish(run_dir, results, started, status="interrupted", epochs=_epochs_written(run_dir))
        raise
    except Diverged as ex:
        finish(run_dir, results, started, status="diverged", error=str(ex), diverged_epoch=ex.epoch,
               diverged_step=ex.step, epochs=_epochs_written(run_dir))
        raise
    except Exception as ex:
        finish(run_dir, results, started, status="failed", error=f"{type(ex).__name__}: {ex}".splitlines()[0],
               epochs=_epochs_written(run_dir))
        raise
    finish(run_dir, results, started, status="completed")
    checkpoint.remove(run_dir)
    log.info("test accuracy %.4f (loss %.4f); best val accuracy %.4f at epoch %s; %s epochs in %.1fs -> %s",
             test_accuracy, test_loss, results["best_val_accuracy"], results["best_epoch"], results["epochs"],
             results["wall_seconds"], run_dir)
    return results


def _watch(cfg, run_dir: Path, splits: data.Splits) -> list:
    """The diagnostics and TensorBoard callbacks, if asked for."""
    t, out = cfg.trainer, []
    board = run_dir / "tensorboard" if t.tensorboard else None
    if t.diagnostics:
        rng = np.random.default_rng(t.seed)
        idx = np.sort(rng.choice(len(splits.y_train), min(t.diagnostics_batch, len(splits.y_train)), replace=False))
        out.append(diagnostics.Diagnostics(run_dir, splits.x_train[idx], splits.y_train[idx], loss_name(cfg), board))
    if board is not None:
        out.append(keras.callbacks.TensorBoard(log_dir=str(board), histogram_freq=1))
    return out


def _epochs_written(run_dir: Path) -> int:
    path = run_dir / artifacts.METRICS_FILE
    return len(artifacts.read_metrics(path)) if path.is_file() and path.stat().st_size else 0


def _callbacks(cfg, run_dir: Path, phase: str = "train") -> list:
    t = cfg.trainer
    cbs = [EpochStats(), MetricsCSV(run_dir / artifacts.METRICS_FILE, phase)]
    if t.progress != "none":
        cbs.append(EpochLog(t.epochs))
    es = t.early_stopping
    if es.enabled:
        cbs.append(keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience,
                                                 restore_best_weights=es.restore_best_weights))
    return cbs


def finish(run_dir: Path, results: dict, started: float, status: str, **extra) -> None:
    results.update(status=status, wall_seconds=round(time.time() - started, 2), rss_mb=_rss_mb(), **extra)
    artifacts.write_json(run_dir / artifacts.RESULTS_FILE, results)


def _rss_mb():
    """This process's resident memory now (MB; Linux), to watch memory across a sweep's jobs."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def _verbosity(progress: str) -> int:
    """Keras' progress bar on a terminal (or progress=bar); otherwise our one line per epoch."""
    return 1 if progress == "bar" or (progress == "auto" and sys.stdout.isatty()) else 0


def _describe(model) -> str:
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return "-".join(map(str, dense))


def _title(cfg) -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().overrides.task
        return " ".join(overrides) or "defaults"
    except ValueError:  # no Hydra context (called from Python)
        return ""


@contextmanager
def _config_errors():
    """Report a Keras class rejecting its configured arguments as a one-line config error."""
    try:
        yield
    except ConfigError:
        raise
    except (InstantiationException, TypeError, ValueError) as ex:
        raise ConfigError(" ".join(line.strip() for line in str(ex).splitlines() if line.strip())[:300]) from ex
