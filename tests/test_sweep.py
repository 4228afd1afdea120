"""Sweeps: the summary at the sweep root, failed jobs recorded while the others run, resuming a
killed sweep, Hydra's joblib and Ray launchers and Optuna sweeper, and `python -m dnn_train.report`."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from dnn_train import compare as summary
from dnn_train.__main__ import objective
from tests.conftest import REPO, SMALL, make_cfg, read_results, run_cli
from tests.test_reliability import popen_cli

TINY = [*SMALL, "trainer.epochs=2"]
ROW_KEYS = ["overrides", "status", "epochs", "best_val_accuracy", "test_accuracy"]


def fake_run(folder, overrides, status="completed", val=(0.5, 0.6), test=0.55, error=None):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    pd.DataFrame({"epoch": range(1, len(val) + 1), "val_accuracy": val}).to_csv(folder / "metrics.csv", index=False)
    results = {"status": status, "epochs": len(val), "best_val_accuracy": max(val), "test_accuracy": test,
               "wall_seconds": 1.5}
    if error:
        results["error"] = error
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_summary_rows_show_only_the_varying_overrides_and_sort_by_the_metric(tmp_path):
    fake_run(tmp_path / "0", ["optimizer=sgd", "trainer.epochs=2"], val=(0.5, 0.7), test=0.69)
    fake_run(tmp_path / "1", ["optimizer=adam", "trainer.epochs=2"], val=(0.6, 0.8), test=0.78)
    fake_run(tmp_path / "2", ["optimizer=nadam", "trainer.epochs=2"], status="diverged", val=(0.4,), test=None,
             error="loss became nan at epoch 2")
    table = summary.collect(summary.find_runs([tmp_path]))
    assert table["job"].tolist() == [0, 1, 2]
    assert table["overrides"].tolist() == ["optimizer=sgd", "optimizer=adam", "optimizer=nadam"]
    summary.write(table, tmp_path, "best_val_accuracy")
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert list(csv.columns) == summary.COLUMNS and len(csv) == 3
    md = (tmp_path / "summary.md").read_text().splitlines()
    body = [ln for ln in md if ln.startswith("| ") and ln[2].isdigit()]
    assert [ln.split(" | ")[1] for ln in body] == ["optimizer=adam", "optimizer=sgd", "optimizer=nadam"]
    assert "- job 2 (optimizer=nadam): diverged: loss became nan at epoch 2" in md
    for png in (summary.CURVES_PLOT, summary.METRIC_PLOT):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_report_command_compares_runs_from_different_places(tmp_path):
    a = fake_run(tmp_path / "monday" / "run", ["optimizer=sgd"], val=(0.5, 0.7), test=0.69)
    fake_run(tmp_path / "tuesday" / "0", ["optimizer=adam"], val=(0.6, 0.8), test=0.60)
    fake_run(tmp_path / "tuesday" / "1", ["optimizer=nadam"], val=(0.6, 0.75), test=0.80)
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "dnn_train.report", str(a), str(tmp_path / "tuesday"),
                           "--metric", "test_accuracy", "--sort", "asc", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    md = (out / "summary.md").read_text()
    assert md.index("optimizer=adam") < md.index("optimizer=sgd") < md.index("optimizer=nadam")  # ascending
    assert len(pd.read_csv(out / "summary.csv")) == 3 and (out / "sweep_metric.png").exists()
    proc = subprocess.run([sys.executable, "-m", "dnn_train.report", str(tmp_path / "nothing")],
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "no such run" in proc.stderr


def test_objective_is_what_the_sweeper_optimizes():
    cfg = make_cfg("trainer.objective=test_accuracy")
    assert objective(cfg, {"test_accuracy": 0.8, "best_val_accuracy": 0.9}) == 0.8
    assert math.isnan(objective(cfg, {"status": "failed"}))


def test_a_diverging_job_is_recorded_and_the_others_finish(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", "optimizer.learning_rate=0.01,1e9,0.02",
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 1  # the sweep ran to its end, but one job failed
    assert "sweep of 3 jobs: 2 completed, 1 not" in proc.stdout and "job 1" in proc.stdout
    table = pd.read_csv(sweep / "summary.csv")
    assert table["status"].tolist() == ["completed", "diverged", "completed"]
    assert table["error"][1].startswith("loss became nan at epoch 1")
    assert read_results(sweep / "1")["status"] == "diverged"
    assert (sweep / "sweep_curves.png").exists() and (sweep / "sweep_metric.png").exists()


def test_a_bad_value_in_one_job_is_recorded_too(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", "regularizer=dropout", "regularizer.rate=0.1,1.5",
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 1
    table = pd.read_csv(sweep / "summary.csv")
    assert table["status"].tolist() == ["completed", "failed"]
    assert table["error"][1] == "regularizer.rate=1.5: expected a finite number >= 0 and < 1"


def test_a_killed_sweep_reruns_only_its_missing_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, f"data.root={tmp_path / 'data'}", "trainer.seed=1,2,3", f"hydra.sweep.dir={sweep}"]
    proc = popen_cli(*args, cwd=tmp_path)
    deadline = time.time() + 240
    while not ((sweep / "0" / "results.json").exists() and read_results(sweep / "0")["status"] == "completed"):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    first = (sweep / "0" / "results.json").read_text()
    assert not (sweep / "2" / "results.json").exists()
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "0" / "results.json").read_text() == first  # not run again
    assert "sweep/0: already completed with this config; nothing to do" in proc.stdout
    table = pd.read_csv(sweep / "summary.csv")
    assert table["job"].tolist() == [0, 1, 2] and set(table["status"]) == {"completed"}


def test_two_sweeps_started_together_get_their_own_directories(tmp_path):
    procs = [popen_cli("-m", *SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=1", cwd=tmp_path)
             for _ in range(2)]
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == 0
    assert len(list((tmp_path / "outputs" / "multirun").glob("*/*/summary.csv"))) == 2


# ---------------------------------------------------------------- Hydra plugins (the sweeps extra)
def launcher_rows(tmp_path, *launcher):
    sweep = tmp_path / ("sweep-" + (launcher[0].split("=")[1] if launcher else "basic"))
    proc = run_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", "optimizer=sgd,adam,nadam", *launcher,
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pd.read_csv(sweep / "summary.csv")[ROW_KEYS], sweep


@pytest.mark.plugins
def test_joblib_and_ray_launchers_give_the_same_rows_as_the_basic_one(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    basic, _ = launcher_rows(tmp_path)
    joblib, sweep = launcher_rows(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    pd.testing.assert_frame_equal(basic, joblib)
    # two jobs at once on this machine's cores: each TensorFlow gets its share of the threads
    import os

    expected = max(1, (os.cpu_count() or 1) // min(2, os.cpu_count() or 1))
    assert f"TensorFlow threads per job: {expected}" in (sweep / "0" / "dnn_train.log").read_text()
    ray, _ = launcher_rows(tmp_path, "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2")
    pd.testing.assert_frame_equal(basic, ray)


@pytest.mark.plugins
def test_optuna_search_runs_its_trials_and_writes_the_best_parameters(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "search"
    proc = run_cli("-m", "hparams_search=fashion_mnist", "data=synthetic", f"data.root={tmp_path / 'data'}",
                   "trainer.epochs=1",
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optimizer.learning_rate", "model.depth", "model.units", "regularizer.rate"}
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 8 and set(table["status"]) == {"completed"}
    assert best["best_value"] == pytest.approx(table["best_val_accuracy"].max())
