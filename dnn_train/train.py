"""The experiment: load data, build and compile the model, fit with validation, evaluate on the
test set, and write the run's artifacts (see README, "Outputs")."""
from __future__ import annotations

import logging
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from dnn_train import data, report
from dnn_train.callbacks import EpochLog, EpochStats, MetricsCSV
from dnn_train.config import ConfigError, chapter_warnings
from dnn_train.evaluate import mc_dropout_predict, mc_metrics
from dnn_train.model import build_model
from dnn_train.optim import build_optimizer

log = logging.getLogger("dnn_train")


@dataclass
class Setup:
    """What every task starts from: the data, the built model, its optimizer."""

    splits: data.Splits
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule_callbacks: list
    steps_per_epoch: int


def setup(cfg, run_dir: Path) -> Setup:
    """Seed, load the data, build the model and optimizer, and record the resolved config."""
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
        model = build_model(cfg, splits.image_shape, splits.num_classes, stats)
        optimizer, schedule_callbacks = build_optimizer(cfg, steps_per_epoch)
    log.info("model: %s, %s parameters; optimizer %s", _describe(model), f"{model.count_params():,}",
             type(optimizer).__name__)
    report.write_text(Path(run_dir) / report.CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    return Setup(splits, model, optimizer, schedule_callbacks, steps_per_epoch)


def train(cfg, run_dir: Path) -> dict:
    """Run one experiment into `run_dir`; returns results.json's content."""
    started = time.time()
    run_dir = Path(run_dir)
    t = cfg.trainer
    s = setup(cfg, run_dir)
    splits, model = s.splits, s.model
    model.compile(optimizer=s.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=t.steps_per_execution, jit_compile=t.jit_compile)

    results = {"status": "running", "dataset": cfg.data.name, "params": model.count_params(),
               "train_examples": len(splits.y_train), "valid_examples": len(splits.y_valid),
               "test_examples": len(splits.y_test)}
    try:
        history = model.fit(
            data.make_dataset(splits.x_train, splits.y_train, t.batch_size, shuffle=True, seed=t.seed),
            validation_data=data.make_dataset(splits.x_valid, splits.y_valid, t.batch_size, False, t.seed),
            epochs=t.epochs, callbacks=s.schedule_callbacks + _callbacks(cfg, run_dir), verbose=_verbosity(t.progress),
            shuffle=False)  # the dataset shuffles itself
        test_loss, test_accuracy = model.evaluate(
            data.make_dataset(splits.x_test, splits.y_test, t.batch_size, False, t.seed), verbose=0)
        if t.mc_samples:
            results.update(mc_metrics(mc_dropout_predict(model, splits.x_test, t.mc_samples), splits.y_test))
            log.info("MC dropout (%d passes): accuracy %.4f, mean predictive std %.4f",
                     t.mc_samples, results["mc_accuracy"], results["mc_mean_std"])
    except KeyboardInterrupt:
        finish(run_dir, results, started, status="interrupted")
        raise
    except Exception as ex:
        finish(run_dir, results, started, status="failed", error=f"{type(ex).__name__}: {ex}".splitlines()[0])
        raise

    val_acc = history.history.get("val_accuracy", [])
    best = max(range(len(val_acc)), key=val_acc.__getitem__) if val_acc else None
    results.update(test_loss=test_loss, test_accuracy=test_accuracy,
                   best_val_accuracy=val_acc[best] if val_acc else None,
                   best_epoch=None if best is None else best + 1, epochs=len(history.epoch))
    with report.atomic_path(run_dir / report.MODEL_FILE, ".keras") as tmp:
        model.save(tmp)
    metrics = report.read_metrics(run_dir / report.METRICS_FILE)
    report.plot_curves(metrics, run_dir / report.CURVES_FILE, title=_title(cfg))
    finish(run_dir, results, started, status="completed")
    log.info("test accuracy %.4f (loss %.4f); best val accuracy %.4f at epoch %s; %s epochs in %.1fs -> %s",
             test_accuracy, test_loss, results["best_val_accuracy"], results["best_epoch"], results["epochs"],
             results["wall_seconds"], run_dir)
    return results


def _callbacks(cfg, run_dir: Path) -> list:
    t = cfg.trainer
    cbs = [EpochStats(), MetricsCSV(run_dir / report.METRICS_FILE)]
    if t.progress != "none":
        cbs.append(EpochLog(t.epochs))
    es = t.early_stopping
    if es.enabled:
        cbs.append(keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience,
                                                 restore_best_weights=es.restore_best_weights))
    return cbs


def finish(run_dir: Path, results: dict, started: float, status: str, **extra) -> None:
    results.update(status=status, wall_seconds=round(time.time() - started, 2), **extra)
    report.write_json(run_dir / report.RESULTS_FILE, results)


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
