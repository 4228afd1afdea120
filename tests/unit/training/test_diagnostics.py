"""Per-layer diagnostics: the statistics equal a hand computation, dead ReLUs are counted exactly,
measuring changes nothing, and a run writes diagnostics.csv, gradients.png and TensorBoard logs."""
from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from dnn_train import diagnostics
from dnn_train.models.network import build_model
from dnn_train.tasks import run_task
from tests.conftest import make_cfg, read_results


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def tiny_model(activation, *overrides):
    cfg = make_cfg("data=synthetic", "model.depth=2", "model.units=3", f"activation={activation}",
                   "normalization=none", *overrides)
    return build_model(cfg, (2, 2), 3)


def test_statistics_and_gradient_norms_match_a_numpy_computation():
    model = tiny_model("sigmoid")
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 1.5, w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.integers(0, 256, (16, 2, 2)).astype("uint8")
    y = rng.integers(0, 3, 16).astype("uint8")
    rows = diagnostics.probe(model, x, y, keras.losses.SparseCategoricalCrossentropy())

    w1, b1, w2, b2, w3, b3 = [w.astype(np.float64) for w in weights]
    a0 = x.reshape(16, -1) / 255.0
    a1 = sigmoid(a0 @ w1 + b1)
    a2 = sigmoid(a1 @ w2 + b2)
    z3 = a2 @ w3 + b3
    p = np.exp(z3 - z3.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz3 = (p - np.eye(3)[y]) / 16  # mean cross-entropy, backpropagated by hand
    dz2 = (dz3 @ w3.T) * a2 * (1 - a2)
    dz1 = (dz2 @ w2.T) * a1 * (1 - a1)
    grads = [a0.T @ dz1, a1.T @ dz2]
    for row, a, g in zip(rows, (a1, a2), grads):
        assert row["act_mean"] == pytest.approx(a.mean(), rel=1e-5)
        assert row["act_std"] == pytest.approx(a.std(), rel=1e-5)
        assert row["saturated"] == pytest.approx(((a < 0.05) | (a > 0.95)).mean())
        assert row["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=1e-4)
    assert [r["name"] for r in rows] == ["block1_dense", "block2_dense"]
    assert diagnostics.gradient_ratio(rows) == pytest.approx(np.linalg.norm(grads[0]) / np.linalg.norm(grads[1]),
                                                             rel=1e-4)


def test_dead_relu_units_are_counted_exactly():
    model = tiny_model("relu")
    w = model.get_weights()
    w[0][:] = 1.0
    w[1][:] = [-1000.0, 0.0, -2.0]  # unit 0: never active; unit 1: always; unit 2: only on bright images
    model.set_weights(w)
    x = np.zeros((8, 2, 2), dtype="uint8")
    x[:3] = 255  # 3 bright images: 4 * 1.0 - 2 > 0
    rows = diagnostics.probe(model, x, np.zeros(8, dtype="uint8"), keras.losses.SparseCategoricalCrossentropy())
    assert rows[0]["dead"] == pytest.approx(1 / 3)  # exactly one of three units is zero on every image
    assert rows[0]["saturated"] is None  # saturation is for sigmoid and tanh
    stats = diagnostics.layer_stats(np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]]), "relu")
    assert stats["dead"] == pytest.approx(1 / 3) and stats["act_mean"] == pytest.approx(1.0)
    assert diagnostics.layer_stats(np.array([[0.99, -0.5], [0.2, 0.96]]), "tanh")["saturated"] == 0.5


def test_probing_a_batchnorm_net_leaves_its_moving_statistics_alone():
    model = tiny_model("relu", "normalization=batchnorm_before")
    before = [v.numpy().copy() for v in model.non_trainable_weights]
    x = np.random.default_rng(1).integers(0, 256, (32, 2, 2)).astype("uint8")
    diagnostics.probe(model, x, np.zeros(32, dtype="uint8"), keras.losses.SparseCategoricalCrossentropy())
    for b, v in zip(before, model.non_trainable_weights):
        np.testing.assert_array_equal(b, v.numpy())


def test_a_run_writes_diagnostics_gradients_plot_and_tensorboard_logs(tmp_path):
    cfg = make_cfg("data=synthetic", f"data.root={tmp_path / 'data'}", "model.depth=3", "model.units=16",
                   "trainer.epochs=2", "trainer.tensorboard=true")
    results = run_task(cfg, tmp_path / "run")
    table = pd.read_csv(tmp_path / "run" / "diagnostics.csv")
    assert list(table.columns) == diagnostics.COLUMNS
    assert table["epoch"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and table["layer"].tolist() == [1, 2, 3] * 3
    assert (table["grad_norm"] > 0).all() and table["saturated"].isna().all()  # ReLU: no saturation
    epoch1 = table[table["epoch"] == 1]
    assert results["grad_ratio_epoch1"] == pytest.approx(epoch1["grad_norm"].iloc[0] / epoch1["grad_norm"].iloc[-1],
                                                         rel=1e-4)
    assert (tmp_path / "run" / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    events = {p.parent.name for p in (tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*")}
    assert {"train", "validation", "diagnostics"} <= events


def test_the_vanishing_gradients_presets_differ_in_the_chapters_remedies_only():
    naive = make_cfg("experiment=vanishing_gradients")
    assert naive.model.depth >= 20 and naive.activation.activation == "sigmoid"
    assert naive.initializer._target_.endswith("RandomNormal") and naive.initializer.stddev == 0.1
    selu = make_cfg("experiment=vanishing_gradients_selu")
    assert (selu.activation.activation, selu.initializer.scale, selu.data.standardize) == ("selu", 1.0, True)
    assert make_cfg("experiment=vanishing_gradients_batchnorm").normalization.position == "before"
    for name in ("selu", "batchnorm", "relu"):
        other = make_cfg(f"experiment=vanishing_gradients_{name}")
        assert (other.model.depth, other.trainer.epochs, other.optimizer.learning_rate) == \
            (naive.model.depth, naive.trainer.epochs, naive.optimizer.learning_rate)


def test_diagnostics_can_be_switched_off(tmp_path):
    cfg = make_cfg("data=synthetic", f"data.root={tmp_path / 'data'}", "model.depth=2", "trainer.epochs=1",
                   "trainer.diagnostics=false")
    assert "grad_ratio_epoch1" not in run_task(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "diagnostics.csv").exists()
    assert read_results(tmp_path / "run")["status"] == "completed"
