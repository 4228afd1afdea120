"""The hostile-input harness: a case is a command a hostile (or unlucky) user could run, and it is held
to the promises that README's "Bad input" makes, whatever the case's class:

- nothing outside the run directory changes: a file tree beside it (a victim file, a folder, the
  data cache) is snapshotted before and compared after, byte for byte;
- no payload runs: a case's payload, if it ran, would create MARKER (tests assert it never exists);
- the exit code is the one expected, stderr is one line with the expected prefix, never a traceback.

Each class of cases lives in its own tests/contract/test_hostile_*.py and uses `Sandbox`; the classes are
generated from what the promise is about (every payload kind, every file a run writes), not
listed case by case where a generator can do it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import run_cli

# A small, fast synthetic run, as tests/contract/test_fuzz.py's base.
SMALL_RUN = ["data=synthetic", "data.synthetic.train_examples=400", "data.valid_split=100",
             "data.synthetic.test_examples=100", "data.download=false", "trainer.epochs=1",
             "trainer.progress=none", "model.depth=1", "model.units=8"]


# What libraries keep for themselves, and dnn_train's synthetic-data cache: not the run's to keep unchanged. The Keras
# cache folder itself (its import makes it) is housekeeping; what lands in it (datasets/) is not.
HOUSEKEEPING = ("home", "cache/matplotlib", "cache/fontconfig", "cache/keras/keras.json", "cache/dnn_train")
HOUSEKEEPING_FOLDERS = ("cache/keras",)


def _digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks (a sparse file of many GB is hashed by size and time instead)."""
    st = path.stat()
    if st.st_blocks * 512 < st.st_size // 2 and st.st_size > 1 << 26:
        return f"sparse:{st.st_size}:{st.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """{relative path: (kind, mode, size, sha256 or link target)} of everything under `root`, except
    the trees in `skip` (the run directory) and HOUSEKEEPING. Symbolic links are recorded as links,
    not followed."""
    out: dict[str, tuple] = {}
    skip = tuple(Path(s).resolve() for s in skip) + tuple((Path(root) / h).resolve() for h in HOUSEKEEPING)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if (here / d).resolve() not in skip or (here / d).is_symlink()]
        for name in [*dirnames, *filenames]:
            path = here / name
            if path.resolve() in skip and not path.is_symlink():
                continue
            rel = str(path.relative_to(root))
            if rel in HOUSEKEEPING_FOLDERS:
                continue
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", st.st_mode)
            else:
                out[rel] = ("file", st.st_mode, st.st_size, _digest(path))
    return out


@dataclass
class Sandbox:
    """A folder holding the run directory (`run`), a victim file and folder beside it (`outside`),
    the marker a payload would create (`marker`), and the data cache (`cache`)."""

    root: Path
    run: Path = field(init=False)
    outside: Path = field(init=False)
    victim: Path = field(init=False)
    marker: Path = field(init=False)
    cache: Path = field(init=False)

    def __post_init__(self):
        self.run = self.root / "run"
        self.outside = self.root / "outside"
        self.cache = self.root / "cache"
        self.outside.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.victim = self.outside / "victim.txt"
        self.victim.write_text("precious data\n" * 100)
        (self.outside / "folder").mkdir(exist_ok=True)
        (self.outside / "folder" / "kept.bin").write_bytes(os.urandom(1000))
        self.marker = self.outside / "MARKER"
        self._before: dict | None = None

    @property
    def env(self) -> dict:
        return {"XDG_CACHE_HOME": str(self.cache), "KERAS_HOME": str(self.cache / "keras"),
                "DNN_TRAIN_SYSTEM_DATA_DIRS": "", "MPLBACKEND": "Agg", "HOME": str(self.root / "home"),
                "MARKER": str(self.marker), "VICTIM": str(self.victim)}

    def freeze(self) -> None:
        """Take the snapshot that `check` compares with (call after the case's set-up)."""
        self._before = snapshot(self.root, skip=(self.run,))

    def cli(self, *args: str, timeout: int = 180, env: dict | None = None) -> subprocess.CompletedProcess:
        if self._before is None:
            self.freeze()
        return run_cli(*args, cwd=self.root, env={**self.env, **(env or {})}, timeout=timeout)

    def check(self, proc: subprocess.CompletedProcess | None, code: int | tuple | None = None,
              prefix: str | tuple | None = None) -> str:
        """The promises: no marker, nothing outside the run directory changed, no traceback; and the
        exit code and the one stderr line, if given. Returns that line."""
        assert not self.marker.exists(), f"a payload ran: {self.marker} exists"
        after = snapshot(self.root, skip=(self.run,))
        changed = sorted(k for k in set(self._before or {}) | set(after) if (self._before or {}).get(k) != after.get(k))
        assert not changed, f"changed outside the run directory: {changed}"
        if proc is None:
            return ""
        where = f"\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stdout + proc.stderr, where
        if code is not None:
            codes = code if isinstance(code, tuple) else (code,)
            assert proc.returncode in codes, where
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        if prefix is not None:
            assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}{where}"
            assert lines[0].startswith(prefix), where
        return lines[-1] if lines else ""
