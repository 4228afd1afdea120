"""The chapter's knobs as layers, shared by every model family: the initializer, activation,
normalization, regularizer and augment groups become Keras layers here, and only here, so each
knob means the same in an MLP, a CNN and a ResNet.

Every family builds its hidden layers in numbered blocks through `Knobs`, named by
`blocks.layer_name` (dnn_train/models/blocks.py: the one notion of "hidden block").
"""
from __future__ import annotations

import warnings

import keras
import numpy as np
from hydra.utils import get_class

from dnn_train.config.make import keras_kwargs, make
from dnn_train.models.blocks import layer_name

# activation=leaky_relu keeps the book's `alpha` name; Keras 3 accepts it as negative_slope.
warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated", category=UserWarning)

DROPOUT_LAYERS = (keras.layers.Dropout, keras.layers.AlphaDropout, keras.layers.SpatialDropout2D)
# Keras marks these random image transforms as not XLA-compilable on every backend, for TensorFlow's
# image kernels; on JAX they are jax.numpy and compile (the same losses, eager or jitted), and a model
# holding one would otherwise train op by op (a small CNN behind flip_translate's two layers, 2 epochs
# of 64 images on JAX: 6.5 s op by op, 1.4 s compiled). Ours: Keras has no per-backend flag.
JITTABLE_ON_JAX = (keras.layers.RandomTranslation, keras.layers.RandomRotation, keras.layers.RandomZoom)


