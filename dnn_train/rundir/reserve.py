"""Room on the disk for a run's final record: taken with its directory, given back when the disk fills."""
from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from dnn_train.errors import NoSpace
from dnn_train.rundir import artifacts

RESERVE_FILE, RESERVE_BYTES = ".reserve", 65536  # freed when the disk fills up, so the final record still fits


@contextmanager
def space_or_refuse(run_dir: Path):
    """ENOSPC (or a full quota) while taking the run directory: the run is refused, not failed."""
    try:
        yield
    except OSError as ex:
        if ex.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = next((p for p in (run_dir, *run_dir.parents) if p.exists()), run_dir)
        free = shutil.disk_usage(where).free // 1024 if where.exists() else 0
        raise NoSpace(run_dir, free, RESERVE_BYTES // 1024) from None


def take(run_dir: Path, made: list) -> None:
    """Room for the final record, taken before anything else is written (data loaded, TensorFlow
    imported): random bytes, which a compressing filesystem cannot shrink. No room: NoSpace.
    A reserve made here is added to `made` (what bad input removes)."""
    reserve = run_dir / RESERVE_FILE
    if reserve.is_file() and not reserve.is_symlink():
        return
    try:
        with space_or_refuse(run_dir), open(reserve, "xb", opener=artifacts.nofollow) as f:
            made.append(reserve)
            f.write(os.urandom(RESERVE_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except NoSpace:
        reserve.unlink(missing_ok=True)
        raise


def write_results(run_dir: Path, results: dict) -> None:
    """results.json; the disk full, in the reserved room. A final status gives the room back."""
    path, reserve = run_dir / artifacts.RESULTS_FILE, run_dir / RESERVE_FILE
    try:
        artifacts.write_json(path, results)
    except OSError as ex:
        if ex.errno not in (errno.ENOSPC, errno.EDQUOT) or not reserve.exists():
            raise
        reserve.unlink()  # the disk is full: give back the reserved room, and write the record in it
        artifacts.write_json(path, results)
    if results.get("status") != "running":
        reserve.unlink(missing_ok=True)
