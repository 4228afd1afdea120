"""Crashes, signals, divergence and bad input: a run never loses work or leaves a lie on disk.

Everything here goes through the command line, as a user would meet it."""
from __future__ import annotations

import gzip
import json
import pickle
import resource
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest

from dnn_train.data.catalog import IDX_FILES
from dnn_train.data.formats.idx import write_idx
from tests.conftest import SMALL, read_results, run_cli, start_cli
from tests.datafiles import write_cifar, write_fashion
from tests.cli import environment

# Epochs long enough (~0.3 s) to be killed in the middle of one; dropout, 1cycle with momentum
# cycling and early stopping, so RNG, schedule position and callback state all matter on resume.
SLOW = ["data=synthetic", "data.synthetic.train_examples=16000", "data.synthetic.image_shape=[16,16]",
        "data.synthetic.noise=1.0", "model.depth=2", "model.units=64", "regularizer=dropout", "regularizer.rate=0.2",
        "optimizer=momentum", "schedule=1cycle", "trainer.epochs=6", "trainer.progress=line"]


def wait_for_rows(metrics_path, rows, proc, timeout=240):
    """Wait until metrics.csv holds `rows` epochs (and the next one has started)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        if metrics_path.exists() and len(metrics_path.read_text().splitlines()) > rows:
            time.sleep(0.2)  # into the next epoch
            return
        time.sleep(0.05)
    raise AssertionError("the run did not reach the epoch in time")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_continues_and_matches_an_uninterrupted_run(tmp_path):
    args = [*SLOW, f"data.root={tmp_path / 'data'}"]
    whole = tmp_path / "whole"
    proc = run_cli(*args, f"hydra.run.dir={whole}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = start_cli(*args, f"hydra.run.dir={killed}", cwd=tmp_path)
    wait_for_rows(killed / "metrics.csv", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    rows = pd.read_csv(killed / "metrics.csv")
    assert 2 <= len(rows) < 6 and rows["epoch"].tolist() == list(range(1, len(rows) + 1))
    assert read_results(killed)["status"] == "running"  # whole JSON, and no claim of being finished
    assert not (killed / "model.keras").exists()
    assert not [p for p in killed.rglob("*") if ".tmp" in p.name]  # no temp file left looking like output

    proc = run_cli(*args, f"hydra.run.dir={killed}", cwd=tmp_path)  # without resume: refused
    assert proc.returncode == 2 and "add trainer.resume=true" in proc.stderr
    proc = run_cli(*args, f"hydra.run.dir={killed}", "trainer.resume=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from the checkpoint after epoch" in (killed / "dnn_train.log").read_text()
    resumed, uninterrupted = pd.read_csv(killed / "metrics.csv"), pd.read_csv(whole / "metrics.csv")
    assert resumed["epoch"].tolist() == [1, 2, 3, 4, 5, 6]  # every epoch exactly once
    cols = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    np.testing.assert_allclose(resumed[cols].to_numpy(), uninterrupted[cols].to_numpy(), rtol=1e-5)
    r, u = read_results(killed), read_results(whole)
    assert r["status"] == "completed" and r["epochs"] == 6
    assert r["test_accuracy"] == pytest.approx(u["test_accuracy"], abs=1e-6)
    assert not (killed / "checkpoint").exists()  # removed once the run completed


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_status_interrupted(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_cli(*SLOW, f"data.root={tmp_path / 'data'}", "trainer.epochs=50", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for_rows(run_dir / "metrics.csv", 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert stderr.strip().splitlines()[-1].startswith("dnn_train: interrupted (SIGTERM); continue with "
                                                      "trainer.resume=true hydra.run.dir=")
    results = read_results(run_dir)
    assert results["status"] == "interrupted" and results["epochs"] == len(pd.read_csv(run_dir / "metrics.csv")) >= 1
    assert (run_dir / "checkpoint" / "state.json").exists()


@pytest.mark.slow
def test_a_diverging_loss_stops_the_run_with_status_diverged(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(*SMALL, f"data.root={tmp_path / 'data'}", "optimizer.learning_rate=1e12", "trainer.epochs=20",
                   "trainer.steps_per_execution=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("dnn_train: diverged: loss became nan at epoch 1 (step ") and "Traceback" not in proc.stderr
    results = read_results(run_dir)
    assert results["status"] == "diverged" and results["diverged_epoch"] == 1 and results["diverged_step"] >= 1
    assert not (run_dir / "model.keras").exists()


# ---------------------------------------------------------------- bad input: one line, no finished-looking run
def corrupt_fashion(tmp_path, how):
    folder = write_fashion(tmp_path / "fashion")
    images, labels = folder / IDX_FILES[0], folder / IDX_FILES[1]
    if how == "truncated":
        raw = gzip.decompress(images.read_bytes())
        images.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif how == "magic":
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[2] = 0x0D  # float data: not Fashion-MNIST's unsigned bytes
        labels.write_bytes(gzip.compress(bytes(raw)))
    elif how == "sizes":
        write_idx(labels, np.zeros(59, dtype=np.uint8))  # 60 images, 59 labels
    elif how == "labels":
        write_idx(labels, np.full(60, 12, dtype=np.uint8))
    return folder


def cifar_not_a_batch(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"something": [1, 2, 3]}, f)
    return tmp_path


def lambda_model(tmp_path):
    path = tmp_path / "lambda.keras"
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Lambda(lambda x: x * 2.0)])
    model.save(path)
    return path


def disk_full():
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))  # writes past 16 kB fail, as on a full disk


BAD_INPUT = {
    "unknown group option": (["optimizer=bogus"], "error: optimizer=bogus: unknown option; valid optimizer options"),
    "unknown key": (["trainer.bogus=1"], "error: trainer.bogus: unknown key"),
    "wrong type": (["trainer.epochs=many"], "error: trainer.epochs=many: Value 'many' of type 'str' could not be converted to Integer"),
    "dropout rate 1": (["regularizer=dropout", "regularizer.rate=1.0"], "error: regularizer.rate=1.0: expected a finite number >= 0 and < 1"),
    "dropout rate negative": (["regularizer=dropout", "regularizer.rate=-0.1"], "error: regularizer.rate=-0.1: expected a finite number >= 0 and < 1"),
    "negative learning rate": (["optimizer.learning_rate=-0.01"], "error: optimizer.learning_rate=-0.01: expected a finite number > 0"),
    "zero learning rate": (["optimizer.learning_rate=0"], "error: optimizer.learning_rate=0: expected a finite number > 0"),
    "zero epochs": (["trainer.epochs=0"], "error: trainer.epochs=0: expected an integer >= 1"),
    "zero batch size": (["trainer.batch_size=0"], "error: trainer.batch_size=0: expected an integer >= 1"),
    "zero depth": (["model.depth=0"], "error: model.depth=0: expected an integer >= 1"),
    "data folder missing": (["data=fashion_mnist", "data.root={tmp}/nowhere"], "error: data.root={tmp}/nowhere: no such directory"),
    "IDX file truncated": (["data=fashion_mnist", "data.root={fashion_truncated}"], "truncated or corrupt"),
    "IDX wrong magic number": (["data=fashion_mnist", "data.root={fashion_magic}"], "not an IDX file (bad magic number"),
    "IDX wrong sizes": (["data=fashion_mnist", "data.root={fashion_sizes}"], "do not match labels"),
    "labels out of range": (["data=fashion_mnist", "data.root={fashion_labels}"], "label 12 out of range for 10 classes"),
    "CIFAR pickle not a batch": (["data=cifar10", "data.root={cifar}"], "data_batch_3: not a CIFAR-10 batch"),
    "init_from missing": (["model.init_from={tmp}/no_run"], "error: model.init_from={tmp}/no_run: no such file or directory"),
    "init_from not a model": (["model.init_from={tmp}/fake.keras"], "not a readable Keras model"),
    "init_from unsafe (Lambda)": (["model.init_from={lambda}"], "not a readable Keras model"),
    "output dir not writable": (["hydra.run.dir={tmp}/a_file/run"], "error: cannot make the run directory"),
    "disk full during the run": (["trainer.epochs=2"], "failed: no space left writing"),
}


# Two cases as the command line itself (`python -m dnn_train` in a fresh interpreter; the full disk needs
# its limit set before the process starts); the others forked (run_cli): each still a process of its
# own through __main__'s code, its exit code and stderr the user's.
FRESH = ("disk full during the run", "output dir not writable")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input(tmp_path, case):
    overrides, expected = BAD_INPUT[case]
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "fake.keras").write_bytes(b"PK\x03\x04 not really a zip")
    makers = {"tmp": lambda: tmp_path, "cifar": lambda: cifar_not_a_batch(tmp_path),
              "lambda": lambda: lambda_model(tmp_path),
              **{f"fashion_{how}": (lambda how=how: corrupt_fashion(tmp_path, how))
                 for how in ("truncated", "magic", "sizes", "labels")}}
    values = {k: str(make()) for k, make in makers.items() if any("{" + k + "}" in o for o in overrides)}
    values.setdefault("tmp", str(tmp_path))
    overrides = [o.format(**values) for o in overrides]
    expected = expected.format(**values)
    run_dir = tmp_path / "run"
    args = [*SMALL, f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run_dir}", *overrides]
    if case in FRESH:
        preexec = disk_full if case == "disk full during the run" else None
        proc = subprocess.run([sys.executable, "-m", "dnn_train", *args], cwd=tmp_path, env=environment(),
                              capture_output=True, text=True, timeout=300, preexec_fn=preexec)
    else:
        proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dnn_train: ") and expected in lines[0], proc.stderr[-2000:]
    if run_dir.exists():  # no run directory that looks finished
        results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
        assert results.get("status") != "completed" and not (run_dir / "model.keras").exists()
        assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
