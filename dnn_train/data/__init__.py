"""The data layer: find a dataset of the catalog, read it, split it, feed it to Keras as uint8.

- catalog.py: one entry per dataset (files, hashes, download, reader, classes, its own keys, how to provide it)
- sources.py: where the files are looked for; downloading them with keras.utils.get_file
- formats/: the file formats, one module each (IDX, mnist.npz, CIFAR pickles, a folder of images)
- splits.py: held-out test set, class subsets, validation split, slices, feature statistics
- pipeline.py: the tf.data input pipeline; synthetic.py: data=synthetic

Images stay uint8 in memory: the model scales them, so no float32 copy of a dataset is made.
Start-up: `preload` finds the local files in the calling thread and reads them in another while
TensorFlow is imported; that thread imports nothing. With nothing local, `load` downloads in the
calling (main) thread, after TensorFlow is imported.
"""
from __future__ import annotations

import importlib
import re
import threading
from typing import TYPE_CHECKING, Callable, Optional

from omegaconf import DictConfig, OmegaConf

from dnn_train.data.catalog import DATASETS, Dataset
from dnn_train.data.errors import Limit
from dnn_train.errors import DataError

if TYPE_CHECKING:
    from dnn_train.data.catalog import Layout
    from dnn_train.data.sources import Found
    from dnn_train.data.splits import Splits

# Loaded at first use (with numpy and PIL), not when the config reads the catalog: --help stays fast.
_LAZY = {"Splits": "splits", "class_indices": "splits", "feature_stats": "splits", "select_classes": "splits",
         "make_dataset": "pipeline", "eval_batch": "pipeline", "EVAL_BATCH": "pipeline",
         "epoch_counter": "pipeline"}
__all__ = ["DataError", "load", "preload", "discard_preloaded", "locate", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dataset(data_cfg) -> Dataset:
    """The catalog entry of data.name configured for data_cfg, after checking the settings the schema
    cannot: the dataset's own keys (its rules) and data.sha256."""
    entry = DATASETS[data_cfg.name]
    entry.check(data_cfg)
    entry = entry.configured(data_cfg)
    hashes = data_cfg.sha256
    if hashes is not None and (not isinstance(hashes, DictConfig) or not all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{64}", v) for v in hashes.values())):
        shown = OmegaConf.to_container(hashes) if isinstance(hashes, DictConfig) else hashes
        raise DataError(f"data.sha256={shown}: expected {{FILE:'SHA-256',...}} (64 hexadecimal digits each, "
                        "quoted) or null")
    files = list(entry.download.hashes) if entry.download else []
    unknown = [f for f in hashes or {} if f not in files]
    if unknown:
        raise DataError(f"data.sha256: {', '.join(unknown)} is not a file of {entry.name} (its files: "
                        f"{', '.join(files) or 'none, it is not downloaded'})")
    return entry


def reader(layout: Layout) -> Callable:
    """The function that reads a layout's files (its module of dnn_train/data/formats/, imported here)."""
    module, _, function = layout.reader.rpartition(".")
    return getattr(importlib.import_module(f"{__name__}.formats.{module}"), function)


def locate(data_cfg) -> Optional[Found]:
    """The local files of the configured dataset (generated, for data=synthetic); None if there are none.
    Only stats files: a bad data.root is reported here, at once."""
    from dnn_train.data import sources, synthetic

    entry = dataset(data_cfg)
    if entry.generated:
        return sources.Found(synthetic.generate(data_cfg), entry.layouts[0])
    return sources.find_local(entry, data_cfg)


def _read(found: Found, data_cfg, read: Callable) -> Splits:
    """The splits of `found`'s files, read by `read` (its layout's reader, imported before a thread runs this)."""
    from dnn_train.data import splits  # already imported by `preload` when this runs in its thread

    entry = dataset(data_cfg)
    arrays = read(found, data_cfg, entry.class_names(data_cfg), Limit.of(entry, data_cfg))
    return splits.make_splits(arrays, data_cfg, str(found.folder))


_preloading: dict = {}  # the config's YAML -> (thread, result box), for `load` to pick up
_read_from: list = []  # (Found, URL or None) of the dataset `load` returned last: provenance's record
_last: dict = {}  # (config YAML, files' sizes and times) -> Splits: the last dataset read, for the next job


def _key(data_cfg, found: Optional[Found]):
    """What identifies a dataset read: its config and, when it has fixed files, their size and
    modification time (a folder of images has its own decoded cache: formats/images.py)."""
    files = tuple((str(found.folder / f), *(lambda st: (st.st_size, st.st_mtime_ns))((found.folder / f).stat()))
                  for f in found.layout.files) if found is not None and found.layout.files else None
    return OmegaConf.to_yaml(data_cfg), files


def preload(data_cfg) -> None:
    """Find the dataset's local files now and read them in a thread (start-up: while the main thread
    imports TensorFlow); `load` with the same config waits for it and returns its result, or raises
    its error. With no local files nothing starts: `load` will download (or, with data.download=false,
    the error is raised now)."""
    from dnn_train.data import sources, splits  # noqa: F401 - here: the reading thread imports nothing

    found = locate(data_cfg)
    if found is not None and found.layout.files and _key(data_cfg, found) in _last:
        return
    if found is None:
        sources.check_downloadable(dataset(data_cfg), data_cfg)
        return
    box: dict = {}
    read = reader(found.layout)

    def work():
        try:
            box["found"], box["splits"] = found, _read(found, data_cfg, read)
        except Exception as ex:  # noqa: BLE001 - handed to `load`, which raises it in the main thread
            box["error"] = ex

    thread = threading.Thread(target=work, name="dnn_train-preload", daemon=True)
    _preloading[OmegaConf.to_yaml(data_cfg)] = (thread, box)
    thread.start()


def discard_preloaded() -> None:
    _preloading.clear()


def load(data_cfg) -> Splits:
    """The configured dataset's train / valid / test splits (uint8 images, never written to): the
    previous job's when its data config was the same (a sweep's jobs in one process read their data
    once), preloaded, read from the local files, or downloaded (Keras; call from the main thread)."""
    started = _preloading.pop(OmegaConf.to_yaml(data_cfg), None) if _preloading else None
    if started is not None:
        thread, box = started
        thread.join()
        if "error" in box:
            raise box["error"]
        return _keep(data_cfg, box["found"], box["splits"])
    found = locate(data_cfg)
    if found is not None and found.layout.files and _key(data_cfg, found) in _last:
        _read_from[:] = [(found, None)]
        return _last[_key(data_cfg, found)]
    url = None
    if found is None:
        from dnn_train.data import sources

        found = sources.download(dataset(data_cfg), data_cfg)
        url = (data_cfg.url or dataset(data_cfg).download.url)
    return _keep(data_cfg, found, _read(found, data_cfg, reader(found.layout)), url)


def _keep(data_cfg, found: Found, result: Splits, url: Optional[str] = None) -> Splits:
    _read_from[:] = [(found, url)]  # every load returns through here or the reuse above: the one hook
    _last.clear()  # one dataset at a time: memory stays that of one job
    if found.layout.files:
        _last[_key(data_cfg, found)] = result
    return result


def last_read() -> Optional[tuple]:
    """(folder, [every file read], URL downloaded from or None) of the dataset `load` returned last
    (None before any): the fixed files of its layout, or a folder's images by the reader's own rule."""
    if not _read_from:
        return None
    (folder, layout), url = _read_from[0]
    if layout.files:
        return folder, [folder / f for f in layout.files], url
    from dnn_train.data.formats.images import image_files

    return folder, image_files(folder), url
