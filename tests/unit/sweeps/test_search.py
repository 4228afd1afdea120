"""Hyperparameter search (dnn_train/sweeps/search_*.py, our Optuna sweeper): Hydra's sweep syntax mapped to
Optuna, a trial pruned and recorded as such, a killed search resumed from its SQLite study, workers
sharing one journal study (claims, heartbeats, stale trials taken over); and
where runs are compared (dnn_train/tracking.py): TensorBoard HParams records read back with
tensorboard's event reader, MLflow records read back with MlflowClient from the SQLite store."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, SMALL, read_results, run_cli, start_cli

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


# 400 training images (0.01 still beats 1e-7 after one epoch); 200 validation: accuracies exact in metrics.csv's 6 digits
FEWER = ["data.synthetic.train_examples=600", "data.valid_split=200", "data.synthetic.test_examples=100"]


def _search_args(tmp_path, pruner="median", n_trials=4, epochs=2):
    conf = tmp_path / "conf" / "hparams_search"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "tiny.yaml").write_text(TINY_SEARCH.format(pruner=pruner, n_trials=n_trials))
    return ["-m", "hparams_search=tiny", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", *SMALL, *FEWER,
            f"trainer.epochs={epochs}", "optimizer=nadam", f"data.root={tmp_path / 'data'}", "trainer.progress=none"]


def _study(tmp_path):
    optuna = _optuna()
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/outputs/hparams_search/tiny/optuna.db")


def test_the_job_side_outside_a_search_imports_neither_optuna_nor_the_driver():
    """The training loop asks every run for its pruning callbacks: outside a search, [] with Optuna,
    the driver and the comparison's modules left unimported (a run need not have the sweeps extra)."""
    code = ("import sys; from dnn_train.sweeps.search_trial import pruning_callbacks, note_failure, raise_if_pruned; "
            "assert pruning_callbacks() == []; note_failure('x'); raise_if_pruned('.'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'optuna_integration', 'pandas') "
            "or m.startswith('dnn_train.sweeps.') and m not in ('dnn_train.sweeps.search_trial', "
            "'dnn_train.sweeps.search_storage')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


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

    from dnn_train.sweeps.search_space import distribution

    got = distribution(OverridesParser.create().parse_override(line))
    want = None if expected is None else getattr(optuna.distributions, expected[0])(**expected[1])
    assert got == want


@pytest.mark.plugins
def test_the_search_space_keeps_other_overrides_for_every_trial():
    _optuna()
    from dnn_train.sweeps.search_space import search_space

    dists, fixed = search_space({"model.depth": "range(1, 3)"}, ["hparams_search=x", "trainer.epochs=3", "a=b,c"])
    assert sorted(dists) == ["a", "model.depth"] and fixed == ["hparams_search=x", "trainer.epochs=3"]


# ---------------------------------------------------------------- pruning
@pytest.mark.slow
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
        assert results["epochs"] == len(t.intermediate_values) == (2 if t.state == TrialState.COMPLETE else
                                                                   results["epochs"])
        if t.state == TrialState.PRUNED:
            assert t.params["optimizer.learning_rate"] == 1e-7 and results["epochs"] < 2
            assert results["error"] == f"pruned by the search's pruner after epoch {results['epochs']}"
            assert not (sweep / str(t.number) / "checkpoint").exists()  # it will never resume
            assert not (sweep / str(t.number) / "model.keras").exists()
        else:
            assert t.value == pytest.approx(results["best_val_accuracy"])
    n_pruned = states.count(TrialState.PRUNED)
    hparams, metrics = _hparams_record(sweep / "2" / "tensorboard")  # the pruned trial in TensorBoard's table
    assert hparams["status"] == "pruned" and metrics["epochs"] == (1, 1.0)
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


@pytest.mark.slow
@pytest.mark.plugins
def test_a_killed_search_resumes_from_its_sqlite_study(tmp_path):
    _optuna()
    from optuna.trial import TrialState

    args = _search_args(tmp_path, pruner="nop", n_trials=3, epochs=3)
    sweep = tmp_path / "outputs" / "hparams_search" / "tiny"
    proc = start_cli(*args, cwd=tmp_path)
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


# ---------------------------------------------------------------- several workers on one study
def _journal_study(path: Path, name: str = "tiny"):
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(str(path))))


