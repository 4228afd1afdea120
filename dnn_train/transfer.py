"""Transfer learning between runs (`model.init_from`): copy the lowest hidden blocks' weights of an
earlier run's model into this run's freshly built model, and freeze or unfreeze them.

The new model is always built from this run's config (dnn_train/models/); only weights travel.
The source is read with Keras' safe mode on and never written: its model.keras stays byte-identical.
"""
from __future__ import annotations

from pathlib import Path

import keras

from dnn_train.config.validate import source_file
from dnn_train.errors import ConfigError
from dnn_train.models import block_layer_names, blocks


def load_source(init_from: str, key: str = "model.init_from") -> keras.Model:
    path = source_file(init_from, key)
    import dnn_train.models.backbone  # noqa: F401  registers our layers and schedules, in case the file names them
    import dnn_train.optim  # noqa: F401

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as ex:  # noqa: BLE001 - any failure here means: not a model we can read
        raise ConfigError(f"{key}={init_from}: not a readable Keras model "
                          f"({type(ex).__name__}: {str(ex).splitlines()[0][:150]})") from None


def hidden_count(model: keras.Model) -> int:
    return len(blocks(model))


def reused_names(model: keras.Model, k: int) -> list[str]:
    """Names of the layers with weights in the input stack and hidden blocks 1..k of `model`."""
    return block_layer_names(model, k)


def reuse_layers(cfg, model: keras.Model, image_shape: tuple) -> list[str]:
    """Copy the source run's lower layers into `model`; return the names of the reused layers."""
    source = load_source(cfg.model.init_from)
    where = f"model.init_from={cfg.model.init_from}"
    source_shape = tuple(source.inputs[0].shape[1:])
    if source_shape != tuple(image_shape):
        raise ConfigError(f"{where}: the source model takes images of shape {source_shape}, but "
                          f"data={cfg.data.name} has {tuple(image_shape)}; reuse layers only between "
                          "datasets of the same image shape")
    available = hidden_count(source)
    k = cfg.transfer.reuse_layers or available
    if k > available:
        raise ConfigError(f"transfer.reuse_layers={k}: the source model has only {available} hidden blocks")
    if k > hidden_count(model):
        raise ConfigError(f"transfer.reuse_layers={k}: this run's model has only {hidden_count(model)} hidden "
                          f"blocks; make it at least {k} deep (model.depth, model.filters, ...)")
    names = reused_names(source, k)
    missing = sorted(set(names) ^ set(reused_names(model, k)))
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
