"""Where a dataset's files are looked for, and downloading them when none are found.

Search order: data.root (the folder holding the files, or its parent), the Keras cache
($KERAS_HOME/datasets, default ~/.keras/datasets), then the system folders of the environment
variable DNN_TRAIN_SYSTEM_DATA_DIRS (colon-separated; default /usr/share/datasets; empty: none).
A data.root that holds part of a dataset is an error naming what is missing, never a reason to
read another copy. Locating only stats files; `download` is the one function that imports Keras,
and only the main thread calls it (see `dnn_train.data.preload`).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

from dnn_train.data.catalog import Dataset, Layout
from dnn_train.data.errors import DataError, Limit

log = logging.getLogger(__name__)

SYSTEM_DIRS_ENV = "DNN_TRAIN_SYSTEM_DATA_DIRS"
DEFAULT_SYSTEM_DIRS = "/usr/share/datasets"
DOWNLOAD_TIMEOUT_S = 20  # per connection attempt and per read: a dropped connection fails instead of hanging
MAX_MEMBERS = 1000  # in a downloaded archive (the official ones hold 9 or 5): each costs memory, files or none


class Found(NamedTuple):
    folder: Path
    layout: Layout


def keras_home() -> Path:
    """Keras' own rule (keras.src.backend.config), without importing Keras: $KERAS_HOME, else
    ~/.keras, else /tmp/.keras when the home folder is not writable."""
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"]).expanduser()
    home = Path.home()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def cache_dir() -> Path:
    """Files dnn_train derives itself (synthetic data, decoded images): $XDG_CACHE_HOME/dnn_train."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dnn_train"


def system_dirs() -> list[Path]:
    value = os.environ.get(SYSTEM_DIRS_ENV, DEFAULT_SYSTEM_DIRS)
    return [Path(p).expanduser() for p in value.split(":") if p]


def _in(base: Path, folder: str) -> Path:
    return base if folder == "." else base / folder


def _root_candidates(entry: Dataset, root: Path) -> list[tuple[Path, Layout]]:
    """data.root: each layout's folders under it, then data.root itself."""
    out = []
    for layout in entry.layouts:
        for folder in dict.fromkeys([_in(root, f) for f in layout.folders] + [root]):
            out.append((folder, layout))
    return out


def _shared_candidates(entry: Dataset) -> list[tuple[Path, Layout]]:
    bases = [] if entry.root_only else [keras_home() / "datasets", *system_dirs()]
    return [(_in(base, f), layout) for base in bases for layout in entry.layouts for f in layout.folders]


def looked_in(entry: Dataset, root: Optional[str]) -> list[Path]:
    pairs = (_root_candidates(entry, Path(root).expanduser()) if root else []) + _shared_candidates(entry)
    return list(dict.fromkeys(folder for folder, _ in pairs))


def _complete(folder: Path, layout: Layout) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in layout.files)


def _check_partial(folder: Path, layout: Layout, root: Path) -> None:
    """In data.root, a dataset folder (or data.root itself holding some of the files) must be complete."""
    named = folder != root
    if named and not os.path.lexists(folder):
        return
    if not named and not any(os.path.lexists(folder / f) for f in layout.files):
        return
    if not folder.is_dir():
        raise DataError(f"{folder}: not a readable folder (a broken link or a symlink loop?); it should hold "
                        f"{', '.join(layout.files)}")
    missing = [f for f in layout.files if not (folder / f).is_file()]
    raise DataError(f"{folder}: missing {', '.join(missing)} (of {', '.join(layout.files)}); "
                    "complete the folder or leave data.root unset")


def find_local(entry: Dataset, data_cfg) -> Optional[Found]:
    """The first folder holding the dataset's files, in search order; None if there is none."""
    root = data_cfg.root
    if root:
        root_path = Path(root).expanduser()
        if not root_path.is_dir():  # a typo must not fall back silently
            raise DataError(f"data.root={root}: no such directory; " + (entry.offline if entry.root_only else
                            f"give the folder holding the {entry.name} files (or leave data.root unset to use "
                            "the Keras cache and the system folders)"))
        for folder, layout in _root_candidates(entry, root_path):
            if _complete(folder, layout):
                return Found(folder, layout)
            _check_partial(folder, layout, root_path)
    elif entry.root_only:
        raise DataError(f"data={entry.name} needs data.root: {entry.offline}")
    return next((Found(f, layout) for f, layout in _shared_candidates(entry) if _complete(f, layout)), None)


def _not_found(entry: Dataset, data_cfg) -> str:
    return f"{entry.name}: not found (looked in {', '.join(map(str, looked_in(entry, data_cfg.root)))})"


