"""Hyperparameter search (dnn_train/search.py, our Optuna sweeper): Hydra's sweep syntax mapped to
Optuna, a trial pruned and recorded as such, a killed search resumed from its SQLite study."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import SMALL, read_results, run_cli
from tests.test_reliability import popen_cli

# A tiny search: two learning rates, one of which learns nothing, so the median rule prunes it
# once a trial with the other has finished. Searches read their YAML from conf/hparams_search/;
# the tests add theirs through Hydra's search path.
TINY_SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: optuna_pruning
  - override /hydra/sweeper/sampler: random
  - override /hydra/sweeper/pruner: {pruner}
hydra:
  sweep:
    dir: outputs/hparams_search/${{hydra.sweeper.study_name}}
  sweeper:
    study_name: tiny
    n_trials: {n_trials}
    sampler: {{seed: 0}}  # learning rates 1e-7, 0.01, 1e-7, 1e-7
    params:
      optimizer.learning_rate: choice(0.01, 1e-7)
"""


def _optuna():
    optuna = pytest.importorskip("optuna", minversion="4", reason="needs the sweeps extra (optuna>=4)")
    pytest.importorskip("optuna_integration", reason="needs the sweeps extra (optuna-integration)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _search_args(tmp_path, pruner="median", n_trials=4, epochs=3):
    conf = tmp_path / "conf" / "hparams_search"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "tiny.yaml").write_text(TINY_SEARCH.format(pruner=pruner, n_trials=n_trials))
    return ["-m", "hparams_search=tiny", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", *SMALL,
            f"trainer.epochs={epochs}", "optimizer=nadam", f"data.root={tmp_path / 'data'}", "trainer.progress=none"]


def _study(tmp_path):
    optuna = _optuna()
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/outputs/hparams_search/tiny/optuna.db")


# ---------------------------------------------------------------- the search space
@pytest.mark.plugins
@pytest.mark.parametrize("line, expected", [
    ("a=tag(log, interval(1e-4, 1e-2))", ("FloatDistribution", dict(low=1e-4, high=1e-2, log=True))),
    ("a=range(1, 5)", ("IntDistribution", dict(low=1, high=4))),  # Hydra's stop is exclusive
    ("a=range(16, 129, 16)", ("IntDistribution", dict(low=16, high=128, step=16))),
    ("a=range(0.0, 0.3, 0.1)", ("FloatDistribution", dict(low=0.0, high=0.2, step=0.1))),
    ("a=choice(50, 100, 200)", ("CategoricalDistribution", dict(choices=[50, 100, 200]))),
    ("a=adam,nadam", ("CategoricalDistribution", dict(choices=["adam", "nadam"]))),
    ("a=interval(0.0, 0.5)", ("FloatDistribution", dict(low=0.0, high=0.5))),
    ("a=5", None),
])
def test_hydra_sweep_syntax_maps_to_optuna_as_hydra_1_4_does(line, expected):
    optuna = _optuna()
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dnn_train.search import distribution

    got = distribution(OverridesParser.create().parse_override(line))
    want = None if expected is None else getattr(optuna.distributions, expected[0])(**expected[1])
    assert got == want


@pytest.mark.plugins
def test_the_search_space_keeps_other_overrides_for_every_trial():
    _optuna()
    from dnn_train.search import search_space

    dists, fixed = search_space({"model.depth": "range(1, 3)"}, ["hparams_search=x", "trainer.epochs=3", "a=b,c"])
    assert sorted(dists) == ["a", "model.depth"] and fixed == ["hparams_search=x", "trainer.epochs=3"]


# ---------------------------------------------------------------- pruning
@pytest.mark.plugins
def test_a_hopeless_trial_is_pruned_recorded_as_pruned_and_the_search_exits_0(tmp_path):
    optuna = _optuna()
    from optuna.trial import TrialState

    proc = run_cli(*_search_args(tmp_path), "hydra.sweeper.pruner.n_startup_trials=1", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "outputs" / "hparams_search" / "tiny"
    trials = _study(tmp_path).trials
    states = [t.state for t in trials]
    # 1e-7 first (nothing to compare with), 0.01, then 1e-7 twice: below the median after epoch 1
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED], states
    for t in trials:  # job directory == trial number; its record says what the study says
        results = read_results(sweep / str(t.number))
        assert results["status"] == {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned"}[t.state]
        assert results["epochs"] == len(t.intermediate_values) == (3 if t.state == TrialState.COMPLETE else
                                                                   results["epochs"])
        if t.state == TrialState.PRUNED:
            assert t.params["optimizer.learning_rate"] == 1e-7 and results["epochs"] < 3
            assert results["error"] == f"pruned by the search's pruner after epoch {results['epochs']}"
            assert not (sweep / str(t.number) / "checkpoint").exists()  # it will never resume
            assert not (sweep / str(t.number) / "model.keras").exists()
        else:
            assert t.value == pytest.approx(results["best_val_accuracy"])
    n_pruned = states.count(TrialState.PRUNED)
    assert f"sweep of 4 jobs: {4 - n_pruned} completed, {n_pruned} pruned, 0 not" in proc.stdout
    table = pd.read_csv(sweep / "summary.csv")
    assert table["status"].tolist() == [{TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned"}[s]
                                        for s in states]
    assert f"{n_pruned} pruned by the search" in (sweep / "summary.md").read_text()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    study = _study(tmp_path)
    assert best["best_trial"] == study.best_trial.number and best["best_value"] == study.best_value
    assert best["trials"] == {"complete": 4 - n_pruned, "pruned": n_pruned}
    assert optuna.__version__ and isinstance(study.pruner, optuna.pruners.BasePruner)


@pytest.mark.plugins
def test_a_killed_search_resumes_from_its_sqlite_study(tmp_path):
    from optuna.trial import TrialState

    args = _search_args(tmp_path, pruner="nop", n_trials=3, epochs=3)
    sweep = tmp_path / "outputs" / "hparams_search" / "tiny"
    proc = popen_cli(*args, cwd=tmp_path)
    deadline = time.time() + 300
    while not (sweep / "1" / "checkpoint" / "state.json").exists():  # trial 1 is between epochs
        assert time.time() < deadline and proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    trials = _study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert 1 <= len(trials[1].intermediate_values) < 3
    params = trials[1].params

    again = run_cli(*args, cwd=tmp_path, timeout=600)  # the same command continues the study
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming 1 trial(s) a previous search left running: [1]" in again.stdout
    trials = _study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[1].params == params and sorted(trials[1].intermediate_values) == [0, 1, 2]
    log = (sweep / "1" / "dnn_train.log").read_text()
    assert f"resuming {sweep / '1'} after epoch" in log  # from the trial's own checkpoint, in its directory
    assert pd.read_csv(sweep / "1" / "metrics.csv")["epoch"].tolist() == [1, 2, 3]
    assert trials[1].value == pytest.approx(read_results(sweep / "1")["best_val_accuracy"])

    rerun = run_cli(*args, cwd=tmp_path, timeout=300)  # nothing left to do
    assert rerun.returncode == 0 and len(_study(tmp_path).trials) == 3
