"""trainer.distribution=data_parallel (dnn_train/distribute.py): one job on two virtual CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=2) on Keras' JAX backend, in a subprocess like
tests/contract/test_jax.py's; the refusals that need no device in this process (TensorFlow backend)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from dnn_train import DnnTrainError, compose
from tests.contract.test_jax import TINY, WITHOUT_TF
from tests.cli import environment
from tests.conftest import run_cli

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="jax is not installed (pip install -e '.[test]' brings it)")

# Tolerance against one device at the same global batch: the two devices' partial gradients are
# summed in another order than one device's, so float32 results differ in the last bits; over two
# epochs of a tiny net that stays far below rtol 1e-4. Test accuracy: equal, or one example apart.
TWO_DEVICES = """
import json, sys
import jax, keras, numpy as np
from dnn_train import DnnTrainError, load_run, run
assert keras.backend.backend() == "jax" and len(jax.devices()) == 2, jax.devices()
base = [*json.loads(sys.argv[1]), "trainer.epochs=2", "optimizer.learning_rate=0.05", "data.synthetic.noise=1.0"]
dp = [*base, "trainer.distribution=data_parallel"]

class Sharded(keras.callbacks.Callback):  # the weights live on both devices while training
    seen = set()
    def on_train_batch_end(self, batch, logs=None):
        Sharded.seen.add(len(self.model.trainable_variables[0].value.sharding.device_set))

class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt

one = run(*base, run_dir="one")
assert keras.distribution.distribution() is None
two = run(*dp, run_dir="two", callbacks=[Sharded()])
assert Sharded.seen == {2}, Sharded.seen
assert keras.distribution.distribution() is None  # cleared after the job: the next one is on one device
cols = ["loss", "accuracy", "val_loss", "val_accuracy"]
a, b = load_run("one").metrics, load_run("two").metrics
np.testing.assert_allclose(b[cols].to_numpy(), a[cols].to_numpy(), rtol=1e-4)
assert abs(two["test_accuracy"] - one["test_accuracy"]) <= 1 / 100 + 1e-9, (one, two)
assert one["test_accuracy"] > 0.5, one  # it learned: the numbers compared are not a constant
assert "data parallel over 2 devices (cpu:0, cpu:1): global batch 32, 16 per device" in \
    open("two/dnn_train.log").read()

# written on two devices, interrupted after epoch 1, resumed on one (no distribution)
try:
    run(*dp, run_dir="cut", callbacks=[Interrupt()])
except KeyboardInterrupt:
    pass
assert keras.distribution.distribution() is None
assert load_run("cut").results["status"] == "interrupted"
resumed = run(*base, "trainer.resume=true", run_dir="cut")
c = load_run("cut").metrics
assert c["epoch"].tolist() == [1, 2], c
np.testing.assert_allclose(c[cols].to_numpy(), a[cols].to_numpy(), rtol=1e-4)
assert abs(resumed["test_accuracy"] - one["test_accuracy"]) <= 1 / 100 + 1e-9

# refusals once JAX has loaded: one line, exit code 2, no run directory
for extra, says in ((["trainer.devices=[0,2]"], "this machine has 2 device(s)"),
                    (["trainer.batch_size=33"], "does not split evenly over 2 devices"),
                    (["data.valid_split=101"], "the last train batch holds 11 examples (299 % 32)"),
                    (["data.synthetic.test_examples=101"], "the last test batch holds 101 examples")):
    try:
        run(*dp, *extra, run_dir="refused")
        raise AssertionError(f"{extra} ran")
    except DnnTrainError as ex:
        assert ex.exit_code == 2 and says in ex.message and "\\n" not in ex.message, (extra, ex.message)
    import os
    assert not os.path.exists("refused"), extra
assert "tensorflow" not in sys.modules
print("OK", one["test_accuracy"], two["test_accuracy"])
"""


@pytest.mark.slow
@needs_jax
def test_two_devices_train_as_one_and_resume_on_one(tmp_path):
    env = environment({"KERAS_BACKEND": "jax", "MPLBACKEND": "Agg", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    proc = subprocess.run([sys.executable, WITHOUT_TF, "-c", TWO_DEVICES, json.dumps(TINY)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.slow
def test_tensorflow_refuses_data_parallel_naming_jax(tmp_path):
    """The command on TensorFlow (the default backend): one line naming the JAX path, exit 2, no run."""
    import keras

    run_dir = tmp_path / "run"
    # forked from the tests' server when it is on TensorFlow, as this process is (KERAS_BACKEND unset: the default)
    proc = run_cli(*TINY, "trainer.distribution=data_parallel", f"hydra.run.dir={run_dir}", cwd=tmp_path,
                   env=None if keras.backend.backend() == "tensorflow" else {"KERAS_BACKEND": "tensorflow"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        "dnn_train: error: trainer.distribution=data_parallel: Keras' distribution API runs on the JAX backend, "
        "not tensorflow; run with KERAS_BACKEND=jax (pip install jax)"], proc.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("overrides, says", [
    (["trainer.distribution=data_parallel", "trainer.devices=[0,1]", "trainer.batch_size=33"],
     "trainer.batch_size=33: does not split evenly over 2 devices (trainer.devices=[0, 1]); use a multiple of 2"),
    (["trainer.devices=[0,1]"], "trainer.devices=[0, 1]: only with trainer.distribution=data_parallel"),
    (["trainer.distribution=data_parallel", "trainer.devices=[0,0]"],
     "trainer.devices=[0, 0]: expected null (all devices) or a non-empty list of distinct device indices >= 0"),
    (["trainer.distribution=data_parallel", "trainer.devices=[]"], "trainer.devices=[]: expected null (all devices)"),
    (["trainer.distribution=model_parallel"],
     "trainer.distribution=model_parallel: expected one of null, data_parallel"),
], ids=["indivisible", "devices_alone", "repeated", "empty", "unknown"])
def test_distribution_values_are_checked_before_any_backend_loads(overrides, says):
    with pytest.raises(DnnTrainError) as err:
        compose(*overrides)
    assert err.value.exit_code == 2 and says in err.value.message, err.value.message
    assert compose("trainer.distribution=data_parallel", "trainer.devices=[1,0]").trainer.devices == [1, 0]
