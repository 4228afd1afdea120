"""Reading a saved model.keras: the one place that registers our serializable classes, safe mode on.

Keras finds a class a file names only once it is registered: our layers (dnn_train/models/layers.py)
and our schedules and optimizer (dnn_train/optim.py) register themselves when imported, here.
Every path that loads a model goes through `load`: the check of a saved model, `load_run().model()`,
MLflow's copy, and the sources of `model.init_from` and `model.weights` (`load_source`).
"""
from __future__ import annotations

from pathlib import Path

import keras

import dnn_train.models.layers  # noqa: F401  registers our layers
import dnn_train.optim  # noqa: F401  registers our schedules and optimizer
from dnn_train.config.files import source_file
from dnn_train.errors import ConfigError


def load(path: str | Path, compile: bool = False) -> keras.Model:
    """The model saved at `path`, read with Keras' safe mode on (the file is never written)."""
    return keras.saving.load_model(path, compile=compile, safe_mode=True)


def load_source(given: str, key: str = "model.init_from") -> keras.Model:
    """The model of an earlier run a config key names (its directory or its model.keras)."""
    path = source_file(given, key)
    try:
        return load(path)
    except Exception as ex:  # noqa: BLE001 - any failure here means: not a model we can read
        raise ConfigError(f"{key}={given}: not a readable Keras model "
                          f"({type(ex).__name__}: {str(ex).splitlines()[0][:150]})") from None
