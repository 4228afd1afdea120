"""Tiny datasets written in each official on-disk format, for the loader and download tests."""
from __future__ import annotations

import io
import math
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import scipy.io
from omegaconf import OmegaConf
from PIL import Image

from dnn_train.data.catalog import DATASETS, IDX_FILES
from dnn_train.data.formats.idx import write_idx

CIFAR10_FILES = DATASETS["cifar10"].layouts[0].files


def write_fashion(folder: Path, n_train=60, n_test=20, classes=10, shape=(28, 28), seed=0) -> Path:
    """The four IDX files of (Fashion-)MNIST, random pixels, labels cycling through the classes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [rng.integers(0, 256, (n_train, *shape), dtype=np.uint8), (np.arange(n_train) % classes).astype(np.uint8),
              rng.integers(0, 256, (n_test, *shape), dtype=np.uint8), (np.arange(n_test) % classes).astype(np.uint8)]
    for fname, array in zip(IDX_FILES, arrays):
        write_idx(folder / fname, array)
    return folder


def write_mnist_npz(path: Path, n_train=60, n_test=20, y_dtype=np.uint8, y_offset=0) -> Path:
    """Keras' mnist.npz: x_train, y_train, x_test, y_test."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             y_train=(np.arange(n_train) % 10 + y_offset).astype(y_dtype),
             x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             y_test=(np.arange(n_test) % 10 + y_offset).astype(y_dtype))
    return path


def _cifar_pickle(path: Path, content: dict) -> None:
    path.write_bytes(pickle.dumps(content, protocol=2))


def write_cifar(folder: Path, per_batch=20, seed=0, labels=None) -> Path:
    """CIFAR-10 batches as the official ones: protocol-2 pickles, bytes keys, channel-planar uint8 rows."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR10_FILES:
        _cifar_pickle(folder / name, {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": list(labels) if labels is not None else [int(i % 10) for i in range(per_batch)],
            b"batch_label": name.encode()})
    _cifar_pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in DATASETS["cifar10"].classes]})
    return folder


def write_cifar100(folder: Path, n_train=200, n_test=100, seed=0) -> Path:
    """CIFAR-100's train, test and meta: fine labels 0..99, coarse label = fine // 5."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [int(i % 100) for i in range(n)]
        _cifar_pickle(folder / name, {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                      b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
                                      b"filenames": [f"{i}.png".encode() for i in range(n)]})
    _cifar_pickle(folder / "meta", {b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
                                    b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)]})
    return folder


def write_images(folder: Path, classes=("cat", "dog", "emu"), per_class=6, size=(12, 10), fmt="png",
                 seed=0) -> Path:
    """DIR/<class>/<i>.<fmt>: each class a colour (class index * 80 in one channel) plus a little noise."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.full((*size, 3), 40, dtype=np.uint8)
            pixels[..., c % 3] = 40 + 80 * (c // 3 + 1)
            pixels = np.clip(pixels + rng.integers(-5, 6, pixels.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i:03d}.{fmt}")
    return folder


def tar_gz(path: Path, folder: Path, arcname: str) -> Path:
    """`folder` packed as `arcname/` into a tar.gz, like the official CIFAR archives."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    path.write_bytes(buffer.getvalue())
    return path


