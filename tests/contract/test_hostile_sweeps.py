"""Interrupted sweeps (issue 25, item 3): whichever way a sweep ends, its summary lists every job that
started, with the status its results.json says, and an interrupted sweep's one exit line says where
the summary is and which command continues it.

In process, every way out of a sweep (its end, Ctrl-C, SIGTERM, an exception) writes the summary
from the job directories on disk. Then one real 3-job sweep is interrupted at each point of INTERRUPTIONS in turn (a signal during a job,
or between two jobs), each time continued with the command the previous exit line printed, and then
run to its end: every step is held to the hostile harness's promises (tests/hostile.py) and to a
summary equal to the job directories on disk.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import warnings

import pandas as pd
import pytest
from omegaconf import OmegaConf

from dnn_train import errors
from dnn_train.rundir import record
from dnn_train.sweeps.summary import SweepSummary, ending
from tests.hostile import SMALL_RUN, Sandbox
from tests.unit.rundir.test_rundir import UNCARRIED
from tests.unit.sweeps.test_compare import fake_run
from tests.conftest import start_cli

JOBS = 3
# (signal, when, job): "during" once the job's results.json says running, "after" once the sweep's
# summary lists it completed (the job is over, the next one not yet started). Each step continues
# the sweep that the one before left.
INTERRUPTIONS = [(signal.SIGINT, "during", 0), (signal.SIGTERM, "after", 0),
                 (signal.SIGINT, "during", 1), (signal.SIGTERM, "during", 1)]
RESUME = "; continue with: "


TF_PRINT = re.compile(r"Traceback \(most recent call last\):\n((  File \"[^\"]*/tensorflow/[^\n]*\n(    [^\n]*\n)*)+)"
                      r"SystemError: <built-in function __import__> returned a result with an exception set\n")


def _without_tensorflows_own_print(proc):
    """A signal landing in TensorFlow's C code while it imports is printed by TensorFlow itself as a
    SystemError traceback (every frame inside tensorflow/), which dnn_train cannot silence; the run is
    interrupted all the same (rundir.signals.raise_if_signalled). That print, and only it, is set aside."""
    proc.stderr = TF_PRINT.sub("", proc.stderr)
    return proc


def _status(job_dir) -> str | None:
    try:
        return json.loads((job_dir / "results.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None  # not written yet (or being written)


def _interrupt(sandbox: Sandbox, args: list, sig: int, when: str, job: int, sweep) -> subprocess.CompletedProcess:
    """Run the sweep and send `sig` once job `job` is running ("during") or has completed ("after").
    "during": a fresh interpreter, where the job's results.json says running while TensorFlow imports
    (the signal lands there); "after": forked (tests/cli.py), TensorFlow imported as after any job."""
    proc = start_cli(*args, cwd=sandbox.root, env=sandbox.env, fresh=when == "during")
    deadline = time.time() + 300
    while not (_status(sweep / str(job)) == "running" if when == "during" else _listed(sweep, job) == "completed"):
        assert proc.poll() is None and time.time() < deadline, f"job {job} never {when}: {proc.communicate()}"
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _listed(sweep, job: int) -> str | None:
    """The job's status in the sweep's summary.csv (None: not listed yet)."""
    try:
        table = pd.read_csv(sweep / "summary.csv")
    except (OSError, ValueError):
        return None
    return dict(zip(table["job"], table["status"])).get(job)


def _summaries(sweep) -> tuple[dict, dict]:
    """{job: status} as summary.csv and as summary.md's table of runs say."""
    csv = pd.read_csv(sweep / "summary.csv")
    rows = [line.strip("|").split("|") for line in (sweep / "summary.md").read_text().splitlines()
            if line.startswith("| ")]
    header = next(i for i, row in enumerate(rows) if row[0].strip() == "job")
    status = [cell.strip() for cell in rows[header]].index("status")
    md = {int(row[0]): row[status].strip() for row in rows[header + 2:] if row[0].strip().isdigit()}
    return dict(zip(csv["job"], csv["status"])), md


