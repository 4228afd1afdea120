"""What a job does: validate the config, take the run directory (dnn_train/rundir/record.py), load
TensorFlow, and run the task it names (`task=`): train, find_lr or pretrain_autoencoder."""
from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from dnn_train import tracking
from dnn_train.config.make import check_targets
from dnn_train.config.validate import check_choices, validate
from dnn_train.errors import ConfigError
from dnn_train.failures import explain
from dnn_train.rundir.created import remove_created
from dnn_train.rundir.record import Run, on_finish

log = logging.getLogger("dnn_train")

# One training at a time per process: Keras' session, seeds, dtype policy and the "dnn_train" logger
# are the process's, so two runs on two threads would train on each other's state (and log into
# each other's dnn_train.log). Every job passes run_task: a second caller waits here for the first.
_TRAINING = threading.RLock()


def run_task(cfg: DictConfig, run_dir: Path | None = None, overrides=None, hydra_cfg=None,
             sweep_job: bool = False, callbacks=()):
    """Run the job described by `cfg` in `run_dir` (default: Hydra's output directory) and return
    its results. Bad input (ConfigError, exit 2) leaves the directory as it was, and removes it if
    this invocation made it; in a sweep (`sweep_job`) it is recorded as the job's failure instead,
    and a directory holding an earlier job is resumed or, if that job completed with the same
    config, left as it is. `callbacks`: extra Keras callbacks (the Python API). A second call from
    another thread while one runs waits for it (one training at a time per process)."""
    with _TRAINING:  # (no log line while waiting: it would land in the running job's dnn_train.log)
        return _run_task(cfg, run_dir, overrides, hydra_cfg, sweep_job, callbacks)


def _run_task(cfg: DictConfig, run_dir, overrides, hydra_cfg, sweep_job: bool, callbacks):
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        run_dir, overrides, hydra_cfg = Path(hc.runtime.output_dir), list(hc.overrides.task), hc
    bad_input = None
    try:
        try:
            check_choices(overrides, _search_dirs(hydra_cfg))
            validate(cfg)
        except ConfigError:
            raise
        except Exception as ex:  # noqa: BLE001 - a config validate did not foresee is still bad input
            raise ConfigError(explain(ex).message) from ex
    except ConfigError as ex:
        if not sweep_job:
            remove_created(Path(run_dir))
            raise
        bad_input = ex
    resume = sweep_job or bool((cfg.get("trainer") or {}).get("resume"))
    on_finish(tracking.finished)  # TensorBoard HParams, and the MLflow run (logger=mlflow)
    with _warnings_to_log_files(), Run(run_dir, cfg, overrides or [], hydra_cfg, resume=resume,
                                       record_bad_input=sweep_job, threads=_given_threads(cfg)) as run:
        if bad_input is not None:
            raise bad_input
        if run.state == "completed":
            log.info("%s: already completed with this config; nothing to do", run.dir)
            return run.results
        from dnn_train import data

        try:
            data.preload(cfg.data)  # the files are read in a thread while TensorFlow loads
            import_backend()
            _set_threads(cfg.trainer.threads)
            check_targets(cfg)
            from dnn_train import distribute

            with _dtype_policy_kept(), distribute.job(cfg):
                return _task(cfg.task)(cfg, run, list(callbacks))
        finally:
            data.discard_preloaded()


@contextmanager
def _warnings_to_log_files():
    """Library warnings (matplotlib's UserWarnings, Keras' deprecations) raised during the job go to
    the run's log, dnn_train.log, and not to the terminal, where bad input and failures are one line:
    each is handed to the root logger's handlers that are not a console stream (the run's log file,
    or the buffer it is flushed to). Python's filters still decide which are shown (a warning shown
    once in this process is not repeated). Ours: logging.captureWarnings would send them to the
    console too."""
    def log_warning(message, category, filename, lineno, file=None, line=None):
        record = logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, "%s", (
            warnings.formatwarning(message, category, filename, lineno, line).rstrip(),), None)
        for handler in logging.getLogger().handlers:
            console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if not console and record.levelno >= handler.level:
                handler.handle(record)

    saved, warnings.showwarning = warnings.showwarning, log_warning
    try:
        yield
    finally:
        warnings.showwarning = saved


@contextmanager
def _dtype_policy_kept():
    """A job sets Keras' global dtype policy (trainer.precision); afterwards the process has its own
    back (a mixed_bfloat16 run must not leave a notebook's, or the next test's, models in bfloat16)."""
    import keras

    previous = keras.config.dtype_policy()
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _search_dirs(hydra_cfg) -> list:
    """The file folders of Hydra's config search path (--config-dir adds one)."""
    try:
        return [src.path for src in hydra_cfg.runtime.config_sources if src.schema == "file"]
    except Exception:  # noqa: BLE001 - no Hydra config (the Python API)
        return []