class Knobs:
    """Layer factories for one run's config: `cfg` groups, plus the training images' per-feature
    mean and variance when data.standardize is on."""

    def __init__(self, cfg, feature_stats=None):
        self.cfg = cfg
        self.stats = feature_stats
        self.norm_kwargs, norm = keras_kwargs(cfg.normalization, "normalization")
        self.reg_kwargs, reg = keras_kwargs(cfg.regularizer, "regularizer")
        self.position = norm.get("position", "none")  # none | before | after the activation
        self.input_bn = bool(norm.get("input"))
        self.attach = reg.get("attach", "none")  # none | kernel_regularizer | kernel_constraint | dropout_layer
        self.placement = reg.get("placement", "every_hidden")  # dropout: every_hidden | before_output
        self.on_inputs = bool(reg.get("on_inputs"))  # dropout on the inputs too
        augment = cfg.get("augment") or {}
        self.augment = list(augment.get("layers") or [])

    # ------------------------------------------------------------ input stack
    def images(self, inputs, min_channels: int = 1):
        """uint8 images -> float in [0, 1], (H, W, C), augmented while training, standardized per
        channel if data.standardize."""
        x = inputs
        if len(inputs.shape) == 3:  # grey (H, W) -> (H, W, 1)
            x = keras.layers.Reshape((*inputs.shape[1:], 1), name="channels")(x)
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x)
        x = self._augmented(x)
        if self.stats is not None:
            mean, var = channel_stats(self.stats, x.shape[-1])
            x = keras.layers.Normalization(mean=mean, variance=var, name="standardize")(x)
        return self._input_regularized(x, spatial=True)

    def features(self, inputs):
        """uint8 images -> a flat float vector in [0, 1] per image, standardized per feature if
        data.standardize (the MLP's input)."""
        x = inputs
        if self.augment:
            if len(inputs.shape) == 3:
                x = keras.layers.Reshape((*inputs.shape[1:], 1), name="channels")(x)
            x = self._augmented(keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x))
            x = keras.layers.Flatten(name="flatten")(x)
        else:
            x = keras.layers.Flatten(name="flatten")(x)
            x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(x)
        if self.stats is not None:
            mean, var = self.stats
            x = keras.layers.Normalization(mean=mean, variance=var, name="standardize")(x)
        return self._input_regularized(x, spatial=False)

    def _augmented(self, x):
        for i, layer_cfg in enumerate(self.augment, start=1):  # Keras' preprocessing layers: active only in training
            layer = make(layer_cfg, name=f"augment_{i}")
            if isinstance(layer, JITTABLE_ON_JAX) and keras.backend.backend() == "jax":
                layer.supports_jit = True
            x = layer(x)
        return x

    def _input_regularized(self, x, spatial: bool):
        if self.input_bn:
            x = make(self.norm_kwargs, name="bn_input")(x)
        if self.on_inputs and self.attach == "dropout_layer":
            x = self._dropout(x, "input_dropout", spatial=False)
        return x

    # ------------------------------------------------------------ hidden layers
    def dense(self, x, units: int, name: str):
        return keras.layers.Dense(units, name=name, **self._kernel_kwargs(conv=False))(x)

    def conv(self, x, filters: int, kernel_size: int, name: str, strides: int = 1, padding: str = "same"):
        return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, name=name,
                                   **self._kernel_kwargs(conv=True))(x)

    def _kernel_kwargs(self, conv: bool) -> dict:
        kwargs = {"kernel_initializer": make(self.cfg.initializer), "use_bias": self.position != "before"}
        if self.attach in ("kernel_regularizer", "kernel_constraint"):
            reg = dict(self.reg_kwargs)
            if conv and self.attach == "kernel_constraint" and _is(reg, keras.constraints.MaxNorm):
                reg["axis"] = [0, 1, 2]  # the norm of each filter, not of each (row, col, channel) slice
            kwargs[self.attach] = make(reg)  # one object per layer
        return kwargs

    def activate(self, x, block: int, suffix: str = "", skip=None):
        """[BN] -> activation -> [BN] after a kernel layer of `block`; with `skip`, the shortcut is
        added before the activation (residual blocks)."""
        if self.position == "before":
            x = make(self.norm_kwargs, name=layer_name(block, f"bn{suffix}"))(x)
        if skip is not None:
            x = keras.layers.Add(name=layer_name(block, "add"))([x, skip])
        x = make(self.cfg.activation, name=layer_name(block, f"act{suffix}"))(x)
        if self.position == "after":
            x = make(self.norm_kwargs, name=layer_name(block, f"bn{suffix}"))(x)
        return x

    def normalize(self, x, name: str):
        """BN with the kernel layer's output when normalization is on (a residual shortcut)."""
        return make(self.norm_kwargs, name=name)(x) if self.position != "none" else x

    def block_end(self, x, block: int, spatial: bool = False):
        """Dropout after a hidden block (regularizer.placement=every_hidden); spatial dropout
        (whole feature maps) after a convolutional one."""
        if self.attach == "dropout_layer" and self.placement == "every_hidden":
            x = self._dropout(x, layer_name(block, "dropout"), spatial)
        return x

    def dense_block(self, x, block: int, units: int):
        x = self.dense(x, units, layer_name(block, "dense"))
        return self.block_end(self.activate(x, block), block)

    def before_output(self, x):
        """One dropout layer right before the output (regularizer.placement=before_output)."""
        if self.attach == "dropout_layer" and self.placement == "before_output":
            x = self._dropout(x, "output_dropout", spatial=False)
        return x

    def _dropout(self, x, name: str, spatial: bool):
        kwargs = dict(self.reg_kwargs)
        if spatial and len(x.shape) == 4 and _is(kwargs, keras.layers.Dropout):
            return keras.layers.SpatialDropout2D(kwargs["rate"], name=name)(x)
        return make(kwargs, name=name)(x)


def _is(kwargs: dict, cls) -> bool:
    target = kwargs.get("_target_")
    return bool(target) and get_class(target) is cls


def channel_stats(stats, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance from per-feature ones (features in H x W x C order): the
    pooled mean, and the pooled variance E[x^2] - E[x]^2 over all pixels."""
    mean, var = (np.asarray(s, dtype=np.float64).reshape(-1, channels) for s in stats)
    pooled = mean.mean(axis=0)
    return pooled, np.maximum((var + mean ** 2).mean(axis=0) - pooled ** 2, 0.0)
