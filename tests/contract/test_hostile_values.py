"""Hostile values (issue 25, items 5, 6 and the warnings of 8), through the real command and held to
tests/hostile.py's promises: numbers as users type them train (an integer where Keras wants a float),
and a library's warnings go to the run's log, not to the terminal that gets one line. The removal of
a required group (`~data`) is in tests/unit/config/test_config.py, the integers of every optimizer's every key in
tests/unit/training/test_optim.py (in-process, generated from conf/)."""
from __future__ import annotations

from omegaconf import OmegaConf

from dnn_train.data.synthetic import generate
from tests import cli
from tests.conftest import make_cfg, read_results
from tests.hostile import SMALL_RUN, Sandbox


def sandbox(tmp_path) -> Sandbox:
    """A Sandbox whose cache already holds what a small synthetic run reads (the synthetic files, the
    Keras home), so that a run that trains changes nothing outside its directory."""
    box = Sandbox(tmp_path)
    generate(make_cfg(*SMALL_RUN, f"data.root={box.cache / 'dnn_train'}").data)
    (box.cache / "keras").mkdir()
    box.freeze()
    return box


def test_integers_where_keras_wants_floats_train(tmp_path):
    """`optimizer=momentum optimizer.momentum=0` and `optimizer.learning_rate=1`: Keras' SGD refused
    both (isinstance float) with its raw message after the data had loaded."""
    box = sandbox(tmp_path)
    proc = box.cli(*SMALL_RUN, "optimizer=momentum", "optimizer.momentum=0", "optimizer.learning_rate=1",
                   f"hydra.run.dir={box.run}")
    box.check(proc, 0)
    assert proc.stderr.strip() == "", proc.stderr
    assert read_results(box.run)["status"] == "completed"
    recorded = OmegaConf.load(box.run / "config.yaml").optimizer
    assert (recorded.momentum, recorded.learning_rate) == (0, 1)


WARNS = """
import sys, warnings
import keras
import matplotlib.pyplot as plt
from dnn_train import run

class Warn(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        warnings.warn("a library's UserWarning", UserWarning)
        fig, ax = plt.subplots(figsize=(0.5, 0.5), layout="constrained")  # matplotlib's own warning
        ax.set_title("x" * 80)
        fig.canvas.draw()
        plt.close(fig)

run(*sys.argv[2:], run_dir=sys.argv[1], callbacks=[Warn()])
warnings.warn("after the job", UserWarning)  # the process's own handling is back
"""


def test_library_warnings_go_to_the_runs_log_not_the_terminal(tmp_path):
    box = sandbox(tmp_path)
    proc = cli.forked([str(box.run), *SMALL_RUN], cwd=tmp_path, env=cli.environment(box.env), timeout=300, code=WARNS)
    box.check(proc, 0)
    assert read_results(box.run)["status"] == "completed"
    log = (box.run / "dnn_train.log").read_text()
    assert "UserWarning: a library's UserWarning" in log and "constrained_layout not applied" in log, log
    warned = [ln for ln in proc.stderr.splitlines() if "Warning" in ln]  # TensorFlow's C++ lines aside
    assert len(warned) == 1 and "UserWarning: after the job" in warned[0], proc.stderr
    assert "after the job" not in log
