"""The experiment: load data, build and compile the model, fit with validation, evaluate on the
test set, and write the run's artifacts (see README, "Outputs"). The run's record (results.json,
its status, the lock) is dnn_train/rundir/record.py's; this module only says what the run measured."""
from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from dnn_train import (checkpoint, compiled, data, diagnostics, distribute, fused, saving, tracking,
                       transfer)
from dnn_train.callbacks import (EpochSeeds, EpochStats, MetricsCSV, Progress, StopOnDivergence, StopOnSignal,
                                  showing)
from dnn_train.config.advice import chapter_warnings
from dnn_train.config.files import source_file
from dnn_train.errors import ConfigError
from dnn_train.models import network
from dnn_train.evaluate import mc_dropout_predict, mc_metrics
from dnn_train.optim import build_optimizer, current_learning_rate
from dnn_train.rundir import artifacts
from dnn_train.rundir.record import Run
from dnn_train.sweeps.search_trial import pruning_callbacks

log = logging.getLogger("dnn_train")


@dataclass
class Setup:
    """What every task starts from: the data, the built model, its optimizer."""

    splits: data.Splits
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule_callbacks: list
    steps_per_epoch: int
    reused: list  # layers that arrive trained (model.init_from, a pretrained backbone): frozen first


def setup(cfg, autoencoder: bool = False) -> Setup:
    """Seed, load the data, build the model (classifier, or the autoencoder) and optimizer, and
    reuse model.init_from's layers if asked. Bad input raises ConfigError before anything is written."""
    t = cfg.trainer
    if compiled.kept_for(cfg):  # the last job's model is this job's (dnn_train/compiled.py): keep its kernels
        compiled.set_seed(t.seed)
    else:
        compiled.new_session()  # a fresh Keras session and seed per job: sweep jobs do not leak
        keras.utils.set_random_seed(t.seed)
    distribute.apply(cfg)  # before the model is built (clear_session drops it)
    keras.config.set_dtype_policy(t.precision)  # each job sets it: float32, or mixed (float32 variables)
    for warning in chapter_warnings(cfg):
        log.warning(warning)
    splits = data.load(cfg.data)
    log.info("data: %s from %s: %d train / %d valid / %d test, %d classes, images %s uint8",
             cfg.data.name, splits.source, len(splits.y_train), len(splits.y_valid), len(splits.y_test),
             splits.num_classes, splits.image_shape)
    distribute.check_batches(cfg, {"train": len(splits.y_train), "valid": len(splits.y_valid),
                                   "test": len(splits.y_test)}, data.eval_batch(t.batch_size))
    stats = data.feature_stats(splits.x_train) if cfg.data.standardize else None
    steps_per_epoch = math.ceil(len(splits.y_train) / t.batch_size)
    with config_errors():
        model = network.build_autoencoder(cfg, splits.image_shape, stats) if autoencoder else \
            network.build_model(cfg, splits.image_shape, splits.num_classes, stats)
        optimizer, schedule_callbacks = build_optimizer(cfg, steps_per_epoch)
    reused = network.pretrained_layers(cfg, model)
    if cfg.model.init_from:
        reused = transfer.reuse_layers(cfg, model, splits.image_shape)
        log.info("transfer: %s", transfer.describe(reused, cfg.model.init_from))
    log.info("model: %s, %s parameters; optimizer %s", network.describe(model), f"{model.count_params():,}",
             type(optimizer).__name__)
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
    with config_errors():
        return build_optimizer(OmegaConf.merge(cfg, overrides), steps_per_epoch)