@pytest.mark.slow
@pytest.mark.plugins
def test_two_workers_on_one_journal_run_each_trial_once_and_complete_the_study(tmp_path):
    """Two processes run the same command on one journal study: each claims a trial when it frees up;
    neither takes over the other's live trial (the second starts while the first's trial 0 runs); the
    study ends with n_trials finished, each trial told by one worker and run once in its directory."""
    _optuna()
    from optuna.trial import TrialState

    args = [*_search_args(tmp_path, n_trials=5, epochs=2), "hydra.sweeper.pruner.n_startup_trials=1",
            "hydra.sweeper.storage=journal", "hydra.sweeper.heartbeat_interval=0.5", "hydra.sweeper.grace_period=4"]
    sweep = tmp_path / "outputs" / "hparams_search" / "tiny"
    first = start_cli(*args, cwd=tmp_path)
    deadline = time.time() + 300
    while not (sweep / "0" / "results.json").exists():  # trial 0 is running
        assert time.time() < deadline and first.poll() is None, first.communicate()[1][-2000:]
        time.sleep(0.05)
    second = start_cli(*args, cwd=tmp_path)
    outs = [proc.communicate(timeout=600)[0] for proc in (first, second)]
    for proc, out in zip((first, second), outs):
        assert proc.returncode == 0, (out[-2000:], proc.stderr)
        assert "resuming" not in out  # no trial taken over: every one was live
    trials = _journal_study(sweep / "optuna.journal").trials
    assert len(trials) == 5 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), trials
    told = [{int(n) for n in re.findall(r"\] trial (\d+): ", out)} for out in outs]
    assert told[0] and told[1] and not told[0] & told[1] and told[0] | told[1] == set(range(5)), told
    for t in trials:
        worker = first if t.number in told[0] else second
        assert t.system_attrs["dnn_train:owner"]["pid"] == worker.pid  # beaten by the worker that told it
        assert (sweep / str(t.number) / "dnn_train.log").read_text().count("model: mlp") == 1  # run once
        results = read_results(sweep / str(t.number))
        assert results["status"] == {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned"}[t.state]
    summary = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert sum(summary["trials"].values()) == 5 and not (sweep / "optuna.db").exists()


@pytest.mark.plugins
def test_a_worker_claims_new_trials_up_to_n_trials_and_takes_over_only_stale_ones(tmp_path):
    """Two workers' claims on one journal, in-process, with worker B's clock in our hands: B never
    takes A's trial while A beats it, however long B waits; it takes it over once its record has not
    changed for grace_period (A's host is another: no pid to check), and at once when its worker on
    this host has exited. New trials stop at n_trials."""
    optuna = _optuna()
    from omegaconf import OmegaConf

    from dnn_train.sweeps.search_driver import StudyDriver
    from dnn_train.sweeps.search_storage import JOURNAL_FILE, journal_storage
    from dnn_train.sweeps.search_workers import OWNER_ATTR, Liveness, beat, claim_lock

    storage = journal_storage(tmp_path / JOURNAL_FILE)
    study = optuna.create_study(study_name="s", storage=storage)
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}

    def worker():
        driver = StudyDriver(
            sampler=OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0}),
            pruner=OmegaConf.create({"_target_": "optuna.pruners.NopPruner"}), direction="minimize", study_name="s",
            storage="journal", n_trials=3, n_jobs=1, params=None, monitor="val_loss", heartbeat_interval=1,
            grace_period=10)
        clock = [0.0]
        liveness = Liveness(10, clock=lambda: clock[0])

        def claim(advance=0.0):
            clock[0] += advance
            with claim_lock(tmp_path):
                return [t.number for t in driver.claim(study, space, liveness)]
        return claim

    a, b = worker(), worker()
    assert a() == [0] and b() == [1]  # new trials, one each: A's trial 0 is live
    study.tell(1, 0.5)
    trial_0 = optuna.trial.Trial(study, study.trials[0]._trial_id)
    beat(trial_0)  # A beats while B waits
    assert b(100) == [2]  # not trial 0
    study.tell(2, 0.5)
    beat(trial_0)
    assert b(100) == []  # n_trials reached; trial 0 still live
    storage.set_trial_system_attr(study.trials[0]._trial_id, OWNER_ATTR,
                                  {"host": "elsewhere", "pid_namespace": "", "pid": 1, "beat": 1.0})
    assert b(3) == [] and b(9) == []  # a changed record: its grace starts again
    assert b(2) == [0]  # 11 s unchanged: stale; taken over with its parameters
    assert a(1000) == []  # B just beat it
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owner = dict(study.trials[0].system_attrs[OWNER_ATTR], pid=gone.pid)
    storage.set_trial_system_attr(study.trials[0]._trial_id, OWNER_ATTR, owner)
    assert a() == [0]  # its worker on this host has exited: at once
    assert len(study.trials) == 3


