"""The whole network: a family's hidden stack (dnn_train/models/families.py) with the output layer
(softmax, or one sigmoid unit for data.binary), or with a decoder (task=pretrain_autoencoder)."""
from __future__ import annotations

import math

import keras
from hydra.utils import get_method

from dnn_train.config.make import make
from dnn_train.models import families
from dnn_train.models.blocks import BLOCK, blocks
from dnn_train.models.parts import Knobs

# Keys of the model group read by the runner, not passed to the family's builder.
RUNNER_KEYS = ("_target_", "name", "init_from")


def is_binary(cfg) -> bool:
    return cfg.data.get("binary") is not None


def loss_name(cfg) -> str:
    return "binary_crossentropy" if is_binary(cfg) else "sparse_categorical_crossentropy"


def family_kwargs(model_cfg) -> dict:
    from omegaconf import OmegaConf

    kwargs = OmegaConf.to_container(model_cfg, resolve=True)
    return {k: v for k, v in kwargs.items() if k not in RUNNER_KEYS}


def hidden_stack(cfg, inputs, feature_stats=None):
    """The family's layers from the uint8 input to the last hidden representation."""
    return get_method(cfg.model._target_)(inputs, Knobs(cfg, feature_stats), **family_kwargs(cfg.model))


def float32_output() -> dict:
    """Under a mixed-precision policy the output layer (softmax, sigmoid) and so the loss stay
    float32, as Keras' mixed-precision guide prescribes; nothing changes under float32."""
    return {"dtype": "float32"} if keras.config.dtype_policy().name != "float32" else {}


def build_model(cfg, image_shape: tuple, num_classes: int, feature_stats=None) -> keras.Model:
    """Build (not compile) the configured classifier for uint8 images of `image_shape`."""
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = Knobs(cfg).before_output(hidden_stack(cfg, inputs, feature_stats))
    if is_binary(cfg):
        outputs = keras.layers.Dense(1, activation="sigmoid", name="output", **float32_output())(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="output", **float32_output())(x)
    return keras.Model(inputs, outputs, name=cfg.model.name)


def build_autoencoder(cfg, image_shape: tuple, feature_stats=None) -> keras.Model:
    """task=pretrain_autoencoder: the family's hidden stack as encoder (the same layer names, so
    model.init_from reuses it), a Dense decoder (the encoder's Dense widths mirrored; 256 units
    after a convolutional encoder), pixels in [0, 1] out."""
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = hidden_stack(cfg, inputs, feature_stats)
    dense = [layer.units for layer in keras.Model(inputs, x).layers
             if isinstance(layer, keras.layers.Dense) and BLOCK.match(layer.name)]
    for i, units in enumerate(reversed(dense[:-1] if dense else [256]), start=1):
        x = keras.layers.Dense(units, kernel_initializer=make(cfg.initializer), name=f"decoder{i}_dense")(x)
        x = make(cfg.activation, name=f"decoder{i}_act")(x)
    x = keras.layers.Dense(math.prod(image_shape), activation="sigmoid", name="reconstruction", **float32_output())(x)
    outputs = keras.layers.Reshape(image_shape, name="image_out")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def pretrained_layers(cfg, model: keras.Model) -> list[str]:
    """Layers that arrive trained (the family says which: a backbone with weights), frozen first."""
    says = getattr(families.module(cfg.model._target_), "pretrained_layers", None)
    return says(cfg.model, model) if says else []


def describe(model: keras.Model) -> str:
    """A short shape of the model for the log: the width of each hidden block."""
    return f"{model.name} " + "-".join(block.describe() for block in blocks(model))
