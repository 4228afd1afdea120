"""Our own Keras layers, registered serializable (a saved model names them): ArchPreprocess."""
from __future__ import annotations

import importlib

import keras


def preprocess_function(arch: str):
    """The architecture's own keras.applications.<module>.preprocess_input."""
    module = importlib.import_module(getattr(keras.applications, arch).__module__)
    return module.preprocess_input


@keras.saving.register_keras_serializable(package="dnn_train")
class ArchPreprocess(keras.layers.Layer):
    """Pixels in [0, 255] -> the input `arch` was trained on (keras.applications' preprocess_input,
    in a layer of ours: Keras has it only as a function)."""

    def __init__(self, arch: str, **kwargs):
        super().__init__(**kwargs)
        self.arch = arch
        self._fn = preprocess_function(arch)

    def call(self, x):
        return self._fn(x)

    def get_config(self):
        return {**super().get_config(), "arch": self.arch}
