"""Transfer learning (model.init_from, frozen then fine-tuned phases), class subsets and binary
tasks, and autoencoder pretraining whose encoder a later run reuses."""
from __future__ import annotations

import hashlib

import keras
import numpy as np
import pandas as pd
import pytest

from dnn_train.config.validate import validate
from dnn_train.errors import ConfigError
from dnn_train.data import class_indices, load, select_classes
from dnn_train.errors import DataError
from dnn_train.tasks import run_task
from tests.conftest import SMALL_SET, make_cfg, read_results, real_data_root, run_cli

HIDDEN = ["block1_dense", "block2_dense"]


def weights(path, names):
    model = keras.saving.load_model(path, compile=False)
    return {n: [w.copy() for w in model.get_layer(n).get_weights()] for n in names}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()




@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A finished synthetic run (with batch norm, so moving statistics travel too) to reuse."""
    tmp = tmp_path_factory.mktemp("source")
    cfg = make_cfg("data=synthetic", f"data.root={tmp / 'data'}", *SMALL_SET, "model.depth=2", "model.units=32",
                   "trainer.epochs=3", "normalization=batchnorm")
    run_task(cfg, tmp / "run")
    return tmp


def transfer_cfg(source_run, *overrides):
    return make_cfg("data=synthetic", f"data.root={source_run / 'data'}", *SMALL_SET, "model.depth=2", "model.units=32",
                    "normalization=batchnorm", f"model.init_from={source_run / 'run'}", *overrides)


# ---------------------------------------------------------------- class subsets and binary tasks
def test_class_names_and_indices_both_select_classes():
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt"]
    assert class_indices(["sandal", 6, "0"], names, "data.classes") == [5, 6, 0]
    with pytest.raises(DataError, match="unknown class 'boot'; valid: T-shirt/top, Trouser"):
        class_indices(["boot"], names, "data.classes")
    with pytest.raises(DataError, match="given twice"):
        class_indices(["Shirt", 6], names, "data.binary")


def test_select_classes_keeps_only_them_relabelled_in_the_given_order():
    x, y = np.arange(8)[:, None], np.array([0, 1, 2, 3, 0, 1, 2, 3], dtype=np.uint8)
    xs, ys = select_classes(x, y, [3, 1])
    assert xs.ravel().tolist() == [1, 3, 5, 7] and ys.tolist() == [1, 0, 1, 0]


def test_binary_task_has_one_sigmoid_output_and_learns(tmp_path):
    cfg = make_cfg("data=synthetic", f"data.root={tmp_path / 'data'}", "data.binary=[class1,class3]",
                   "model.depth=2", "model.units=32", "trainer.epochs=4", "optimizer=adam")
    results = run_task(cfg, tmp_path / "run")
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    out = model.get_layer("output")
    assert out.units == 1 and out.activation.__name__ == "sigmoid"
    assert results["test_accuracy"] > 0.7  # two classes: chance is 0.5
    assert results["train_examples"] + results["valid_examples"] == 1000  # half of the 2,000 images


def test_class_subset_relabels_and_sizes_the_softmax(tmp_path):
    cfg = make_cfg("data=synthetic", f"data.root={tmp_path / 'data'}", "data.classes=[class3,class0,class2]",
                   "data.valid_split=150")
    splits = load(cfg.data)
    assert splits.class_names == ["class3", "class0", "class2"] and set(splits.y_train) == {0, 1, 2}
    assert len(splits.y_train) + len(splits.y_valid) == 1500 and len(splits.y_test) == 300


@pytest.mark.parametrize("overrides, message", [
    (["data.binary=[class1]"], "expected two classes"),
    (["data.classes=[class1]"], "at least two classes"),
    (["data.classes=[class1,class2]", "data.binary=[class1,class2]"], "choose one"),
])
def test_bad_class_selections(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg("data=synthetic", *overrides))


@pytest.mark.realdata
def test_the_chapters_tasks_a_and_b_on_fashion_mnist():
    root = real_data_root("fashion_mnist")
    a = load(make_cfg("experiment=transfer_a", f"data.root={root}").data)
    assert a.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sneaker", "Bag", "Ankle boot"]
    assert len(a.y_train) + len(a.y_valid) == 48_000 and len(a.y_test) == 8_000
    b = load(make_cfg("experiment=transfer_b", f"data.root={root}").data)
    assert b.class_names == ["Sandal", "Shirt"] and len(b.y_train) == 200 and len(b.y_test) == 2_000
    assert np.bincount(b.y_train).tolist() == [100, 100]


# ---------------------------------------------------------------- reusing an earlier run
def test_frozen_phase_leaves_the_reused_weights_and_the_source_file_untouched(source_run, tmp_path):
    source_file = source_run / "run" / "model.keras"
    before = sha256(source_file)
    reused = HIDDEN + ["block1_bn", "block2_bn"]
    cfg = transfer_cfg(source_run, "trainer.epochs=2", "transfer.freeze_epochs=2")
    results = run_task(cfg, tmp_path / "run")
    assert results["reused_layers"] == ["block1_dense", "block1_bn", "block2_dense", "block2_bn"]
    assert sha256(source_file) == before  # the source on disk is never altered
    src, new = weights(source_file, reused + ["output"]), weights(tmp_path / "run" / "model.keras", reused + ["output"])
    for name in reused:  # kernels, biases and BN moving statistics: bit for bit
        for a, b in zip(src[name], new[name]):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(src["output"][0], new["output"][0])  # the fresh output layer did train
    assert pd.read_csv(tmp_path / "run" / "metrics.csv")["phase"].tolist() == ["frozen", "frozen"]


def test_finetune_phase_unfreezes_at_its_own_learning_rate(source_run, tmp_path):
    cfg = transfer_cfg(source_run, "trainer.epochs=4", "transfer.freeze_epochs=2", "transfer.finetune_lr=0.003",
                       "optimizer.learning_rate=0.02")
    run_task(cfg, tmp_path / "run")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3, 4]
    assert metrics["phase"].tolist() == ["frozen", "frozen", "finetune", "finetune"]
    assert metrics["learning_rate"].tolist() == pytest.approx([0.02, 0.02, 0.003, 0.003])
    src, new = weights(source_run / "run" / "model.keras", HIDDEN), weights(tmp_path / "run" / "model.keras", HIDDEN)
    assert not np.allclose(src["block1_dense"][0], new["block1_dense"][0])  # trainable again in phase 2


def test_reuse_layers_copies_only_the_lowest_k(source_run, tmp_path):
    cfg = transfer_cfg(source_run, "trainer.epochs=1", "transfer.reuse_layers=1", "transfer.freeze_epochs=1")
    results = run_task(cfg, tmp_path / "run")
    assert results["reused_layers"] == ["block1_dense", "block1_bn"]
    src, new = weights(source_run / "run" / "model.keras", HIDDEN), weights(tmp_path / "run" / "model.keras", HIDDEN)
    np.testing.assert_array_equal(src["block1_dense"][0], new["block1_dense"][0])
    assert not np.allclose(src["block2_dense"][0], new["block2_dense"][0])  # a fresh, trained layer 2


@pytest.mark.parametrize("overrides, message", [
    (["model.init_from=MISSING"], "no such file or directory"),
    (["model.init_from=EMPTY_DIR"], "not a dnn_train run"),
    (["model.init_from=NOT_KERAS"], "not a .keras model file"),
    (["model.init_from=GARBAGE"], "not a readable Keras model"),
    (["transfer.reuse_layers=3"], "the source model has only 2 hidden blocks"),
    (["model.depth=1", "transfer.reuse_layers=2"], "this run's model has only 1 hidden blocks"),
    (["data.synthetic.image_shape=[10,10]"], r"takes images of shape \(8, 8\), but data=synthetic has \(10, 10\)"),
    (["normalization=none"], "differ from this run's model"),
    (["model.units=16"], "has weights of shape"),
    (["model.init_from=null", "transfer.freeze_epochs=2"], "transfer.freeze_epochs needs model.init_from"),
    (["transfer.freeze_epochs=3", "transfer.finetune_lr=0.001"], "leaves no fine-tuning epochs"),
])
def test_transfer_errors_are_one_line_config_errors(source_run, tmp_path, overrides, message):
    (tmp_path / "EMPTY_DIR").mkdir()
    (tmp_path / "NOT_KERAS").write_text("x")
    (tmp_path / "GARBAGE.keras").write_bytes(b"not a zip file")
    paths = {"MISSING": tmp_path / "missing", "EMPTY_DIR": tmp_path / "EMPTY_DIR",
             "NOT_KERAS": tmp_path / "NOT_KERAS", "GARBAGE": tmp_path / "GARBAGE.keras"}
    overrides = [o.split("=")[0] + "=" + str(paths.get(o.split("=")[1], o.split("=")[1])) for o in overrides]
    cfg = transfer_cfg(source_run, "trainer.epochs=3", *overrides)
    with pytest.raises(ConfigError, match=message) as info:
        run_task(cfg, tmp_path / "run")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists() or not (tmp_path / "run" / "results.json").exists()


def test_cli_reports_a_missing_source_in_one_line_and_leaves_no_run_dir(tmp_path):
    proc = run_cli("data=synthetic", f"data.root={tmp_path / 'data'}", f"model.init_from={tmp_path / 'nope'}",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"dnn_train: error: model.init_from={tmp_path / 'nope'}: no such file or directory; give an earlier "
        "run's directory or its model.keras"]
    assert not (tmp_path / "run").exists()


def test_transfer_presets_follow_the_book():
    b = make_cfg("experiment=transfer_b_on_a", "model.init_from=somewhere")
    assert list(b.data.binary) == ["Sandal", "Shirt"] and b.data.train_size == 200 and b.trainer.epochs == 20
    assert (b.transfer.freeze_epochs, b.transfer.finetune_lr, b.optimizer.learning_rate) == (4, 0.001, 0.001)
    assert not b.trainer.early_stopping.enabled
    a = make_cfg("experiment=transfer_a")
    assert len(a.data.classes) == 8 and "Sandal" not in a.data.classes and "Shirt" not in a.data.classes
    with pytest.raises(ConfigError, match="needs model.init_from"):
        validate(make_cfg("experiment=transfer_b_on_a"))


# ---------------------------------------------------------------- unsupervised pretraining
def test_autoencoder_pretraining_learns_and_its_encoder_is_reusable(tmp_path):
    root = f"data.root={tmp_path / 'data'}"
    ae = make_cfg("data=synthetic", root, "task=pretrain_autoencoder", "model.widths=[48,16]", "trainer.epochs=5",
                  "optimizer=adam", "optimizer.learning_rate=0.003", "data.synthetic.noise=0.5")
    results = run_task(ae, tmp_path / "ae")
    metrics = pd.read_csv(tmp_path / "ae" / "metrics.csv")
    assert results["status"] == "completed" and results["task"] == "pretrain_autoencoder"
    assert metrics["loss"].iloc[-1] < 0.8 * metrics["loss"].iloc[0]  # it learns to reconstruct
    assert results["reconstruction_loss"] == pytest.approx(metrics["val_loss"].iloc[-1], rel=0.3)
    assert (tmp_path / "ae" / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"
    model = keras.saving.load_model(tmp_path / "ae" / "model.keras", compile=False)
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)] == \
        ["block1_dense", "block2_dense", "decoder1_dense", "reconstruction"] and model.output_shape == (None, 8, 8)

    clf = make_cfg("data=synthetic", root, "model.widths=[48,16]", "trainer.epochs=1", "data.synthetic.noise=0.5",
                   f"model.init_from={tmp_path / 'ae'}", "transfer.freeze_epochs=1")
    run_task(clf, tmp_path / "clf")
    enc, new = weights(tmp_path / "ae" / "model.keras", HIDDEN), weights(tmp_path / "clf" / "model.keras", HIDDEN)
    for name in HIDDEN:
        np.testing.assert_array_equal(enc[name][0], new[name][0])
    assert read_results(tmp_path / "clf")["reused_layers"] == HIDDEN
