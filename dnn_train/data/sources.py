"""Where a dataset's files are looked for, and downloading them when none are found.

Search order: data.root (the folder holding the files, or its parent), the Keras cache
($KERAS_HOME/datasets, default ~/.keras/datasets), then the system folders of the environment
variable DNN_TRAIN_SYSTEM_DATA_DIRS (colon-separated; default /usr/share/datasets; empty: none).
A data.root that holds part of a dataset is an error naming what is missing, never a reason to
read another copy. Locating only stats files; `download` is the one function that imports Keras,
and only the main thread calls it (see `dnn_train.data.preload`).
"""
from __future__ import annotations

import contextlib
import http.client
import io
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

from dnn_train.data.catalog import Dataset, Layout
from dnn_train.data.errors import Limit
from dnn_train.errors import DataError

log = logging.getLogger(__name__)

SYSTEM_DIRS_ENV = "DNN_TRAIN_SYSTEM_DATA_DIRS"
DEFAULT_SYSTEM_DIRS = "/usr/share/datasets"
DOWNLOAD_TIMEOUT_S = 20  # per connection attempt and per read: a dropped connection fails instead of hanging
# The slowest download that goes on: fewer bytes than MIN_BYTES_PER_S * THROUGHPUT_WINDOW_S in a window of
# THROUGHPUT_WINDOW_S seconds ends it (a server trickling a byte every few seconds never trips the per-read timeout).
MIN_BYTES_PER_S = 1024
THROUGHPUT_WINDOW_S = 30.0
PROGRESS_EVERY_S = 10.0  # a log line while a download goes on (Keras' own progress bar is silenced)
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


class TooSlow(OSError):
    """A download below the minimum throughput (an Exception: get_file then removes its partial file)."""


class _Throughput(io.RawIOBase):
    """A response's socket reads, counted: what urllib lacks is a floor on throughput (its timeout
    bounds each read alone). Ends the download with TooSlow when a window of THROUGHPUT_WINDOW_S
    seconds brought fewer than MIN_BYTES_PER_S * THROUGHPUT_WINDOW_S bytes; logs progress meanwhile."""

    def __init__(self, fp):
        super().__init__()
        self.fp = fp  # the response's own buffered socket file: closing it releases the socket
        self.start = self.window_start = self.logged = time.monotonic()
        self.total = self.window_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.fp.readinto1(buffer)
        now = time.monotonic()
        self.total += n or 0
        self.window_bytes += n or 0
        if now - self.window_start >= THROUGHPUT_WINDOW_S:
            if self.window_bytes < MIN_BYTES_PER_S * THROUGHPUT_WINDOW_S:
                raise TooSlow(f"too slow: {self.window_bytes} bytes in {now - self.window_start:.0f} s, below the "
                              f"minimum of {MIN_BYTES_PER_S} bytes/s over {THROUGHPUT_WINDOW_S:g} s")
            self.window_start, self.window_bytes = now, 0
        if now - self.logged >= PROGRESS_EVERY_S:
            self.logged = now
            log.info("downloading: %.1f MB received (%.2f MB/s)", self.total / 1e6, self.total / 1e6 / (now - self.start))
        return n

    def close(self) -> None:
        self.fp.close()
        super().close()


class _Response(http.client.HTTPResponse):
    def __init__(self, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = io.BufferedReader(_Throughput(self.fp))


_GUARDED = {cls: type(cls.__name__, (cls,), {"response_class": _Response})
            for cls in (http.client.HTTPConnection, http.client.HTTPSConnection)}


class _Guarded:
    """urllib's handlers, with connections whose responses are read through _Throughput."""

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_GUARDED.get(http_class, http_class), req, **kwargs)


class _GuardedHTTP(_Guarded, urllib.request.HTTPHandler):
    pass


class _GuardedHTTPS(_Guarded, urllib.request.HTTPSHandler):
    pass


@contextlib.contextmanager
def _guarded_downloads():
    """While it lasts: sockets time out after DOWNLOAD_TIMEOUT_S (urllib's default is to wait forever),
    urlopen (what get_file's urlretrieve calls) reads through _Throughput, and Keras' messages and progress
    bar, which it writes to stdout, are discarded (they would precede the error line of a failed download)."""
    previous_timeout, previous_opener = socket.getdefaulttimeout(), getattr(urllib.request, "_opener", None)
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    urllib.request.install_opener(urllib.request.build_opener(_GuardedHTTP, _GuardedHTTPS))
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            yield
    finally:
        urllib.request.install_opener(previous_opener)
        socket.setdefaulttimeout(previous_timeout)


def _entries(folder: Path) -> dict:
    """{name: (size, mtime)} of the files in `folder` (not followed)."""
    try:
        return {e.name: (e.stat(follow_symlinks=False).st_size, e.stat(follow_symlinks=False).st_mtime_ns)
                for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)}
    except OSError:
        return {}


def _missing_dirs(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    out = []
    while not os.path.lexists(folder) and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def _remove_if_empty(folders: list[Path]) -> None:
    for d in folders:
        with contextlib.suppress(OSError):
            d.rmdir()


def download(entry: Dataset, data_cfg) -> Found:
    """Fetch the official files with keras.utils.get_file into the Keras cache, each checked against
    its hash (data.sha256, else the official SHA-256 or MD5), archives extracted where Keras' own loaders
    extract them, within the dataset's Limit (`extract`). A failed download leaves the cache as it
    was: the file being fetched (partial, or failing its hash) and the folders made for it are removed.
    Imports Keras: call it from the main thread only, once TensorFlow is imported."""
    check_downloadable(entry, data_cfg)
    import keras

    spec = entry.download
    base = (data_cfg.url or spec.url).rstrip("/") + "/"
    hashes = {**spec.hashes, **(data_cfg.sha256 or {})}
    subdir = os.path.join("datasets", spec.subdir) if spec.subdir else "datasets"
    folder = keras_home() / subdir
    made, origin, before = _missing_dirs(folder), None, _entries(folder)
    try:
        with _guarded_downloads():
            keras_home().mkdir(parents=True, exist_ok=True)  # get_file falls back to /tmp/.keras if it does not exist
            for fname, file_hash in hashes.items():
                origin, before = base + fname, _entries(folder)
                log.info("%s: downloading %s", entry.name, origin)
                path = Path(keras.utils.get_file(  # an archive: kept where Keras' loaders keep it, extracted below
                    f"{spec.extract_to}_archive" if spec.extract_to else fname, origin=origin, file_hash=file_hash,
                    hash_algorithm="sha256" if len(file_hash) == 64 else "md5", cache_dir=str(keras_home()), cache_subdir=subdir))
    except Exception as ex:  # noqa: BLE001 - any failure here means: offline, blocked, or not the official file
        for name, stat in _entries(folder).items():  # get_file keeps a file that fails its hash: it must not
            if before.get(name) != stat:  # pass for a local copy; it removes a partial one itself
                (folder / name).unlink(missing_ok=True)
        _remove_if_empty(made)  # files that passed their hash stay cached
        reason = " ".join(str(ex).split()) or type(ex).__name__
        raise DataError(f"{_not_found(entry, data_cfg)} and the download from {origin} failed: {reason}; "
                        f"to provide it offline, {entry.offline}") from None
    if spec.extract_to:
        try:
            extract(path, path.parent / spec.extract_to, Limit.of(entry, data_cfg), fname)
        except DataError:
            _remove_if_empty(made)
            raise
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
