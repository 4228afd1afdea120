"""Bombs (tests/hostile.py's promises), through the real command: a file of a few hundred KB or a
couple of MB that claims, or decompresses to, a gigabyte or far more. One per format the command
reads: an .npz whose header lies, an .npz and an IDX .gz that decompress to 1 GiB, and a CIFAR-10
tar.gz that expands to 1 GiB, downloaded from a loopback server with data.url and its data.sha256.
Each: exit 2 and one line naming the file and both sizes, no run directory, nothing changed beside
it (the data cache included: no archive, no partial or temporary folder), and a peak memory within
the dataset's limit of what importing TensorFlow alone takes. Bombs of every kind are also read
in-process (tests/unit/data/test_data.py); these four prove the command end to end."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dnn_train.data.catalog import DATASETS, IDX_FILES
from tests.conftest import REPO
from tests.datafiles import gzip_bomb, idx_header, npz_bomb, tar_gz_bomb, write_fashion
from tests.hostile import SMALL_RUN, Sandbox

FAST = [a for a in SMALL_RUN if not a.startswith("data")]
MiB = 1 << 20
GiB = 1 << 30


def _peak_rss(command: list, **kwargs) -> tuple[subprocess.CompletedProcess, int]:
    """Run `command`; its result and its own peak resident memory in bytes (wait4's rusage: this child
    only, not the largest of every child this process ever had, as RUSAGE_CHILDREN would give)."""
    with open(os.devnull, "w") as devnull, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=devnull, stderr=err, text=True, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return subprocess.CompletedProcess(command, proc.returncode, "", err.read()), usage.ru_maxrss * 1024


@pytest.fixture(scope="module")
def tensorflow_rss() -> int:
    """What importing TensorFlow and Keras alone takes: the floor of any run's memory."""
    proc, rss = _peak_rss([sys.executable, "-c", "import tensorflow, keras"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return rss


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()  # shut down in 0.05 s, not 0.5
    httpd.folder, httpd.url = served, f"http://127.0.0.1:{httpd.server_port}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


# Each bomb: (dataset, its overrides, the file the line must name), made in the sandbox's data folder.
def _npz_header_lie(box, server):
    return "mnist", [f"data.root={box.root / 'data'}"], npz_bomb(box.root / "data" / "mnist.npz", (127551021, 28, 28),
                                                                 [(os.urandom(80_000), 1)])


def _npz_deflate_bomb(box, server):
    return "mnist", [f"data.root={box.root / 'data'}"], npz_bomb(box.root / "data" / "mnist.npz",
                                                                 (GiB // 784, 28, 28), [(bytes(MiB), 1024)])


def _idx_gzip_bomb(box, server):
    folder = write_fashion(box.root / "data" / "fashion-mnist")
    return "fashion_mnist", [f"data.root={box.root / 'data'}"], gzip_bomb(folder / IDX_FILES[0],
                                                                          idx_header((GiB // 784, 28, 28)), GiB)


def _tar_gz_bomb(box, server):
    archive = tar_gz_bomb(server.folder / "cifar-10-python.tar.gz", "cifar-10-batches-py/data_batch_1", GiB)
    (box.cache / "keras" / "datasets").mkdir()  # a Keras cache as it is after any earlier download
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    return "cifar10", [f"data.url={server.url}", f"data.sha256={{cifar-10-python.tar.gz:'{sha256}'}}"], \
        "cifar-10-python.tar.gz"


BOMBS = {f.__name__.lstrip("_"): f for f in (_npz_header_lie, _npz_deflate_bomb, _idx_gzip_bomb, _tar_gz_bomb)}


@pytest.mark.slow
@pytest.mark.parametrize("bomb", BOMBS)
def test_a_bomb_is_refused_in_one_line_within_memory_and_leaves_nothing(tmp_path, server, tensorflow_rss, bomb):
    box = Sandbox(tmp_path / "box")
    (box.cache / "keras").mkdir()  # Keras' import writes its keras.json there
    (box.root / "data").mkdir()
    name, overrides, path = BOMBS[bomb](box, server)
    box.freeze()
    env = {k: v for k, v in os.environ.items() if k not in ("DNN_TRAIN_DEBUG", "HYDRA_FULL_ERROR")}
    proc, rss = _peak_rss([sys.executable, "-m", "dnn_train", f"data={name}", *overrides, *FAST, f"hydra.run.dir={box.run}"],
                          cwd=box.root, env={**env, "PYTHONPATH": str(REPO), **box.env})
    line = box.check(proc, 2, f"dnn_train: error: {path}")
    limit = DATASETS[name].max_bytes(None)
    # The memory a refusal costs beyond TensorFlow's import: the dataset's limit at most (256 MiB for
    # the command's own modules and the allocator's slack); the bomb would cost a gigabyte or more.
    assert rss - tensorflow_rss < limit + 256 * MiB, f"{rss / MiB:.0f} MiB, TensorFlow alone {tensorflow_rss / MiB:.0f} MiB"
    assert re.search(rf": (claims|extracts to at least) [\d,]+ bytes, more than the {limit:,} bytes a file of {name} "
                     "may hold", line), line
    assert not box.run.exists()
