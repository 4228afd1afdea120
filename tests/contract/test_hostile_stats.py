"""A correction for multiple comparisons that names none, through the real command and held to
tests/hostile.py's promises: the sweep's summary callback is made before any job, so a bad
`hydra.callbacks.summary.correction` is one line, exit 2, and no sweep directory."""
from __future__ import annotations

import pytest

from dnn_train.sweeps import stats
from tests.hostile import SMALL_RUN, Sandbox

# What a user could type instead of holm, bh or none: another method's name, a name in capitals,
# YAML's null, a number, and a shell payload (it must stay text).
NOT_CORRECTIONS = ["bonferroni", "HOLM", "null", "0.05", "'holm; touch $MARKER'"]


@pytest.mark.parametrize("value", NOT_CORRECTIONS[::2])  # three subprocesses; the rest in-process below
def test_cli_a_sweep_with_an_unknown_correction_is_bad_input_before_any_job(tmp_path, value):
    box = Sandbox(tmp_path)
    proc = box.cli("-m", *SMALL_RUN, "trainer.seed=0,1", f"hydra.callbacks.summary.correction={value}",
                   f"hydra.sweep.dir={box.run}")
    line = box.check(proc, 2, "dnn_train: error: hydra.callbacks.summary.correction ")
    assert "expected holm, bh (Benjamini-Hochberg) or none" in line
    assert not box.run.exists()


@pytest.mark.parametrize("value", [*NOT_CORRECTIONS, None, 0.05, ["holm"]])
def test_the_summary_callback_refuses_every_name_but_holm_bh_and_none(value):
    from dnn_train.errors import ConfigError
    from dnn_train.sweeps.summary import SweepSummary

    with pytest.raises(ConfigError, match="expected holm, bh"):
        SweepSummary(correction=value)
    assert [SweepSummary(correction=name).correction for name in stats.CORRECTIONS] == list(stats.CORRECTIONS)
