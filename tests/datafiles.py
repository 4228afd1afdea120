"""Tiny datasets written in each official on-disk format, for the loader and download tests."""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from dnn_train.data.catalog import DATASETS, IDX_FILES
from dnn_train.data.formats import write_idx

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
