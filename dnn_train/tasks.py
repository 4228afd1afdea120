"""What a Hydra job does: validate the config, then run the task it names (`task=`)."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from dnn_train.config import ConfigError, validate

log = logging.getLogger("dnn_train")
HYDRA_FILES = {".hydra", "dnn_train.log"}


def run_task(cfg: DictConfig, run_dir: Path | None = None, remove_on_bad_input: bool = True):
    """Run the job described by `cfg` in `run_dir` (default: Hydra's output directory). On bad
    input the run directory goes too, unless `remove_on_bad_input` is false (a sweep keeps its
    job directories, to record the failure in them)."""
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate(cfg)
        from dnn_train import data

        data.preload(cfg.data)  # in a thread, while TensorFlow loads
        _import_tensorflow_quietly()
        _set_threads(cfg.trainer.threads)
        with _sigterm_interrupts():
            return _dispatch(cfg, run_dir)
    except ConfigError:
        if remove_on_bad_input:
            _remove_if_unstarted(run_dir)
        raise
    finally:
        from dnn_train import data

        data.discard_preloaded()  # a job that never loaded its data (already completed) leaves none behind


def _dispatch(cfg: DictConfig, run_dir: Path):
    if cfg.task == "find_lr":
        from dnn_train.lr_find import find_lr

        return find_lr(cfg, run_dir)
    if cfg.task == "pretrain_autoencoder":
        from dnn_train.pretrain import pretrain_autoencoder

        return pretrain_autoencoder(cfg, run_dir)
    from dnn_train.train import train

    return train(cfg, run_dir)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT): handled like Ctrl-C, remembering the signal for the exit code."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _sigterm_interrupts():
    """SIGTERM ends the run as Ctrl-C does: the current step finishes (Python handles signals
    between graph calls), results.json says "interrupted", the checkpoint stays for trainer.resume."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _import_tensorflow_quietly() -> None:
    """TensorFlow's C++ start-up lines (oneDNN, CPU features) go to fd 2 whatever
    TF_CPP_MIN_LOG_LEVEL says; hide them during the import only (Python errors still raise)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ.get("DNN_TRAIN_DEBUG"):
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def job_threads(threads) -> int | None:
    """TensorFlow threads for this job: N, or for `auto` the cores divided among the jobs that
    hydra/launcher=joblib runs at once (None: TensorFlow's default, every core)."""
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


def _set_threads(threads) -> None:
    n = job_threads(threads)
    if n is None:
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


def _remove_if_unstarted(run_dir: Path) -> None:
    """Bad input: leave no run directory behind if it holds only what Hydra wrote before the job."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= HYDRA_FILES | {"config.yaml"}:
        logging.shutdown()  # close the log file before removing it
        shutil.rmtree(run_dir, ignore_errors=True)
