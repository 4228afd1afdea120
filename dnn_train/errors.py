"""What can go wrong, at the bottom of the package: every exception type dnn_train raises on purpose,
the exit code each one means, and the one-line text of any failure. Imports nothing of dnn_train.

    bad input (ConfigError and its kinds)    exit 2   "dnn_train: error: ..."   nothing left behind
    a failed run (anything else)             exit 1   "dnn_train: failed: ..."  results.json: failed
    a signal (Interrupted, Ctrl-C)           128 + signal number               results.json: interrupted
"""
from __future__ import annotations

import errno
import signal
import sys

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

NO_LINKS = "dnn_train never writes through a link it did not make: remove it or choose another hydra.run.dir"


class ConfigError(ValueError):
    """A user-facing configuration problem: reported as one line, exit code 2."""


class DataError(ConfigError):
    """Data missing or malformed: reported as one line, exit code 2."""


class Refused(ConfigError):
    """This invocation may not use the run directory (held by another process, a different config,
    a finished run without resume): nothing in it was changed. One line, exit code 2."""


class NoSpace(Refused):
    """The disk cannot hold the run's record: refused before anything is written (exit code 2), so a
    full disk leaves either a truthful results.json or no run directory at all."""

    def __init__(self, run_dir, free_kb: int, reserve_kb: int):
        super().__init__(f"no space left on the disk of {run_dir} ({free_kb} KB free; a run keeps {reserve_kb} "
                         "KB for its record before it starts): free some space, or write elsewhere with "
                         "hydra.run.dir=DIR")


class RunBusy(RuntimeError):
    """Another live process owns the run directory."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT): handled like Ctrl-C, remembering the signal for the exit code."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float):
        super().__init__(f"loss became {loss} at epoch {epoch} (step {step}); lower optimizer.learning_rate "
                         "or clip the gradients (optimizer.clipnorm=1.0)")
        self.epoch, self.step = epoch, step


class BadRun(ValueError):
    """A run directory whose files cannot be read: skipped, with this reason."""


class BaselineError(ValueError):
    """A baseline that names no configuration, or several."""


class NotARun(ValueError):
    """A path that is no readable run directory (bad input: exit 2)."""


class DnnTrainError(Exception):
    """A run refused (bad input: exit_code 2) or failed (exit_code 1); str() is the one-line message."""

    def __init__(self, message: str, exit_code: int, run_dir: str | None = None):
        super().__init__(message)
        self.message, self.exit_code, self.run_dir = message, exit_code, run_dir


def is_pruned(ex: BaseException) -> bool:
    """optuna.TrialPruned (a search's pruner stopped the run), told by its type: if Optuna was never
    imported, nothing raised it."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(ex, optuna.TrialPruned)


def one_line(ex: BaseException) -> str:
    """A failure in one line: disk problems named as such, otherwise the exception's first line."""
    if isinstance(ex, OSError) and ex.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return f"no space left writing {ex.filename or 'the run directory'} ({ex.strerror}); free some " \
               "space or write elsewhere with hydra.run.dir=DIR"
    if isinstance(ex, OSError) and ex.errno in (errno.EACCES, errno.EROFS, errno.ENOTDIR, errno.EPERM):
        return f"cannot write {ex.filename or 'the run directory'} ({ex.strerror}); choose a writable " \
               "output directory with hydra.run.dir=DIR"
    if isinstance(ex, OSError) and ex.errno == errno.ELOOP:  # artifacts.nofollow refused a link made while running
        return f"{ex.filename} is a symbolic link; {NO_LINKS}"
    if isinstance(ex, RecursionError):
        return "the model is too deep for Keras to build (Python's recursion limit); lower model.depth"
    if isinstance(ex, MemoryError) or type(ex).__name__ == "ResourceExhaustedError":  # TensorFlow's, not imported here
        return "out of memory; make the model (model.units, model.filters) or trainer.batch_size smaller"
    text = str(ex).strip()
    return f"{type(ex).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
