"""The Python API, for notebooks: the same configs, checks and runs as the command line.

    from dnn_train import compose, run, load_run
    cfg = compose("optimizer=nadam", "schedule=1cycle")       # the config the CLI would use, validated
    results = run("optimizer=nadam", "trainer.epochs=5")       # trains in this process; results.json's content
    past = load_run(results["run_dir"])                        # .metrics (DataFrame), .results, .config, .model()

Every error is a DnnTrainError carrying the command line's one-line message and exit code.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dnn_train.errors import DnnTrainError


# Hydra's compose API sets one global (GlobalHydra) for the process: two threads composing at once
# collide ("GlobalHydra is already initialized"), so they take turns.
_COMPOSING = threading.Lock()


def compose(*overrides: str):
    """The config `python -m dnn_train OVERRIDES...` would run, composed by Hydra and validated."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from dnn_train.config.schema import CONF_DIR
    from dnn_train.config.validate import check_choices, validate
    from dnn_train.failures import explain

    try:
        with _COMPOSING, initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        check_choices(overrides)
        validate(cfg)
    except Exception as ex:  # noqa: BLE001 - every config problem becomes one line
        failure = explain(ex)
        if not failure.bad_input:
            raise
        raise DnnTrainError(failure.message, failure.code) from None
    return cfg


def run(*overrides: str, run_dir: str | Path | None = None, callbacks=()) -> dict:
    """Run the experiment in this process (into `run_dir`, default outputs/<date>/<time>/ as the
    command line) and return its results, with "run_dir" added. `callbacks`: extra Keras
    callbacks for the fit (e.g. to watch or stop it). One run trains at a time per process: a call
    from a second thread while one runs waits for it, then runs with its own seeds and log."""
    from dnn_train.failures import explain
    from dnn_train.rundir.created import note_created
    from dnn_train.tasks import run_task

    cfg = compose(*overrides)
    now = time.time()
    run_dir = Path(run_dir) if run_dir is not None else \
        Path("outputs") / time.strftime("%Y-%m-%d", time.localtime(now)) / \
        (time.strftime("%H-%M-%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}")
    note_created(run_dir)
    try:
        with _console_log():
            results = run_task(cfg, run_dir, overrides=list(overrides), callbacks=callbacks)
    except KeyboardInterrupt:
        raise
    except Exception as ex:  # noqa: BLE001
        failure = explain(ex)
        raise DnnTrainError(failure.message, failure.code, str(run_dir)) from ex
    return {**results, "run_dir": str(Path(run_dir).absolute())}


@contextmanager
def _console_log():
    """Where no logging is set up (a notebook, a script), the run's log lines (one per epoch, the
    phases after training, the result) go to stderr while it runs; a program that configured
    logging (a handler on the root logger or dnn_train's) gets them its own way."""
    import logging
    import sys

    logger = logging.getLogger("dnn_train")
    if logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@dataclass
class LoadedRun:
    """A run directory read back (dnn_train/rundir/read.py): its results, config, per-epoch metrics and model."""

    dir: Path

    @property
    def results(self) -> dict:
        from dnn_train.rundir import read

        return read.results(self.dir)

    @property
    def config(self):
        from dnn_train.rundir import read

        return read.saved_config(self.dir)

    @property
    def metrics(self):
        """metrics.csv as a pandas DataFrame, one row per epoch."""
        from dnn_train.rundir import read

        return read.table(self.dir)

    @property
    def diagnostics(self):
        """diagnostics.csv as a DataFrame (None if the run had trainer.diagnostics=false)."""
        from dnn_train.rundir import read

        return read.table(self.dir, "diagnostics.csv", optional=True)

    def model(self, compile: bool = False):
        """The saved model (safe mode). It takes raw uint8 images: model.predict(x_uint8)."""
        from dnn_train import saving

        return saving.load(self.dir / "model.keras", compile=compile)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read back a finished (or unfinished) run directory."""
    from dnn_train.rundir import artifacts

    path = Path(run_dir)
    if not (path / artifacts.RESULTS_FILE).is_file():
        raise DnnTrainError(f"{run_dir}: not a dnn_train run directory (no results.json)", 2)
    return LoadedRun(path)