def _task(name: str):
    if name == "find_lr":
        from dnn_train.lr_find import find_lr

        return find_lr
    if name == "pretrain_autoencoder":
        from dnn_train.pretrain import pretrain_autoencoder

        return pretrain_autoencoder
    from dnn_train.train import train

    return train


def import_backend() -> None:
    """Import Keras' backend (TensorFlow by default), once per process, and move what the import
    made out of the garbage collector's way. TensorFlow's C++ start-up lines (oneDNN, CPU
    features) go to fd 2 whatever TF_CPP_MIN_LOG_LEVEL says: hidden during the import only. Keras
    imported already (a notebook): TensorFlow's later lines quieted all the same (_quiet_tensorflow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules:  # imported before us (a notebook): TensorFlow read the variable already
        level = os.environ["TF_CPP_MIN_LOG_LEVEL"]
        _quiet_tensorflow(int(level) if level.isdigit() else 2)
        return
    if os.environ.get("DNN_TRAIN_DEBUG"):
        import keras  # noqa: F401
    else:
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                import keras  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    # Keras' clear_session(), at every job's start, runs a full garbage collection: over the ~470,000
    # objects of TensorFlow's and Keras' modules that took 0.2-0.3 s a job. Frozen, they are skipped
    # (by the automatic collections during tracing too): a 4-job sweep 9% faster (README, Performance).
    gc.freeze()


@functools.cache
def _quiet_tensorflow(level: int) -> None:
    """TensorFlow's C++ log lines below `level` (TF_CPP_MIN_LOG_LEVEL's scale: 2 = errors only), in a
    process that imported TensorFlow before the variable was set: the variable is read once, at
    TensorFlow's import, into Abseil's minimum log level, which TensorFlow's Python API does not
    expose; set here through Abseil's own setter, looked up in TensorFlow's framework library (its
    name carries Abseil's release, so it is read from the library). Nothing happens where it is
    not found (another backend, another build)."""
    if os.environ.get("DNN_TRAIN_DEBUG") or "tensorflow" not in sys.modules:
        return
    import ctypes
    import mmap
    import re

    try:
        import tensorflow as tf

        path = Path(tf.__file__).parent / "libtensorflow_framework.so.2"
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as image:
            found = re.search(rb"_ZN4absl12lts_\d+14SetMinLogLevelENS0_18LogSeverityAtLeastE", image)
            name = found.group().decode() if found else None
        if name is not None:
            getattr(ctypes.CDLL(str(path)), name)(ctypes.c_int(level))
    except Exception:  # noqa: BLE001 - best effort: TensorFlow's lines stay as they are
        pass


def job_threads(threads) -> int | None:
    """Threads for this job: N, or for `auto` the cores divided among the jobs that
    hydra/launcher=joblib runs at once (None: the backend's default, every core)."""
    if threads != "auto":
        return int(threads)
    try:
        from hydra.core.hydra_config import HydraConfig

        launcher = HydraConfig.get().launcher
    except ValueError:  # no Hydra context
        return None
    if "Joblib" not in str(launcher.get("_target_", "")):
        return None
    cores = os.cpu_count() or 1
    n_jobs = launcher.get("n_jobs") or -1
    parallel = cores if n_jobs < 0 else min(n_jobs, cores)
    return max(1, cores // parallel)


def _given_threads(cfg) -> int | None:
    """The threads this job is given, for its provenance (None: every core, or a config that cannot say)."""
    setting = (cfg.get("trainer") or {}).get("threads")
    try:
        return job_threads(setting) if setting is not None else None
    except Exception:  # noqa: BLE001 - bad input is recorded as such; the provenance just says "all"
        return None


def _set_threads(threads) -> None:
    n = job_threads(threads)
    if n is None:
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        log.info("trainer.threads=%s: set XLA_FLAGS / OMP_NUM_THREADS for the %s backend", threads,
                 keras.backend.backend())
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # a reused worker process: TensorFlow is initialized with its first job's setting
        if tf.config.threading.get_intra_op_parallelism_threads() != n:
            log.warning("trainer.threads=%s: TensorFlow already started in this process with %d threads",
                        threads, tf.config.threading.get_intra_op_parallelism_threads())
    log.info("TensorFlow threads per job: %d", n)
