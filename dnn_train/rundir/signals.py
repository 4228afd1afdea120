"""The signals that end a run (Ctrl-C, SIGTERM, the scheduler's preemption): its handlers while it runs.

SIGTERM ends the run as Ctrl-C does: the current step finishes (Python handles signals between
graph calls), then the record says "interrupted". The preemption signal (SIGUSR2, submitit's;
SUBMITIT_PREEMPT_SIGNAL names another) ends it the same way; then, if the process had its own
handler for it (submitit's: it pickles the job and requeues it), that handler runs, and the
requeued job resumes the run from its last epoch's checkpoint.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

from dnn_train.errors import Interrupted


def _preempt_signal() -> signal.Signals:
    """submitit's preemption and timeout signal: SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL names another."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


PREEMPT_SIGNAL = _preempt_signal()
SIGNALLED: list = []  # the signal that is ending the running run (see raise_if_signalled)


def raise_if_signalled() -> None:
    """At a step boundary (a Keras callback): a signal whose exception was lost inside a library (raised
    in TensorFlow's C code, which swallowed it) ends the run here, as it would have where it arrived."""
    if SIGNALLED:
        raise Interrupted(SIGNALLED[-1])


_REPLACED_HOOKS: list = []  # the sys.unraisablehook each keep_lost() replaced, the latest last


def keep_lost(again=None) -> None:
    """While a run's or a sweep's handlers are installed (until stop_keeping()): a signal's exception
    raised where Python cannot carry it (a garbage collector's callback, JAX's; a weakref's callback;
    a __del__) would be printed as "Exception ignored in ..." with its traceback and lost. Python hands
    every such exception to sys.unraisablehook: there an Interrupted is not printed, and `again(signum)`
    runs, if given. Without it, the signal is in SIGNALLED for the next step's end, or the run's end
    (record.Run.__exit__: after the last step, the command still ends interrupted). (The state stays
    here, not on the caller: a sweep's callbacks are pickled for its launcher's workers.)"""
    previous = sys.unraisablehook

    def hook(unraisable):
        if not isinstance(unraisable.exc_value, Interrupted):
            previous(unraisable)
        elif again is not None:
            again(unraisable.exc_value.signum)

    _REPLACED_HOOKS.append(previous)
    sys.unraisablehook = hook


def stop_keeping() -> None:
    """The hook the last keep_lost() replaced, back."""
    if _REPLACED_HOOKS:
        sys.unraisablehook = _REPLACED_HOOKS.pop()


class Handlers:
    """A run's handlers for the signals that end it, from install() until restore()."""

    def __init__(self):
        self._previous: dict = {}  # the handlers install() replaced; keep_lost() holds while there are any
        self.arrived = None  # the signal that ended the run, if one did

    def install(self) -> None:
        """Once a signal has arrived, the run is stopping: further ones are ignored until its record
        is written (a second Ctrl-C a few milliseconds later once cut the record short, leaving
        "running"). In a submitit job SIGTERM keeps submitit's handler (it ignores SIGTERM: SLURM
        sends it before the preemption signal). Only the main thread can install handlers. A run
        starts with no signal: one that ended an earlier run's start-up in this process is not its own."""
        self.arrived = None
        if threading.current_thread() is not threading.main_thread():
            return
        SIGNALLED.clear()

        def handler(signum, frame):
            for sig in self._previous:
                signal.signal(sig, signal.SIG_IGN)  # restore() puts the previous handlers back
            self.arrived = signum
            SIGNALLED.append(signum)
            raise Interrupted(signum)  # where it cannot propagate, the next step's end raises it (keep_lost)

        signals = [signal.SIGINT, PREEMPT_SIGNAL]
        if not os.environ.get("SUBMITIT_EXECUTOR"):
            signals.append(signal.SIGTERM)
        for sig in signals:
            self._previous[sig] = signal.signal(sig, handler)
        keep_lost()

    def restore(self):
        """Put the previous handlers back; returns the previous preemption handler, bound to its
        signal, if that signal arrived and the handler is the process's own (else None): the caller
        runs it once the run's record is written."""
        previous = self._previous.get(PREEMPT_SIGNAL)
        if self._previous:
            stop_keeping()
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}
        if self.arrived == PREEMPT_SIGNAL and callable(previous):
            self.arrived = None
            return lambda: previous(PREEMPT_SIGNAL, None)
        return None


@contextmanager
def blocked():
    """The signals that end a run wait until the block is done (the final record is written whole)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, PREEMPT_SIGNAL})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
