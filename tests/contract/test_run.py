"""End to end through the command line: a run writes every documented file, learns, and sweeps
of identical jobs in one process give identical metrics."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, SMALL, SMALL_SET, read_results, real_data_root, run_cli

EXPECTED_FILES = {"config.yaml", "metrics.csv", "results.json", "model.keras", "curves.png", "dnn_train.log"}
METRIC_COLUMNS = ["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"]
RESULT_KEYS = {"test_loss", "test_accuracy", "best_val_accuracy", "best_epoch", "epochs", "params",
               "wall_seconds", "status"}


def check_run_dir(run_dir, epochs):
    assert EXPECTED_FILES <= {p.name for p in run_dir.iterdir()}
    assert (run_dir / ".hydra" / "config.yaml").exists()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics.columns[:8]) == METRIC_COLUMNS
    assert metrics["epoch"].tolist() == list(range(1, epochs + 1))
    assert metrics.notna().all().all()
    results = read_results(run_dir)
    assert RESULT_KEYS <= set(results) and results["status"] == "completed" and results["epochs"] == epochs
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    return metrics, results


@pytest.mark.slow
def test_synthetic_run_learns_and_writes_every_output(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=4", "optimizer=nadam",
                   "schedule=1cycle", "regularizer=dropout", "regularizer.rate=0.1", "trainer.mc_samples=5",
                   f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics, results = check_run_dir(run_dir, epochs=4)
    assert results["test_accuracy"] > 0.5  # 4 classes: chance is 0.25
    assert results["best_val_accuracy"] == pytest.approx(metrics["val_accuracy"].max(), abs=1e-5)
    assert results["params"] == 64 * 32 + 32 + 32 * 32 + 32 + 32 * 4 + 4
    assert results["mc_samples"] == 5 and results["mc_accuracy"] > 0.5 and results["mc_mean_std"] > 0
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["optimizer"]["_target_"] == "keras.optimizers.Nadam"
    assert resolved["schedule"]["max_lr"] == resolved["optimizer"]["learning_rate"]  # interpolation resolved
    lr = metrics["learning_rate"].tolist()  # 1cycle: up, then down to a tiny final rate
    assert lr[1] > lr[0] and lr[-1] < lr[0] / 100
    log = (run_dir / "dnn_train.log").read_text()
    assert "epoch 4/4" in log and "test accuracy" in log
    # in a fresh process: loads without dnn_train (no optimizer), then with our optimizers registered
    load = "m = keras.saving.load_model(sys.argv[1]{}); print(m.count_params(), type(getattr(m, 'optimizer', None)).__name__)"
    code = "; ".join(["import keras, sys", load.format(", compile=False"), "import dnn_train.optim", load.format("")])
    out = subprocess.run([sys.executable, "-c", code, str(run_dir / "model.keras")], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip().splitlines()[-2:] == [f"{results['params']} NoneType", f"{results['params']} Nadam"], \
        out.stderr[-2000:]


@pytest.mark.slow
def test_sweep_jobs_do_not_leak_state(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *SMALL, f"data.root={tmp_path / 'data'}", *SMALL_SET, "trainer.epochs=2", "trainer.seed=3,3",
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [check_run_dir(sweep / str(i), epochs=2) for i in (0, 1)]
    (m0, r0), (m1, r1) = runs
    pd.testing.assert_frame_equal(m0.drop(columns="epoch_seconds"), m1.drop(columns="epoch_seconds"))
    assert r0["test_accuracy"] == r1["test_accuracy"]


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("dataset, better_than", [("fashion_mnist", 0.3), ("cifar10", 0.12)])
def test_smoke_run_on_a_real_slice(tmp_path, dataset, better_than):
    root = real_data_root(dataset)
    run_dir = tmp_path / "run"
    proc = run_cli(f"data={dataset}", f"data.root={root}", "data.train_size=1000", "data.valid_size=500",
                   "data.test_size=1000", "trainer.epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, results = check_run_dir(run_dir, epochs=1)
    assert results["train_examples"] == 1000 and results["test_examples"] == 1000
    assert results["test_accuracy"] > better_than  # 10 classes: one epoch on 1,000 images beats chance (0.1)
    assert json.loads((run_dir / "results.json").read_text())["dataset"] == dataset


def test_find_lr_task_writes_the_range_test_and_a_suggestion(tmp_path):
    from dnn_train import run

    run_dir = tmp_path / "lr"
    assert run(*SMALL, f"data.root={tmp_path / 'data'}", "task=find_lr", "lr_find.epochs=2",
               run_dir=run_dir)["status"] == "completed"
    table = pd.read_csv(run_dir / "lr_find.csv")
    assert list(table.columns) == ["step", "learning_rate", "loss", "smoothed_loss"]
    rates = table["learning_rate"].to_numpy()
    # exponential growth from start_lr: a constant ratio between consecutive steps
    assert rates[0] == pytest.approx(1e-5, rel=1e-4)
    ratios = rates[1:] / rates[:-1]
    assert ratios == pytest.approx(np.full(len(ratios), ratios[0]), rel=1e-3) and ratios[0] > 1
    results = read_results(run_dir)
    assert results["status"] == "completed"
    best = table["learning_rate"][table["smoothed_loss"].idxmin()]
    assert results["min_loss_lr"] == pytest.approx(best) and results["suggested_max_lr"] == pytest.approx(best / 10)
    assert (run_dir / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


def test_fused_steps_train_exactly_like_ordinary_steps(tmp_path):
    """trainer.fuse_steps only regroups the work: same batches, same updates, same numbers
    (1,800 images at batch 32: 56 full batches and a last one of 8, in groups of 5)."""
    from dnn_train.tasks import run_task
    from tests.conftest import make_cfg

    common = [*SMALL, f"data.root={tmp_path / 'data'}", "regularizer=dropout", "regularizer.rate=0.2",
              "optimizer=momentum", "schedule=1cycle", "trainer.epochs=2", "trainer.jit_compile=false"]
    ordinary = run_task(make_cfg(*common, "trainer.fuse_steps=1"), tmp_path / "ordinary")
    fused = run_task(make_cfg(*common, "trainer.fuse_steps=5"), tmp_path / "fused")
    cols = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    np.testing.assert_allclose(pd.read_csv(tmp_path / "fused" / "metrics.csv")[cols].to_numpy(),
                               pd.read_csv(tmp_path / "ordinary" / "metrics.csv")[cols].to_numpy(), rtol=1e-5)
    assert fused["test_accuracy"] == pytest.approx(ordinary["test_accuracy"], abs=1e-6)
    import keras

    saved = keras.saving.load_model(tmp_path / "fused" / "model.keras", compile=False)
    assert type(saved) is keras.Model or type(saved).__name__ == "Functional"  # loads without dnn_train


def test_a_jobs_traced_graphs_are_freed_once_the_next_job_starts_afresh(tmp_path):
    """Jobs in one process (a sweep, a notebook) do not pile up: TensorFlow's gradient registry kept
    each traced step's graph, and with it the job's whole model, for as long as the process lived."""
    import gc
    import weakref

    from tensorflow.python.framework.func_graph import FuncGraph

    from dnn_train.tasks import run_task
    from tests.conftest import make_cfg

    def graphs():
        gc.collect()
        return {id(o): weakref.ref(o) for o in gc.get_objects() if isinstance(o, FuncGraph)}

    tiny = [*SMALL, f"data.root={tmp_path / 'data'}", *SMALL_SET, "trainer.epochs=1", "model.depth=1"]
    before = graphs()
    run_task(make_cfg(*tiny), tmp_path / "first")
    first = [ref for key, ref in graphs().items() if key not in before]
    assert first  # the job traced its steps
    run_task(make_cfg(*tiny, "model.units=8"), tmp_path / "second")  # another model: a fresh session
    gc.collect()
    assert [ref() for ref in first if ref() is not None] == []


@pytest.mark.slow
def test_the_backend_import_is_frozen_out_of_garbage_collection():
    """Keras' clear_session() at every job's start runs a full collection: tasks.import_backend
    freezes what TensorFlow's and Keras' import made, so that collection skips ~470,000 objects."""
    code = ("import gc; from dnn_train.tasks import import_backend; before = gc.get_freeze_count(); "
            "import_backend(); print(before, gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    before, after = map(int, out.stdout.split()[-2:])
    assert before == 0 and after > 100_000, out.stderr[-2000:]


@pytest.mark.slow
def test_a_job_differing_only_in_seed_or_rate_reuses_the_traced_step_with_a_fresh_builds_numbers(tmp_path):
    """trainer.share_compiled: the next seed (or constant rate) trains the last job's model object
    (traced and XLA-compiled already), reset to its own initial values, and gets what a fresh build
    gets: the same per-epoch numbers, test set and saved model. Nadam (a slot that starts at 1),
    batch norm (moving statistics) and dropout (seed states) make every kind of state count."""
    import keras

    from dnn_train import compiled
    from dnn_train.tasks import run_task
    from tests.conftest import make_cfg

    # (no diagnostics: what is shared is the step; test_api's run_twice shares it with diagnostics on)
    plain = [*SMALL, f"data.root={tmp_path / 'data'}", *SMALL_SET, "optimizer=nadam", "normalization=batchnorm",
             "regularizer=dropout", "regularizer.rate=0.2", "trainer.epochs=2", "trainer.diagnostics=false"]
    common = [*plain, "trainer.jit_compile=true"]
    run_task(make_cfg(*common, "trainer.seed=1"), tmp_path / "seed1")
    first = compiled._kept[1]
    shared = run_task(make_cfg(*common, "trainer.seed=2"), tmp_path / "shared")
    assert compiled._kept[1] is first  # one model object trained both jobs
    # a constant rate is a variable of the optimizer: another rate shares the step too, and gets its own numbers
    run_task(make_cfg(*common, "optimizer.learning_rate=0.01"), tmp_path / "rate")
    assert compiled._kept[1] is first
    fresh = run_task(make_cfg(*common, "trainer.seed=2", "trainer.share_compiled=false"), tmp_path / "fresh")
    assert compiled._kept is None
    metrics = [pd.read_csv(tmp_path / run / "metrics.csv").drop(columns="epoch_seconds") for run in ("shared", "fresh")]
    pd.testing.assert_frame_equal(*metrics)
    seed1 = pd.read_csv(tmp_path / "seed1" / "metrics.csv")
    assert not np.allclose(seed1["loss"], metrics[0]["loss"])  # the seeds differ: a reset that failed would show
    assert (shared["test_accuracy"], shared["test_loss"]) == (fresh["test_accuracy"], fresh["test_loss"])
    probe = np.random.default_rng(0).integers(0, 256, (16, 8, 8), dtype=np.uint8)
    predictions = [keras.saving.load_model(tmp_path / run / "model.keras", compile=False).predict(probe, verbose=0)
                   for run in ("shared", "fresh")]
    np.testing.assert_array_equal(*predictions)
    run_task(make_cfg(*common, "optimizer.learning_rate=0.01", "trainer.share_compiled=false"), tmp_path / "rate_fresh")
    metrics = [pd.read_csv(tmp_path / run / "metrics.csv").drop(columns="epoch_seconds") for run in ("rate", "rate_fresh")]
    pd.testing.assert_frame_equal(*metrics)
    assert metrics[0]["learning_rate"].tolist() == [0.01, 0.01]
    # a schedule's rates are constants of the traced step: another rate (or anything else) builds anew
    # (the step's key, XLA or not: these two without it)
    run_task(make_cfg(*plain, "schedule=exponential", "trainer.epochs=1"), tmp_path / "exponential")
    kept = compiled._kept[1]
    run_task(make_cfg(*plain, "schedule=exponential", "trainer.epochs=1", "optimizer.learning_rate=0.01"),
             tmp_path / "exponential_rate")
    assert compiled._kept[1] is not kept
    # mixed_float16's loss-scale optimizer hides a variable of Nadam's from its list: never shared
    run_task(make_cfg(*common, "trainer.precision=mixed_float16", "trainer.epochs=1"), tmp_path / "float16")
    assert compiled._kept is None


def test_a_cnn_without_xla_trains_in_keras_own_loop(tmp_path, monkeypatch):
    """trainer.fuse_steps applies where it pays (README, Performance): a conv net without XLA keeps
    Keras' own loop with steps_per_execution; a dense net, or any net with XLA, gets the fused loop.
    Either way Keras' step is traced once (fused.build_state: built during the first trace, the
    metrics' and optimizer's variables made TensorFlow trace it twice, 5 s more for MobileNet)."""
    import keras
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    from dnn_train import fused
    from dnn_train.tasks import run_task
    from tests.conftest import make_cfg

    inputs = keras.Input((8, 8, 1))
    conv = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))))
    dense = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    assert not fused.fusing_pays(conv, xla=False)
    assert fused.fusing_pays(conv, xla=True) and fused.fusing_pays(dense, xla=False)

    fused_models, traced = [], []
    real_fuse, real_step = fused.fuse, TensorFlowTrainer.train_step
    monkeypatch.setattr(fused, "fuse", lambda model, xla: fused_models.append(xla) or real_fuse(model, xla))
    monkeypatch.setattr(TensorFlowTrainer, "train_step", lambda self, d: traced.append(1) or real_step(self, d))
    common = ["data=synthetic", "trainer.epochs=2", f"data.root={tmp_path / 'data'}", "trainer.diagnostics=false",
              "trainer.steps_per_execution=4"]
    cnn = run_task(make_cfg(*common, "model=cnn", "model.filters=[4]", "model.convs_per_block=1"), tmp_path / "cnn")
    assert cnn["status"] == "completed" and fused_models == []
    assert len(traced) == 1  # Keras' own loop: its step traced once, for every call of both epochs
    run_task(make_cfg(*common, "model.depth=1", "model.units=8"), tmp_path / "mlp")
    assert fused_models == [False] and len(traced) == 2  # 2 x 57 steps: too few for XLA to pay (auto)
    # 2 epochs of 300 steps: XLA counts the run's steps, not an epoch's
    run_task(make_cfg(*common, "model.depth=1", "model.units=8", "trainer.batch_size=6"), tmp_path / "mlp_long")
    assert fused_models == [False, True] and len(traced) == 3
    said = {run: next(line.split(" - ", 1)[1] for line in (tmp_path / run / "dnn_train.log").read_text().splitlines()
                      if " - loop: " in line) for run in ("cnn", "mlp", "mlp_long")}
    assert said == {"cnn": "loop: 114 training steps, Keras' own, 4 a call (docs/guides/performance.md)",
                    "mlp": "loop: 114 training steps, 64 fused a call, without XLA (docs/guides/performance.md)",
                    "mlp_long": "loop: 600 training steps, 64 fused a call, with XLA (docs/guides/performance.md)"}


def test_xla_fused_loop_matches_and_compiles_once():
    """With XLA (the default: fuse_steps=64, jit_compile=auto) the fused loop gives the same numbers
    as Keras' ordinary steps when nothing is random in a step (XLA draws its own dropout masks), and
    compiled function is traced once for all the epochs (every group has one shape: the last, shorter
    one is padded, and the odd last batch rides along, trained outside XLA)."""
    import keras
    import tensorflow as tf

    from dnn_train import data, fused

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (1000, 8, 8), dtype=np.uint8)  # 31 batches of 32 and one of 8: groups 8,8,8,7 + 1
    y = (x.reshape(1000, -1).mean(axis=1) > 127).astype(np.uint8)

    def trained(group, xla):
        keras.utils.set_random_seed(1)
        inputs = keras.Input((8, 8))
        h = keras.layers.Dense(16, activation="relu")(keras.layers.Rescaling(1 / 255)(keras.layers.Flatten()(inputs)))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
        if group > 1:
            model = fused.fuse(model, xla)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=False)
        epoch = tf.Variable(0, dtype=tf.int64)
        history = model.fit(data.make_dataset(x, y, 32, True, 1, epoch, group=group), epochs=3, verbose=0)
        return model, np.array([history.history["loss"], history.history["accuracy"]])

    _, ordinary = trained(1, False)
    model, compiled = trained(8, True)
    np.testing.assert_allclose(compiled, ordinary, rtol=1e-5)
    assert model._compiled_loop.experimental_get_tracing_count() == 1
    assert model._traced_step.experimental_get_tracing_count() == 1  # Keras' step: traced once for both paths



def test_jit_compile_auto_keeps_xla_off_convolutions_on_a_cpu():
    """auto means XLA where it pays: a Dense net gets it for a run of 500 steps or more (below, the
    compile costs more than it saves); on a CPU a conv net does not (XLA's CPU convolutions made the
    fashion_mnist_cnn preset's epoch 24x slower), nor a net with dropout (its masks: 4-5x slower
    epochs), nor a layer XLA cannot compile."""
    import keras

    from dnn_train import fused

    inputs = keras.Input((8, 8, 1))
    dense = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    conv = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))))
    shifted = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(
        keras.layers.RandomTranslation(0.1, 0.1)(inputs))))
    dropped = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dropout(0.2)(keras.layers.Flatten()(inputs))))
    assert fused.xla_pays(dense, steps=500)
    assert not fused.xla_pays(dense, steps=499)  # too short a run to repay the compile
    for net in (conv, shifted, dropped):
        assert not fused.xla_pays(net, steps=10**6)