def train(cfg, run: Run, extra_callbacks=()) -> dict:
    """Run one experiment into `run.dir` (or resume it there); returns results.json's content."""
    run_dir, t = run.dir, cfg.trainer
    tracking.check(cfg)
    s = setup(cfg)
    state = checkpoint.prepare(run_dir, resuming=run.state == "resume")  # None, or the checkpoint to go on from
    splits, model = s.splits, s.model
    steps = t.epochs * s.steps_per_epoch
    model = fused.choose(model, t, steps)  # the fused loop, XLA-compiled or not, or Keras' own
    log.info("loop: %s training steps, %s (docs/guides/performance.md)", f"{steps:,}", fused.describe(model, t))
    plan = phases(cfg, s.reused)
    traced = False  # the last job's model, its step traced already, now holding this job's initial values
    if state is None and len(plan) == 1 and not s.reused:
        model, s.optimizer, traced = compiled.take(cfg, model, s.optimizer)
        if traced:
            log.info("step traced and compiled by the last job, reused (only trainer.seed or a constant "
                     "optimizer.learning_rate differs; trainer.share_compiled=false to trace anew)")
    run.begin(dataset=cfg.data.name, model=cfg.model.name, params=model.count_params(),
              train_examples=len(splits.y_train), valid_examples=len(splits.y_valid), test_examples=len(splits.y_test))
    if s.reused and cfg.model.init_from:
        run.update(init_from=str(source_file(cfg.model.init_from).resolve()), reused_layers=s.reused)
    train_data, epoch_seeds = training_batches(splits, t, group=t.fuse_steps if fused.is_fused(model) else 1)
    valid_data = data.make_dataset(splits.x_valid, splits.y_valid, data.eval_batch(t.batch_size), False, t.seed)
    done, restored = 0, None
    # the logger's per-epoch metrics; in a search, the per-epoch report that may prune the trial
    reporting = tracking.callbacks(cfg, run) + pruning_callbacks()
    if state is not None and state.get("stage") == checkpoint.TRAINED:  # killed after training: evaluate again
        _compile(cfg, model, s.optimizer)
        checkpoint.restore_weights(model, run_dir, state)
        done, restored = state["epoch"], state["restored_epoch"]
    else:
        for i, phase in enumerate(plan):
            resume = state if state is not None and state["phase"] == i else None
            if state is not None and i < state["phase"]:
                continue  # finished before the interruption
            start = resume["phase_start"] if resume else done
            optimizer, schedule_callbacks = (s.optimizer, s.schedule_callbacks) if phase.epochs == t.epochs \
                else phase_optimizer(cfg, phase, s.steps_per_epoch)
            transfer.set_trainable(model, s.reused, phase.trainable)
            if not traced:
                _compile(cfg, model, optimizer)
            if s.reused:
                log.info("phase %s: %d epochs, reused layers %s, learning rate %.3g", phase.name, phase.epochs,
                         "trainable" if phase.trainable else "frozen", current_learning_rate(optimizer))
            done = resume["epoch"] if resume else done
            end = done if resume and resume["stopped"] else start + phase.epochs  # stopped early: no more epochs,
            stopping = _early_stopping(cfg)  # but fit still restores the checkpoint and early stopping's best
            callbacks = [*schedule_callbacks, *_callbacks(cfg, run_dir, phase.name, run, s.steps_per_epoch),
                         *stopping]
            callbacks += _watch(cfg, run_dir, splits) + list(extra_callbacks) + reporting
            callbacks += [epoch_seeds, StopOnSignal(), StopOnDivergence(),
                          checkpoint.Checkpoint(run_dir, i, start, list(callbacks), resume)]  # last: sees all the others
            fused.build_state(model, train_data)  # Keras' own loop; a fused model's fit does it too (idempotent)
            with showing(callbacks):
                history = model.fit(train_data, validation_data=valid_data, initial_epoch=done, epochs=end,
                                    callbacks=callbacks, verbose=0, shuffle=False)  # batches come shuffled
            done += len(history.epoch)
            best = stopping[0] if stopping and stopping[0].restore_best_weights else None
            restored = best.best_epoch + 1 if best is not None and best.best_weights is not None else done
        checkpoint.save_trained(run_dir, model, done, restored)  # a kill from here on resumes to these weights
    results = _finish(cfg, run, model, splits, restored)
    if len(plan) == 1 and not s.reused:
        compiled.keep(cfg, model, model.optimizer)
    return results


def training_batches(splits: data.Splits, t, group: int = 1):
    """The shuffled training batches, each epoch's order a function of (seed, epoch), and the
    callback that tells them (and the dropout layers) which epoch it is."""
    epoch = data.epoch_counter()  # set by EpochSeeds, read by the data order
    batches = data.make_dataset(splits.x_train, splits.y_train, t.batch_size, shuffle=True, seed=t.seed,
                                epoch=epoch, group=group)
    return batches, EpochSeeds(t.seed, epoch)


def _finish(cfg, run: Run, model, splits: data.Splits, restored_epoch: int) -> dict:
    """Evaluate on the test set, save the model and the plots, write the final record."""
    run_dir, t = run.dir, cfg.trainer
    log.info("testing on %d images%s", len(splits.y_test),
             f", then {t.mc_samples} MC dropout passes" if t.mc_samples else "")
    test_loss, test_accuracy = model.evaluate(
        data.make_dataset(splits.x_test, splits.y_test, data.eval_batch(t.batch_size), False, t.seed), verbose=0)
    if t.mc_samples:
        run.update(**mc_metrics(mc_dropout_predict(model, splits.x_test, t.mc_samples), splits.y_test))
        log.info("MC dropout (%d passes): accuracy %.4f, mean predictive std %.4f",
                 t.mc_samples, run.results["mc_accuracy"], run.results["mc_mean_std"])
    log.info("saving the model (%s) and checking it loads back", artifacts.MODEL_FILE)
    saved = save_model(fused.plain(model), run_dir / artifacts.MODEL_FILE, splits.x_test[:64])
    metrics = artifacts.read_metrics(run_dir / artifacts.METRICS_FILE)
    run.update(test_loss=test_loss, test_accuracy=test_accuracy, epochs=len(metrics), saved_model_max_diff=saved,
               **artifacts.best_epoch(metrics), **artifacts.restored(metrics, restored_epoch))
    log.info("plotting %s%s", artifacts.CURVES_FILE, f" and {diagnostics.GRADIENTS_PLOT}" if t.diagnostics else "")
    artifacts.plot_curves(metrics, run_dir / artifacts.CURVES_FILE, title=title(run))
    if t.diagnostics:
        table = artifacts.read_metrics(run_dir / diagnostics.DIAGNOSTICS_FILE)
        run.update(grad_ratio_epoch1=diagnostics.ratio_at_epoch(table, 1))
        diagnostics.plot(table, run_dir / diagnostics.GRADIENTS_PLOT, title=title(run))
    results = run.finish("completed")
    checkpoint.remove(run_dir)
    log.info("test accuracy %.4f (loss %.4f); best val accuracy %.4f at epoch %s (saved: epoch %s); %s epochs in "
             "%.1fs -> %s", test_accuracy, test_loss, results["best_val_accuracy"], results["best_epoch"],
             results["restored_epoch"], results["epochs"], results["wall_seconds"], run_dir)
    return results


