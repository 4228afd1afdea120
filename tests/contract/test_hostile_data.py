"""Hostile data and files (tests/hostile.py's promises): image folders of every shape, held to Keras'
own indexing; download servers that trickle, stall, truncate or serve the wrong file; model files that
are sparse, huge or not zips. Each case: the right error in one line, and nothing changed beside the
run (the data cache included: no partial file, no folder made for a download that failed).

In-process where the promise is the library's; three CLI runs prove the command's exit code, its one
stderr line and its quiet stdout."""
from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from keras.src.utils.dataset_utils import index_directory  # what image_dataset_from_directory lists
from keras.src.utils.image_dataset_utils import ALLOWLIST_FORMATS

from dnn_train import data
from dnn_train.config.files import source_file
from dnn_train.errors import ConfigError
from dnn_train.data import sources
from dnn_train.errors import DataError
from tests.conftest import make_cfg
from tests.datafiles import write_images
from tests.hostile import SMALL_RUN, Sandbox

FAST = [a for a in SMALL_RUN if not a.startswith("data")]  # SMALL_RUN without its data


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Sandbox:
    """A Sandbox whose environment (caches, home) this process uses too."""
    box = Sandbox(tmp_path)
    (box.root / "home").mkdir()
    for key, value in box.env.items():
        monkeypatch.setenv(key, value)
    return box


# ---------------------------------------------------------------- image folders
def _images(folder: Path, names, per_class=3, seed=0) -> None:
    if names:
        write_images(folder, classes=tuple(names), per_class=per_class, seed=seed)


# Things found beside or inside class folders; each gets the folder and the class names.
EXTRAS = {
    "plain": lambda d, names: None,
    "dot_folder": lambda d, names: _images(d, [".ipynb_checkpoints"], per_class=2),
    "dot_file": lambda d, names: (d / ".DS_Store").write_bytes(b"\0\1"),
    "non_image_file": lambda d, names: (d / "README.txt").write_text("my photos\n"),
    "nested": lambda d, names: names and (_images(d / names[0] / "sub", ["deep"], seed=1),
                                          _images(d / names[0], ["sub0"], per_class=1, seed=2)),
    "nested_dot": lambda d, names: names and _images(d / names[0], [".ipynb_checkpoints"], per_class=1),
    "empty_class": lambda d, names: (d / "gnu").mkdir(),
    "text_only_class": lambda d, names: ((d / "notes").mkdir(), (d / "notes" / "a.txt").write_text("x")),
}
SHAPES = list(itertools.product((0, 1, 2, 3), EXTRAS, ("flat", "train_test")))


def keras_index(folder: Path):
    """Keras' class names and per-class file counts for `folder` (what image_dataset_from_directory sees)."""
    _, labels, names = index_directory(str(folder), "inferred", formats=ALLOWLIST_FORMATS, shuffle=False,
                                       verbose=False)
    return names, np.bincount(np.asarray(labels, dtype=int), minlength=len(names))


@pytest.mark.parametrize("n_classes, extra, layout", SHAPES, ids=[f"{n}-{e}-{lay}" for n, e, lay in SHAPES])
def test_image_folder_shapes_follow_keras_or_are_refused_in_one_line(sandbox, n_classes, extra, layout):
    """Accepted: the class list is Keras' and every image Keras indexes is read. Refused (fewer than two
    classes, or a class without images): one line naming the folder (and the one class), nothing cached."""
    root = sandbox.root / "pictures"
    parts = [root / "train", root / "test"] if layout == "train_test" else [root]
    names = ["cat", "dog", "emu"][:n_classes]
    for i, part in enumerate(parts):
        part.mkdir(parents=True)
        _images(part, names, seed=i)
        EXTRAS[extra](part, names)
    keras = [keras_index(part) for part in parts]
    accepted = all(len(n) >= 2 and counts.min() > 0 for n, counts in keras)
    cfg = make_cfg("data=images", f"data.root={root}", "data.valid_split=2", "data.test_split=2").data
    sandbox.freeze()
    if accepted:
        s = data.load(cfg)
        assert s.class_names == keras[0][0]
        read = sum(np.bincount(y, minlength=s.num_classes) for y in (s.y_train, s.y_valid, s.y_test))
        assert read.tolist() == sum(counts for _, counts in keras).tolist()
        return
    with pytest.raises(DataError) as err:
        data.load(cfg)
    message = str(err.value)
    assert "\n" not in message and any(message.startswith(str(part)) for part in parts), message
    one = [n for n, _ in keras if len(n) == 1]
    if one:
        assert f"one class subfolder, {one[0][0]}" in message and "at least two" in message
    sandbox.check(None)  # refused before decoding: no cache entry


