"""From a dataset's arrays to train / valid / test splits: the held-out test set when the files have
no official one, data.classes / data.binary, the validation split, class-balanced slices, and the
training split's per-feature statistics (data.standardize)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import numpy.ma  # noqa: F401 - numpy loads these at first use (np.unique, default_rng): here, so that
import numpy.random  # noqa: F401 - the preload thread imports nothing (see dnn_train/data/formats/)

from dnn_train.errors import DataError


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    source: str  # where the files were read from

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


def balanced_indices(y: np.ndarray, size: Optional[int], rng: np.random.Generator) -> np.ndarray:
    """A class-balanced random subset of `size` indices (all, shuffled, if size is None)."""
    if size is None or size >= len(y):
        return rng.permutation(len(y))
    classes = np.unique(y)
    per_class = np.full(len(classes), size // len(classes))
    per_class[: size % len(classes)] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, per_class)]
    return rng.permutation(np.concatenate(chosen))


def split_count(value, total: int, key: str, source: str) -> int:
    """data.valid_split / data.test_split: a count (>= 1), or a fraction (< 1) of the `total` images."""
    count = int(round(value * total)) if value < 1 else int(value)
    if count != value and value >= 1:
        raise DataError(f"{key}={value}: a count must be an integer (or give a fraction < 1)")
    if not 1 <= count < total:
        raise DataError(f"{key}={value}: {count} of the {total} images of {source}; it must leave at least "
                        "one image on each side")
    return count


def class_indices(wanted, names: list[str], key: str) -> list[int]:
    """Class names (case-insensitive) or indices -> indices, e.g. [sandal, 6] -> [5, 6]."""
    lookup = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for item in wanted:
        text = str(item).strip()
        index = int(text) if text.isdigit() else lookup.get(text.lower())
        if index is None or not 0 <= index < len(names):
            raise DataError(f"{key}: unknown class {item!r}; valid: {', '.join(names)} (or 0-{len(names) - 1})")
        if index in out:
            raise DataError(f"{key}: class {names[index]!r} given twice")
        out.append(index)
    return out


def select_classes(x: np.ndarray, y: np.ndarray, keep: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Only the examples of the `keep` classes, relabelled 0..len(keep)-1 in that order."""
    relabel = np.zeros(max(keep) + 1, dtype=y.dtype)
    relabel[keep] = np.arange(len(keep))
    mask = np.isin(y, keep)
    return x[mask], relabel[y[mask]]


def make_splits(arrays, data_cfg, source: str) -> Splits:
    """Train / valid / test from a reader's Arrays, as data_cfg says (all choices fixed by data.split_seed)."""
    x_full, y_full, x_test, y_test, classes = arrays
    if x_test is None:  # no official test split: hold out a class-balanced one, the same whatever follows
        held = balanced_indices(y_full, split_count(data_cfg.test_split, len(y_full), "data.test_split", "the folder"),
                                np.random.default_rng([data_cfg.split_seed, 1]))
        rest = np.setdiff1d(np.arange(len(y_full)), held)
        x_test, y_test, x_full, y_full = x_full[held], y_full[held], x_full[rest], y_full[rest]
    subset, key = (data_cfg.binary, "data.binary") if data_cfg.binary is not None else (data_cfg.classes, "data.classes")
    if subset is not None:
        keep = class_indices(subset, list(classes), key)
        (x_full, y_full), (x_test, y_test) = select_classes(x_full, y_full, keep), select_classes(x_test, y_test, keep)
        classes = [classes[i] for i in keep]
    rng = np.random.default_rng(data_cfg.split_seed)
    valid_idx = balanced_indices(y_full, split_count(data_cfg.valid_split, len(y_full), "data.valid_split",
                                                     "the training set"), rng)
    train_idx = rng.permutation(np.setdiff1d(np.arange(len(y_full)), valid_idx))
    train_idx = train_idx[balanced_indices(y_full[train_idx], data_cfg.train_size, rng)]
    valid_idx = valid_idx[balanced_indices(y_full[valid_idx], data_cfg.valid_size, rng)]
    test_idx = balanced_indices(y_test, data_cfg.test_size, rng)
    return Splits(x_full[train_idx], y_full[train_idx], x_full[valid_idx], y_full[valid_idx],
                  x_test[test_idx], y_test[test_idx], list(classes), source)


def feature_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance of uint8 images scaled to [0, 1], without a float copy."""
    n = len(x)
    flat = x.reshape(n, -1)
    total = np.zeros(flat.shape[1])
    total_sq = np.zeros(flat.shape[1])
    for i in range(0, n, chunk):
        block = flat[i:i + chunk].astype(np.float64) / 255.0
        total += block.sum(0)
        total_sq += (block ** 2).sum(0)
    mean = total / n
    return mean, np.maximum(total_sq / n - mean ** 2, 0.0)