# ---------------------------------------------------------------- TensorBoard HParams
def _hparams_record(board: Path):
    """(hyperparameters, {metric: (step, value)}) from the run's event files, as TensorBoard reads them."""
    from google.protobuf.json_format import MessageToDict
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(board))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    start = metadata.parse_session_start_info_plugin_data(content)
    hparams = {k: MessageToDict(v) for k, v in start.hparams.items()}
    metrics = {}
    for tag in acc.Tags()["tensors"]:
        if tag != metadata.SESSION_START_INFO_TAG:
            (event,) = acc.Tensors(tag)
            metrics[tag] = (event.step, event.tensor_proto.float_val[0])
    return hparams, metrics


@pytest.mark.slow
def test_every_run_writes_its_hparams_and_final_metrics_for_tensorboard(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*SMALL, *FEWER, f"data.root={tmp_path / 'data'}", "trainer.epochs=2", "optimizer=nadam",
                   "optimizer.learning_rate=0.003", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = read_results(run_dir)
    hparams, metrics = _hparams_record(run_dir / "tensorboard")
    assert hparams["optimizer"] == "nadam" and hparams["optimizer.learning_rate"] == 0.003
    assert hparams["model.depth"] == 2 and hparams["data"] == "synthetic" and hparams["status"] == "completed"
    assert "data.root" not in hparams  # where the data is, not a hyperparameter
    for name in ("best_val_accuracy", "test_accuracy", "test_loss", "wall_seconds"):
        assert metrics[name] == (2, pytest.approx(results[name])), name


def test_hparams_are_written_without_tensorflow(tmp_path):
    """The record needs the tensorboard package only (TensorFlow may be absent on another backend)."""
    script = f"""
import sys
sys.modules["tensorflow"] = None  # import tensorflow now fails
from pathlib import Path
from types import SimpleNamespace
from omegaconf import OmegaConf
from dnn_train import tracking
run = SimpleNamespace(dir=Path({str(tmp_path)!r}), cfg=OmegaConf.create({{"optimizer": {{"learning_rate": 0.1}}}}),
                      overrides=["optimizer.learning_rate=0.1"], hydra_cfg=None, started=0,
                      results={{"status": "failed", "epochs": 1, "best_val_accuracy": 0.5}})
tracking.write_hparams(run)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hparams, metrics = _hparams_record(tmp_path / "tensorboard")
    assert hparams == {"optimizer.learning_rate": 0.1, "status": "failed"}
    assert metrics == {"best_val_accuracy": (1, 0.5), "epochs": (1, 1.0)}


# ---------------------------------------------------------------- MLflow
@pytest.mark.slow
def test_logger_mlflow_logs_params_epochs_artifacts_and_the_model(tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    proc = run_cli(*SMALL, *FEWER, f"data.root={tmp_path / 'data'}", "trainer.epochs=2", "logger=mlflow",
                   f"hydra.run.dir={run_dir}", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = read_results(run_dir)
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"  # the default: offline, under the current directory
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("dnn_train").experiment_id])
    assert run.info.run_id == results["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.data.tags["dnn_train.status"] == "completed" and run.data.tags["dnn_train.run_dir"] == str(run_dir)
    assert run.data.params["trainer.epochs"] == "2" and run.data.params["model.units"] == "32"
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2]
    epochs = pd.read_csv(run_dir / "metrics.csv")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(epochs["val_accuracy"].tolist())
    for name in ("test_accuracy", "test_loss", "best_val_accuracy"):
        assert run.data.metrics[name] == pytest.approx(results[name]), name
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.json", "config.yaml", "metrics.csv", "curves.png", "dnn_train.log"} <= artifacts
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run.info.run_id
    mlflow.set_tracking_uri(uri)
    import numpy as np

    import dnn_train.saving  # noqa: F401  registers our layers
    x = np.random.default_rng(0).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    import keras

    saved = keras.saving.load_model(run_dir / "model.keras", compile=False)
    logged = mlflow.keras.load_model(model.model_uri)
    assert np.allclose(logged.predict(x, verbose=0), saved.predict(x, verbose=0), atol=1e-6)


@pytest.mark.slow
def test_logger_mlflow_without_mlflow_is_refused_in_one_line(tmp_path):
    # an mlflow package that fails to import, in the command's folder: first on `python -m`'s sys.path
    # (the fork server's too: its '' is the child's folder), so the PYTHONPATH and its server stay the tests'
    fake = tmp_path / "mlflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named mlflow')\n")
    proc = run_cli(*SMALL, f"data.root={tmp_path / 'data'}", "logger=mlflow", f"hydra.run.dir={tmp_path / 'run'}",
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "dnn_train: error: logger=mlflow: MLflow is not installed; pip install -e '.[mlflow]'"]
    assert not (tmp_path / "run").exists()
