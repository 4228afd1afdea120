"""Keras' mnist.npz: its four arrays read without pickle, each .npy header's claim checked first."""
from __future__ import annotations

import codecs
import math
import zipfile

import numpy as np

from dnn_train.data.errors import Limit
from dnn_train.data.formats.common import Arrays, check_labels, matching, open_within
from dnn_train.data.sources import Found
from dnn_train.errors import DataError

codecs.lookup("cp437")  # a zip's member names: the codec loaded now rather than in the reading thread
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_npy(member, what: str, limit: Limit) -> np.ndarray:
    """One array of an .npz (as np.load reads it, without pickle), its header's claim checked first."""
    version = np.lib.format.read_magic(member)
    if version not in _NPY_HEADERS:
        raise ValueError(f"{what}: .npy format version {version}")
    shape, _, dtype = _NPY_HEADERS[version](member)
    limit.check(what, math.prod(shape) * dtype.itemsize)
    member.seek(0)
    return np.lib.format.read_array(member, allow_pickle=False)


def read_mnist_npz(found: Found, data_cfg, classes: list, limit: Limit) -> Arrays:
    path = found.folder / found.layout.files[0]
    try:
        with open_within(path, limit) as file, zipfile.ZipFile(file) as z:
            arrays = {}
            for k in ("x_train", "y_train", "x_test", "y_test"):
                with z.open(f"{k}.npy") as member:
                    arrays[k] = _read_npy(member, f"{path} ({k})", limit)
    except DataError:  # a ValueError, which the next line would reword
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as ex:
        raise DataError(f"{path}: not Keras' mnist.npz ({' '.join(str(ex).split())})") from None
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3:
            raise DataError(f"{path}: x_{split} is not a uint8 array of N images (found {x.dtype} {x.shape})")
        arrays[f"y_{split}"] = check_labels(arrays[f"y_{split}"], len(classes), f"{path} (y_{split})")
        matching(x, arrays[f"y_{split}"], f"{path} ({split})")
    return Arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], classes)
