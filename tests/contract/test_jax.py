"""Keras' JAX backend (KERAS_BACKEND=jax), as the GPU machines have it: no TensorFlow installed
(tests/without_tensorflow.py makes every import of it fail). Every task trains, saves, reloads and
resumes; the input pipeline is a keras.utils.PyDataset and the diagnostics' gradients are JAX's.
Each run is a subprocess: this process's Keras is on TensorFlow. Skipped without jax."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.cli import environment

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                 reason="jax is not installed (pip install -e '.[test]' brings it)")]
WITHOUT_TF = str(REPO / "tests" / "without_tensorflow.py")
TINY = ["data=synthetic", "data.synthetic.train_examples=400", "data.valid_split=100",
        "data.synthetic.test_examples=100", "trainer.progress=none", "model.depth=2", "model.units=16"]


@pytest.fixture(scope="module")
def xla_cache(tmp_path_factory):
    """One JAX compilation cache for this module's processes: a model traced again to the same program (the
    next job of a sweep, a resumed run, a saved model loaded back) skips XLA's compile, what the work here is."""
    return tmp_path_factory.mktemp("xla_cache")

# the conv nets (XLA compiles most of their cases) train on fewer images: two whole batches of 32, one
# shape for XLA to compile (the resume test's 300 training images end in a partial batch)
FEW_IMAGES = ["data.synthetic.train_examples=84", "data.valid_split=20", "data.synthetic.test_examples=20"]


def run_jax(*args: str, cwd, cache, timeout: int = 300) -> subprocess.CompletedProcess:
    env = environment({"KERAS_BACKEND": "jax", "MPLBACKEND": "Agg", "JAX_COMPILATION_CACHE_DIR": str(cache),
                       "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    return subprocess.run([sys.executable, WITHOUT_TF, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


RESUME = """
import json, sys
import keras, numpy as np
from dnn_train import load_run, run
assert keras.backend.backend() == "jax"
overrides = [*json.loads(sys.argv[1]), "trainer.epochs=3", "regularizer=dropout", "regularizer.rate=0.2",
             "schedule=1cycle", "optimizer=momentum"]

class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt

whole = run(*overrides, run_dir="whole")
try:
    run(*overrides, run_dir="cut", callbacks=[Interrupt()])
except KeyboardInterrupt:
    pass
assert load_run("cut").results["status"] == "interrupted"
resumed = run(*overrides, "trainer.resume=true", run_dir="cut")
a, b = load_run("whole"), load_run("cut")
cols = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
assert b.metrics["epoch"].tolist() == [1, 2, 3], b.metrics
np.testing.assert_allclose(b.metrics[cols].to_numpy(), a.metrics[cols].to_numpy(), rtol=1e-5)
assert abs(resumed["test_accuracy"] - whole["test_accuracy"]) < 1e-6
x = np.random.default_rng(0).integers(0, 256, (8, 8, 8), dtype=np.uint8)
np.testing.assert_allclose(a.model().predict(x, verbose=0), b.model().predict(x, verbose=0), atol=1e-6)
assert whole["status"] == "completed" and whole["grad_ratio_epoch1"] > 0
from dnn_train import compiled
run(*overrides, "trainer.seed=6", run_dir="seed6")
first = compiled._kept[1]
run(*overrides, "trainer.seed=7", run_dir="shared")  # on seed 6's model, its jitted step (trainer.share_compiled)
assert compiled._kept[1] is first
run(*overrides, "trainer.seed=7", "trainer.share_compiled=false", run_dir="fresh")
c, d = load_run("shared"), load_run("fresh")
np.testing.assert_array_equal(c.metrics[cols].to_numpy(), d.metrics[cols].to_numpy())
assert not np.allclose(c.metrics["loss"], a.metrics["loss"])
from dnn_train import compose
from dnn_train.models.network import build_model
net = build_model(compose(*json.loads(sys.argv[1])[:5], "model=cnn", "augment=flip_translate"), (8, 8), 4)
net.compile(loss="sparse_categorical_crossentropy", jit_compile="auto")
assert net.jit_compile is True  # RandomTranslation is jitted on JAX, not run op by op (models/parts.py)
# the diagnostics' probe, compiled once per set of trainable variables, gives what it gives op by op; a frozen
# layer (a transfer phase) gets a probe of its own, with no gradient for the frozen kernel
import jax
from dnn_train.diagnostics import Probe
mlp = load_run("whole").model()
probe = Probe(mlp, keras.losses.SparseCategoricalCrossentropy())
xs, ys = np.random.default_rng(1).integers(0, 256, (32, 8, 8), dtype=np.uint8), np.arange(32) % 4
def compiled_as_op_by_op():
    with jax.disable_jit():
        expected = probe.rows(xs, ys)
    got = probe.rows(xs, ys)
    assert [r["name"] for r in got] == [r["name"] for r in expected]
    for a, b in zip(got, expected):
        for k in ("act_mean", "act_std", "grad_norm"):
            assert (a[k] is None) == (b[k] is None) and (a[k] is None or np.isclose(a[k], b[k], rtol=1e-5)), (k, a, b)
    return got
assert all(r["grad_norm"] for r in compiled_as_op_by_op())
next(layer for layer in mlp.layers if isinstance(layer, keras.layers.Dense)).trainable = False
frozen = compiled_as_op_by_op()
assert frozen[0]["grad_norm"] is None and frozen[-1]["grad_norm"] and len(probe._jax_steps) == 2
assert "tensorflow" not in sys.modules
print("OK", whole["test_accuracy"])
"""


def test_jax_trains_saves_reloads_and_resumes_exactly_without_tensorflow(tmp_path, xla_cache):
    proc = run_jax("-c", RESUME, json.dumps(TINY), cwd=tmp_path, cache=xla_cache)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("extra", [["task=find_lr"], ["task=pretrain_autoencoder"],
                                   ["model=cnn", "model.filters=[8]", "augment=flip_translate", *FEW_IMAGES],
                                   ["model=backbone", "model.weights=null", "model.arch=MobileNet", *FEW_IMAGES],
                                   ["experiment=mc_dropout", "trainer.mc_samples=3", *TINY[5:], "trainer.tensorboard=true"]],
                         ids=["find_lr", "pretrain_autoencoder", "cnn", "backbone", "mc_dropout_tensorboard"])
def test_every_task_and_family_runs_on_jax_through_the_command(tmp_path, extra, xla_cache):
    run_dir = tmp_path / "run"
    args = [a for a in TINY if not (extra[0].startswith("model=") and a.startswith("model."))
            and a.split("=")[0] not in {e.split("=")[0] for e in extra}]
    proc = run_jax("-m", "dnn_train", *args, "trainer.epochs=2", *extra, f"hydra.run.dir={run_dir}", cwd=tmp_path,
                   cache=xla_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    if extra[0] != "task=find_lr":
        assert (run_dir / "model.keras").is_file()
    if "trainer.tensorboard=true" in extra:
        assert "TensorFlow is not installed" in (run_dir / "dnn_train.log").read_text()
