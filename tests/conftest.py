"""Shared helpers: compose configs like the CLI does, run the CLI, find the real datasets."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from dnn_train.config.schema import CONF_DIR
from dnn_train.data import locate

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "datasets"

# Tiny but learnable: what every synthetic run in the tests uses.
SMALL = ["data=synthetic", "trainer.epochs=3", "trainer.batch_size=32", "model.depth=2", "model.units=32"]


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


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m dnn_train ARGS` in `cwd`, as a user would type it."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("DNN_TRAIN_DEBUG", None)
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "dnn_train", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


_FORK_SERVER = """
import json, os, runpy, sys
from dnn_train.tasks import import_backend
import_backend()  # what the command imports once a config is valid
requests, replies = os.fdopen(0), os.fdopen(os.dup(1), "w")
for line in requests:
    case = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the case: `python -m dnn_train ARGS` in its folder, its output in its files
        os.chdir(case["cwd"])
        os.environ.update(case["env"])
        for fd, path in ((0, os.devnull), (1, case["stdout"]), (2, case["stderr"])):
            os.dup2(os.open(path, os.O_RDWR | os.O_CREAT), fd)
        sys.argv = ["dnn_train", *case["args"]]
        runpy.run_module("dnn_train", run_name="__main__", alter_sys=True)
        sys.exit(0)
    print(pid, file=replies, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), file=replies, flush=True)
"""


class ForkedCli:
    """`python -m dnn_train ARGS`, each call a process of its own (its exit code, stdout, stderr) forked from
    one server process that imported what a job imports: no TensorFlow import per call."""

    def __init__(self, env: dict):
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
        for name in ("DNN_TRAIN_DEBUG", "HYDRA_FULL_ERROR"):
            full_env.pop(name, None)
        self.server = subprocess.Popen([sys.executable, "-c", _FORK_SERVER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=full_env, bufsize=0)

    def _reply(self, timeout: float | None = None) -> int | None:
        """The server's next line (a number), or None if none came within `timeout` seconds."""
        line = b""
        while not line.endswith(b"\n"):
            if not select.select([self.server.stdout], [], [], timeout)[0]:
                return None
            chunk = os.read(self.server.stdout.fileno(), 1)
            assert chunk, "the fork server ended"
            line += chunk
        return int(line)

    def __call__(self, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        out, err = cwd / ".stdout", cwd / ".stderr"
        self.server.stdin.write(json.dumps({"args": args, "cwd": str(cwd), "env": env, "stdout": str(out),
                                            "stderr": str(err)}).encode() + b"\n")
        pid = self._reply()
        code = self._reply(timeout)
        if code is None:
            os.kill(pid, signal.SIGKILL)
            self._reply()
            raise subprocess.TimeoutExpired(args, timeout)
        texts = [path.read_text(errors="replace") for path in (out, err)]
        out.unlink()
        err.unlink()
        return subprocess.CompletedProcess(args, code, *texts)

    def close(self):
        self.server.stdin.close()
        self.server.wait(timeout=60)


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
