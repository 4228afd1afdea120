"""The knob groups on convolutional families: the initializer, normalization and regularizer reach
conv layers exactly as they reach Dense ones (tests/unit/models/test_model.py), and a backbone takes its
weights from a file written by an earlier run."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from dnn_train.config.validate import validate
from dnn_train.errors import ConfigError
from dnn_train.models import families
from dnn_train.models.blocks import blocks
from dnn_train.models.network import RUNNER_KEYS, build_model, describe
from tests.conftest import make_cfg

FAMILIES = sorted(families.builders())


def build(*overrides, shape=(16, 16, 3), classes=4):
    return build_model(make_cfg("model=cnn", "model.filters=[4,6]", *overrides), shape, classes, None)


def convs(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_a_rule_per_key_and_a_tiny_config_that_builds_in_blocks(family):
    """What a family's module carries (dnn_train/models/families.py): a rule for each key of its
    YAML, and a tiny config that validates and builds a model whose hidden layers are in blocks."""
    cfg = make_cfg(f"model={family}", *families.tiny(family))
    rules = families.module(cfg.model._target_).RULES
    assert set(rules) == set(cfg.model) - set(RUNNER_KEYS)
    validate(cfg)
    model = build_model(cfg, (16, 16, 3), 4, None)
    assert blocks(model) and "?" not in describe(model)


def test_a_key_several_families_share_has_one_rule():
    seen = {}
    for target in families.builders().values():
        for key, (_, expects) in families.module(target).RULES.items():
            assert seen.setdefault(key, expects) == expects, key


def test_cnn_blocks_are_filters_times_convs_per_block():
    model = build("model.convs_per_block=2", "model.head_units=[5]")
    assert [(c.name, c.filters) for c in convs(model)] == [("block1_conv1", 4), ("block1_conv2", 4),
                                                         ("block2_conv1", 6), ("block2_conv2", 6)]
    assert [b.index for b in blocks(model)] == [1, 2, 3]  # the dense head continues the numbering
    assert model.get_layer("block3_dense").units == 5


def test_he_normal_conv_kernels_have_variance_2_over_fan_in():
    model = build_model(make_cfg("model=cnn", "model.filters=[64,64]", "model.convs_per_block=1", "initializer=he_normal"),
                        (16, 16, 3), 4, None)
    kernel = keras.ops.convert_to_numpy(model.get_layer("block2_conv1").kernel)  # fan_in = 3 * 3 * 64 = 576
    assert kernel.var() == pytest.approx(2 / 576, rel=0.05)


def test_batchnorm_before_sits_between_a_biasless_conv_and_its_activation():
    model = build("normalization=batchnorm_before", "model.convs_per_block=1")
    names = [layer.name for layer in model.layers]
    for b in (1, 2):
        assert names.index(f"block{b}_bn1") == names.index(f"block{b}_conv1") + 1
        assert names.index(f"block{b}_act1") == names.index(f"block{b}_bn1") + 1
        assert not model.get_layer(f"block{b}_conv1").use_bias
    assert all(c.use_bias for c in convs(build("normalization=none")))


def test_l2_reaches_every_conv_kernel_and_not_the_output():
    model = build("regularizer=l2", "regularizer.l2=0.002")
    assert all(isinstance(c.kernel_regularizer, keras.regularizers.L2) and c.kernel_regularizer.l2 == pytest.approx(0.002)
               for c in convs(model))
    assert model.get_layer("output").kernel_regularizer is None
    assert len(model.losses) == len(convs(model))


def test_dropout_becomes_spatial_dropout_after_each_conv_block():
    model = build("regularizer=dropout", "regularizer.rate=0.3", "model.head_units=[5]")
    assert isinstance(model.get_layer("block1_dropout"), keras.layers.SpatialDropout2D)
    assert isinstance(model.get_layer("block2_dropout"), keras.layers.SpatialDropout2D)
    assert type(model.get_layer("block3_dropout")) is keras.layers.Dropout  # the dense head: ordinary dropout
    assert model.get_layer("block1_dropout").rate == pytest.approx(0.3)


def test_max_norm_bounds_each_conv_filter_after_training():
    model = build("regularizer=max_norm", "regularizer.max_value=0.5")
    model.compile(keras.optimizers.SGD(1.0), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    model.fit(x, np.arange(32) % 4, epochs=2, batch_size=8, verbose=0)
    for conv in convs(model):
        kernel = keras.ops.convert_to_numpy(conv.kernel)
        norms = np.sqrt((kernel ** 2).sum(axis=(0, 1, 2)))  # one norm per filter
        assert norms.shape == (conv.filters,) and norms.max() <= 0.5 + 1e-5
        assert norms.max() > 0.4  # the step was large: the constraint, not the init, bounds them


def test_valid_padding_trims_each_conv_and_refuses_maps_smaller_than_the_kernel():
    model = build("model.padding=valid", "model.convs_per_block=1", "model.global_pool=flatten")
    assert model.get_layer("block1_conv1").output.shape[1:3] == (14, 14)
    assert model.get_layer("block2_conv1").output.shape[1:3] == (5, 5)  # 14 -> pool 7 -> conv 5
    with pytest.raises(ConfigError, match=r"^model\.padding=valid: block 3 gets 2x2 maps"):
        build("model.padding=valid", "model.filters=[4,4,4]", "model.convs_per_block=1")


def test_resnet_adds_shortcuts_and_normalizes_them_with_bn():
    model = build_model(make_cfg("model=resnet", "model.width=4", "model.stages=2", "model.blocks_per_stage=1",
                                 "normalization=batchnorm_before"), (16, 16, 3), 4, None)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 2
    assert model.get_layer("block3_shortcut").strides == (2, 2)  # stage 2 halves the maps: a 1x1 projection
    assert isinstance(model.get_layer("block3_bn_shortcut"), keras.layers.BatchNormalization)
    plain = build_model(make_cfg("model=resnet", "model.width=4", "model.stages=2", "model.blocks_per_stage=1",
                                 "normalization=none"), (16, 16, 3), 4, None)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)


@pytest.mark.slow
def test_backbone_loads_its_weights_from_an_earlier_runs_file(tmp_path):
    """model.weights=PATH: the backbone of a saved run (its directory or model.keras) arrives in the
    new model weight for weight, whatever the head, and gives the same features."""
    from dnn_train.models.backbone import BACKBONE_LAYER

    overrides = ("model=backbone", "model.arch=MobileNetV3Small", "model.input_size=[32,32]")
    first = build_model(make_cfg(*overrides, "model.weights=null"), (8, 8), 4, None)
    rng = np.random.default_rng(1)
    net = first.get_layer(BACKBONE_LAYER)
    net.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in net.get_weights()])  # not an init
    first.save(tmp_path / "model.keras")
    second = build_model(make_cfg(*overrides, f"model.weights={tmp_path / 'model.keras'}"), (8, 8), 3, None)
    fresh = build_model(make_cfg(*overrides, "model.weights=null"), (8, 8), 3, None)
    for a, b in zip(second.get_layer(BACKBONE_LAYER).get_weights(), net.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)

    def features(model):
        sub = keras.Model(model.inputs, model.get_layer("output").input)  # the pooled backbone features
        return keras.ops.convert_to_numpy(sub(x, training=False))

    np.testing.assert_allclose(features(second), features(first), rtol=1e-4, atol=0)
    assert not np.allclose(features(fresh), features(first), rtol=1e-2, atol=0)
