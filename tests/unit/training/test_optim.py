"""Optimizers and schedules come from config, and the 1cycle rate follows its formula per step."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from dnn_train.config.help import options
from dnn_train.config.validate import validate
from dnn_train.errors import ConfigError
from dnn_train.optim import OneCycle, build_optimizer
from tests.conftest import make_cfg


def one_cycle_reference(step, max_lr, total, div=10.0, final_fraction=0.1, final_div=1000.0):
    """The schedule written out piecewise, independently of the implementation."""
    start = max_lr / div
    final_steps = max(1, round(total * final_fraction))
    cycle_end = total - final_steps
    half = cycle_end / 2
    if step < half:
        return start + (max_lr - start) * step / half
    if step < cycle_end:
        return max_lr - (max_lr - start) * (step - half) / half
    return start + (start / final_div - start) * min((step - cycle_end) / final_steps, 1.0)


def lr_at(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_one_cycle_landmarks():
    s = OneCycle(max_lr=0.1, total_steps=1000)
    assert lr_at(s, 0) == pytest.approx(0.01)
    assert lr_at(s, 450) == pytest.approx(0.1)  # peak at the middle of the 900-step cycle
    assert lr_at(s, 900) == pytest.approx(0.01)
    assert lr_at(s, 1000) == pytest.approx(0.01 / 1000, rel=1e-4)
    assert lr_at(s, 5000) == pytest.approx(0.01 / 1000, rel=1e-4)  # stays tiny past the end


@pytest.mark.parametrize("step", [0, 1, 7, 100, 449, 451, 700, 899, 901, 950, 999])
def test_one_cycle_matches_formula(step):
    s = OneCycle(max_lr=0.05, total_steps=1000)
    assert lr_at(s, step) == pytest.approx(one_cycle_reference(step, 0.05, 1000), rel=1e-5)


def test_one_cycle_serializes():
    s = OneCycle(max_lr=0.05, total_steps=300, div_factor=20)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, OneCycle) and again.get_config() == s.get_config()


def test_constant_schedule_keeps_the_configured_optimizer_and_rate():
    opt, _ = build_optimizer(make_cfg("optimizer=nadam", "optimizer.learning_rate=0.003"), steps_per_epoch=10)
    assert isinstance(opt, keras.optimizers.Nadam)
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(0.003)


def test_sgd_options_reach_keras():
    opt, _ = build_optimizer(make_cfg("optimizer.momentum=0.9", "optimizer.nesterov=true", "optimizer.clipnorm=1.0"),
                          steps_per_epoch=10)
    assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == 0.9 and opt.nesterov and opt.clipnorm == 1.0


def test_1cycle_gets_total_steps_from_the_run():
    cfg = make_cfg("schedule=1cycle", "optimizer=nadam", "trainer.epochs=3", "schedule.max_lr=0.02")
    opt, _ = build_optimizer(cfg, steps_per_epoch=50)
    assert isinstance(opt._learning_rate, OneCycle)
    assert opt._learning_rate.total_steps == 150 and opt._learning_rate.max_lr == 0.02


def train_tiny(steps_per_execution):
    """Two epochs of a 1cycle-scheduled softmax regression; returns (step, lr) per epoch and the weights."""
    keras.utils.set_random_seed(0)
    cfg = make_cfg("schedule=1cycle", "optimizer.learning_rate=0.1", "trainer.epochs=2")
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    opt, _ = build_optimizer(cfg, steps_per_epoch=8)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            step = int(keras.ops.convert_to_numpy(opt.iterations))
            seen.append((step, float(keras.ops.convert_to_numpy(opt.learning_rate))))

    model.compile(opt, "sparse_categorical_crossentropy", steps_per_execution=steps_per_execution)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, callbacks=[Record()])
    return seen, model.get_weights()


def test_rate_is_exact_per_step_with_several_steps_per_execution():
    seen_1, weights_1 = train_tiny(1)
    seen_4, weights_4 = train_tiny(4)
    assert [s for s, _ in seen_4] == [8, 16]
    for step, lr in seen_4:
        assert lr == pytest.approx(one_cycle_reference(step, 0.1, 16), rel=1e-4)
    # every step used the same rate whether steps run one or four per call
    for a, b in zip(weights_1, weights_4):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_1cycle_cycles_sgd_momentum_inversely_per_step():
    from dnn_train.optim import OneCycleSGD

    cfg = make_cfg("optimizer=momentum", "schedule=1cycle", "optimizer.learning_rate=0.1", "trainer.epochs=1")
    opt, _ = build_optimizer(cfg, steps_per_epoch=100)
    assert isinstance(opt, OneCycleSGD)
    s = opt._learning_rate

    def momentum_at(step):
        return float(keras.ops.convert_to_numpy(s.momentum(step)))

    assert momentum_at(0) == pytest.approx(0.95) and momentum_at(45) == pytest.approx(0.85)
    assert momentum_at(90) == pytest.approx(0.95) and momentum_at(99) == pytest.approx(0.95)
    assert momentum_at(20) == pytest.approx(0.95 - 0.1 * 20 / 45, rel=1e-5)
    # the update really uses the cycled momentum: at step k, m = momentum(k) * m_prev - lr(k) * g
    w = keras.Variable(np.zeros((2,), "float32"))
    g = keras.ops.convert_to_tensor(np.ones((2,), "float32"))
    m_prev = 0.0
    for k in range(3):
        opt.apply_gradients([(g, w)])
        m_prev = momentum_at(k) * m_prev - lr_at(s, k) * 1.0
    assert float(keras.ops.convert_to_numpy(opt.momentums[0])[0]) == pytest.approx(m_prev, rel=1e-5)


def test_1cycle_leaves_momentum_free_optimizers_alone():
    opt, _ = build_optimizer(make_cfg("optimizer=nadam", "schedule=1cycle"), steps_per_epoch=10)
    assert type(opt) is keras.optimizers.Nadam
    opt, _ = build_optimizer(make_cfg("optimizer=sgd", "schedule=1cycle"), steps_per_epoch=10)
    assert type(opt) is keras.optimizers.SGD


PROBES = (-1, 0, 1, 2, 0.5, 1.5)  # as users type them: integers and floats, in and out of the usual ranges


@pytest.mark.parametrize("option", options("optimizer"))
def test_every_number_the_checks_accept_builds_the_optimizer(option):
    """Over every option of conf/optimizer/ and every key of it, each probe value that the checks
    before TensorFlow (config.validate) accept builds the Keras optimizer with that value, integers
    included (Keras refuses `momentum=0` and `learning_rate=1`: not floats), so a value Keras would
    refuse after the data has loaded is refused before instead. Each float key takes an integer."""
    base = make_cfg(f"optimizer={option}")
    for key, default in base.optimizer.items():
        if key == "_target_":
            continue
        accepted_ints = []
        for value in PROBES:
            cfg = base.copy()
            cfg.optimizer[key] = value
            try:
                validate(cfg)
            except ConfigError:
                continue
            opt, _ = build_optimizer(cfg, steps_per_epoch=10)
            built = opt.get_config()[key]
            if key == "learning_rate":
                built = float(keras.ops.convert_to_numpy(opt.learning_rate))
            assert built == value, (option, key, value, built)
            accepted_ints += [value] if type(value) is int else []
        if type(default) is float:
            assert accepted_ints, f"optimizer={option}: no integer accepted for {key} (a float)"
