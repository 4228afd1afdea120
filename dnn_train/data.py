"""Datasets: read the official file formats, split, slice, and feed them to Keras as uint8.

Fashion-MNIST is read from its IDX `.gz` files and CIFAR-10 from its `cifar-10-batches-py`
pickles, looked for in `data.root`, the Keras cache and Debian's /usr/share/datasets; when none
is found they are downloaded through `keras.datasets`. Images stay uint8 in memory: the model
scales them (a Rescaling layer), so no float32 copy of a dataset is ever made.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dnn_train.config import ConfigError

log = logging.getLogger(__name__)

FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]
SYSTEM_DIRS = [Path("/usr/share/datasets")]
HOW_TO_PROVIDE = {
    "fashion_mnist": "put the four official *-ubyte.gz files in DIR/fashion-mnist/ and pass "
                     "data.root=DIR (or `apt-get install dataset-fashion-mnist`)",
    "cifar10": "extract the official cifar-10-python.tar.gz into DIR (giving DIR/cifar-10-batches-py/) "
               "and pass data.root=DIR",
}


class DataError(ConfigError):
    """Data missing or malformed: reported as one line."""


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


# ---------------------------------------------------------------- file formats
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not), checking its magic number and size."""
    try:
        raw = Path(path).read_bytes()
        if str(path).endswith(".gz"):
            raw = gzip.decompress(raw)  # one call: it lets other threads run (see `preload`)
    except (OSError, EOFError, zlib.error) as ex:
        raise DataError(f"{path}: cannot read IDX file ({ex})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or not 1 <= raw[3] <= 4:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header says {shape} ({expected} bytes of data) but the file "
                        f"holds {len(raw) - header}: truncated or corrupt")
    return np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the format of Fashion-MNIST)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = Path(f"{path}.tmp{os.getpid()}")
    with gzip.open(tmp, "wb", compresslevel=1) as f:
        f.write(header + array.tobytes())
    os.replace(tmp, path)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickling runs code: accept only what the official CIFAR batches contain."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path) -> dict:
    """Read one CIFAR-10 pickle batch safely; returns {'data': (N,32,32,3) uint8, 'labels': (N,)}."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as ex:
        raise DataError(f"{path}: not a CIFAR-10 batch ({ex})") from None
    except OSError as ex:
        raise DataError(f"{path}: cannot read ({ex})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (holds {type(batch).__name__}, not a dict)")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "label_names" in batch:
        return batch
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: not a CIFAR-10 batch ('data' is not a uint8 array of N x 3072)")
    labels = np.asarray(labels)
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {data.shape[0]} images but {labels.size} labels")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return {"data": np.ascontiguousarray(images), "labels": labels.astype(np.uint8)}


# ---------------------------------------------------------------- where the files are
def keras_datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


def search_roots(root: Optional[str]) -> list[Path]:
    roots = [Path(root).expanduser()] if root else []
    return roots + [keras_datasets_dir()] + SYSTEM_DIRS


def candidate_dirs(name: str, root: Optional[str]) -> list[Path]:
    subdirs = {"fashion_mnist": ["fashion-mnist", "."],
               "cifar10": ["cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py", "."]}[name]
    return [(r / s) if s != "." else r for r in search_roots(root) for s in subdirs]


def _has_files(folder: Path, name: str) -> bool:
    needed = FASHION_FILES.values() if name == "fashion_mnist" else CIFAR_TRAIN + ["test_batch"]
    return all((folder / f).is_file() for f in needed)


def locate(name: str, root: Optional[str]) -> Optional[Path]:
    return next((d for d in candidate_dirs(name, root) if _has_files(d, name)), None)


# ---------------------------------------------------------------- loading
def _check_labels(y: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    if y.size and int(y.max()) >= num_classes:
        raise DataError(f"{where}: label {int(y.max())} out of range for {num_classes} classes")
    return y


def read_fashion_dir(folder: Path, num_classes: int = 10) -> tuple:
    arrays = {k: read_idx(folder / f) for k, f in FASHION_FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{folder}: {split} images {x.shape} do not match labels {y.shape}")
        _check_labels(y, num_classes, str(folder / FASHION_FILES[f"y_{split}"]))
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def read_cifar_dir(folder: Path) -> tuple:
    batches = [read_cifar_batch(folder / f) for f in CIFAR_TRAIN]
    test = read_cifar_batch(folder / "test_batch")
    x_train = np.concatenate([b["data"] for b in batches])
    y_train = np.concatenate([b["labels"] for b in batches])
    for y, f in ((y_train, "data_batch_*"), (test["labels"], "test_batch")):
        _check_labels(y, 10, str(folder / f))
    return x_train, y_train, test["data"], test["labels"]


def _download(name: str) -> tuple:
    import keras  # imported here: only needed when nothing is on disk

    log.info("no local copy of %s found; downloading through keras.datasets", name)
    module = keras.datasets.fashion_mnist if name == "fashion_mnist" else keras.datasets.cifar10
    (x_train, y_train), (x_test, y_test) = module.load_data()
    return x_train, y_train.reshape(-1).astype(np.uint8), x_test, y_test.reshape(-1).astype(np.uint8)


def load_arrays(data_cfg) -> tuple[tuple, list, str]:
    """(x_train, y_train, x_test, y_test), class names and source for the configured dataset."""
    name = data_cfg.name
    if name == "synthetic":
        folder = synthetic_dir(data_cfg)
        classes = [f"class{i}" for i in range(data_cfg.synthetic.num_classes)]
        return read_fashion_dir(folder, len(classes)), classes, str(folder)
    if data_cfg.root and not Path(data_cfg.root).expanduser().is_dir():  # a typo must not fall back silently
        raise DataError(f"data.root={data_cfg.root}: no such directory; give the folder holding the {name} files "
                        "(or leave data.root unset to use the Keras cache and /usr/share/datasets)")
    folder = locate(name, data_cfg.root)
    if folder is not None:
        arrays = read_fashion_dir(folder) if name == "fashion_mnist" else read_cifar_dir(folder)
        return arrays, FASHION_CLASSES if name == "fashion_mnist" else CIFAR_CLASSES, str(folder)
    looked = ", ".join(str(d) for d in candidate_dirs(name, data_cfg.root))
    if data_cfg.download:
        try:
            return _download(name), FASHION_CLASSES if name == "fashion_mnist" else CIFAR_CLASSES, "keras.datasets"
        except Exception as ex:  # noqa: BLE001 - any download failure means: offline or blocked
            raise DataError(f"{name} not found (looked in {looked}) and the download failed "
                            f"({str(ex).splitlines()[0][:120]}); to provide it offline, "
                            f"{HOW_TO_PROVIDE[name]}") from None
    raise DataError(f"{name} not found (looked in {looked}) and data.download=false; "
                    f"{HOW_TO_PROVIDE[name]}")


def balanced_indices(y: np.ndarray, size: Optional[int], rng: np.random.Generator) -> np.ndarray:
    """A class-balanced random subset of `size` indices (all, shuffled, if size is None)."""
    if size is None or size >= len(y):
        return rng.permutation(len(y))
    classes = np.unique(y)
    per_class = np.full(len(classes), size // len(classes))
    per_class[: size % len(classes)] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:n] for c, n in zip(classes, per_class)]
    return rng.permutation(np.concatenate(chosen))


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
    relabel = np.full(256, 255, dtype=np.uint8)
    relabel[keep] = np.arange(len(keep))
    mask = np.isin(y, keep)
    return x[mask], relabel[y[mask]]


_preloading: dict = {}  # the config's YAML -> (thread, result box), for `load` to pick up


def preload(data_cfg) -> None:
    """Start loading the dataset in a thread (start-up: the files are read and unzipped while the
    main thread imports TensorFlow); `load` with the same config waits for it and returns its
    result, or raises its error."""
    from omegaconf import OmegaConf

    box: dict = {}

    def work():
        try:
            box["splits"] = _load(data_cfg)
        except Exception as ex:  # noqa: BLE001 - handed to `load`, which raises it in the main thread
            box["error"] = ex

    thread = threading.Thread(target=work, name="dnn_train-preload", daemon=True)
    _preloading[OmegaConf.to_yaml(data_cfg)] = (thread, box)
    thread.start()


def discard_preloaded() -> None:
    _preloading.clear()


def load(data_cfg) -> Splits:
    """Load the configured dataset and return its train / valid / test splits (uint8 images)."""
    from omegaconf import OmegaConf

    started = _preloading.pop(OmegaConf.to_yaml(data_cfg), None) if _preloading else None
    if started is None:
        return _load(data_cfg)
    thread, box = started
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["splits"]


def _load(data_cfg) -> Splits:
    (x_full, y_full, x_test, y_test), classes, source = load_arrays(data_cfg)
    subset, key = (data_cfg.binary, "data.binary") if data_cfg.binary is not None else (data_cfg.classes, "data.classes")
    if subset is not None:
        keep = class_indices(subset, list(classes), key)
        (x_full, y_full), (x_test, y_test) = select_classes(x_full, y_full, keep), select_classes(x_test, y_test, keep)
        classes = [classes[i] for i in keep]
    rng = np.random.default_rng(data_cfg.split_seed)
    if data_cfg.valid_split >= len(y_full):
        raise DataError(f"data.valid_split={data_cfg.valid_split}: the training set has only {len(y_full)} images")
    valid_idx = balanced_indices(y_full, data_cfg.valid_split, rng)
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


# ---------------------------------------------------------------- synthetic data
def synthetic_arrays(s, seed: int) -> tuple:
    """Each class is a random prototype image; examples are the prototype plus noise."""
    rng = np.random.default_rng(seed)
    shape = tuple(s.image_shape)
    prototypes = rng.uniform(0.0, 1.0, size=(s.num_classes,) + shape)

    def draw(n):
        y = np.arange(n) % s.num_classes
        rng.shuffle(y)
        x = prototypes[y] + rng.normal(0.0, s.noise, size=(n,) + shape) * prototypes.std()
        return np.clip(x * 255.0, 0, 255).astype(np.uint8), y.astype(np.uint8)

    return (*draw(s.train_examples), *draw(s.test_examples))


def synthetic_dir(data_cfg) -> Path:
    """Write the synthetic dataset in Fashion-MNIST's format (once per setting) and return its folder."""
    s = data_cfg.synthetic
    key = f"{s.num_classes}-{list(s.image_shape)}-{s.train_examples}-{s.test_examples}-{s.noise}-{data_cfg.split_seed}"
    cache = Path(data_cfg.root).expanduser() if data_cfg.root else \
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dnn_train"
    folder = cache / "synthetic" / hashlib.sha1(key.encode()).hexdigest()[:12]
    if not _has_files(folder, "fashion_mnist"):
        folder.mkdir(parents=True, exist_ok=True)
        for k, array in zip(("x_train", "y_train", "x_test", "y_test"), synthetic_arrays(s, data_cfg.split_seed)):
            write_idx(folder / FASHION_FILES[k], array)
    return folder


