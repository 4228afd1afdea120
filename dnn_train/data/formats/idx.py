"""IDX files (MNIST, Fashion-MNIST, data=synthetic): read streamed within the dataset's Limit, and written."""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from dnn_train.data.errors import Limit
from dnn_train.data.formats.common import Arrays, check_labels, open_within
from dnn_train.data.sources import Found
from dnn_train.errors import DataError

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path, limit: Limit) -> np.ndarray:
    """Read an IDX file (gzipped or not), streamed: the size its header claims is checked against `limit`
    before the data is read, and the reading stops one byte past that size."""
    try:
        with open_within(path, limit) as file, \
                (gzip.GzipFile(fileobj=file) if str(path).endswith(".gz") else file) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES or not 1 <= magic[3] <= 4:
                raise DataError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'})")
            dims = f.read(4 * magic[3])
            if len(dims) < 4 * magic[3]:
                raise DataError(f"{path}: truncated IDX header")
            shape = struct.unpack(f">{magic[3]}I", dims)
            expected = math.prod(shape) * np.dtype(_IDX_DTYPES[magic[2]]).itemsize
            limit.check(path, expected)
            raw = f.read(expected + 1)
    except (OSError, EOFError, zlib.error) as ex:
        raise DataError(f"{path}: cannot read IDX file ({ex})") from None
    if len(raw) != expected:
        raise DataError(f"{path}: IDX header says {shape} ({expected} bytes of data) but the file holds "
                        f"{'more' if len(raw) > expected else len(raw)}: truncated or corrupt")
    return np.frombuffer(raw, dtype=_IDX_DTYPES[magic[2]]).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the format of MNIST and Fashion-MNIST)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = Path(f"{path}.tmp{os.getpid()}")
    with gzip.open(tmp, "wb", compresslevel=1) as f:
        f.write(header + array.tobytes())
    os.replace(tmp, path)


def read_idx_set(found: Found, data_cfg, classes: list, limit: Limit) -> Arrays:
    """The layout's four files: train images, train labels, test images, test labels."""
    files = [found.folder / f for f in found.layout.files]
    x_train, y_train, x_test, y_test = (read_idx(path, limit) for path in files)
    out = []
    for x, y, labels_file in ((x_train, y_train, files[1]), (x_test, y_test, files[3])):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{labels_file}: images {x.shape} do not match labels {y.shape}")
        out += [x, check_labels(y, len(classes), labels_file)]
    return Arrays(*out, classes)
