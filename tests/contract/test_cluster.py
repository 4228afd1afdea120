"""On a cluster: a preempted SLURM job (submitit) records its run, is requeued and resumes it without
a flag; the run lock holds across hosts by its heartbeat where `flock` does not reach
(dnn_train/rundir/lock.py). The requeue goes end to end through submitit's local executor; the second
host is simulated (its host name, a filesystem without flock)."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import time

import pandas as pd
import pytest

from dnn_train import errors
from dnn_train.rundir import lock as run_lock, record
from tests.conftest import SMALL, make_cfg, read_results, start_cli
from tests.contract.test_reliability import SLOW


# ---------------------------------------------------------------- preemption and requeue
@pytest.mark.slow
@pytest.mark.plugins
def test_a_submitit_job_preempted_mid_run_is_requeued_and_completes_each_epoch_once(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep, epochs = tmp_path / "sweep", 4
    proc = start_cli("-m", "hydra/launcher=slurm_local", *SLOW, f"trainer.epochs={epochs}",
                     f"data.root={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    job = sweep / "0"
    deadline = time.time() + 240
    while time.time() < deadline:  # the job's first epoch is done and its second under way
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if (job / "metrics.csv").exists() and len((job / "metrics.csv").read_text().splitlines()) > 1:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    first = read_results(job)
    assert first["status"] == "running" and first["job"].startswith("submitit-local:")
    os.kill(first["pid"], signal.SIGUSR2)  # what SLURM sends before the time limit, or on preemption
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (out + err)[-3000:]
    results = read_results(job)
    assert results["status"] == "completed" and results["epochs"] == epochs
    assert pd.read_csv(job / "metrics.csv")["epoch"].tolist() == list(range(1, epochs + 1))  # each epoch once
    log = (job / "dnn_train.log").read_text()
    assert "was requeued; continuing its run" in log and "resuming" in log  # the same directory, no flag
    submitit_log = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in submitit_log and "this job is preempted" in submitit_log, submitit_log[-2000:]
    assert "Job not requeued" not in submitit_log


@pytest.mark.slow
def test_the_preemption_signal_records_the_run_before_the_schedulers_handler_requeues_it(tmp_path):
    """submitit's own handler (here a stand-in) must run after the run is recorded and let go."""
    seen = {}

    def schedulers_handler(signum, frame):  # submitit: pickle the job, requeue it, exit
        seen["status"] = read_results(tmp_path / "run")["status"]
        seen["lock"] = (tmp_path / "run" / run_lock.LOCK_FILE).read_text()
        raise SystemExit(144)

    previous = signal.signal(signal.SIGUSR2, schedulers_handler)
    try:
        with pytest.raises(SystemExit):
            with record.Run(tmp_path / "run", make_cfg(*SMALL), []) as run:
                run.begin()
                os.kill(os.getpid(), signal.SIGUSR2)
                time.sleep(5)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert seen == {"status": "interrupted", "lock": ""}


