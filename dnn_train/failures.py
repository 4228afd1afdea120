"""The one failure wrapper: what an exception that ended a run (or a sweep job, or an API call) means to
the user, as an exit code, a kind and one line. The command line, the API, sweep jobs and the record all
ask it; the exception types and codes themselves are in errors.py."""
from __future__ import annotations

import signal
from typing import NamedTuple

from dnn_train.config.hydra_errors import describe_error
from dnn_train.errors import EXIT_BAD_INPUT, EXIT_FAILED, Diverged, one_line


class Failure(NamedTuple):
    code: int      # the exit code: 2 bad input, 1 failed or diverged, 128 + N a signal
    kind: str      # error | diverged | failed | interrupted: the command line's word before the message
    message: str   # one line, without the "dnn_train: KIND:" prefix

    @property
    def bad_input(self) -> bool:
        return self.code == EXIT_BAD_INPUT

    @property
    def line(self) -> str:
        """The command line's text after "dnn_train: " (a signal: "interrupted (SIGTERM)")."""
        return f"interrupted ({self.message})" if self.kind == "interrupted" else f"{self.kind}: {self.message}"


def explain(ex: BaseException) -> Failure:
    """Dispatch by type: a signal, bad input (errors.ConfigError and the Hydra and OmegaConf errors that
    describe_error translates), a divergence, anything else."""
    if isinstance(ex, KeyboardInterrupt):
        signum = getattr(ex, "signum", signal.SIGINT)
        return Failure(128 + signum, "interrupted", signal.Signals(signum).name)
    message = describe_error(ex)
    if message is not None:
        return Failure(EXIT_BAD_INPUT, "error", message)
    if isinstance(ex, Diverged):
        return Failure(EXIT_FAILED, "diverged", str(ex))
    return Failure(EXIT_FAILED, "failed", one_line(ex))
