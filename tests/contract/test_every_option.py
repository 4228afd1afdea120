"""Every option of every group, and every preset, through the whole run contract on a tiny
synthetic slice: interrupted after epoch 1, resumed with trainer.resume=true, completed, every
epoch once in metrics.csv, and model.keras loaded back in safe mode predicting what the trained
model predicted. (schedule=piecewise once failed every run at the final save while its test only
trained one step: hence whole runs.) Runs go through the Python API, which composes and validates
exactly as the command line does, in one process as a sweep would."""
from __future__ import annotations

import functools
import json

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from dnn_train import compose, load_run, run
from dnn_train.config.help import options
from dnn_train.config.schema import CONF_DIR
from dnn_train.data.catalog import DATASETS
from dnn_train.models import families
from tests import datafiles
from tests.conftest import assert_rows_hold_every_option, option_rows

SYNTHETIC = ["data=synthetic", "data.synthetic.train_examples=400", "data.valid_split=100",
             "data.synthetic.test_examples=100"]
TINY = [*SYNTHETIC, "trainer.epochs=2", "trainer.progress=none"]
SMALL_MLP = families.tiny("mlp")
# Groups whose options are each a run of their own: a dataset's files, a model family's shape, the defaults.
ALONE = ["data", "model", "trainer"]
# The knob groups act on one network side by side: their options share runs (knob_rows).
KNOBS = ["augment", "initializer", "activation", "normalization", "optimizer", "schedule", "regularizer",
         "trainer.precision"]
# What an option or preset needs on synthetic data, or offline.
EXTRA = {
    **{("model", name): families.tiny(name) for name in families.builders() if name != "mlp"},  # mlp: SMALL_MLP
    ("experiment", "transfer_a"): ["data.classes=[0,1]"],
    ("experiment", "transfer_b"): ["data.binary=[2,3]"],
    ("experiment", "transfer_b_on_a"): ["data.binary=[2,3]", "transfer.freeze_epochs=1"],
    ("experiment", "backbone_finetune"): ["model.weights=null", "model.arch=MobileNet", "trainer.jit_compile=false",
                                          "data.image_size=[32,32]",
                                          "transfer.freeze_epochs=0", "transfer.finetune_lr=null"],
    ("experiment", "transfer_cnn_a"): ["data.classes=[0,1]", "model.filters=[8]"],
    ("experiment", "transfer_cnn_b"): ["data.binary=[2,3]", "model.filters=[8]"],
    ("experiment", "transfer_cnn_b_on_a"): ["data.binary=[2,3]", "model.filters=[8]", "transfer.freeze_epochs=1"],
    ("experiment", "cifar10_cnn"): ["model.filters=[8,16]"],
    ("experiment", "fashion_mnist_cnn"): ["model.filters=[8,16]"],
}
# The data options read tiny files written in their official formats (data.root), not synthetic data.
DATA_FILES = {name: functools.partial(datafiles.write_dataset, name) for name, entry in DATASETS.items()
              if not entry.generated}


def knob_options(group: str) -> list[str]:
    return ["float32", "mixed_float16", "mixed_bfloat16"] if group == "trainer.precision" else options(group)


def knob_rows() -> list[list[str]]:
    """Every option of every knob group in a whole run, with the other groups' options beside it
    (conftest.option_rows: 9 runs hold the 50 options, as a user's run does). mixed_float16: a
    loss-scaled optimizer to save."""
    return option_rows(KNOBS, knob_options)


# The options of ALONE's groups that TINY chooses, or config.yaml where TINY does not: each would be the
# defaults' run.
CHOSEN = {k: v for d in OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml").defaults)
          if isinstance(d, dict) for k, v in d.items()}
CHOSEN |= {o.split("=")[0]: o.split("=")[1] for o in TINY if "." not in o.split("=")[0]}
IN_THE_DEFAULTS_RUN = [f"{g}={o}" for g in ALONE for o in options(g) if CHOSEN.get(g) == o]
# (id, group, option, overrides): the defaults' run, a run per other option of ALONE's groups and per preset,
# the knob rows.
CASES = [("defaults", "defaults", None, [])] \
    + [(f"{g}={o}", g, o, [f"{g}={o}"]) for g in ALONE for o in options(g) if f"{g}={o}" not in IN_THE_DEFAULTS_RUN] \
    + [("+".join(o.split("=")[1] for o in row), "knobs", None, row) for row in knob_rows()] \
    + [(f"{g}={o}", g, o, [f"{g}={o}"]) for g in ("experiment", "hparams_search") for o in options(g)]


