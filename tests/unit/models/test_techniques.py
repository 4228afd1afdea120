"""Each chapter-11 technique does what its definition says, not only that it runs."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from hydra.utils import instantiate

from dnn_train.config.help import options
from dnn_train.models.network import build_model
from dnn_train.optim import build_optimizer
from tests.conftest import assert_rows_hold_every_option, make_cfg, option_rows

SPE = 10  # steps per epoch in the schedule tests


def lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


# ---------------------------------------------------------------- initializers
@pytest.mark.parametrize("name, expected", [
    ("glorot_uniform", lambda fi, fo: 2 / (fi + fo)),
    ("glorot_normal", lambda fi, fo: 2 / (fi + fo)),
    ("he_uniform", lambda fi, fo: 2 / fi),
    ("he_normal", lambda fi, fo: 2 / fi),
    ("lecun_uniform", lambda fi, fo: 1 / fi),
    ("lecun_normal", lambda fi, fo: 1 / fi),
    ("he_avg_uniform", lambda fi, fo: 2 / ((fi + fo) / 2)),
])
def test_initializer_variance_follows_its_formula(name, expected):
    fan_in, fan_out = 400, 100
    init = instantiate(make_cfg(f"initializer={name}").initializer, seed=1)
    w = keras.ops.convert_to_numpy(init((fan_in, fan_out)))
    # 40,000 draws: the sample variance is within ~1.5% of the true one
    assert w.var() == pytest.approx(expected(fan_in, fan_out), rel=0.05)
    assert abs(w.mean()) < 0.01 * w.std() * 10


def test_every_variance_scaling_parameter_is_overridable():
    init = instantiate(make_cfg("initializer=he_normal", "initializer.scale=3.0", "initializer.mode=fan_out",
                                "initializer.distribution=uniform").initializer, seed=2)
    w = keras.ops.convert_to_numpy(init((50, 400)))
    assert w.var() == pytest.approx(3.0 / 400, rel=0.05) and np.abs(w).max() <= np.sqrt(3 * 3.0 / 400)


# ---------------------------------------------------------------- activations
@pytest.mark.parametrize("name, z, expected", [
    ("sigmoid", 0.0, 0.5), ("tanh", 1.0, np.tanh(1.0)), ("relu", -2.0, 0.0),
    ("leaky_relu", -2.0, -0.4), ("elu", -1.0, np.exp(-1.0) - 1), ("prelu", -3.0, 0.0),
    ("selu", -1.0, 1.0507009873554805 * 1.6732632423543772 * (np.exp(-1.0) - 1)),
    ("gelu", 1.0, 0.8413447460685429), ("swish", 1.0, 1 / (1 + np.exp(-1.0))),
])
def test_activation_values(name, z, expected):
    layer = instantiate(make_cfg(f"activation={name}").activation)
    out = keras.ops.convert_to_numpy(layer(np.array([[z]], dtype="float32")))
    assert out[0, 0] == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_leaky_relu_alpha_is_the_book_knob():
    layer = instantiate(make_cfg("activation=leaky_relu", "activation.alpha=0.05").activation)
    assert layer.negative_slope == pytest.approx(0.05)


def test_prelu_slope_is_learned():
    layer = instantiate(make_cfg("activation=prelu").activation)
    layer.build((None, 4))
    assert [w.name for w in layer.trainable_weights] == ["alpha"]


# ---------------------------------------------------------------- normalization
def layer_names(model):
    return [layer.name for layer in model.layers]


def test_batchnorm_before_puts_bn_between_a_biasless_dense_and_the_activation():
    model = build_model(make_cfg("normalization=batchnorm_before", "model.depth=2"), (8, 8), 4)
    names = layer_names(model)
    for i in (1, 2):
        assert names.index(f"block{i}_bn") == names.index(f"block{i}_dense") + 1
        assert names.index(f"block{i}_act") == names.index(f"block{i}_bn") + 1
        assert model.get_layer(f"block{i}_dense").bias is None
    assert model.get_layer("output").bias is not None


def test_batchnorm_after_keeps_the_dense_bias():
    model = build_model(make_cfg("normalization=batchnorm", "model.depth=2"), (8, 8), 4)
    assert model.get_layer("block1_dense").bias is not None
    names = layer_names(model)
    assert names.index("block1_bn") == names.index("block1_act") + 1


# ---------------------------------------------------------------- schedules
def schedule_of(*overrides, epochs=30):
    opt, callbacks = build_optimizer(make_cfg(*overrides, f"trainer.epochs={epochs}"), steps_per_epoch=SPE)
    return opt._learning_rate, callbacks


@pytest.mark.parametrize("step", [0, 1, 37, 200, 599])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_power_schedule(step, power):
    s, _ = schedule_of("schedule=power", "optimizer.learning_rate=0.01", "schedule.decay_epochs=20",
                       f"schedule.power={power}")
    assert lr(s, step) == pytest.approx(0.01 / (1 + step / (20 * SPE)) ** power, rel=1e-5)


@pytest.mark.parametrize("step", [0, 1, 100, 200, 450])
def test_exponential_schedule(step):
    s, _ = schedule_of("schedule=exponential", "optimizer.learning_rate=0.02", "schedule.decay_epochs=20")
    assert lr(s, step) == pytest.approx(0.02 * 0.1 ** (step / (20 * SPE)), rel=1e-5)


@pytest.mark.parametrize("epoch, expected", [(1, 0.01), (5, 0.01), (6, 0.005), (15, 0.005), (16, 0.001), (30, 0.001)])
def test_piecewise_schedule_changes_at_epoch_boundaries(epoch, expected):
    s, _ = schedule_of("schedule=piecewise")
    first, last = (epoch - 1) * SPE, epoch * SPE - 1  # the optimizer steps of that epoch
    assert lr(s, first) == pytest.approx(expected) and lr(s, last) == pytest.approx(expected)


def test_performance_schedule_reduces_after_patience_flat_epochs():
    opt, callbacks = build_optimizer(make_cfg("schedule=performance", "schedule.patience=2",
                                              "schedule.factor=0.5", "optimizer.learning_rate=0.1"), SPE)
    (plateau,) = callbacks
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(opt, "mse")
    plateau.set_model(model)
    plateau.on_train_begin()
    rates = []
    for epoch, val_loss in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]):
        plateau.on_epoch_end(epoch, {"val_loss": val_loss})
        rates.append(float(keras.ops.convert_to_numpy(opt.learning_rate)))
    # best at epoch 1, then flat: halved once 2 epochs pass without improvement (epoch 3), again at epoch 5
    assert rates[:3] == pytest.approx([0.1, 0.1, 0.1]) and rates[3] == pytest.approx(0.05)
    assert rates[-1] == pytest.approx(0.025)


# ---------------------------------------------------------------- regularizers and clipping
def tiny_fit(cfg, x, y, epochs=1):
    keras.utils.set_random_seed(0)
    model = build_model(cfg, x.shape[1:], int(y.max()) + 1)
    opt, callbacks = build_optimizer(cfg, steps_per_epoch=int(np.ceil(len(x) / 16)))
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks,
                        validation_data=(x[:16], y[:16]))
    return model, history


def tiny_data(n=64, shape=(4, 4), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), (np.arange(n) % classes).astype("uint8")


def test_max_norm_bounds_every_hidden_column_after_training():
    x, y = tiny_data()
    cfg = make_cfg("regularizer=max_norm", "regularizer.max_value=0.5", "optimizer.learning_rate=1.0",
                   "model.depth=2", "model.units=16")
    model, _ = tiny_fit(cfg, x, y)
    for i in (1, 2):
        kernel = keras.ops.convert_to_numpy(model.get_layer(f"block{i}_dense").kernel)
        assert np.linalg.norm(kernel, axis=0).max() <= 0.5 + 1e-5
    out = keras.ops.convert_to_numpy(model.get_layer("output").kernel)
    assert isinstance(model.get_layer("block1_dense").kernel_constraint, keras.constraints.MaxNorm)
    assert model.get_layer("output").kernel_constraint is None and out.size


@pytest.mark.parametrize("clip", ["clipvalue", "clipnorm", "global_clipnorm"])
def test_gradient_clipping_bounds_the_update(clip):
    # plain SGD with lr=1: the update of a step is minus the (clipped) gradient
    cfg = make_cfg(f"optimizer.{clip}=0.001", "optimizer.learning_rate=1.0")
    opt, _ = build_optimizer(cfg, SPE)
    w = keras.Variable(np.zeros((3, 3), "float32"))
    grads = np.full((3, 3), 100.0, "float32")
    opt.apply_gradients([(keras.ops.convert_to_tensor(grads), w)])
    update = -keras.ops.convert_to_numpy(w)
    if clip == "clipvalue":
        assert np.abs(update).max() == pytest.approx(0.001)
    else:
        assert np.linalg.norm(update) == pytest.approx(0.001, rel=1e-4)


@pytest.mark.parametrize("name, cls", [("l1", keras.regularizers.L1), ("l1_l2", keras.regularizers.L1L2),
                                       ("l2", keras.regularizers.L2)])
def test_weight_penalties_on_hidden_kernels_only(name, cls):
    model = build_model(make_cfg(f"regularizer={name}", "model.depth=2"), (4, 4), 3)
    assert all(isinstance(model.get_layer(f"block{i}_dense").kernel_regularizer, cls) for i in (1, 2))
    assert model.get_layer("output").kernel_regularizer is None


@pytest.mark.parametrize("name, cls", [("dropout", keras.layers.Dropout), ("alpha_dropout", keras.layers.AlphaDropout)])
def test_dropout_layers_follow_each_hidden_layer(name, cls):
    model = build_model(make_cfg(f"regularizer={name}", "regularizer.rate=0.3", "model.depth=2"), (4, 4), 3)
    names = layer_names(model)
    for i in (1, 2):
        layer = model.get_layer(f"block{i}_dropout")
        assert isinstance(layer, cls) and layer.rate == pytest.approx(0.3)
        assert names.index(f"block{i}_dropout") == names.index(f"block{i}_act") + 1


# ---------------------------------------------------------------- every option builds and trains
GROUPS = ("initializer", "activation", "normalization", "optimizer", "schedule", "regularizer")


# conftest.option_rows, in float32: 9 fits hold the 42 options, each beside other groups' options
ROWS = option_rows(GROUPS, options)


def test_the_option_rows_hold_every_option_of_every_group():
    assert_rows_hold_every_option(ROWS, GROUPS, options)


@pytest.mark.parametrize("row", ROWS, ids=lambda row: "+".join(o.split("=")[1] for o in row))
def test_every_option_builds_and_trains_two_epochs(row):
    x, y = tiny_data(n=32)
    cfg = make_cfg(*row, "model.depth=2", "model.units=8", "trainer.epochs=2")
    model, history = tiny_fit(cfg, x, y, epochs=2)
    assert np.isfinite(history.history["loss"]).all()
    assert len(history.history["loss"]) == 2


# ---------------------------------------------------------------- standardization
def test_standardize_uses_the_training_split_statistics():
    from dnn_train.data import feature_stats

    rng = np.random.default_rng(0)
    x = rng.integers(20, 200, (300, 4, 4), dtype=np.uint8)
    model = build_model(make_cfg("model.depth=1"), (4, 4), 3, feature_stats(x))
    standardized = keras.Model(model.inputs, model.get_layer("standardize").output)
    z = keras.ops.convert_to_numpy(standardized(x))
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)


# ---------------------------------------------------------------- MC dropout
def test_mc_dropout_passes_differ_and_their_mean_is_the_prediction():
    from dnn_train.evaluate import mc_dropout_predict, mc_metrics

    keras.utils.set_random_seed(0)
    x, y = tiny_data(n=50)
    model = build_model(make_cfg("regularizer=dropout", "regularizer.rate=0.5", "normalization=batchnorm"),
                        x.shape[1:], 3)
    probs = mc_dropout_predict(model, x, samples=10)
    assert probs.shape == (10, 50, 3)
    assert not np.allclose(probs[0], probs[1])  # dropout is on in each pass
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)
    m = mc_metrics(probs, y)
    assert m["mc_accuracy"] == pytest.approx((probs.mean(0).argmax(1) == y).mean())
    assert m["mc_mean_std"] == pytest.approx(probs.std(0).mean()) and m["mc_mean_std"] > 0
    # batch norm stays in inference mode: without dropout every pass equals model.predict
    plain = build_model(make_cfg("normalization=batchnorm"), x.shape[1:], 3)
    still = mc_dropout_predict(plain, x, samples=3)
    np.testing.assert_allclose(still[0], still[2])
    np.testing.assert_allclose(still[0], plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- presets and warnings
PRESETS = ["default_dnn", "self_normalizing", "cifar10_baseline", "cifar10_batchnorm", "cifar10_selu",
           "cifar10_alpha_dropout", "cifar10_1cycle", "fashion_mnist_cnn", "cifar10_cnn", "transfer_cnn_a", "transfer_cnn_b"]


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_compose_validate_and_warn_about_nothing(preset):
    from dnn_train.config.advice import chapter_warnings
    from dnn_train.config.validate import validate

    cfg = make_cfg(f"experiment={preset}")
    validate(cfg)
    assert chapter_warnings(cfg) == []


def test_preset_contents_follow_the_chapter():
    c = make_cfg("experiment=default_dnn")
    assert c.initializer.scale == 2.0 and c.activation._target_.endswith("ELU")
    assert c.optimizer.momentum == 0.9 and c.schedule._target_.endswith("OneCycle") and c.trainer.early_stopping.enabled
    s = make_cfg("experiment=self_normalizing")
    assert s.activation.activation == "selu" and s.data.standardize and s.normalization.position == "none"
    b = make_cfg("experiment=cifar10_batchnorm")
    assert (b.data.name, b.model.depth, b.model.units, b.normalization.position) == ("cifar10", 20, 100, "before")
    assert make_cfg("experiment=cifar10_1cycle").trainer.batch_size == 128
    f = make_cfg("experiment=fashion_mnist_cnn")  # the chapter's techniques on a CNN
    assert (f.model.name, f.initializer.scale, f.normalization.position, f.regularizer.placement) == (
        "cnn", 2.0, "before", "before_output")
    assert f.optimizer._target_.endswith("Nadam") and f.schedule._target_.endswith("OneCycle")


@pytest.mark.parametrize("overrides, expected", [
    (["activation=selu", "initializer=lecun_normal", "data.standardize=true", "normalization=batchnorm"],
     "SELU with batch normalization"),
    (["activation=selu", "initializer=he_normal", "data.standardize=true"], "LeCun initialization"),
    (["activation=selu", "initializer=lecun_normal"], "standardized inputs"),
    (["regularizer=alpha_dropout"], "alpha_dropout is meant for SELU"),
])
def test_chapter_warnings(overrides, expected):
    from dnn_train.config.advice import chapter_warnings

    warnings = chapter_warnings(make_cfg(*overrides))
    assert len(warnings) == 1 and expected in warnings[0]
