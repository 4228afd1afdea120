"""Transfer learning between runs (`model.init_from`): copy the lowest hidden blocks' weights of an
earlier run's model into this run's freshly built model, and freeze or unfreeze them.

The new model is always built from this run's config (dnn_train/models/); only weights travel.
The source is read with Keras' safe mode on (dnn_train/saving.py) and never written: its model.keras
stays byte-identical.
"""
from __future__ import annotations

from pathlib import Path

import keras

from dnn_train.errors import ConfigError
from dnn_train.models.blocks import block_layer_names, blocks
from dnn_train.saving import load_source


def reuse_layers(cfg, model: keras.Model, image_shape: tuple) -> list[str]:
    """Copy the source run's lower layers into `model`; return the names of the reused layers."""
    source = load_source(cfg.model.init_from)
    where = f"model.init_from={cfg.model.init_from}"
    source_shape = tuple(source.inputs[0].shape[1:])
    if source_shape != tuple(image_shape):
        raise ConfigError(f"{where}: the source model takes images of shape {source_shape}, but "
                          f"data={cfg.data.name} has {tuple(image_shape)}; reuse layers only between "
                          "datasets of the same image shape")
    available = len(blocks(source))
    k = cfg.transfer.reuse_layers or available
    if k > available:
        raise ConfigError(f"transfer.reuse_layers={k}: the source model has only {available} hidden blocks")
    if k > len(blocks(model)):
        raise ConfigError(f"transfer.reuse_layers={k}: this run's model has only {len(blocks(model))} hidden "
                          f"blocks; make it at least {k} deep (model.depth, model.filters, ...)")
    names = block_layer_names(source, k)
    missing = sorted(set(names) ^ set(block_layer_names(model, k)))
    if missing:
        raise ConfigError(f"{where}: the lowest {k} hidden blocks differ from this run's model ({', '.join(missing)} "
                          "in only one of them); use the source run's model family and normalization settings")
    for name in names:
        src, dst = source.get_layer(name).get_weights(), model.get_layer(name)
        shapes = [w.shape for w in src], [tuple(w.shape) for w in dst.weights]
        if shapes[0] != shapes[1]:
            raise ConfigError(f"{where}: layer {name} has weights of shape {shapes[0]} in the source but "
                              f"{shapes[1]} here; use the source run's model sizes")
        dst.set_weights(src)
    return names


def set_trainable(model: keras.Model, names: list[str], trainable: bool) -> None:
    """Freeze or unfreeze layers; Keras reads `trainable` at compile(), so recompile afterwards."""
    for name in names:
        model.get_layer(name).trainable = trainable


def describe(names: list[str], source: str | Path) -> str:
    return f"reusing {len(names)} layers ({', '.join(names)}) from {source}"
