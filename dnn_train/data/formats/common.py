"""What every reader returns (Arrays) and the checks they share: labels, image/label counts, and
opening a file only once its size on disk is within the dataset's Limit."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from dnn_train.data.errors import Limit
from dnn_train.errors import DataError


class Arrays(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: Optional[np.ndarray]  # None: no official test split (held out by splits.make_splits)
    y_test: Optional[np.ndarray]
    classes: list


def check_labels(y, num_classes: int, path) -> np.ndarray:
    """Labels as a 1-D array of the smallest unsigned type; float or out-of-range labels are refused."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: labels must be a list of integers (found {y.dtype} of shape {y.shape})")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = int(y.max()) if int(y.max()) >= num_classes else int(y.min())
        raise DataError(f"{path}: label {bad} out of range for {num_classes} classes")
    return y.astype(np.uint8 if num_classes <= 256 else np.int32)


def open_within(path: Path, limit: Limit):
    """`path` opened for reading once its size on disk is within `limit`: every file a reader reads."""
    f = open(path, "rb")
    try:
        limit.check(path, os.fstat(f.fileno()).st_size, "holds")
    except DataError:
        f.close()
        raise
    return f


def matching(x: np.ndarray, y: np.ndarray, what) -> None:
    if len(x) != len(y):
        raise DataError(f"{what}: {len(x)} images but {len(y)} labels")
