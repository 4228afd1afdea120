"""The model file that `model.init_from` names, checked before anything loads it."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from dnn_train.errors import ConfigError


def source_file(init_from: str, key: str = "model.init_from") -> Path:
    """The .keras file that `model.init_from` names (a run directory or the file itself), checked to be
    a readable zip archive no larger than memory: Keras' load_model calls anything else "File not found"."""
    path, where = Path(str(init_from)).expanduser(), f"{key}={init_from}"
    if not path.exists():
        raise ConfigError(f"{where}: no such file or directory; give an earlier run's directory or its model.keras")
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise ConfigError(f"{where}: not a dnn_train run (no model.keras in it; did that run finish?)")
        path = path / "model.keras"
    elif not path.is_file():
        raise ConfigError(f"{where}: not a regular file or a run directory")
    elif path.suffix != ".keras":
        raise ConfigError(f"{where}: not a .keras model file")
    try:
        with open(path, "rb") as f:
            is_zip, st = zipfile.is_zipfile(f), os.fstat(f.fileno())
    except OSError as ex:
        raise ConfigError(f"{where}: not a readable Keras model (cannot open {path.name}: {ex.strerror})") from None
    size = f"{st.st_size / 1e9:.1f} GB" if st.st_size >= 1e8 else f"{st.st_size} bytes"
    if not is_zip:
        sparse = ", a sparse file: mostly holes" if st.st_blocks * 512 < st.st_size // 2 else ""
        raise ConfigError(f"{where}: not a readable Keras model ({path.name}: {size}{sparse}, not a zip archive, "
                          "which a .keras file is)")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if st.st_size > memory:
        raise ConfigError(f"{where}: too large to load ({path.name}: {size}, more than this machine's "
                          f"{memory / 1e9:.1f} GB of memory)")
    return path