def test_a_requeued_job_continues_its_own_run_without_a_flag_and_another_job_is_refused(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_PROCID", "0")
    with pytest.raises(KeyboardInterrupt):
        with record.Run(run_dir, make_cfg(*SMALL), []) as run:
            run.begin()
            raise errors.Interrupted(signal.SIGUSR2)
    assert read_results(run_dir)["job"] == "slurm:4242.batch/0"
    with record.Run(run_dir, make_cfg(*SMALL), []) as run:  # the requeued instance: same job, no trainer.resume
        assert run.state == "resume"
    monkeypatch.setenv("SLURM_JOB_ID", "4243")  # another job is another process
    with pytest.raises(errors.Refused, match="already holds a run"):
        with record.Run(run_dir, make_cfg(*SMALL), []):
            pass


# ---------------------------------------------------------------- the lock across hosts
def claim(run_dir, host="node-b", age=0.0, pid=12345, job=None):
    """A lock file as a run on another host leaves it, its heartbeat `age` seconds old."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / run_lock.LOCK_FILE).write_text(json.dumps(
        {"pid": pid, "host": host, "job": job, "started": "2026-01-01 00:00:00", "command": "python -m dnn_train",
         "heartbeat": time.time() - age}))


def test_a_live_run_on_another_host_is_never_taken_over_and_a_dead_one_is(tmp_path):
    claim(tmp_path / "live", age=5)
    with pytest.raises(errors.RunBusy, match=r"in use by pid 12345 on node-b .*heartbeat [567] s ago"):
        run_lock.RunLock(tmp_path / "live").acquire()
    assert run_lock.is_alive(tmp_path / "live") is True
    assert run_lock.liveness(tmp_path / "live", {"status": "running"}) == "running"

    claim(tmp_path / "dead", age=3600)  # an hour without a heartbeat (STALE_AFTER_S: 5 minutes)
    assert run_lock.is_alive(tmp_path / "dead") is False
    assert run_lock.liveness(tmp_path / "dead", {"status": "running"}) == "crashed (process gone)"
    lock = run_lock.RunLock(tmp_path / "dead")
    lock.acquire()
    lock.announce()
    assert json.loads((tmp_path / "dead" / run_lock.LOCK_FILE).read_text())["host"] == socket.gethostname()
    lock.release()


def test_the_same_job_requeued_on_another_host_takes_its_lock_over_and_another_job_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_STEP_ID", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    claim(tmp_path / "other", age=1, job="slurm:76.batch/0")  # another job, alive on node-b
    with pytest.raises(errors.RunBusy):
        run_lock.RunLock(tmp_path / "other").acquire()
    claim(tmp_path / "run", age=1, job="slurm:77.batch/0")  # this job, preempted on node-b a second ago
    lock = run_lock.RunLock(tmp_path / "run")
    lock.acquire()
    lock.release()


def no_flock(fd, how):
    raise OSError(errno.ENOLCK, "No locks available")


def test_the_heartbeat_keeps_a_run_on_a_filesystem_without_flock_and_its_end_frees_it(tmp_path, monkeypatch):
    """Host A runs; host B (another host name, and flock that fails as on such a mount) is refused
    while A's heartbeat is fresh, and takes the directory once A stops beating."""
    monkeypatch.setattr(run_lock, "HEARTBEAT_S", 0.05, raising=False)
    monkeypatch.setattr(run_lock, "STALE_AFTER_S", 1.0, raising=False)
    a = run_lock.RunLock(tmp_path)
    a.acquire()
    a.announce()
    beats = []
    for _ in range(3):
        time.sleep(0.3)
        beats.append(json.loads((tmp_path / run_lock.LOCK_FILE).read_text())["heartbeat"])
    assert beats[0] < beats[1] < beats[2]  # refreshed while the run lives
    time.sleep(1.0)  # longer than STALE_AFTER_S: only the heartbeat keeps it held

    monkeypatch.setattr(run_lock.fcntl, "flock", no_flock)
    monkeypatch.setattr(run_lock.socket, "gethostname", lambda: "node-b")
    with pytest.raises(errors.RunBusy, match="in use by pid"):
        run_lock.RunLock(tmp_path).acquire()
    assert run_lock.is_alive(tmp_path) is True
    a._stop.set()  # host A dies without a word: no more heartbeats, the file still names it
    time.sleep(1.2)
    assert run_lock.is_alive(tmp_path) is False
    b = run_lock.RunLock(tmp_path)
    b.acquire()
    b.announce()
    assert json.loads((tmp_path / run_lock.LOCK_FILE).read_text())["host"] == "node-b"
    b.release()
    a._fd and os.close(a._fd)


def test_without_flock_on_this_host_the_holders_pid_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock.fcntl, "flock", no_flock)
    claim(tmp_path / "live", host=socket.gethostname(), pid=os.getppid())
    with pytest.raises(errors.RunBusy):
        run_lock.RunLock(tmp_path / "live").acquire()
    dead = _a_dead_pid()
    claim(tmp_path / "dead", host=socket.gethostname(), pid=dead)
    run_lock.RunLock(tmp_path / "dead").acquire()


def _a_dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