def _on_disk(sweep) -> dict:
    """{job: status} of every job directory holding a results.json: what the summary must list."""
    return {int(d.name): _status(d) for d in sweep.iterdir() if d.name.isdigit() and (d / "results.json").exists()}


@pytest.mark.slow
def test_an_interrupted_sweep_lists_every_started_job_and_says_how_to_continue(tmp_path):
    sandbox = Sandbox(tmp_path)
    sweep = sandbox.run / "sweep"
    args = ["-m", *SMALL_RUN, f"data.root={sandbox.run / 'data'}",
            f"trainer.seed={','.join(str(s) for s in range(1, JOBS + 1))}", f"hydra.sweep.dir={sweep}"]
    expected: dict = {}
    (sandbox.cache / "keras").mkdir()  # KERAS_HOME, which Keras makes at its import (housekeeping)
    sandbox.freeze()
    for sig, when, job in INTERRUPTIONS:
        case = f"{signal.Signals(sig).name} {when} job {job}"
        proc = _without_tensorflows_own_print(_interrupt(sandbox, args, sig, when, job, sweep))
        line = sandbox.check(proc, 128 + sig, f"dnn_train: interrupted ({signal.Signals(sig).name}); ")
        expected.update({j: "completed" for j in range(job + (when == "after"))})
        if when == "during":
            expected[job] = "interrupted"
        on_disk = _on_disk(sweep)
        if when == "after":  # the signal may reach the next job's set-up: then that one is interrupted
            assert on_disk.pop(job + 1, "interrupted") == "interrupted", case
        assert on_disk == expected, case
        assert _summaries(sweep) == (_on_disk(sweep), _on_disk(sweep)), case
        assert f"summary in {sweep / 'summary.md'}{RESUME}python -m dnn_train " in line, case
        args = shlex.split(line.split(RESUME, 1)[1])[3:]  # what the user is told to run next
        assert f"hydra.sweep.dir={sweep}" in args, case
    proc = sandbox.cli(*args, timeout=300)
    sandbox.check(proc, 0)
    assert f"dnn_train: sweep of {JOBS} jobs: {JOBS} completed, 0 not" in proc.stdout
    assert _summaries(sweep) == ({j: "completed" for j in range(JOBS)},) * 2


# The ways a sweep can end: after its last job (None), Ctrl-C, SIGTERM, a bug.
WAYS_OUT = [None, KeyboardInterrupt(), errors.Interrupted(signal.SIGTERM), RuntimeError("a bug")]
# What the jobs left on disk: every status a job can have; a "running" one whose process is gone.
LEFT = {0: "completed", 1: "failed", 2: "diverged", 3: "interrupted", 4: "pruned", 5: "running"}


@pytest.mark.parametrize("way_out", WAYS_OUT, ids=lambda ex: type(ex).__name__)
def test_every_way_out_of_a_sweep_writes_its_summary_from_the_jobs_on_disk(tmp_path, monkeypatch, way_out):
    # the same long overrides for every job: one configuration, labelled with all of them in the plots
    same = [f"model.setting_{i}=a_rather_long_value_{i}" for i in range(8)]
    monkeypatch.setattr(sys, "argv", ["dnn_train", "-m", "trainer.seed=1,2,3,4,5,6"])
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    summary = SweepSummary()
    try:
        with warnings.catch_warnings(record=True) as warned, pytest.raises(BaseException) as ended:
            warnings.simplefilter("always")
            with ending():
                summary.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
                for job, status in LEFT.items():
                    fake_run(tmp_path / str(job), [*same, f"trainer.seed={job + 1}"], status=status)
                (tmp_path / "5" / record.LOCK_FILE).write_text("{}")  # its process is gone: nobody holds the lock
                if way_out is not None:
                    raise way_out
        after = {sig: signal.getsignal(sig) for sig in handlers}
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert [str(w.message) for w in warned] == []  # e.g. a plot's axes squeezed to nothing by a long label
    assert (tmp_path / "sweep_curves.png").stat().st_size and (tmp_path / "sweep_metric.png").stat().st_size
    listed = {**LEFT, 5: "crashed (process gone)"}
    table = pd.read_csv(tmp_path / "summary.csv")
    assert dict(zip(table["job"], table["status"])) == listed
    assert all(f"| {job} |" in (tmp_path / "summary.md").read_text() for job in listed)
    if way_out is None:  # the report, and exit 1: jobs did not complete
        assert isinstance(ended.value, SystemExit) and ended.value.code == 1
    else:
        assert ended.value is way_out
    if isinstance(way_out, KeyboardInterrupt):
        assert way_out.sweep_note == (
            f"; 6 of the sweep's jobs started (1 completed, 1 failed, 1 diverged, 1 interrupted, 1 pruned, "
            f"1 crashed (process gone)), summary in {tmp_path / 'summary.md'}; continue with: "
            f"python -m dnn_train -m trainer.seed=1,2,3,4,5,6 hydra.sweep.dir={tmp_path}")
        assert set(after.values()) == {signal.SIG_IGN}  # a second signal waits for the exit line
    else:
        assert after == handlers  # the sweep's SIGTERM handler is gone with it


