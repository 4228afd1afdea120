"""The CIFAR-10 and CIFAR-100 pickles, read with an unpickler that accepts only what the official files hold."""
from __future__ import annotations

import codecs
import math
import pickle
from pathlib import Path

import numpy as np

from dnn_train.data.errors import Limit
from dnn_train.data.formats.common import Arrays, check_labels, matching, open_within
from dnn_train.data.sources import Found
from dnn_train.errors import DataError

codecs.lookup("latin1")  # the pickles' keys: the codec loaded now rather than in the reading thread


class _CifarUnpickler(pickle.Unpickler):
    """Unpickling runs code: accept only what the official CIFAR files contain (uint8 arrays, whose
    pickle allocates an empty array then fills it from the bytes that follow it in the file)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def __init__(self, file, path: Path, limit: Limit):
        super().__init__(file, encoding="bytes")
        self.path, self.limit = path, limit

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        found = super().find_class(module, name)
        if name == "dtype":
            return self._dtype
        if name == "_reconstruct":
            return lambda cls, shape, dtype: self._reconstruct(found, cls, shape, dtype)
        return found

    @staticmethod
    def _dtype(*args):
        """No arrays of objects: they would unpickle anything, and numpy crashes on a crafted one."""
        dtype = np.dtype(*args)
        if dtype.hasobject:
            raise pickle.UnpicklingError(f"refusing an array of {dtype}")
        return dtype

    def _reconstruct(self, found, cls, shape, dtype):
        """numpy's _reconstruct allocates the shape it is given (official files give 0): checked first."""
        self.limit.check(self.path, math.prod((shape,) if isinstance(shape, int) else shape) * np.dtype(dtype).itemsize,
                         "claims an array of")
        return found(cls, shape, dtype)


def read_pickle(path: Path, what: str, limit: Limit) -> dict:
    """A CIFAR pickle (protocol 2, bytes keys) as a dict with str keys, read with the restricted unpickler."""
    try:
        with open_within(path, limit) as f:
            content = _CifarUnpickler(f, path, limit).load()
    except DataError:  # a ValueError, which the next line would reword
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as ex:
        raise DataError(f"{path}: not a {what} ({ex})") from None
    except OSError as ex:
        raise DataError(f"{path}: cannot read ({ex})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: not a {what} (holds {type(content).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def cifar_images(batch: dict, path: Path, what: str) -> np.ndarray:
    """Channel-planar R, G, B rows of 3072 bytes -> (N, 32, 32, 3) uint8 images."""
    data = batch.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: not a {what} ('data' is not a uint8 array of N x 3072)")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _labelled(path: Path, key: str, num_classes: int, what: str, limit: Limit) -> tuple[np.ndarray, np.ndarray]:
    batch = read_pickle(path, what, limit)
    images = cifar_images(batch, path, what)
    if key not in batch:
        raise DataError(f"{path}: not a {what} (no '{key}')")
    labels = check_labels(batch[key], num_classes, path)
    matching(images, labels, path)
    return images, labels


def read_cifar10(found: Found, data_cfg, classes: list, limit: Limit) -> Arrays:
    """The layout's training batches, then its test batch (the last file)."""
    what = "CIFAR-10 batch"
    *train, test = (_labelled(found.folder / f, "labels", len(classes), what, limit) for f in found.layout.files)
    return Arrays(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), *test, classes)


def read_cifar100(found: Found, data_cfg, classes, limit: Limit) -> Arrays:
    """The layout's train, test and meta files; the labels and class names of data.label_mode."""
    mode = data_cfg.label_mode
    train, test, meta = (found.folder / f for f in found.layout.files)
    names = read_pickle(meta, "CIFAR-100 meta file", limit).get(f"{mode}_label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"{meta}: not a CIFAR-100 meta file (no '{mode}_label_names')")
    names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    what = "CIFAR-100 file"
    x_train, y_train = _labelled(train, f"{mode}_labels", len(names), what, limit)
    x_test, y_test = _labelled(test, f"{mode}_labels", len(names), what, limit)
    return Arrays(x_train, y_train, x_test, y_test, names)
