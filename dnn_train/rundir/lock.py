"""The lock on a run directory: who holds it, and whether its process is still alive.

A run holds an OS lock (`fcntl.flock`) on `RUN_DIR/.lock` for its whole life; the file names the
holder (pid, host, start time, command, scheduler job) and carries a heartbeat, rewritten every
HEARTBEAT_S seconds while the run lives. A second process that wants the directory (the same
command twice, a resume of a live run, two sweep jobs) is refused with that name. On one host the
flock decides: it dies with its process, whatever kills it, so a run left "running" whose lock is
free has crashed. A holder on another host is alive while its heartbeat is fresh (NFS and Lustre
may not show one host's flock to another), and dead once it is older than STALE_AFTER_S. A
requeued instance of the same scheduler job (SLURM, submitit) takes its own directory over.
Ours: Keras and Hydra have no notion of a directory owned by one process.
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from dnn_train.errors import RunBusy
from dnn_train.rundir.artifacts import NOFOLLOW

LOCK_FILE = ".lock"
HEARTBEAT_S = 30.0     # the lock file's heartbeat is rewritten this often while its run lives
STALE_AFTER_S = 300.0  # a holder on another host whose heartbeat is older than this is dead (hosts' clocks in sync)
LOCK_BYTES = 2048      # the holder's record, padded: each heartbeat rewrites the same bytes in place

try:
    import fcntl
except ImportError:  # not POSIX: no locking (documented)
    fcntl = None


def job_identity() -> Optional[str]:
    """This process's scheduler job, the same in a requeued instance of it and different in any
    other: SLURM's job id (an array task's JOBID_TASK), step and task rank, or submitit's local
    executor's job and rank. None outside a scheduler."""
    env = os.environ
    if env.get("SLURM_JOB_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID')}" if env.get("SLURM_ARRAY_JOB_ID") \
            else env["SLURM_JOB_ID"]
        return f"slurm:{job}.{env.get('SLURM_STEP_ID', 'batch')}/{env.get('SLURM_PROCID', '0')}"
    if env.get("SUBMITIT_LOCAL_JOB_ID"):
        return f"submitit-local:{env['SUBMITIT_LOCAL_JOB_ID']}/{env.get('SUBMITIT_LOCAL_GLOBALID', '0')}"
    return None


def _read_holder(fd: int) -> dict:
    """The holder's record in the lock file ({} if none, or unreadable: then nobody is named)."""
    for _ in range(3):  # a heartbeat rewriting it at this instant: read again
        try:
            info = json.loads(os.pread(fd, 1 << 16, 0).decode() or "{}")
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            time.sleep(0.01)
    return {}


def _holder_text(info: dict) -> str:
    if not info:
        return "another process"
    beat = info.get("heartbeat")
    age = f", heartbeat {round(time.time() - beat)} s ago" if type(beat) in (int, float) and math.isfinite(beat) else ""
    pid, host, started, command = (_printable(info.get(k, "")) for k in ("pid", "host", "started", "command"))
    return f"pid {pid} on {host} since {started}{age} ({command})"


def _printable(value, limit: int = 300) -> str:
    """A lock file's field as one printable line (the file is anyone's to write)."""
    text = "".join(c if c.isprintable() else " " for c in str(value)[:limit])
    return " ".join(text.split())


def _holder_alive(info: dict, flock_works: bool, takeover: bool = False) -> bool:
    """Whether the process the lock file names is alive, once this process could take the flock (or
    the filesystem has none): on this host the flock said no already; on another host its heartbeat
    decides. `takeover`: a requeued instance of the holder's own scheduler job replaces it."""
    pid, beat = info.get("pid"), info.get("heartbeat")
    if type(pid) is not int or pid <= 0:  # nobody named (a released lock, or not a holder's record)
        return False
    if takeover and info.get("job") and info.get("job") == job_identity():
        return False
    # fresh: within STALE_AFTER_S either way (a clock ahead by more, or a planted "forever", is not trusted)
    fresh = type(beat) in (int, float) and abs(time.time() - beat) < STALE_AFTER_S
    if info.get("host") == socket.gethostname():
        return not flock_works and fresh and _pid_alive(pid)
    return fresh


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OverflowError:
        return False
    except OSError:
        return True  # another user's process (EPERM): it exists
    return True


def _flock(fd: int, how: int) -> bool:
    """flock, or False where the filesystem has none (Lustre without -o flock: ENOSYS; some NFS:
    ENOLCK): the heartbeat alone decides there. BlockingIOError: held."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        raise
    except OSError as ex:
        if ex.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return False
        raise


class RunLock:
    """The lock on a run directory, held from acquire() until release() or the process's end."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: Optional[int] = None
        self._announced = False
        self._info: dict = {}
        self._io = threading.Lock()  # the heartbeat thread and release() share the descriptor
        self._stop = threading.Event()

    def acquire(self, wait: float = 0.5) -> None:
        """Take the lock or raise RunBusy naming its holder (after `wait` seconds: a report may be
        probing it for an instant). A holder on another host with a fresh heartbeat holds it too."""
        if fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                flock_works = _flock(fd, fcntl.LOCK_EX)
                holder = _read_holder(fd)
                if not _holder_alive(holder, flock_works, takeover=True):
                    break
            except BlockingIOError:
                holder = None
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunBusy(f"{self.path.parent} is in use by {_holder_text(holder or _read_path(self.path))}; "
                              "wait for it to end, or choose another hydra.run.dir") from None
            time.sleep(0.05)
        self._fd = fd
        self._announced = False

    def announce(self) -> None:
        """Name this process in the lock file, for whoever is refused while it runs (only a process
        that will use the directory does: a refused or no-op one leaves the file as it was), and
        keep its heartbeat fresh from a thread until release()."""
        self._info = {"pid": os.getpid(), "host": socket.gethostname(), "job": job_identity(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}
        self._beat()
        self._announced = True
        self._stop.clear()
        threading.Thread(target=self._heartbeat, name="dnn_train-lock-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        data = json.dumps({**self._info, "heartbeat": round(time.time(), 3)}).encode()
        data += b" " * (LOCK_BYTES - len(data))  # the same length every time: a reader never sees it shrink
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._io:
                if self._fd is None:
                    return
                try:
                    self._beat()
                except OSError as ex:  # a full disk, a lost mount: the run goes on; others may take over after STALE_AFTER_S
                    logging.getLogger("dnn_train").warning("cannot refresh %s (%s)", self.path, ex.strerror)

    def release(self) -> None:
        self._stop.set()
        with self._io:
            if self._fd is not None:
                if self._announced:
                    os.ftruncate(self._fd, 0)  # no holder any more
                os.close(self._fd)  # closing the descriptor releases the flock
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_path(path: Path) -> dict:
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return {}
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def is_alive(run_dir: Path) -> Optional[bool]:
    """True if a live process holds the run's lock (here: its flock; on another host: a fresh
    heartbeat), False if none does (a run left "running" then crashed), None if it cannot be told
    (no lock file: an older run, or no fcntl)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return None
    try:
        flock_works = _flock(fd, fcntl.LOCK_SH)
        return _holder_alive(_read_holder(fd), flock_works)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def liveness(run_dir: Path, results: dict) -> str:
    """The status to show for a run: results.json's, except that a run left "running" by a process
    that is gone shows as "crashed (process gone)"."""
    status = results.get("status", "not started")
    if status != "running":
        return status
    alive = is_alive(run_dir)
    if alive is False:
        return "crashed (process gone)"
    return status