def check_downloadable(entry: Dataset, data_cfg) -> None:
    """Raise the one-line error at once when nothing was found and nothing may be downloaded."""
    if entry.download is None:
        raise DataError(f"{_not_found(entry, data_cfg)}; {entry.offline}")
    if not data_cfg.download:
        raise DataError(f"{_not_found(entry, data_cfg)} and data.download=false; to provide it offline, "
                        f"{entry.offline}")


def download(entry: Dataset, data_cfg) -> Found:
    """Fetch the official files with keras.utils.get_file into the Keras cache, each checked against
    its SHA-256 (data.sha256, else the official one), archives extracted where Keras' own loaders
    extract them, within the dataset's Limit (`extract`).
    Imports Keras: call it from the main thread only, once TensorFlow is imported."""
    check_downloadable(entry, data_cfg)
    import keras

    spec = entry.download
    base = (data_cfg.url or spec.url).rstrip("/") + "/"
    hashes = {**spec.sha256, **(data_cfg.sha256 or {})}
    subdir = os.path.join("datasets", spec.subdir) if spec.subdir else "datasets"
    origin, previous = None, socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib's default is to wait forever
    try:
        keras_home().mkdir(parents=True, exist_ok=True)  # get_file falls back to /tmp/.keras if it does not exist
        for fname, sha256 in hashes.items():
            origin = base + fname
            log.info("%s: downloading %s", entry.name, origin)
            path = Path(keras.utils.get_file(  # an archive: kept where Keras' loaders keep it, extracted below
                f"{spec.extract_to}_archive" if spec.extract_to else fname, origin=origin, file_hash=sha256,
                hash_algorithm="sha256", cache_dir=str(keras_home()), cache_subdir=subdir))
    except Exception as ex:  # noqa: BLE001 - any failure here means: offline, blocked, or not the official file
        if spec.extract_to is None:  # get_file keeps a file that fails its hash: it must not pass for a local copy
            (keras_home() / subdir / fname).unlink(missing_ok=True)
        reason = " ".join(str(ex).split()) or type(ex).__name__
        raise DataError(f"{_not_found(entry, data_cfg)} and the download from {origin} failed: {reason}; "
                        f"to provide it offline, {entry.offline}") from None
    finally:
        socket.setdefaulttimeout(previous)
    if spec.extract_to:
        extract(path, path.parent / spec.extract_to, Limit.of(entry, data_cfg), fname)
    datasets = path.parent.parent if spec.subdir else path.parent  # get_file may fall back to /tmp/.keras
    found = next((Found(_in(datasets, f), layout) for layout in entry.layouts for f in layout.folders
                  if _complete(_in(datasets, f), layout)), None)
    if found is None:
        raise DataError(f"{entry.name}: downloaded from {base} into {datasets}, but the files are not laid out as "
                        f"the official ones ({', '.join(entry.layouts[0].files)} in "
                        f"{entry.layouts[0].folders[-1]}/)")
    return found


def extract(archive: Path, dest: Path, limit: Limit, name: str) -> None:
    """Extract a tar archive as Keras' get_file(extract=True) does (tarfile's "data" filter: nothing
    outside `dest`), but into a temporary folder beside `dest`, under `limit` bytes in all, moved into
    place only when complete. On any failure nothing is left: neither the folder nor the archive (the
    error names it by `name`, the file downloaded)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, members=_counted(tar, name, limit), filter="data")
        shutil.rmtree(dest, ignore_errors=True)  # an incomplete extraction (Keras' own extracts in place)
        os.replace(tmp, dest)
    except BaseException as ex:
        shutil.rmtree(tmp, ignore_errors=True)
        archive.unlink(missing_ok=True)
        if isinstance(ex, (tarfile.TarError, EOFError, zlib.error, OSError)):
            raise DataError(f"{name}: cannot extract ({' '.join(str(ex).split()) or type(ex).__name__})") from None
        raise


def _counted(tar: tarfile.TarFile, name: str, limit: Limit):
    """The members of `tar`, read one at a time from the stream, refused once their sizes add up to more
    than `limit` (or once there are more than MAX_MEMBERS). tarfile writes exactly a member's size (a
    shorter stream is an error, the rest is not read), so the sum counts the bytes written, before they are."""
    total = 0
    for count, member in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise DataError(f"{name}: more than {MAX_MEMBERS} members; the official archive holds a few")
        total += member.size if member.isreg() else 0
        limit.check(name, total, "extracts to at least")
        yield member