@pytest.mark.slow
def test_cli_one_class_beside_a_dot_folder_is_bad_input_before_training(sandbox):
    """The issue's case: cat/ beside .ipynb_checkpoints/ trained a two-class model to 0.0 accuracy."""
    root = sandbox.root / "pictures"
    _images(root, ["cat", ".ipynb_checkpoints"], per_class=4)
    (sandbox.cache / "keras").mkdir()  # Keras' import writes its keras.json there
    proc = sandbox.cli(*FAST, "data=images", f"data.root={root}", "data.valid_split=1", "data.test_split=1",
                       f"hydra.run.dir={sandbox.run}")
    line = sandbox.check(proc, 2, f"dnn_train: error: {root}: one class subfolder, cat (.ipynb_checkpoints skipped")
    assert "a classifier needs at least two" in line
    assert not sandbox.run.exists()


# ---------------------------------------------------------------- download servers
class Hung(BaseException):
    """Raised by `deadline` (not an Exception: no download code may catch it)."""


@contextmanager
def deadline(seconds: float):
    """A hang fails the test instead of holding it forever (the old code waited on a trickle for good)."""
    def ring(*_):
        raise Hung(f"still downloading after {seconds} s")
    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# How a server answers: (slow headers, Content-Length, bytes it sends, bytes a write, seconds between
# writes, then: "close" or "stall"), and the reason the one line must give.
SERVERS = {
    "trickle": ((False, 10**6, 10**6, 1, 0.02, "close"), "too slow: "),
    "trickle_headers": ((True, 10**6, 10**6, 1, 0.02, "close"), "too slow: "),
    "stall": ((False, 10**6, 1000, 1000, 0, "stall"), "timed out"),
    "truncate": ((False, 100_000, 30_000, 30_000, 0, "close"), "retrieval incomplete: got only 30000 out of 100000"),
    "wrong_file": ((False, 5000, 5000, 5000, 0, "close"), "hash does not match"),
}


