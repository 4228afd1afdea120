"""Which worker runs which trial of a search: owner records, heartbeats, stale trials, the claim lock.

A worker records itself (host, pid) in each trial it runs and beats (a system attribute) every
heartbeat_interval seconds; a RUNNING trial is an orphan only when stale (Liveness): its worker, on
this host, has exited, or its record has not changed for grace_period seconds. A claim is made under
the sweep directory's optuna.claim.lock (claim_lock), so two workers never claim the same trial.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("dnn_train.search")

CLAIM_LOCK = "optuna.claim"  # Optuna's lock adds ".lock": held while a worker picks its next trials
OWNER_ATTR = "dnn_train:owner"  # a RUNNING trial's system attribute: its worker (host, pid) and last beat


def _this_host() -> tuple[str, str]:
    """(host name, pid namespace): a pid means this process only within both."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return socket.gethostname(), namespace


def _pid_exited(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, TypeError, ValueError, OverflowError):  # another user's process, or not a pid
        return False
    return False


def beat(trial) -> None:
    """Record this process as the trial's worker, with a fresh beat: another worker then sees the
    trial's record change and does not take it over."""
    host, namespace = _this_host()
    trial.storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, {
        "host": host, "pid_namespace": namespace, "pid": os.getpid(), "beat": time.time()})


@contextmanager
def heartbeat(trials: list, interval: float):
    """beat() the trials every `interval` seconds while the block runs (a thread: the job may run in
    this process's main thread). Ours: Optuna's heartbeat (RDBStorage only in Optuna 5.1, not the
    journal) fails a stale trial, and its retry makes a new trial, in a new job directory, which
    loses the trial's checkpoint."""
    stop = threading.Event()

    def loop():
        while not stop.wait(interval):
            for trial in trials:
                try:
                    beat(trial)
                except Exception as ex:  # noqa: BLE001 - a missed beat is retried; the job goes on
                    log.warning("trial %d: heartbeat not recorded (%s)", trial.number, ex)

    thread = threading.Thread(target=loop, name="dnn_train-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Liveness:
    """Which RUNNING trials are stale, as this worker sees them: a trial whose worker, on this host
    (and pid namespace), has exited; or one whose state and worker record (with its beat) have not
    changed for `grace` seconds of this worker's own clock, so no other host's clock is compared."""

    def __init__(self, grace: float, clock=time.monotonic) -> None:
        self.grace, self.clock = grace, clock
        self.host = _this_host()
        self.seen: dict = {}  # trial id -> (what the trial's record was, when this worker first saw it so)

    def stale(self, frozen) -> str | None:
        """Why the trial is stale, or None while it is live."""
        owner = frozen.system_attrs.get(OWNER_ATTR)
        if (isinstance(owner, dict) and (owner.get("host"), owner.get("pid_namespace")) == self.host
                and _pid_exited(owner.get("pid"))):
            return f"its worker, pid {owner.get('pid')} on this host, has exited"
        record, now = repr((frozen.datetime_start, owner)), self.clock()
        seen = self.seen.get(frozen._trial_id)
        if seen is None or seen[0] != record:
            self.seen[frozen._trial_id] = (record, now)
            return None
        if now - seen[1] >= self.grace:
            where = f"pid {owner.get('pid')} on {owner.get('host')}" if isinstance(owner, dict) else "unknown"
            return f"no heartbeat for {now - seen[1]:.0f} s (its worker: {where})"
        return None


@contextmanager
def claim_lock(sweep_dir: Path):
    """Held while a worker picks its next trials. Optuna's O_EXCL lock file, safe on NFS v3 or later
    (fcntl locks are not): a holder killed in its few milliseconds is replaced after 30 s."""
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(str(sweep_dir / CLAIM_LOCK))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