def save_model(model: keras.Model, path: Path, probe: np.ndarray) -> float:
    """Save `model` (atomically) and check the file: loaded back in safe mode it must predict what
    the trained model predicts on `probe` (to 1e-6). Returns the largest difference seen."""
    with artifacts.atomic_path(path, ".keras") as tmp:
        model.save(tmp)
        loaded = saving.load(tmp)
        expected, got = (inference(m, probe) for m in (model, loaded))
        diff = float(np.max(np.abs(expected - got))) if expected.size else 0.0
        if not diff <= 1e-6:
            raise RuntimeError(f"the saved model predicts differently from the trained one (max difference {diff:.3g})")
    return diff


def inference(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """What `model` predicts on the batch `x` in inference mode. TensorFlow runs the layers eagerly
    (tracing a predict function for one batch took MobileNet seconds); JAX compiles the call once
    (run eagerly, JAX compiles each op the first time it meets it: MobileNet 4.6 s against 0.6 s)."""
    if keras.backend.backend() == "jax":
        return keras.ops.convert_to_numpy(model.predict_on_batch(x))
    return keras.ops.convert_to_numpy(model(x, training=False))


def _compile(cfg, model, optimizer) -> None:
    t = cfg.trainer
    fused_loop = fused.is_fused(model)
    model.compile(optimizer=optimizer, loss=network.loss_name(cfg), metrics=["accuracy"],
                  steps_per_execution=1 if fused_loop else t.steps_per_execution,
                  jit_compile=False if fused_loop else t.jit_compile)  # fused: XLA on the loop only


def _early_stopping(cfg) -> list:
    es = cfg.trainer.early_stopping
    if not es.enabled:
        return []
    return [keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience,
                                          restore_best_weights=es.restore_best_weights)]


def _watch(cfg, run_dir: Path, splits: data.Splits) -> list:
    """The diagnostics and TensorBoard callbacks, if asked for."""
    t, out = cfg.trainer, []
    board = run_dir / "tensorboard" if t.tensorboard else None
    if board is not None and keras.backend.backend() != "tensorflow":
        try:
            import tensorflow  # noqa: F401  Keras writes TensorBoard curves with TensorFlow's summaries
        except ImportError:
            log.warning("trainer.tensorboard=true: no TensorBoard curves in this run: Keras writes them with "
                        "TensorFlow's summaries, and TensorFlow is not installed (backend %s)", keras.backend.backend())
            board = None
    if t.diagnostics:
        rng = np.random.default_rng(t.seed)
        idx = np.sort(rng.choice(len(splits.y_train), min(t.diagnostics_batch, len(splits.y_train)), replace=False))
        out.append(diagnostics.Diagnostics(run_dir, splits.x_train[idx], splits.y_train[idx],
                                           network.loss_name(cfg), board))
    if board is not None:
        out.append(keras.callbacks.TensorBoard(log_dir=str(board), histogram_freq=1))
    return out


def _callbacks(cfg, run_dir: Path, phase: str, run: Run | None, steps_per_epoch: int) -> list:
    """The epoch's statistics, metrics.csv and the progress display (fit runs with verbose=0: ours
    replaces Keras' bar)."""
    t = cfg.trainer
    return [EpochStats(), MetricsCSV(run_dir / artifacts.METRICS_FILE, phase, run),
            Progress(t.epochs, steps_per_epoch, t.progress)]


def title(run: Run) -> str:
    """The run's overrides, for plot titles."""
    return " ".join(o for o in run.overrides if not o.startswith("hydra.")) or "defaults"


@contextmanager
def config_errors():
    """Report a Keras class rejecting its configured arguments, or a model too big or too deep to
    build, as a one-line config error."""
    try:
        yield
    except ConfigError:
        raise
    except (InstantiationException, TypeError, ValueError) as ex:
        cause = ex.__cause__ if isinstance(ex, InstantiationException) and ex.__cause__ else ex
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(" ".join(line.strip() for line in str(ex).splitlines() if line.strip())[:300]) from ex
    except RecursionError:
        raise ConfigError("the model is too deep for Keras to build (Python's recursion limit); lower "
                          "model.depth") from None
    except MemoryError:
        raise ConfigError("the model does not fit in memory; make it smaller (model.units, model.filters)") from None
