"""The builder makes the Keras layers, initializers, activations and regularizers asked for."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from dnn_train.models.network import build_model
from tests.conftest import make_cfg


def build(*overrides, shape=(28, 28), classes=10, stats=None):
    return build_model(make_cfg(*overrides), shape, classes, stats)


def hidden(model):
    return [layer for layer in model.layers if layer.name.startswith("block") and layer.name.endswith("_dense")]


def test_the_chapters_20x100_net():
    model = build("model.depth=20", "model.units=100")
    dense = hidden(model)
    assert [d.units for d in dense] == [100] * 20
    assert model.get_layer("output").units == 10
    assert model.count_params() == 784 * 100 + 100 + 19 * (100 * 100 + 100) + 100 * 10 + 10


def test_explicit_widths_build_the_books_300_100_net():
    assert [d.units for d in hidden(build("model.widths=[300,100]"))] == [300, 100]


def test_input_is_raw_uint8_pixels_scaled_inside_the_model():
    model = build()
    assert model.inputs[0].dtype == "uint8"
    assert isinstance(model.get_layer("rescale"), keras.layers.Rescaling)
    white = model.get_layer("rescale")(np.full((1, 784), 255, np.uint8))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(white), 1.0)


@pytest.mark.parametrize("name, scale, mode, distribution", [
    ("he_normal", 2.0, "fan_in", "truncated_normal"),
    ("glorot_uniform", 1.0, "fan_avg", "uniform"),
])
def test_initializers_are_keras_variance_scaling(name, scale, mode, distribution):
    for layer in hidden(build(f"initializer={name}")):
        init = layer.kernel_initializer
        assert isinstance(init, keras.initializers.VarianceScaling)
        assert (init.scale, init.mode, init.distribution) == (scale, mode, distribution)


def test_he_normal_weights_have_the_predicted_variance():
    keras.utils.set_random_seed(0)
    model = build("initializer=he_normal", "model.depth=2", "model.units=400")
    kernel = keras.ops.convert_to_numpy(hidden(model)[1].kernel)  # fan_in 400
    assert kernel.var() == pytest.approx(2.0 / 400, rel=0.05)
    # each layer gets its own initializer draw
    first = keras.ops.convert_to_numpy(hidden(model)[0].kernel)
    assert not np.allclose(first[:400, :400], kernel)


@pytest.mark.parametrize("name, cls", [("relu", keras.layers.ReLU), ("elu", keras.layers.ELU)])
def test_activation_layer_follows_each_hidden_layer(name, cls):
    model = build(f"activation={name}", "model.depth=3")
    acts = [layer for layer in model.layers if layer.name.endswith("_act")]
    assert len(acts) == 3 and all(isinstance(a, cls) for a in acts)
    names = [layer.name for layer in model.layers]
    assert names.index("block1_act") == names.index("block1_dense") + 1


def test_elu_alpha_reaches_the_layer():
    model = build("activation=elu", "activation.alpha=0.5")
    assert model.get_layer("block1_act").alpha == 0.5


def test_batchnorm_goes_after_each_activation():
    model = build("normalization=batchnorm", "model.depth=2")
    names = [layer.name for layer in model.layers]
    assert names.index("block1_bn") == names.index("block1_act") + 1 and names.index("block2_bn") == names.index("block2_act") + 1
    assert isinstance(model.get_layer("block1_bn"), keras.layers.BatchNormalization)
    assert "bn_input" not in names
    assert "bn_input" in [layer.name for layer in build("normalization=batchnorm", "normalization.input=true").layers]


def test_l2_on_hidden_kernels_only():
    model = build("regularizer=l2", "regularizer.l2=0.003")
    for layer in hidden(model):
        assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
        assert layer.kernel_regularizer.l2 == pytest.approx(0.003)
    assert model.get_layer("output").kernel_regularizer is None
    assert len(model.losses) == len(hidden(model))


def test_no_regularizer_by_default():
    assert all(layer.kernel_regularizer is None for layer in hidden(build()))