class InterruptAtEpoch2(keras.callbacks.Callback):
    """Ctrl-C as epoch 2 begins (what a user's interrupt does: results.json says interrupted)."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def predict(model, images) -> np.ndarray:
    """What `model` predicts: the model called in inference mode, what predict() computes without tracing
    a predict function for one batch (MobileNet's took seconds)."""
    return keras.ops.convert_to_numpy(model(images, training=False))


class Predictions(keras.callbacks.Callback):
    """What the trained model predicts on random images (after early stopping restored its best weights)."""

    def on_train_end(self, logs=None):
        shape = tuple(self.model.inputs[0].shape[1:])
        self.probe = np.random.default_rng(0).integers(0, 256, (16, *shape), dtype=np.uint8)
        self.value = predict(self.model, self.probe)


@pytest.fixture(scope="module")
def source_runs(tmp_path_factory):
    """Finished transfer_a and transfer_cnn_a runs for the _b_on_a presets to reuse."""
    folder = tmp_path_factory.mktemp("source")
    for preset in ("transfer_a", "transfer_cnn_a"):
        run(*TINY, f"experiment={preset}", *EXTRA[("experiment", preset)], run_dir=folder / preset)
    return folder


@functools.cache
def mlp_preset(option: str) -> bool:
    """A preset of the MLP family whose run no other run reuses (the transfer presets' sources keep their size)."""
    return not option.startswith("transfer") and \
        compose(f"experiment={option}", *EXTRA.get(("experiment", option), [])).model.get("units") is not None


# Presets of a dataset that is only ever a folder given with data.root (backbone_finetune: images), and its keys.
ROOT_ONLY_PRESETS = {o: d["override /data"] for o in options("experiment")
                     for d in OmegaConf.load(CONF_DIR / "experiment" / f"{o}.yaml").get("defaults", [])
                     if "override /data" in d and DATASETS[d["override /data"]].root_only}
FAST = {("defaults", None)}  # the defaults' whole run in the fast check (-m "not slow"); the matrix is slow


@pytest.mark.parametrize("group, option, chosen", [
    pytest.param(g, o, c, id=i, marks=() if (g, o) in FAST else pytest.mark.slow) for i, g, o, c in CASES])
def test_interrupted_resumed_saved_and_reloaded(tmp_path, group, option, chosen, request):
    overrides = [*TINY, *chosen, *EXTRA.get((group, option), [])]
    dataset = option if group == "data" else ROOT_ONLY_PRESETS.get(option)  # a preset for your own images: them
    if dataset in DATA_FILES:
        folder = DATA_FILES[dataset](tmp_path / "files")
        overrides = [o for o in overrides if o not in SYNTHETIC] + [f"data.root={folder}", "data.valid_split=0.2"]
    if group in ("defaults", "data", "trainer", "knobs") or option == "mlp" \
            or group == "experiment" and mlp_preset(option):
        overrides += SMALL_MLP  # a preset's own depth and width (up to 20 x 100) is not what the contract needs
    if group == "experiment" and option.endswith("_b_on_a"):
        overrides.append(f"model.init_from={request.getfixturevalue('source_runs') / option.replace('_b_on_a', '_a')}")
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
    saved = predict(done.model(), predictions.probe)  # safe mode, a fresh load
    np.testing.assert_allclose(saved, predictions.value, atol=1e-6)
    assert not (run_dir / "checkpoint").exists()


def test_the_knob_rows_hold_every_option_of_every_knob_group():
    assert_rows_hold_every_option(knob_rows(), KNOBS, knob_options)


def test_the_options_in_the_defaults_run_compose_to_it():
    """data=synthetic, model=mlp and trainer=default are the defaults' run (one case holds them)."""
    assert {"data=synthetic", "model=mlp", "trainer=default"} <= set(IN_THE_DEFAULTS_RUN)
    defaults = OmegaConf.to_container(compose(*TINY, *SMALL_MLP))
    for option in set(IN_THE_DEFAULTS_RUN) - set(TINY):  # TINY's own: the same overrides
        assert OmegaConf.to_container(compose(*TINY, option, *SMALL_MLP)) == defaults, option
