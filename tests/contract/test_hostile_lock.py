"""Hostile lock files: a `.lock` is anyone's to write (a planted one, a half-written one, a record
from another version or host), and the run lock must judge it by the rule alone (dnn_train/rundir/lock.py):
the directory is refused, in one printable line, only while the file names a live holder (a positive
pid, a finite heartbeat fresher than STALE_AFTER_S, on another host, or on this one where flock is
missing and that pid exists); otherwise it is taken over. Nothing else is raised, and the liveness
check never signals anything but one positive pid with signal 0.
The cases are generated: every kind of value for each field the rule reads, with flock working and
missing; one command line proves the refusal end to end (tests/hostile.py)."""
from __future__ import annotations

import errno
import itertools
import json
import math
import os
import socket
import time

import pytest

from dnn_train import errors
from dnn_train.rundir import lock as run_lock
from tests.hostile import SMALL_RUN, Sandbox, snapshot

NOW = object()  # stands for "the current time" in the generated cases
OTHER_HOST = "node-b"
PIDS = [os.getppid(), 0, -1, True, "1", 2 ** 70, 1.5, None]
BEATS = [NOW, -3600, math.nan, math.inf, -math.inf, 1e308, "now", None]
HOSTS = [OTHER_HOST, "SELF", None, ["node-b"]]
RAW = [b"", b"\0" * 5000, b"{not json", b"[1, 2]", b'"text"', b"null", b"1e999", b"{}",
       json.dumps({"pid": 1, "host": OTHER_HOST, "heartbeat": 1, "pad": "x" * 70000}).encode(),  # past what is read
       "\ufeff{}".encode(), b"\xff\xfe\x00"]


def payload(pid, beat, host) -> bytes:
    now = time.time()
    beat = now if beat is NOW else now + beat if type(beat) in (int, float) and abs(beat) < 1e6 else beat
    host = socket.gethostname() if host == "SELF" else host
    return json.dumps({"pid": pid, "host": host, "heartbeat": beat, "started": "\x1b[31m2026\n",
                       "command": "python -m dnn_train\nsecond line\r\x00\x1b]0;title\x07"}).encode()


def expected_busy(pid, beat, host, flock_works: bool) -> bool:
    """The rule, restated: a live holder is named by a positive pid and a fresh finite heartbeat."""
    if type(pid) is not int or pid <= 0 or beat is not NOW:
        return False
    if host == OTHER_HOST or host is None or isinstance(host, list):
        return True  # another host (whatever it is called): the heartbeat decides
    return not flock_works and pid == os.getppid()  # this host: the flock decides; without one, whether the pid lives


def no_flock(fd, how):
    raise OSError(errno.ENOSYS, "Function not implemented")


@pytest.mark.parametrize("flock_works", [True, False], ids=["flock", "no-flock"])
def test_every_lock_file_is_judged_by_the_rule_alone(tmp_path, monkeypatch, flock_works):
    kills = []
    real_kill = os.kill

    def kill(pid, sig):
        kills.append((pid, sig))
        assert type(pid) is int and pid > 0 and sig == 0, (pid, sig)
        return real_kill(pid, sig)

    monkeypatch.setattr(run_lock.os, "kill", kill)
    if not flock_works:
        monkeypatch.setattr(run_lock.fcntl, "flock", no_flock)
    cases = [(payload(*fields), expected_busy(*fields, flock_works), fields)
             for fields in itertools.product(PIDS, BEATS, HOSTS)]
    cases += [(raw, False, raw[:20]) for raw in RAW]
    for i, (content, busy, fields) in enumerate(cases):
        run_dir = tmp_path / str(i)
        run_dir.mkdir()
        (run_dir / run_lock.LOCK_FILE).write_bytes(content)
        lock = run_lock.RunLock(run_dir)
        try:
            lock.acquire(wait=0)
        except errors.RunBusy as ex:
            assert busy, f"refused, but the file names no live holder: {fields}"
            message = str(ex)
            assert message.isprintable() and "\n" not in message, repr(message)
            assert run_lock.is_alive(run_dir) is True
            continue
        assert not busy, f"taken over from a live holder: {fields}"
        lock.announce()  # the taker's record replaces the planted one, whole
        assert json.loads((run_dir / run_lock.LOCK_FILE).read_text())["pid"] == os.getpid()
        lock.release()
        assert run_lock.is_alive(run_dir) is False
    assert len(cases) > 250


def test_a_planted_claim_of_a_live_run_elsewhere_is_refused_in_one_line_and_nothing_changes(tmp_path):
    sandbox = Sandbox(tmp_path)
    sandbox.run.mkdir()
    (sandbox.run / run_lock.LOCK_FILE).write_bytes(payload(4242, NOW, OTHER_HOST))
    before = snapshot(sandbox.run)
    proc = sandbox.cli(*SMALL_RUN, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={sandbox.run}")
    line = sandbox.check(proc, code=2, prefix="dnn_train: error: ")
    assert f"is in use by pid 4242 on {OTHER_HOST} since" in line and "second line" in line
    assert snapshot(sandbox.run) == before
