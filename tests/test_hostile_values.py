"""Hostile values (issue 25, items 5, 6 and the warnings of 8), through the real command and held to
tests/hostile.py's promises: numbers as users type them train (an integer where Keras wants a float),
and a library's warnings go to the run's log, not to the terminal that gets one line. The removal of
a required group (`~data`) is in tests/test_config.py, the integers of every optimizer's every key in
tests/test_optim.py (in-process, generated from conf/)."""
from __future__ import annotations

from omegaconf import OmegaConf

from dnn_train.data.synthetic import generate
from tests.conftest import REPO, make_cfg, read_results
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
