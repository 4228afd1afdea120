"""Where a run came from: results.json's `provenance`, written when the run begins (rundir.record.Run.begin).

- command: sys.argv and the overrides as typed;
- code: the git commit of the checkout holding the imported dnn_train package and whether its tree
  is dirty (`git status`: changed tracked files, or untracked files git does not ignore); when dirty,
  RUN_DIR/source.patch holds `git diff HEAD --binary` plus every untracked code or config file
  (UNTRACKED_COPIED: .py, .yaml) as a new-file diff (`git apply source.patch` on the commit gives the
  code that ran); other untracked files, and those over UNTRACKED_MAX_BYTES, are named, not copied
  (a stray .env or notes file must not travel into run directories and MLflow). Outside a git
  checkout: the installed package's version;
- versions: Python, dnn_train, Keras, the backend and its version, NumPy;
- device: the CPU model and the cores this process may use, the threads it was given, and each GPU
  the backend sees (name, memory);
- data: the folder the files were read from (the URL when this process downloaded them) and the
  SHA-256 of every file read, cached by (path, size, mtime) in the dnn_train cache folder.

Ours: neither Hydra nor Keras records any of this.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Optional

from dnn_train.rundir import artifacts

log = logging.getLogger("dnn_train")

PATCH_FILE = "source.patch"
UNTRACKED_MAX_BYTES = 1 << 20  # an untracked file larger than this is named, not copied into source.patch
UNTRACKED_COPIED = (".py", ".yaml", ".yml")  # untracked files that can change what runs: copied; others named
DATA_FILES_LISTED = 100  # more files than this (a folder of images): their hashes go to RUN_DIR/data.sha256
DATA_MANIFEST = "data.sha256"
PACKAGE = "dnn-train"
GIT_TIMEOUT_S = 20
DIFF = ("--binary", "--no-ext-diff", "--no-textconv", "--no-color")  # a patch `git apply` takes, whatever the config


def package_dir() -> Path:
    """The folder holding the dnn_train package that runs (a checkout's root, or site-packages)."""
    return Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- the code
def _git(root: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=GIT_TIMEOUT_S,
                          env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})  # a read never locks
    if check and done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace").strip() or f"git {args[0]} failed")
    return done.stdout.decode(errors="surrogateescape")


def code(run_dir: Optional[Path], where: Optional[Path] = None) -> dict:
    """The commit (and dirty flag, and source.patch in `run_dir` when dirty) of the git checkout that
    holds the package, if it tracks it; else the installed package's version."""
    where = Path(where or package_dir())
    try:
        top = Path(_git(where, "rev-parse", "--show-toplevel").strip())
        _git(top, "ls-files", "--error-unmatch", "--", str(where / "dnn_train" / "__init__.py"))
        commit = _git(top, "rev-parse", "HEAD").strip()
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return {"git": False, "version": installed_version()}
    status = _git(top, "status", "--porcelain", "--untracked-files=all", "-z")
    out = {"git": True, "repository": str(top), "commit": commit, "dirty": bool(status)}
    if status and run_dir is not None:
        patch, skipped = _patch(top, run_dir)
        artifacts.write_text(Path(run_dir) / PATCH_FILE, patch)
        out.update(patch=PATCH_FILE, patch_sha256=hashlib.sha256(patch.encode(errors="surrogateescape")).hexdigest())
        if skipped:
            out["untracked_not_in_patch"] = skipped
    return out


def _patch(top: Path, run_dir: Path) -> tuple[str, list]:
    """`git diff HEAD` and each untracked code or config file (not ignored, not in the run directory)
    as a new file; the names of the other untracked files."""
    parts, skipped = [_git(top, "diff", *DIFF, "HEAD")], []
    run_dir = Path(run_dir).resolve()
    for name in filter(None, _git(top, "ls-files", "--others", "--exclude-standard", "-z").split("\0")):
        path = top / name
        if path.resolve() == run_dir or run_dir in path.resolve().parents:
            continue
        try:
            big = path.lstat().st_size > UNTRACKED_MAX_BYTES
        except OSError:
            continue
        if big or not name.endswith(UNTRACKED_COPIED):
            skipped.append(name)
            continue
        parts.append(_git(top, "diff", *DIFF, "--no-index", "--", "/dev/null", name, check=False))
    return "".join(parts), skipped


def installed_version() -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- versions and device
def versions() -> dict:
    import numpy

    out = {"python": platform.python_version(), "dnn_train": installed_version(), "numpy": numpy.__version__}
    if "keras" in sys.modules:
        import keras

        backend = keras.backend.backend()
        out.update(keras=keras.__version__, backend=backend)
        module = sys.modules.get(backend)
        out["backend_version"] = getattr(module, "__version__", None)
    return out


def cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return platform.processor() or None


def device(threads=None) -> dict:
    """The CPU and the cores this process may use (and the threads the backend was given); the GPUs."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    out = {"cpu": cpu_model(), "cores": cores, "threads": threads if threads is not None else "all"}
    gpus = _gpus()
    if gpus:
        out["gpus"] = gpus
    return out


def _gpus() -> list:
    """[{name, memory_mb}] of the GPUs the backend sees ([] on a CPU-only machine)."""
    if "keras" not in sys.modules:
        return []
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            return [{"name": d.device_kind, "memory_mb": ((d.memory_stats() or {}).get("bytes_limit") or 0) >> 20}
                    for d in jax.devices() if d.platform == "gpu"]
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            out = []
            for i, d in enumerate(tf.config.list_physical_devices("GPU")):
                details = tf.config.experimental.get_device_details(d)
                out.append({"name": details.get("device_name", d.name), "compute_capability":
                            ".".join(map(str, details.get("compute_capability") or ())) or None})
            return out
        if keras.backend.backend() == "torch":
            import torch

            return [{"name": torch.cuda.get_device_name(i),
                     "memory_mb": torch.cuda.get_device_properties(i).total_memory >> 20}
                    for i in range(torch.cuda.device_count())]
    except Exception as ex:  # noqa: BLE001 - the record says so rather than failing the run
        return [{"error": f"{type(ex).__name__}: {ex}"}]
    return []


# ---------------------------------------------------------------- the data
def _cache_file() -> Path:
    from dnn_train.data.sources import cache_dir

    return cache_dir() / "sha256.json"


def sha256_files(paths: list) -> dict:
    """{path: SHA-256} of each file, computed once per (path, size, mtime): the cache file in the
    dnn_train cache folder keeps what was computed, so a second run does not read the files again."""
    cache_path = _cache_file()
    try:
        cache = json.loads(cache_path.read_text())
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    out, changed = {}, False
    for path in map(str, paths):
        st = os.stat(path)
        entry = cache.get(path)
        if isinstance(entry, list) and entry[:2] == [st.st_size, st.st_mtime_ns]:
            out[path] = entry[2]
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest = digest.hexdigest()
        cache[path] = [st.st_size, st.st_mtime_ns, digest]
        out[path], changed = digest, True
    if changed:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)  # parallel jobs: the last writer wins, a lost entry is computed again
        except OSError as ex:
            log.info("data hashes not cached (%s)", ex)
    return out


def data(run_dir: Optional[Path]) -> Optional[dict]:
    """The files the last dataset load read (dnn_train.data.last_read) and their SHA-256."""
    from dnn_train import data as data_module

    read = data_module.last_read()
    if read is None:
        return None
    folder, files, url = read
    hashes = sha256_files(files)
    relative = {os.path.relpath(p, folder): h for p, h in hashes.items()}
    out = {"folder": str(folder), **({"url": url} if url else {}), "files": len(relative)}
    if len(relative) <= DATA_FILES_LISTED:
        out["sha256"] = relative
    else:  # a folder of images: `sha256sum -c RUN_DIR/data.sha256` in the data folder checks them
        manifest = "".join(f"{h}  {name}\n" for name, h in relative.items())
        out["manifest"], out["manifest_sha256"] = DATA_MANIFEST, hashlib.sha256(manifest.encode()).hexdigest()
        if run_dir is not None:
            artifacts.write_text(Path(run_dir) / DATA_MANIFEST, manifest)
    return out


# ---------------------------------------------------------------- all of it
def collect(run) -> dict:
    """results.json's `provenance` for this run (rundir.record.Run): never fails the run; a part that cannot
    be found says why."""
    out: dict = {"command": list(sys.argv), "overrides": list(run.overrides)}
    for name, part in (("code", lambda: code(run.dir)), ("versions", versions),
                       ("device", lambda: device(run.threads)), ("data", lambda: data(run.dir))):
        try:
            out[name] = part()
        except Exception as ex:  # noqa: BLE001 - provenance never fails a run
            out[name] = {"error": f"{type(ex).__name__}: {ex}"}
            log.warning("provenance: %s: %s", name, out[name]["error"])
    return out


def environment(provenance: dict) -> dict:
    """The flat {key: value} of what a run's numbers may depend on besides its config: the code,
    the versions, the device and the data (not the command line, which the config already says)."""
    if not isinstance(provenance, dict):  # none recorded (an older run), or not what dnn_train writes
        return {}
    keep = {k: v for k, v in provenance.items() if k in ("code", "versions", "device", "data")}
    flat = artifacts.flatten(keep)
    for key in ("code.repository", "data.folder", "code.patch"):  # where, not what: the hashes say what
        flat.pop(key, None)
    return flat
