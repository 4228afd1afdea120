"""data=synthetic: prototype images plus noise, written once in Fashion-MNIST's file format (so the
same IDX reader as the real data reads them), under data.root or the dnn_train cache folder."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dnn_train.data import sources
from dnn_train.data.catalog import IDX_FILES
from dnn_train.data.formats.idx import write_idx


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


def generate(data_cfg) -> Path:
    """The folder of the synthetic dataset's IDX files for these settings, written if missing."""
    s = data_cfg.synthetic
    key = f"{s.num_classes}-{list(s.image_shape)}-{s.train_examples}-{s.test_examples}-{s.noise}-{data_cfg.split_seed}"
    base = Path(data_cfg.root).expanduser() if data_cfg.root else sources.cache_dir()
    folder = base / "synthetic" / hashlib.sha1(key.encode()).hexdigest()[:12]
    if not all((folder / f).is_file() for f in IDX_FILES):
        folder.mkdir(parents=True, exist_ok=True)
        for fname, array in zip(IDX_FILES, synthetic_arrays(s, data_cfg.split_seed)):
            write_idx(folder / fname, array)
    return folder
