"""Shared helpers: compose configs like the CLI does, run the CLI, find the real datasets."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from dnn_train.config.schema import CONF_DIR
from dnn_train.data import locate
from tests import cli

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "datasets"

# Tiny but learnable: what every synthetic run in the tests uses.
SMALL = ["data=synthetic", "trainer.epochs=3", "trainer.batch_size=32", "model.depth=2", "model.units=32"]
# Fewer synthetic images (400 / 100 / 100) where a test needs runs, not learning.
SMALL_SET = ["data.synthetic.train_examples=400", "data.valid_split=100", "data.synthetic.test_examples=100"]


def option_rows(groups, options_of) -> list[list[str]]:
    """Every option of every group in as few runs as the longest group has options: row i takes each
    group's option i, cycling through the shorter groups (each option meets other groups' options)."""
    return [[f"{g}={options_of(g)[i % len(options_of(g))]}" for g in groups]
            for i in range(max(len(options_of(g)) for g in groups))]


def assert_rows_hold_every_option(rows, groups, options_of) -> None:
    """`rows` (option_rows') hold every option of every group, in no more runs than the longest group has options."""
    assert {tuple(o.split("=")) for row in rows for o in row} == {(g, o) for g in groups for o in options_of(g)}
    assert len(rows) == max(len(options_of(g)) for g in groups)


def make_cfg(*overrides: str):
    """The config the CLI would compose for these overrides (no Hydra job, no run directory)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="session", autouse=True)
def _imports_frozen_out_of_garbage_collection():
    """What a job does once per process (dnn_train/tasks.py, import_backend), done for the tests'
    processes, whose test modules import Keras before any job: TensorFlow's, Keras' and the tests'
    modules frozen out of the full collection that Keras' clear_session() runs at each job's start."""
    import gc

    import keras  # noqa: F401

    gc.freeze()


@pytest.fixture
def cfg_factory(tmp_path):
    """make_cfg with the synthetic data cached under this test's tmp_path."""
    return lambda *o: make_cfg(*SMALL, f"data.root={tmp_path / 'data'}", *o)


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300,
            fresh: bool = False) -> subprocess.CompletedProcess:
    """`python -m dnn_train ARGS` in `cwd`, as a user would type it: a process of its own (its exit code,
    stdout, stderr), forked from a server that imported what a job imports (tests/cli.py), or with
    `fresh=True` a new interpreter, where its start-up is the point (TensorFlow imported beside the
    start-up's data thread)."""
    if not fresh:
        return cli.forked(list(args), cwd=cwd, env=cli.environment(env), timeout=timeout)
    return subprocess.run([sys.executable, "-m", "dnn_train", *args], cwd=cwd, env=cli.environment(env),
                          capture_output=True, text=True, timeout=timeout)


def start_cli(*args: str, cwd: Path, env: dict | None = None, fresh: bool = False):
    """run_cli's command started, not waited for (to signal, kill or watch it): Popen's face, forked
    (tests/cli.py Started) or, with `fresh=True`, a new interpreter."""
    if not fresh:
        return cli.Started(list(args), cwd, cli.environment(env))
    return subprocess.Popen([sys.executable, "-m", "dnn_train", *args], cwd=cwd, env=cli.environment(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def real_data_root(name: str) -> str:
    """A data.root holding the real dataset, or skip the test."""
    shared = SHARED_DATA if name == "fashion_mnist" else None
    root = [f"data.root={shared}"] if shared and shared.exists() else []
    found = locate(make_cfg(f"data={name}", *root).data)
    if found is None:
        pytest.skip(f"real {name} files not found (see docs/guides/data.md: providing the data offline)")
    return str(found.folder)
