"""A folder of images in class subfolders, listed by Keras' rule, decoded once (PIL, in threads) and then
read from a cache; it has no Limit (PIL refuses a decompression bomb)."""
from __future__ import annotations

import hashlib
import mmap  # noqa: F401 - what np.load(mmap_mode=...) imports at first use: here, not in the reading thread
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

from dnn_train.data import sources
from dnn_train.data.formats.common import Arrays, check_labels
from dnn_train.errors import DataError

IMAGE_FORMATS = ("BMP", "GIF", "JPEG", "PNG")  # PIL's plugins for IMAGE_SUFFIXES, the only ones tried
Image.preinit()  # loads them now rather than at the first decode


IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what keras.utils.image_dataset_from_directory reads
_CACHE_VERSION = 1


class _Listing(NamedTuple):
    classes: list
    files: list  # paths (str: 60,000 Path objects cost a second), class by class, sorted
    labels: np.ndarray


def _list_images(folder: Path) -> _Listing:
    """Class subfolders and their image files, by keras.utils.image_dataset_from_directory's rule (its
    dataset_utils.index_directory, not public, and it imports TensorFlow, which this thread must not):
    classes are the subfolders whose names do not start with a dot, sorted; each class's images are
    found recursively, folder by folder in sorted order, each folder's files sorted. At least two classes."""
    try:
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir())
    except OSError as ex:
        raise DataError(f"{folder}: cannot list ({ex.strerror})") from None
    classes = [name for name in subfolders if not name.startswith(".")]
    if len(classes) < 2:  # one class trains to nothing (every label the same): bad input, before any decoding
        hidden = [name for name in subfolders if name.startswith(".")]
        raise DataError(f"{folder}: " + (f"one class subfolder, {classes[0]}" if classes else "no class subfolders")
                        + (f" ({', '.join(hidden)} skipped: a folder named with a leading dot is not a class, as "
                           "in Keras)" if hidden else "")
                        + f"; a classifier needs at least two: {folder}/<class>/*.jpg (or .png, .bmp, .gif)")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = [os.path.join(d, f) for d, _, names in sorted(os.walk(folder / name), key=lambda w: w[0])
                 for f in sorted(names) if f.lower().endswith(IMAGE_SUFFIXES)]
        if not found:
            raise DataError(f"{folder / name}: a class folder without images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [label] * len(found)
    return _Listing(classes, files, check_labels(np.array(labels, dtype=np.int64), len(classes), folder))


def _decode(path: str, size: Optional[tuple], mode: str) -> np.ndarray:
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            if image.mode != ("RGB" if mode == "rgb" else "L"):
                image = image.convert("RGB" if mode == "rgb" else "L")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as ex:
        raise DataError(f"{path}: not a readable image ({' '.join(str(ex).split())})") from None


def decode_images(files: list, size: Optional[tuple], mode: str) -> np.ndarray:
    """Decode every file into one uint8 array (N, H, W[, 3]), in a pool of threads (PIL releases the
    GIL while it decodes: a gain on large images, none on 32x32 ones, where its Python work dominates).
    Without `size` all images must have the first one's size."""
    first = _decode(files[0], size, mode)
    out = np.empty((len(files), *first.shape), dtype=np.uint8)

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            image = _decode(files[i], size, mode)
            if image.shape != first.shape:
                raise DataError(f"images of different sizes: {files[0]} is {_hw(first)}, {files[i]} is "
                                f"{_hw(image)}; set data.image_size=[HEIGHT,WIDTH] to resize them all")
            out[i] = image

    workers = os.cpu_count() or 1
    bounds = np.linspace(0, len(files), 4 * workers + 1).astype(int)
    with ThreadPoolExecutor(workers, thread_name_prefix="dnn_train-decode") as pool:
        jobs = [pool.submit(work, a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        try:
            for job in jobs:
                job.result()  # the first error, re-raised here
        except DataError:
            pool.shutdown(cancel_futures=True)  # the chunks not yet started are not decoded in vain
            raise
    return out


def _hw(image: np.ndarray) -> str:
    return f"{image.shape[0]}x{image.shape[1]}"


def _listings(folder: Path) -> list:
    """The listing of DIR/train/ and DIR/test/ (the official split), or of DIR alone."""
    parts = ("train", "test") if (folder / "train").is_dir() and (folder / "test").is_dir() else (".",)
    return [_list_images(folder / p) for p in parts]


def image_files(folder: Path) -> list:
    """Every image file read_images reads from `folder` (its provenance: dnn_train/provenance.py)."""
    return [f for listing in _listings(folder) for f in listing.files]


def read_images(found: sources.Found, data_cfg, classes, limit) -> Arrays:
    """DIR/<class>/* images, or DIR/train/<class>/* and DIR/test/<class>/* (the official split),
    decoded once and cached (see `_cached`)."""
    folder = found.folder
    listings = _listings(folder)
    if listings[-1].classes != listings[0].classes:
        raise DataError(f"{folder}: train/ and test/ have different class folders ("
                        f"{', '.join(listings[0].classes)} against {', '.join(listings[-1].classes)})")
    size = tuple(data_cfg.image_size) if data_cfg.image_size is not None else None
    files = [f for listing in listings for f in listing.files]
    x = _cached(folder, files, f"v{_CACHE_VERSION} {size} {data_cfg.color_mode}",
                lambda: decode_images(files, size, data_cfg.color_mode))
    n_train = len(listings[0].files)
    names = listings[0].classes
    if len(listings) == 1:
        return Arrays(x, listings[0].labels, None, None, names)
    return Arrays(x[:n_train], listings[0].labels, x[n_train:], listings[1].labels, names)


def _cached(folder: Path, files: list, settings: str, decode) -> np.ndarray:
    """The decoded images of `files`, from the cache file named by the folder, the settings and every
    file's name, size and modification time; else decoded, and cached in place of the folder's
    previous entry for these settings. Read memory-mapped. (Keras has no such cache.)"""
    entry = sources.cache_dir() / "images" / hashlib.sha256(f"{folder.resolve()} {settings}".encode()).hexdigest()[:20]
    fingerprint, prefix = hashlib.sha256(settings.encode()), len(str(folder))
    for f in files:
        try:
            st = os.stat(f)
        except OSError as ex:  # e.g. a broken link
            raise DataError(f"{f}: cannot read ({ex.strerror})") from None
        fingerprint.update(f"{f[prefix:]}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    path = entry / f"{fingerprint.hexdigest()[:32]}.npy"
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
        if len(x) == len(files):
            return x
    except (OSError, ValueError):
        pass  # no cache yet, or an unreadable one: decode
    x = decode()
    try:
        entry.mkdir(parents=True, exist_ok=True)
        tmp = entry / f"tmp{os.getpid()}.npy"
        np.save(tmp, x)
        os.replace(tmp, path)
        for old in entry.glob("*.npy"):
            if old != path and not old.name.startswith("tmp"):
                old.unlink(missing_ok=True)  # the folder's files changed: its older decodings are stale
    except OSError:
        pass  # a cache that cannot be written costs the next run a decode, nothing more
    return x
