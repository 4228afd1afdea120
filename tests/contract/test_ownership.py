"""A run directory is owned by one process, a finished or refused run's record never changes, bad
input removes only what the invocation made, and results.json tells the truth on every exit path.
Everything through the command line, as a user (or two users at once) would meet it."""
from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import cli
from tests.cli import environment
from tests.conftest import SMALL, read_results, run_cli, start_cli
from tests.contract.test_reliability import SLOW, wait_for_rows


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (hidden ones too) with its content hash and mtime."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_processes_on_one_directory_the_second_is_refused_and_the_first_untouched(tmp_path):
    args = [*SLOW, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}"]
    first = start_cli(*args, cwd=tmp_path)
    wait_for_rows(tmp_path / "run" / "metrics.csv", 1, first)
    os.kill(first.pid, signal.SIGSTOP)  # alive, holding its directory, whatever the second commands' speed
    try:
        for extra in ([], ["trainer.resume=true"]):  # the same command twice; a resume of the live run
            second = run_cli(*args, *extra, cwd=tmp_path)
            assert second.returncode == 2, second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and f"is in use by pid {first.pid} on " in lines[0], lines
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    results = read_results(tmp_path / "run")
    assert results["status"] == "completed" and results["epochs"] == 6


@pytest.mark.slow
def test_a_finished_run_is_never_rewritten_by_a_refused_or_no_op_invocation(tmp_path):
    run_dir = tmp_path / "run"
    args = [*SMALL, "trainer.epochs=2", f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run_dir}"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    before = snapshot(run_dir)
    refused = run_cli(*args, "trainer.batch_size=16", "trainer.resume=true", cwd=tmp_path)  # a different config
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"dnn_train: error: {run_dir} holds a run with a different config (trainer.batch_size); rerun it with the "
        "same overrides, or choose another directory"]
    again = run_cli(*args, cwd=tmp_path)  # without resume
    assert again.returncode == 2 and "already holds a run (status completed)" in again.stderr
    noop = run_cli(*args, "trainer.resume=true", cwd=tmp_path)  # the same config: nothing to do
    assert noop.returncode == 0, noop.stderr
    assert snapshot(run_dir) == before  # .hydra/ included: not one byte, not one mtime changed