def _between_jobs(tmp_path, monkeypatch, work) -> BaseException:
    """A 2-job sweep (seeds 1,2) whose first job completed, then `work`, what runs before the next job,
    with the sweep's handlers installed: how the sweep ended, which says how to continue it."""
    monkeypatch.setattr(sys, "argv", ["dnn_train", "-m", "trainer.seed=1,2"])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    summary = SweepSummary()
    try:
        with pytest.raises(BaseException) as ended:
            with ending():
                summary.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
                fake_run(tmp_path / "0", ["trainer.seed=1"], status="completed")
                work()
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert "1 of the sweep's jobs started (1 completed)" in ended.value.sweep_note, ended.value
    assert "continue with: python -m dnn_train -m trainer.seed=1,2" in ended.value.sweep_note
    return ended.value


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_lost_in_a_librarys_clean_up_between_jobs_still_interrupts_the_sweep(tmp_path, monkeypatch, sig):
    """Between jobs the next job's config is composed; a signal landing inside OmegaConf's half-done
    work had its exception replaced by OmegaConf's failing clean-up ("'NoneType' object has no attribute
    '_invalidate_flags_cache'", reported as bad input, exit 2). The sweep still ends as interrupted."""
    def composing():
        try:  # the library's work, interrupted, and its clean-up failing in the finally
            os.kill(os.getpid(), sig)
            time.sleep(5)
        finally:
            raise AttributeError("'NoneType' object has no attribute '_invalidate_flags_cache'")

    ended = _between_jobs(tmp_path, monkeypatch, composing)
    assert isinstance(ended, errors.Interrupted) and ended.signum == sig, ended


@pytest.mark.parametrize("where", [*UNCARRIED, "swallowed"])
def test_a_signal_between_jobs_that_no_exception_carries_still_interrupts_the_sweep(tmp_path, monkeypatch, where):
    """A SIGTERM landing in a garbage collector's callback (JAX's, registered when Keras imports an installed
    JAX) between jobs had its exception printed ("Exception ignored in: <function _xla_gc_callback>") and
    lost: the sweep ran on and ended with exit 0. There (and wherever Python drops an exception: a weakref's
    callback, a __del__) the signal now comes again a moment later; and a signal whose exception a library
    swallowed still ends the sweep as interrupted, at its end."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def next_job():
        if where in UNCARRIED:
            UNCARRIED[where](signal.SIGTERM)
            time.sleep(5)  # the next job's work: the signal comes again in it
            return
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # a library that swallows it and carries on

    ended = _between_jobs(tmp_path, monkeypatch, next_job)
    assert unraisable == [] and sys.unraisablehook == unraisable.append
    assert isinstance(ended, errors.Interrupted) and ended.signum == signal.SIGTERM, ended
