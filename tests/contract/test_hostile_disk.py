"""A full disk leaves a record or nothing: on a small tmpfs filled to leave each amount of free space
(0 bytes up to enough for a whole run), a run ends with either a truthful results.json (completed, or
failed with the reason) or no run directory at all, and one line; never exit 1 without a record, never
a partial folder. Skipped where a tmpfs cannot be mounted (not root, or no CAP_SYS_ADMIN)."""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests.hostile import SMALL_RUN, Sandbox

FREE_KB = [0, 8, 40, 100, 300, 4000]  # nothing, less than the record's reserve, about a record, ..., a whole run


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount, free_kb: int) -> None:
    """Leave about `free_kb` KB free on the tmpfs (its blocks are pages: at most 4 KB off)."""
    filler = mount / f"filler-{uuid.uuid4().hex}"
    with open(filler, "wb") as f:
        try:
            while True:
                st = os.statvfs(mount)
                left = st.f_bavail * st.f_frsize - free_kb * 1024
                if left <= 0:
                    break
                f.write(b"x" * min(left, 1 << 20))
                f.flush()
        except OSError:
            pass


@pytest.mark.slow
@pytest.mark.parametrize("free_kb", FREE_KB)
def test_a_full_disk_leaves_a_truthful_record_or_nothing(free_kb, small_disk, tmp_path):
    box = Sandbox(tmp_path / "box")
    (tmp_path / "box" / "cache" / "dnn_train").mkdir(parents=True)
    run_dir = small_disk / "runs" / "run"
    fill(small_disk, free_kb)
    proc = box.cli(*SMALL_RUN, "trainer.diagnostics=false", f"hydra.run.dir={run_dir}")
    where = f"\nfree {free_kb} KB, exit {proc.returncode}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, where
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    results = run_dir / "results.json"
    if proc.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("dnn_train: error: no space left"), where
        assert not run_dir.exists() and not (small_disk / "runs").exists(), (sorted(small_disk.rglob("*")), where)
        return
    assert results.is_file(), f"exit {proc.returncode} without a record{where}"
    record = json.loads(results.read_text())
    if proc.returncode == 0:
        assert record["status"] == "completed", where
    else:
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("dnn_train: failed: "), where
        assert record["status"] == "failed" and "no space left" in record["error"], (record, where)
    assert not (run_dir / ".reserve").exists(), where
