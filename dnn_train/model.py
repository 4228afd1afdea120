"""The model builder: turns the model, initializer, activation, normalization and regularizer
groups into a Keras functional model. Every layer, initializer and regularizer is a Keras class
instantiated from its group's `_target_`; this module only decides where each one goes.

Layout of an MLP (model=mlp), input raw uint8 pixels:
    Flatten -> Rescaling(1/255) [-> Normalization (data.standardize)] [-> BN (normalization.input)]
    -> for each hidden layer i:  Dense hidden_i -> [BN] -> activation act_i -> [BN] -> [Dropout]
    -> Dense output (softmax; data.binary: one sigmoid unit)
The autoencoder of task=pretrain_autoencoder shares the hidden stack (same layer names, so
model.init_from can reuse it) and mirrors it: Dense decoder_i ... -> Dense reconstruction (sigmoid).
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

import keras
from hydra.utils import instantiate

from dnn_train.config import keras_kwargs

# activation=leaky_relu keeps the book's `alpha` name; Keras 3 accepts it as negative_slope.
warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated", category=UserWarning)


def hidden_widths(model_cfg) -> list[int]:
    if model_cfg.widths is not None:
        return list(model_cfg.widths)
    return [model_cfg.units] * model_cfg.depth


def is_binary(cfg) -> bool:
    return cfg.data.get("binary") is not None


def loss_name(cfg) -> str:
    return "binary_crossentropy" if is_binary(cfg) else "sparse_categorical_crossentropy"


def build_model(cfg, image_shape: tuple, num_classes: int,
                feature_stats: Optional[tuple] = None) -> keras.Model:
    """Build (not compile) the configured classifier for images of `image_shape` (uint8)."""
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = hidden_stack(cfg, inputs, feature_stats)
    if is_binary(cfg):
        outputs = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name=cfg.model.name)


def build_autoencoder(cfg, image_shape: tuple, feature_stats: Optional[tuple] = None) -> keras.Model:
    """The hidden stack as encoder, a mirrored Dense decoder, pixels in [0, 1] out."""
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = hidden_stack(cfg, inputs, feature_stats)
    for i, units in enumerate(reversed(hidden_widths(cfg.model)[:-1]), start=1):
        x = keras.layers.Dense(units, kernel_initializer=instantiate(cfg.initializer), name=f"decoder_{i}")(x)
        x = instantiate(cfg.activation, name=f"decoder_act_{i}")(x)
    x = keras.layers.Dense(math.prod(image_shape), activation="sigmoid", name="reconstruction")(x)
    outputs = keras.layers.Reshape(image_shape, name="image_out")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def hidden_stack(cfg, inputs, feature_stats: Optional[tuple] = None):
    """Input preprocessing and the hidden layers, from uint8 `inputs` to the last hidden activation."""
    norm_kwargs, norm = keras_kwargs(cfg.normalization, "normalization")
    reg_kwargs, reg = keras_kwargs(cfg.regularizer, "regularizer")
    position = norm.get("position", "none")
    attach = reg.get("attach", "none")

    def batchnorm(name):
        return instantiate(norm_kwargs, name=name)

    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    if feature_stats is not None:
        mean, variance = feature_stats
        x = keras.layers.Normalization(mean=mean, variance=variance, name="standardize")(x)
    if norm.get("input"):
        x = batchnorm("bn_input")(x)

    for i, units in enumerate(hidden_widths(cfg.model), start=1):
        dense_kwargs = {}
        if attach in ("kernel_regularizer", "kernel_constraint"):
            dense_kwargs[attach] = instantiate(reg_kwargs)  # one object per layer
        x = keras.layers.Dense(units, kernel_initializer=instantiate(cfg.initializer),
                               use_bias=position != "before", name=f"hidden_{i}", **dense_kwargs)(x)
        if position == "before":
            x = batchnorm(f"bn_{i}")(x)
        x = instantiate(cfg.activation, name=f"act_{i}")(x)
        if position == "after":
            x = batchnorm(f"bn_{i}")(x)
        if attach == "dropout_layer":
            x = instantiate(reg_kwargs, name=f"dropout_{i}")(x)
    return x