def write_svhn(folder: Path, n_train=60, n_test=20, n_extra=30, seed=0, y_dtype=np.uint8) -> Path:
    """SVHN's train, test and extra .mat files as the official ones (MATLAB 5, compressed): X of 32 x 32 x 3
    x N uint8 images, y of N x 1 labels 1..10 (10: the digit 0), cycling through the digits."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test), ("extra_32x32.mat", n_extra)):
        scipy.io.savemat(folder / name, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                         "y": (np.arange(n) % 10 + 1).reshape(-1, 1).astype(y_dtype)},
                         do_compression=True)
    return folder


def mat_bomb(path: Path, shape) -> Path:
    """A MATLAB 5 file whose one compressed variable X claims `shape` (uint8) and holds a few bytes."""
    def element(kind: int, data: bytes) -> bytes:
        return struct.pack("<II", kind, len(data)) + data + bytes(-len(data) % 8)

    dims = struct.pack(f"<{len(shape)}i", *shape)
    body = element(6, struct.pack("<II", 9, 0)) + element(5, dims) + element(1, b"X") + \
        struct.pack("<II", 2, min(math.prod(shape), 2**32 - 1)) + bytes(64)  # miUINT8 data claiming the shape's bytes
    compressed = zlib.compress(struct.pack("<II", 14, len(body)) + body)
    header = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + struct.pack("<II", 15, len(compressed)) + compressed)
    return path


def layouts(name: str) -> tuple:
    """The layouts of dataset `name` of the catalog, its keys at their defaults."""
    return DATASETS[name].configured(OmegaConf.structured(DATASETS[name].keys)).layouts


def write_dataset(name: str, root: Path, layout: int = 0) -> Path:
    """Dataset `name` of the catalog, tiny, in the files of its `layout` under `root`; returns its data.root."""
    layout = layouts(name)[layout]
    folder = root if layout.folders[0] == "." else root / layout.folders[0]
    return WRITERS[layout.reader](folder)


# Every way a dataset of the catalog lies on disk, (name, layout index): each is written and read.
LAYOUTS = [(name, i) for name, d in DATASETS.items() if not d.generated for i in range(len(layouts(name)))]
# Each reader of the catalog's layouts: a writer of a tiny set in its format (a test checks none is missing).
WRITERS = {
    "idx.read_idx_set": write_fashion,
    "npz.read_mnist_npz": lambda folder: write_mnist_npz(folder / "mnist.npz").parent,
    "cifar.read_cifar10": write_cifar,
    "cifar.read_cifar100": write_cifar100,
    "images.read_images": lambda folder: write_images(folder, per_class=12),
    "svhn.read_svhn": write_svhn,
}


# ---------------------------------------------------------------- bombs: a few MB on disk, GBs decompressed
def _deflated(pieces) -> tuple[bytes, int, int]:
    """A raw deflate stream of `pieces`, (bytes, times) pairs: each piece compressed once, then repeated.
    Each is full-flushed (byte-aligned, no reference to what came before), so copies concatenate into
    one valid stream: a gigabyte of zeros costs a CRC pass, not a compression pass. Returns the stream,
    the CRC-32 and the length of what it decompresses to."""
    out, crc, size = [], 0, 0
    for data, times in pieces:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)
        out.append(block * times)
        for _ in range(times):
            crc = zlib.crc32(data, crc)
        size += len(data) * times
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out.append(c.flush(zlib.Z_FINISH))  # the final (empty) block
    return b"".join(out), crc, size


def gzip_bomb(path: Path, head: bytes, zeros: int) -> Path:
    """A gzip file of `head` then `zeros` zero bytes (whole MiB), a thousandth of that on disk."""
    stream, crc, size = _deflated([(head, 1), (bytes(1 << 20), zeros >> 20)])
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + stream + struct.pack("<II", crc, size % 2**32))
    return path


def idx_header(shape) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def npy_header(shape, descr="|u1") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def write_zip(path: Path, members: dict) -> Path:
    """A zip of deflated members, {name: [(bytes, times), ...]} (see _deflated), written by hand:
    zipfile compresses what it is given, and would take seconds over a bomb."""
    local, central = io.BytesIO(), io.BytesIO()
    for name, pieces in members.items():
        stream, crc, size = _deflated(pieces)
        fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(stream), size) + struct.pack("<H", len(name))
        central.write(struct.pack("<IH", 0x02014B50, 20) + fields + struct.pack("<HHHHII", 0, 0, 0, 0, 0,
                                                                                 local.tell()) + name.encode())
        local.write(struct.pack("<I", 0x04034B50) + fields + struct.pack("<H", 0) + name.encode() + stream)
    n = len(members)
    path.write_bytes(local.getvalue() + central.getvalue() + struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, n, n, central.tell(), local.tell(), 0))
    return path


def npz_bomb(path: Path, x_train_shape, x_train_data: list, n_test=20) -> Path:
    """Keras' mnist.npz whose x_train header says `x_train_shape` and whose data is `x_train_data`
    ((bytes, times) pieces); the other arrays are honest."""
    rng = np.random.default_rng(0)
    honest = {"y_train": (np.arange(60) % 10).astype(np.uint8), "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "y_test": (np.arange(n_test) % 10).astype(np.uint8)}
    members = {"x_train.npy": [(npy_header(x_train_shape), 1), *x_train_data]}
    members.update({f"{k}.npy": [(npy_header(v.shape) + v.tobytes(), 1)] for k, v in honest.items()})
    return write_zip(path, members)


def tar_gz_bomb(path: Path, member: str, zeros: int) -> Path:
    """A tar.gz holding one file `member` of `zeros` zero bytes (whole MiB)."""
    info = tarfile.TarInfo(member)
    info.size = zeros
    head = info.tobuf(format=tarfile.GNU_FORMAT)
    stream, crc, size = _deflated([(head, 1), (bytes(1 << 20), zeros >> 20), (bytes(2 * tarfile.RECORDSIZE), 1)])
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + stream + struct.pack("<II", crc, size % 2**32))
    return path
