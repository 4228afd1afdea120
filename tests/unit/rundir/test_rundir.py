"""The run-files layer (dnn_train/rundir/) on its own, in this process: its imports point down only,
the record tells its observers that a run finished, one flatten serves every flat view of a run,
and a signal a library swallowed stops training at the next step."""
from __future__ import annotations

import ast
import gc
import os
import signal
import sys
import weakref
from pathlib import Path

import pytest

from dnn_train import errors
from dnn_train.callbacks import StopOnSignal
from dnn_train.rundir import artifacts, record, signals
from tests.conftest import REPO, SMALL, make_cfg, read_results

# What the run-files layer may import of dnn_train: the bottom (errors), itself, and what a record
# holds (provenance) or says of a failure (failures.explain, config's one-line error messages).
BELOW = ("dnn_train.errors", "dnn_train.rundir", "dnn_train.provenance", "dnn_train.config", "dnn_train.failures")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:  # from a.b import c: a.b.c (or a name in a.b)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == "dnn_train"}


@pytest.mark.parametrize("module", sorted(p.name for p in (REPO / "dnn_train" / "rundir").glob("*.py")))
def test_the_run_files_layer_imports_nothing_above_it(module):
    """Counting imports inside functions: no training, task, sweep or logger module."""
    above = {name for name in _imports(REPO / "dnn_train" / "rundir" / module)
             if not any(name == b or name.startswith(b + ".") for b in BELOW)}
    assert not above, f"dnn_train/rundir/{module} imports {sorted(above)}"


def test_provenance_imports_neither_the_record_nor_the_tasks():
    assert not _imports(REPO / "dnn_train" / "provenance.py") & {"dnn_train.rundir.record", "dnn_train.tasks"}


def test_the_record_tells_each_observer_once_when_the_final_record_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "_FINISHED", [])
    seen = []

    def observer(run):
        seen.append((run.results["status"], read_results(run.dir)["status"]))

    record.on_finish(observer)
    record.on_finish(observer)  # registered once, however often
    with record.Run(tmp_path / "run", make_cfg(*SMALL), []) as run:
        run.begin()
        assert seen == []  # "running" is not the end
        run.finish("completed")
    assert seen == [("completed", "completed")]  # results.json is on disk when the observer hears of it
    with pytest.raises(KeyboardInterrupt):
        with record.Run(tmp_path / "other", make_cfg(*SMALL), []) as run:
            run.begin()
            raise errors.Interrupted(signal.SIGINT)
    assert seen[-1] == ("interrupted", "interrupted")  # whatever ended the run


def test_flatten_joins_keys_with_dots_and_drops_empty_mappings():
    assert artifacts.flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": None, "f": {}}) == \
        {"a.b": 1, "a.c.d": [2], "e": None}
    assert artifacts.flatten({}) == {}


def test_a_comparisons_flat_view_keeps_an_empty_mapping_as_a_value():
    """The reader's flat view of a config (rundir/read.py flat_config): an empty section is a value two runs can differ in."""
    assert artifacts.flatten({"a": {"b": 1}, "f": {}}, keep_empty=True) == {"a.b": 1, "f": {}}


def test_a_signal_a_library_swallowed_stops_training_at_the_next_step_or_epoch(monkeypatch):
    monkeypatch.setattr(signals, "SIGNALLED", [])
    callback = StopOnSignal()
    callback.on_train_batch_end(0)
    callback.on_epoch_end(0)  # nothing arrived: nothing happens
    signals.SIGNALLED.append(signal.SIGTERM)
    for end in (lambda: callback.on_train_batch_end(1), lambda: callback.on_epoch_end(1)):
        with pytest.raises(errors.Interrupted) as raised:
            end()
        assert raised.value.signum == signal.SIGTERM


def _in_gc_callback(sig):
    def callback(phase, info):
        if phase == "start":
            os.kill(os.getpid(), sig)
            sum(range(1000))  # the handler runs here, inside the callback

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)


def _in_weakref_callback(sig):
    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing, lambda ref: (os.kill(os.getpid(), sig), sum(range(1000))))
    del thing
    return ref


def _in_finalizer(sig):
    class Thing:
        def __del__(self):
            os.kill(os.getpid(), sig)
            sum(range(1000))

    Thing()


class ValueErrorInDel:
    """A library's own exception in a finalizer: dropped by Python, and printed (the hook passes it on)."""

    def __del__(self):
        raise ValueError("a library's own problem")


# Places where Python cannot carry an exception out, so prints it as "Exception ignored in ..." and drops it.
UNCARRIED = {"gc callback": _in_gc_callback, "weakref callback": _in_weakref_callback, "__del__": _in_finalizer}


@pytest.mark.parametrize("where", UNCARRIED)
def test_a_signal_where_no_exception_can_propagate_is_not_printed_and_lost(monkeypatch, where):
    """JAX's gc callback (Keras imports JAX when it is installed): a Ctrl-C landing in it used to print
    "Exception ignored in: <function _xla_gc_callback>" and a traceback, its exception lost there. Wherever
    Python drops an exception (it hands each to sys.unraisablehook), the signal is kept for the next step's
    end instead; other dropped exceptions are still printed."""
    monkeypatch.setattr(signals, "SIGNALLED", [])
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    handlers = signals.Handlers()
    handlers.install()
    try:
        UNCARRIED[where](signal.SIGINT)
        ValueErrorInDel()
    finally:
        handlers.restore()
    assert [u.exc_type for u in unraisable] == [ValueError]  # not ours: printed as before
    assert signals.SIGNALLED == [signal.SIGINT] and handlers.arrived == signal.SIGINT
    assert sys.unraisablehook == unraisable.append  # restored
    with pytest.raises(errors.Interrupted):
        StopOnSignal().on_train_batch_end(0)
