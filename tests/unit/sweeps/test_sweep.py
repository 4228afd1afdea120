"""Sweeps, run for real: the summary at the sweep root (seeds as repeats, the baseline chosen on the
command line), failed jobs recorded while the others run, resuming a killed sweep, Hydra's joblib and
Ray launchers, and the Optuna search YAML (pruning and resume: tests/unit/sweeps/test_search.py). The tables
themselves, on hand-written runs: tests/unit/sweeps/test_compare.py."""
from __future__ import annotations

import math
import signal
import time

import pandas as pd
import pytest
import yaml

from dnn_train import report
from dnn_train.__main__ import objective
from tests.conftest import REPO, SMALL, make_cfg, read_results, run_cli, start_cli

# A sweep's job as small as the rows and summaries need: 300 training images, one epoch.
TINY = [*SMALL, "trainer.epochs=1", "data.synthetic.train_examples=400", "data.valid_split=100",
        "data.synthetic.test_examples=100", "trainer.progress=none"]
ROW_KEYS = ["overrides", "status", "epochs", "best_val_accuracy", "test_accuracy"]


def test_objective_is_what_the_sweeper_optimizes():
    cfg = make_cfg("trainer.objective=test_accuracy")
    assert objective(cfg, {"test_accuracy": 0.8, "best_val_accuracy": 0.9}) == 0.8
    assert math.isnan(objective(cfg, {"status": "failed"}))


# As README.md and `python -m dnn_train.report --help` write it (the shell's quotes removed).
BASELINE_OVERRIDE = 'hydra.callbacks.summary.baseline="optimizer=adam"'


@pytest.mark.slow
def test_seeds_are_repeats_and_the_baseline_is_chosen_on_the_command_line(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", "optimizer=sgd,adam", "trainer.seed=range(2)",
                   BASELINE_OVERRIDE, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = pd.read_csv(sweep / "summary.csv")
    assert runs["configuration"].tolist() == ["optimizer=sgd"] * 2 + ["optimizer=adam"] * 2
    assert runs["seed"].tolist() == [0, 1, 0, 1] and set(runs["status"]) == {"completed"}
    groups = pd.read_csv(sweep / "summary_groups.csv")
    best = groups[groups["metric"] == "best_val_accuracy"].set_index("configuration")
    assert set(groups["baseline"]) == {"optimizer=adam"} and best.loc["optimizer=adam", "verdict"] == "baseline"
    sgd = best.loc["optimizer=sgd"]
    assert (sgd["n"], sgd["pairs"]) == (2, 2) and sgd["verdict"] in ("better", "worse", "no detectable difference")
    expected = runs.groupby("seed")["best_val_accuracy"].agg(lambda v: v.iloc[0] - v.iloc[1]).mean()
    assert sgd["difference"] == pytest.approx(expected)  # sgd - adam, paired by seed
    assert f"dnn_train: optimizer=sgd vs optimizer=adam: {sgd['verdict']}" in proc.stdout
    md = (sweep / "summary.md").read_text()
    assert md.index("Baseline: optimizer=adam") < md.index("## Runs")
    # the syntax the user reads is the one tested here
    assert "'" + BASELINE_OVERRIDE + "'" in (REPO / "README.md").read_text()
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        report.main(["--help"])
    assert "'" + BASELINE_OVERRIDE + "'" in " ".join(capsys.readouterr().out.split())


@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory):
    """One sweep for the two failing-job tests: learning rates 0.01, 1e9 (diverges), 0.02 with a valid
    dropout rate (jobs 0-2), then the same three with an invalid one (jobs 3-5: refused, no training)."""
    tmp_path = tmp_path_factory.mktemp("failing")
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", "regularizer=dropout", "regularizer.rate=0.1,1.5",
                   "optimizer.learning_rate=0.01,1e9,0.02", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    return proc, sweep, pd.read_csv(sweep / "summary.csv")


@pytest.mark.slow
def test_a_diverging_job_is_recorded_and_the_others_finish(failing_sweep):
    proc, sweep, table = failing_sweep
    assert proc.returncode == 1  # the sweep ran to its end, but jobs failed
    assert "sweep of 6 jobs: 2 completed, 4 not" in proc.stdout and "job 1" in proc.stdout
    assert table["status"].tolist()[:3] == ["completed", "diverged", "completed"]
    assert table["error"][1].startswith("loss became nan at epoch 1")
    assert read_results(sweep / "1")["status"] == "diverged"
    assert (sweep / "sweep_curves.png").exists() and (sweep / "sweep_metric.png").exists()


@pytest.mark.slow
def test_a_bad_value_in_one_job_is_recorded_too(failing_sweep):
    proc, sweep, table = failing_sweep
    assert proc.returncode == 1
    assert table["status"].tolist()[3:] == ["failed"] * 3
    assert set(table["error"][3:]) == {"regularizer.rate=1.5: expected a finite number >= 0 and < 1"}


@pytest.mark.slow
def test_a_killed_sweep_reruns_only_its_missing_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, f"data.root={tmp_path / 'data'}", "trainer.seed=1,2", f"hydra.sweep.dir={sweep}"]
    proc = start_cli(*args, cwd=tmp_path)
    deadline = time.time() + 240
    while not ((sweep / "0" / "results.json").exists() and read_results(sweep / "0")["status"] == "completed"):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    first = (sweep / "0" / "results.json").read_text()
    assert not (sweep / "1" / "results.json").exists() or read_results(sweep / "1")["status"] == "running"  # mid-way
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / "0" / "results.json").read_text() == first  # not run again
    assert "sweep/0: already completed with this config; nothing to do" in proc.stdout
    table = pd.read_csv(sweep / "summary.csv")
    assert table["job"].tolist() == [0, 1] and set(table["status"]) == {"completed"}