# ---------------------------------------------------------------- input pipeline
EVAL_BATCH = 1024  # validation and test batches: no gradient, so big batches only save per-step overhead


def eval_batch(batch_size: int) -> int:
    return max(batch_size, EVAL_BATCH)


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, epoch=None,
                 group: int = 1):
    """A tf.data pipeline of uint8 batches that gathers whole batches from the arrays (no copy).

    With `shuffle`, each epoch's order is a function of (seed, epoch) alone: `epoch` is a tf.Variable
    that the EpochSeeds callback sets as each epoch begins, so a resumed run sees the same orders as
    an uninterrupted one (tf.data's own reshuffling would start over from the first epoch's order).
    With `group` > 1 (trainer.fuse_steps), elements are (images, labels, count): `group` consecutive
    batches stacked (group x batch x image) and how many of them are real (the last group is padded
    to `group`, so every element has one shape). With a partial last batch (of `rest` < batch_size
    images), each element also carries (rest_images, rest_labels, is_last): that batch, trained after
    the last group's batches, so that it too keeps one shape and nothing is traced twice.
    """
    import tensorflow as tf

    images, labels, n = tf.constant(x), tf.constant(y), len(x)
    full, rest = divmod(n, batch_size)
    plain = tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow: skip
    # AutoGraph's source rewriting (~0.1 s per function at start-up)

    def order(_):
        if not shuffle:
            return tf.range(n, dtype=tf.int64)
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)

    if shuffle and epoch is None:
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    if group > 1:
        count = max(-(-full // group), 1 if rest else 0)  # elements per epoch

        def groups(_):
            idx = order(_)
            batches = tf.pad(tf.reshape(idx[: full * batch_size], (full, batch_size)),
                             [[0, count * group - full], [0, 0]])  # index 0 fills the last group's tail
            elements = (tf.reshape(batches, (count, group, batch_size)),
                        tf.minimum(full - tf.range(0, count * group, group), group))
            if rest:
                elements += (tf.tile(idx[None, full * batch_size:], (count, 1)), tf.range(count) == count - 1)
            return tf.data.Dataset.from_tensor_slices(elements)

        def gather(i, k, *last):
            out = (tf.gather(images, i), tf.gather(labels, i), k)
            return out + (tf.gather(images, last[0]), tf.gather(labels, last[0]), last[1]) if last else out

        ds = tf.data.Dataset.from_tensors(0).flat_map(plain(groups))
        ds = ds.apply(tf.data.experimental.assert_cardinality(count))
        ds = ds.map(plain(gather), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = tf.data.Dataset.from_tensors(0).flat_map(plain(lambda _: tf.data.Dataset.from_tensor_slices(order(_))))
        ds = ds.apply(tf.data.experimental.assert_cardinality(n)).batch(batch_size)
        ds = ds.map(plain(lambda i: (tf.gather(images, i), tf.gather(labels, i))),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
