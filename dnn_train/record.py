"""Who owns a run directory, and whether its process is still alive.

A run holds an OS lock (`fcntl.flock`) on `RUN_DIR/.lock` for its whole life; the file names the
holder (pid, host, start time, command). A second process that wants the directory (the same
command twice, a resume of a live run, two sweep jobs) is refused with that name; the lock dies
with its process, whatever kills it, so a run left "running" whose lock is free has crashed.
Ours: Keras and Hydra have no notion of a directory owned by one process.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # not POSIX: no locking (documented)
    fcntl = None


class RunBusy(RuntimeError):
    """Another live process owns the run directory."""


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')} ({info.get('command', '')})"


class RunLock:
    """The lock on a run directory, held from acquire() until release() or the process's end."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: Optional[int] = None

    def acquire(self, wait: float = 0.5) -> None:
        """Take the lock or raise RunBusy naming its holder (after `wait` seconds: a report may be
        probing it for an instant)."""
        if fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise RunBusy(f"{self.path.parent} is in use by {_holder_text(self.path)}; wait for it to "
                                  "end, or choose another hydra.run.dir") from None
                time.sleep(0.05)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def is_alive(run_dir: Path) -> Optional[bool]:
    """True if a live process holds the run's lock, False if none does (a run left "running" then
    crashed), None if it cannot be told (no lock file: an older run, or no fcntl)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
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
