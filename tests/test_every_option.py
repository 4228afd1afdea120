"""Every option of every group, and every preset, through the whole run contract on a tiny
synthetic slice: interrupted after epoch 1, resumed with trainer.resume=true, completed, every
epoch once in metrics.csv, and model.keras loaded back in safe mode predicting what the trained
model predicted. (schedule=piecewise once failed every run at the final save while its test only
trained one step: hence whole runs.) Runs go through the Python API, which composes and validates
exactly as the command line does, in one process as a sweep would."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from dnn_train import load_run, run
from dnn_train.config import options

TINY = ["data=synthetic", "data.synthetic.train_examples=400", "data.valid_split=100",
        "data.synthetic.test_examples=100", "trainer.epochs=2", "trainer.progress=none"]
SMALL_MLP = ["model.depth=2", "model.units=16"]
GROUPS = ["model", "augment", "initializer", "activation", "normalization", "optimizer", "schedule", "regularizer",
          "trainer"]
# What an option or preset needs on synthetic data, or offline.
EXTRA = {
    ("model", "backbone"): ["model.weights=null", "model.arch=MobileNetV3Small", "trainer.jit_compile=false"],
    ("model", "cnn"): ["model.filters=[8,16]"],
    ("model", "resnet"): ["model.width=4", "model.blocks_per_stage=1"],
    ("experiment", "transfer_a"): ["data.classes=[0,1]"],
    ("experiment", "transfer_b"): ["data.binary=[2,3]"],
    ("experiment", "transfer_b_on_a"): ["data.binary=[2,3]", "transfer.freeze_epochs=1"],
    ("experiment", "backbone_finetune"): ["model.weights=null", "model.arch=MobileNetV3Small", "trainer.jit_compile=false"],
}
CASES = [(g, o) for g in GROUPS for o in options(g)] + [("experiment", o) for o in options("experiment")] \
    + [("hparams_search", o) for o in options("hparams_search")]
PROBE = np.random.default_rng(0).integers(0, 256, (16, 8, 8), dtype=np.uint8)


class InterruptAtEpoch2(keras.callbacks.Callback):
    """Ctrl-C as epoch 2 begins (what a user's interrupt does: results.json says interrupted)."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


class Predictions(keras.callbacks.Callback):
    """What the trained model predicts (after early stopping restored its best weights)."""

    def on_train_end(self, logs=None):
        self.value = self.model.predict(PROBE, verbose=0)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A finished transfer_a-shaped run for transfer_b_on_a to reuse."""
    folder = tmp_path_factory.mktemp("source") / "run"
    run(*TINY, "experiment=transfer_a", *EXTRA[("experiment", "transfer_a")], run_dir=folder)
    return folder


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_interrupted_resumed_saved_and_reloaded(tmp_path, group, option, request):
    overrides = [*TINY, f"{group}={option}", *EXTRA.get((group, option), [])]
    if group != "experiment" and (group != "model" or option == "mlp"):
        overrides += SMALL_MLP
    if option == "transfer_b_on_a":
        overrides.append(f"model.init_from={request.getfixturevalue('source_run')}")
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(*overrides, run_dir=run_dir, callbacks=[InterruptAtEpoch2()])
    assert json.loads((run_dir / "results.json").read_text())["status"] == "interrupted"

    predictions = Predictions()
    results = run(*overrides, "trainer.resume=true", run_dir=run_dir, callbacks=[predictions])
    assert results["status"] == "completed"
    done = load_run(run_dir)
    assert done.metrics["epoch"].tolist() == [1, 2]  # each epoch once
    assert done.results["restored_epoch"] in (1, 2)
    saved = done.model().predict(PROBE, verbose=0)  # safe mode, a fresh load
    np.testing.assert_allclose(saved, predictions.value, atol=1e-6)
    assert not (run_dir / "checkpoint").exists()