@pytest.mark.slow
def test_two_sweeps_started_together_get_their_own_directories(tmp_path):
    procs = [start_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", cwd=tmp_path)
             for _ in range(2)]
    for p in procs:
        p.communicate(timeout=300)
        assert p.returncode == 0
    assert len(list((tmp_path / "outputs" / "multirun").glob("*/*/summary.csv"))) == 2


# ---------------------------------------------------------------- Hydra plugins (the sweeps extra)
def launcher_rows(tmp_path, *launcher):
    sweep = tmp_path / ("sweep-" + (launcher[0].split("=")[1] if launcher else "basic"))
    proc = run_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", "optimizer=sgd,adam", *launcher,
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pd.read_csv(sweep / "summary.csv")[ROW_KEYS], sweep


@pytest.fixture(scope="module")
def basic_rows(tmp_path_factory):
    """The rows of the basic launcher's sweep, which every other launcher's must equal."""
    return launcher_rows(tmp_path_factory.mktemp("basic"))[0]


@pytest.mark.slow
@pytest.mark.plugins
def test_the_parallel_launcher_gives_the_same_rows_as_the_basic_one(tmp_path, basic_rows):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs the sweeps extra")
    parallel, sweep = launcher_rows(tmp_path, "hydra/launcher=parallel")  # conf/: Hydra's joblib launcher, a job per core
    pd.testing.assert_frame_equal(basic_rows, parallel)
    assert "TensorFlow threads per job: 1" in (sweep / "0" / "dnn_train.log").read_text()  # the cores shared out


@pytest.mark.slow
@pytest.mark.plugins
def test_the_ray_launcher_gives_the_same_rows_as_the_basic_one(tmp_path, basic_rows):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="needs the ray extra: pip install -e '.[ray]'")
    ray, _ = launcher_rows(tmp_path, "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2")
    pd.testing.assert_frame_equal(basic_rows, ray)


@pytest.mark.slow
@pytest.mark.plugins
def test_the_fashion_mnist_search_runs_its_trials_and_writes_the_best_parameters(tmp_path):
    pytest.importorskip("optuna", minversion="4", reason="needs the sweeps extra (optuna>=4)")
    pytest.importorskip("optuna_integration", reason="needs the sweeps extra (optuna-integration)")
    sweep = tmp_path / "search"
    proc = run_cli("-m", "hparams_search=fashion_mnist", "data=synthetic", *TINY[5:], f"data.root={tmp_path / 'data'}",
                   "hydra.sweeper.n_trials=2",
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optimizer.learning_rate", "model.depth", "model.units", "regularizer.rate"}
    assert (sweep / "optuna.db").is_file()  # the study, beside its trials
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 2 and set(table["status"]) == {"completed"}  # no rung of successive halving in 1 epoch
    assert best["best_value"] == pytest.approx(table["best_val_accuracy"].max())


def test_the_grid_is_drawn_lazily_in_hydras_order():
    """The default sweeper (hydra_plugins/dnn_train_batched) gives the jobs in Hydra's basic sweeper's
    order (job numbers, hence resume, unchanged), batch by batch, without building the grid: ten
    million jobs cost no more than ten. Hydra's own built every job's overrides first."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.dnn_train_batched.batched_sweeper import BatchedSweeper

    parse = OverridesParser.create().parse_overrides
    small = ["optimizer=sgd,adam", "trainer.seed=range(3)", "trainer.epochs=2"]
    sweeper = BatchedSweeper(max_batch_size=4)
    sweeper.split_arguments(parse(small), 4)
    batches = []
    while not sweeper.is_done():
        batches.append(sweeper.get_job_batch())
    assert [len(b) for b in batches] == [4, 2]
    expected = [list(job) for job in itertools.product(["optimizer=sgd", "optimizer=adam"],
                                                       [f"trainer.seed={i}" for i in range(3)], ["trainer.epochs=2"])]
    assert [job for b in batches for job in b] == expected
    huge = BatchedSweeper(max_batch_size=2)
    tic = time.perf_counter()
    huge.split_arguments(parse(["trainer.seed=range(0,1000000)", "trainer.batch_size=range(1,11)"]), 2)
    assert huge.get_job_batch() == [["trainer.seed=0", "trainer.batch_size=1"], ["trainer.seed=0", "trainer.batch_size=2"]]
    assert time.perf_counter() - tic < 5 and not huge.is_done()


@pytest.mark.slow
def test_a_huge_sweep_starts_its_first_job_at_once(tmp_path):
    """`-m trainer.seed=range(0,100000)`: Hydra's basic sweeper composed all 100,000 configs (minutes)
    before the first job; the first job's record now appears within a job's own start-up."""
    sweep = tmp_path / "sweep"
    proc = start_cli("-m", *TINY, f"data.root={tmp_path / 'data'}", "trainer.seed=range(0,100000)", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (sweep / "0" / "results.json").is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (sweep / "0" / "results.json").is_file(), proc.poll()
    finally:
        proc.kill()
        proc.communicate()
