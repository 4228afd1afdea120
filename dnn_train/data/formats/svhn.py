"""SVHN's MATLAB files (X: 32 x 32 x 3 x N uint8, y: N x 1 labels 1..10, 10 for the digit 0), read
with scipy.io.loadmat once every size their variables' headers claim is within the dataset's Limit."""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import scipy.io

from dnn_train.data.errors import Limit
from dnn_train.data.formats.common import Arrays, check_labels, open_within
from dnn_train.data.sources import Found
from dnn_train.errors import DataError

_MI_MATRIX, _MI_COMPRESSED = 14, 15
_CLASS_BYTES = {6: 8, 7: 4, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4, 13: 4, 14: 8, 15: 8}  # MATLAB's numeric classes
_HEAD = 512  # bytes of a variable's (decompressed) start: its tag, flags, dimensions, name and data tag


def _claims(f, path: Path, limit: Limit) -> dict[str, tuple]:
    """{name: shape} of a MAT 5 file's variables, read from their headers (a compressed one's first bytes
    only), each size claimed there (the element's, the shape's, the data's) checked against `limit`."""
    header = f.read(128)
    if len(header) < 128 or header[126:128] not in (b"IM", b"MI") or header[124:126] not in (b"\x00\x01", b"\x01\x00"):
        raise DataError(f"{path}: not a MATLAB 5 file (SVHN's .mat files are)")
    order = "<" if header[126:128] == b"IM" else ">"
    shapes = {}
    while len(tag := f.read(8)) == 8:
        kind, nbytes = struct.unpack(order + "II", tag)
        start = f.tell()
        if kind == _MI_COMPRESSED:
            head = zlib.decompressobj().decompress(f.read(min(nbytes, _HEAD)), _HEAD)
        else:
            head = tag + f.read(min(nbytes, _HEAD))
        f.seek(start + nbytes + (-nbytes % 8 if kind != _MI_COMPRESSED else 0))
        words = lambda at, n: struct.unpack_from(f"{order}{n}I", head, at)  # noqa: E731
        kind, nbytes, _, _, flags, _, _, dims_bytes = words(0, 8)
        if kind != _MI_MATRIX or flags & 0xFF not in _CLASS_BYTES or flags & 0x800:
            raise DataError(f"{path}: a variable that is not a real numeric array")
        shape = struct.unpack_from(f"{order}{dims_bytes // 4}i", head, 32)
        at = 32 + dims_bytes + -dims_bytes % 8
        name_tag, = words(at, 1)
        if name_tag >> 16:  # a small element: its length in the tag's upper half, its bytes in the next four
            name, at = head[at + 4:at + 4 + (name_tag >> 16)], at + 8
        else:
            length, = words(at + 4, 1)
            name, at = head[at + 8:at + 8 + length], at + 8 + length + -length % 8
        data_tag, data_bytes = words(at, 2)
        for claimed in (nbytes, math.prod(shape) * _CLASS_BYTES[flags & 0xFF], 0 if data_tag >> 16 else data_bytes):
            limit.check(path, claimed, "claims an array of")
        shapes[name.decode("latin1")] = shape
    return shapes


def _read_mat(path: Path, limit: Limit, classes: list) -> tuple[np.ndarray, np.ndarray]:
    """One file's images (N, 32, 32, 3) and labels (10 read as the digit 0)."""
    try:
        with open_within(path, limit) as f:
            shapes = _claims(f, path, limit)
            if len(shapes.get("X", ())) != 4 or shapes["X"][:3] != (32, 32, 3) or "y" not in shapes:
                raise DataError(f"{path}: not an SVHN file (X of 32 x 32 x 3 x N images and y expected, found "
                                f"{', '.join(f'{k} {v}' for k, v in shapes.items()) or 'nothing'})")
            f.seek(0)
            mat = scipy.io.loadmat(f, variable_names=("X", "y"))
    except DataError:  # a ValueError, which the next line would reword
        raise
    except (OSError, ValueError, TypeError, EOFError, struct.error, zlib.error) as ex:
        raise DataError(f"{path}: not a readable SVHN file ({' '.join(str(ex).split())})") from None
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.dtype != np.uint8 or len(y) != x.shape[3]:
        raise DataError(f"{path}: {x.shape[3]} images of {x.dtype} but {len(y)} labels (uint8 images expected)")
    if y.size and np.issubdtype(y.dtype, np.floating) and np.array_equal(y, np.round(y)):
        y = y.astype(np.int64)  # MATLAB's doubles, whole numbers
    if np.issubdtype(y.dtype, np.integer):
        if y.size and (int(y.min()) < 1 or int(y.max()) > 10):
            raise DataError(f"{path}: label {int(y.min()) if y.min() < 1 else int(y.max())} out of range 1-10 "
                            "(SVHN's labels: 10 for the digit 0)")
        y = y % 10
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), check_labels(y, len(classes), path)


def read_svhn(found: Found, data_cfg, classes: list, limit: Limit) -> Arrays:
    """The layout's train and test files, and the extra images (its third file, data.extra) added to training."""
    train, test, *extra = (_read_mat(found.folder / f, limit, classes) for f in found.layout.files)
    if extra:
        train = tuple(np.concatenate([a, b]) for a, b in zip(train, extra[0]))
    return Arrays(*train, *test, classes)