@pytest.fixture
def hostile_server():
    """A loopback HTTP server answering every GET as `server.plan` says; ends its answers at teardown."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            slow_head, length, size, step, every, then = self.server.plan
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()
            stream, sent = head + b"\x1f\x8b" + os.urandom(size - 2), 0 if slow_head else len(head)
            try:
                self.wfile.write(stream[:sent])
                while sent < len(stream) and not stop.is_set():
                    self.wfile.write(stream[sent:sent + step])
                    self.wfile.flush()
                    sent += step
                    stop.wait(every)
                if then == "stall":
                    stop.wait()
            except OSError:
                pass  # the client gave up

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()  # shut down in 0.05 s, not 0.5
    httpd.url = f"http://127.0.0.1:{httpd.server_port}/"
    yield httpd
    stop.set()
    httpd.shutdown()
    httpd.server_close()


CACHE_STATES = ("empty", "holding_others")


def _fill_cache(sandbox: Sandbox, state: str) -> None:
    """What the cache held before: nothing, or other files (in the dataset's own folder too)."""
    if state == "holding_others":
        folder = sandbox.cache / "keras" / "datasets" / "fashion-mnist"
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("mine\n")
        (folder.parent / "other.npz").write_bytes(os.urandom(100))


@pytest.mark.parametrize("state", CACHE_STATES)
@pytest.mark.parametrize("kind", SERVERS)
def test_a_hostile_server_ends_the_download_in_one_line_and_leaves_the_cache_as_it_was(
        sandbox, hostile_server, monkeypatch, kind, state):
    monkeypatch.setattr(sources, "THROUGHPUT_WINDOW_S", 0.5, raising=False)  # 1 KB/s over 0.5 s
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT_S", 1)
    hostile_server.plan, reason = SERVERS[kind]
    _fill_cache(sandbox, state)
    sandbox.freeze()
    opener = getattr(urllib.request, "_opener", None)
    started = time.monotonic()
    with deadline(15), pytest.raises(DataError) as err:
        data.load(make_cfg("data=fashion_mnist", f"data.url={hostile_server.url}").data)
    message = str(err.value)
    assert time.monotonic() - started < 10
    assert "\n" not in message and f"the download from {hostile_server.url}train-images-idx3-ubyte.gz failed: " \
        in message and reason in message, message
    sandbox.check(None)  # no partial file, no folder made for it, the other files kept
    assert socket.getdefaulttimeout() is None and getattr(urllib.request, "_opener", None) is opener


def test_a_slow_but_steady_download_completes(sandbox, hostile_server, monkeypatch):
    """The floor is a floor: 20 KB/s over windows of 0.2 s passes (only the hash is wrong here)."""
    monkeypatch.setattr(sources, "THROUGHPUT_WINDOW_S", 0.2, raising=False)
    hostile_server.plan = (False, 40_000, 40_000, 1000, 0.05, "close")
    with deadline(15), pytest.raises(DataError, match="hash does not match"):
        data.load(make_cfg("data=fashion_mnist", f"data.url={hostile_server.url}").data)


@pytest.mark.slow
def test_cli_truncated_download_prints_one_line_and_no_progress_bar(sandbox, hostile_server):
    """Keras' progress bar (escapes, carriage returns, no final newline) used to precede the error line."""
    hostile_server.plan = SERVERS["truncate"][0]
    (sandbox.cache / "keras").mkdir()  # Keras' import writes its keras.json there
    proc = sandbox.cli(*FAST, "data=fashion_mnist", f"data.url={hostile_server.url}", "data.download=true",
                       f"hydra.run.dir={sandbox.run}", timeout=120)
    sandbox.check(proc, 2, "dnn_train: error: fashion_mnist: not found (looked in ")
    for residue in ("\x1b[", "\r", "\b", "━", "Downloading data from"):
        assert residue not in proc.stdout, repr(proc.stdout[-500:])
    assert not sandbox.run.exists()


# ---------------------------------------------------------------- model.init_from files
def _zip_bytes() -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"dnn_train_test_{os.getpid()}.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
    try:
        return path.read_bytes()
    finally:
        path.unlink()


MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
MODEL_FILES = {  # name -> (how it is made in an empty file, what the one line says it is)
    "sparse_20GB": (lambda f: os.truncate(f, 20 * 2**30), "21.5 GB, a sparse file: mostly holes, not a zip archive"),
    "empty": (lambda f: None, "0 bytes, not a zip archive"),
    "half_a_zip": (lambda f: f.write_bytes(_zip_bytes()[:40]), "40 bytes, not a zip archive"),
    "zip_larger_than_memory": (lambda f: (os.truncate(f, MEMORY), f.open("ab").write(_zip_bytes())),
                               "too large to load"),
}


@pytest.mark.parametrize("as_run_dir", [False, True], ids=["file", "run_dir"])
@pytest.mark.parametrize("kind", MODEL_FILES)
def test_model_init_from_a_sparse_huge_or_broken_file_is_named_as_what_it_is(tmp_path, kind, as_run_dir):
    """Keras calls all of these "File not found"; none uses disk (sparse files)."""
    make, says = MODEL_FILES[kind]
    folder = tmp_path / "earlier_run"
    folder.mkdir()
    (folder / "model.keras").touch()
    make(folder / "model.keras")
    given = folder if as_run_dir else folder / "model.keras"
    with pytest.raises(ConfigError) as err:
        source_file(str(given))
    message = str(err.value)
    assert message.startswith(f"model.init_from={given}: ") and says in message and "\n" not in message, message
    assert "not found" not in message.lower()


def test_cli_sparse_model_file_is_refused_before_tensorflow_loads(tmp_path):
    box = Sandbox(tmp_path / "box")
    model = tmp_path / "model.keras"  # outside the sandbox, whose snapshot would read all 20 GB
    model.touch()
    os.truncate(model, 20 * 2**30)
    started = time.monotonic()
    proc = box.cli(*SMALL_RUN, f"model.init_from={model}", f"hydra.run.dir={box.run}", timeout=60)
    box.check(proc, 2, f"dnn_train: error: model.init_from={model}: not a readable Keras model (model.keras: "
                       "21.5 GB, a sparse file: mostly holes, not a zip archive")
    assert not box.run.exists() and time.monotonic() - started < 30