@pytest.mark.parametrize("extra, expected", [
    (["trainer.epochs=0"], "trainer.epochs=0: expected an integer >= 1"),  # a config error
    ([], "exists and holds files that are not a dnn_train run"),  # a valid run into a user's folder
])
def test_a_users_folder_survives_a_bad_override(tmp_path, extra, expected):
    folder = tmp_path / "my documents"
    (folder / "thesis").mkdir(parents=True)
    (folder / "thesis" / "chapter1.tex").write_text("precious")
    (folder / "notes.txt").write_text("also precious")
    before = snapshot(folder)
    proc = run_cli(*SMALL, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={folder}", *extra, cwd=tmp_path)
    assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
    assert snapshot(folder) == before  # nothing added (not even a lock file), nothing removed


def test_an_empty_folder_of_the_users_stays_after_bad_input_found_while_setting_up(tmp_path):
    folder = tmp_path / "empty but mine"
    folder.mkdir()
    proc = run_cli(*SMALL, "data=fashion_mnist", f"data.root={tmp_path / 'nowhere'}", f"hydra.run.dir={folder}",
                   cwd=tmp_path)
    assert proc.returncode == 2 and "no such directory" in proc.stderr, proc.stderr
    assert folder.is_dir() and not list(folder.iterdir())  # still there, and as empty as it was


def test_bad_input_removes_only_the_directories_it_made(tmp_path):
    (tmp_path / "keep").mkdir()
    proc = run_cli(*SMALL, "trainer.epochs=0", f"hydra.run.dir={tmp_path / 'keep' / 'new' / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert (tmp_path / "keep").is_dir() and not (tmp_path / "keep" / "new").exists()


@pytest.mark.slow
def test_a_sweep_rerun_with_different_overrides_refuses_and_keeps_every_record(tmp_path):
    sweep = tmp_path / "sweep"
    common = ["-m", *SMALL, "trainer.epochs=1", f"data.root={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*common, "optimizer=sgd,adam", cwd=tmp_path).returncode == 0
    before = snapshot(sweep / "0"), snapshot(sweep / "1")
    proc = run_cli(*common, "optimizer=nadam,rmsprop", cwd=tmp_path)
    assert proc.returncode == 1
    assert "job 0 refused" in proc.stdout + proc.stderr and "a different config (optimizer._target_" in proc.stdout
    assert (snapshot(sweep / "0"), snapshot(sweep / "1")) == before
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["overrides"].tolist() == ["optimizer=sgd", "optimizer=adam"]  # still labelled truly


@pytest.mark.slow
def test_sigterm_during_setup_is_recorded_as_interrupted(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_cli(*SMALL, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run_dir}", cwd=tmp_path,
                     fresh=True)  # a signal while TensorFlow is imported
    deadline = time.time() + 60
    while not (run_dir / ".lock").exists() and time.time() < deadline:  # the run owns its directory...
        time.sleep(0.01)
    time.sleep(0.2)  # ...and is importing TensorFlow
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("dnn_train: interrupted (SIGTERM); continue with trainer.resume=true")
    assert read_results(run_dir)["status"] == "interrupted"
    resumed = run_cli(*SMALL, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run_dir}", "trainer.resume=true",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_results(run_dir)["status"] == "completed"


@pytest.mark.slow
def test_two_interrupts_in_a_row_leave_a_whole_record(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_cli(*SLOW, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for_rows(run_dir / "metrics.csv", 1, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    results = read_results(run_dir)  # whole JSON
    assert results["status"] == "interrupted"


# ---------------------------------------------------------------- a kill at the worst moment
KILL_AT_SAVE = """
import os, signal
import dnn_train.train as train
_save = train.save_model
def save_model(*args, **kwargs):
    if os.environ.get("KILL_AT_SAVE") and not os.path.exists(os.environ["KILL_AT_SAVE"]):
        open(os.environ["KILL_AT_SAVE"], "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # as if the machine went down while model.keras was written
    return _save(*args, **kwargs)
train.save_model = save_model
"""


@pytest.mark.slow
def test_a_run_killed_while_saving_resumes_to_early_stoppings_best_weights(tmp_path):
    """Early stopping restores the best epoch's weights at the end of training; killed while the
    model was being saved, the resumed run must evaluate and save those, not the last epoch's."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text("import builtins\n")
    (hook / "kill_at_save.py").write_text(KILL_AT_SAVE)
    args = [*SMALL, f"data.root={tmp_path / 'data'}", "optimizer=momentum", "optimizer.learning_rate=0.3",
            "trainer.epochs=8", "trainer.early_stopping.patience=3"]
    whole = tmp_path / "whole"
    assert run_cli(*args, f"hydra.run.dir={whole}", cwd=tmp_path).returncode == 0
    expected = read_results(whole)
    assert expected["restored_epoch"] < expected["epochs"], "precondition: the best epoch is not the last"

    killed = tmp_path / "killed"
    env = environment({"KILL_AT_SAVE": str(tmp_path / "killed-once")})
    code = f"import sys; sys.path.insert(0, {str(hook)!r}); import kill_at_save; from dnn_train.__main__ import main; main()"
    proc = cli.forked([*args, f"hydra.run.dir={killed}"], cwd=tmp_path, env=env, timeout=300, code=code)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert read_results(killed)["status"] == "running" and not (killed / "model.keras").exists()
    resumed = run_cli(*args, f"hydra.run.dir={killed}", "trainer.resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = read_results(killed)
    for key in ("test_accuracy", "test_loss", "restored_epoch", "best_val_accuracy", "epochs"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


# ---------------------------------------------------------------- killed at random moments
SCENARIOS = {
    # early stopping restoring its best, the plateau schedule, dropout
    "early stopping + plateau": ["optimizer=momentum", "optimizer.learning_rate=0.3", "schedule=performance",
                                 "schedule.patience=1", "regularizer=dropout", "trainer.early_stopping.patience=2",
                                 "trainer.epochs=7"],
    # two transfer phases: frozen, then fine-tuned at another rate
    "transfer phases": ["transfer.freeze_epochs=2", "transfer.finetune_lr=0.003", "trainer.epochs=5"],
}
COMPARED = ["test_accuracy", "test_loss", "best_val_accuracy", "best_epoch", "restored_epoch", "epochs"]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_killed_at_random_moments_then_resumed_gives_the_uninterrupted_numbers(tmp_path, scenario):
    """SIGKILL at seeded random moments (during start-up, an epoch, the test, the save), resuming
    each time with trainer.resume=true, until the run completes: every number is the uninterrupted run's."""
    import random

    data_args = [*SMALL, "data.synthetic.train_examples=6000", f"data.root={tmp_path / 'data'}"]
    args = [*data_args, *SCENARIOS[scenario], "trainer.progress=line"]
    if scenario == "transfer phases":
        source = tmp_path / "source"
        assert run_cli(*data_args, "trainer.epochs=2", f"hydra.run.dir={source}", cwd=tmp_path).returncode == 0
        args.append(f"model.init_from={source}")
    whole = tmp_path / "whole"
    proc = start_cli(*args, f"hydra.run.dir={whole}", cwd=tmp_path)  # started as the killed runs are below
    started = time.time()
    proc.communicate(timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    duration = time.time() - started
    expected, expected_metrics = read_results(whole), pd.read_csv(whole / "metrics.csv")

    rng = random.Random(f"{scenario}-42")
    run_dir, kills = tmp_path / "killed", 0
    for attempt in range(5):
        proc = start_cli(*args, f"hydra.run.dir={run_dir}", "trainer.resume=true", cwd=tmp_path)
        # a moment within the uninterrupted run's time, which can exceed a rerun's by a third
        time.sleep(rng.uniform(0.1, 0.95) * duration * 0.7)
        if proc.poll() is not None:
            break  # it finished before its moment came
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
    final = run_cli(*args, f"hydra.run.dir={run_dir}", "trainer.resume=true", cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills >= 1
    got = read_results(run_dir)
    assert got["status"] == "completed"
    for key in COMPARED:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["epoch"].tolist() == expected_metrics["epoch"].tolist()  # every epoch once
    cols = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    np.testing.assert_allclose(metrics[cols].to_numpy(), expected_metrics[cols].to_numpy(), rtol=1e-5)
