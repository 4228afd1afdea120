"""The command, forked: `python -m dnn_train ARGS`, each call a process of its own (its pid, exit code,
stdout and stderr, its environment and folder) forked from a server process that has imported what a
job imports (dnn_train, Hydra, TensorFlow), so that a call pays no import (about 4.5 CPU-seconds).

What the fork cannot give is a fresh interpreter's start-up: what is read when a library is imported.
A server is therefore kept per value of the variables read then (IMPORT_TIME: the Keras backend,
TensorFlow's and Python's own); every other variable is set in the child before the command starts,
as the command reads them (dnn_train reads its environment when it runs). What the server printed
while importing is put in front of each child's stderr, as a fresh process would print it. Tests
whose point is the start-up itself use `run_cli(..., fresh=True)`. A child ends as an interpreter does
(its threads joined, its atexit functions run, its output flushed), then leaves without unloading
TensorFlow's modules (os._exit): the command's work and exit code are the same, at a quarter of a
second less a call; a fresh process (`fresh=True`, CI's newcomer path) still ends the long way."""
from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMPORT_TIME = ("KERAS_BACKEND", "TF_", "XLA_", "CUDA", "PYTHON", "MPL", "DNN_TRAIN_DEBUG", "LD_")

_SERVER = """
import atexit, json, os, runpy, sys, threading
from dnn_train.tasks import import_backend
import_backend()  # what the command imports once a config is valid
requests, replies = os.fdopen(0), os.fdopen(os.dup(1), "w")
for line in requests:
    case = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the case: `python -m dnn_train ARGS` in its folder, its environment, its output in its files
        os.chdir(case["cwd"])
        if case["env"] is not None:
            os.environ.clear()
            os.environ.update(case["env"])
        for fd, path in ((0, os.devnull), (1, case["stdout"]), (2, case["stderr"])):
            os.dup2(os.open(path, os.O_RDWR | os.O_CREAT), fd)
        status = None  # the exit code
        try:
            if case["code"] is None:
                sys.argv = ["dnn_train", *case["args"]]
                runpy.run_module("dnn_train", run_name="__main__", alter_sys=True)
            else:  # `python -c CODE ARGS`
                sys.argv = ["-c", *case["args"]]
                exec(compile(case["code"], "<string>", "exec"), {"__name__": "__main__"})
        except SystemExit as ex:
            status = ex.code
        if status is None:  # sys.exit(None), or the end of the code
            status = 0
        elif not isinstance(status, int):  # sys.exit("message"), as the interpreter ends it
            print(status, file=sys.stderr)
            status = 1
        # the end of a process as the interpreter's own does it (non-daemon threads joined, then the atexit
        # functions: logging's flush among them, output flushed), without tearing down TensorFlow's modules:
        # a quarter of a second a command, what a fresh process would spend after the command's end
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(status)
    print(pid, file=replies, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), file=replies, flush=True)
"""


def environment(env: dict | None = None) -> dict:
    """The command's environment in the tests: this process's, dnn_train importable from the checkout, no
    debugging variables (they change what is printed), then `env`."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    for name in ("DNN_TRAIN_DEBUG", "HYDRA_FULL_ERROR"):
        full.pop(name, None)
    return full


def _import_time(env: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(IMPORT_TIME)))


class ForkedCli:
    """One server; each call a child forked from it. `env`: the server's environment (what a child
    inherits unless the call gives its whole environment)."""

    def __init__(self, env: dict):
        self.env = env
        self.started_with = tempfile.TemporaryFile()  # what the server printed on stderr at its start-up
        self.server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=self.started_with, env=env, bufsize=0)

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

    def __call__(self, args: list[str], cwd: Path, env: dict | None, timeout: float,
                 code: str | None = None) -> subprocess.CompletedProcess:
        """The command in `cwd`; `env`: the child's whole environment (None: the server's, with nothing added);
        `code`: `python -c CODE ARGS` instead of `python -m dnn_train ARGS`."""
        out, err = Path(cwd) / ".stdout", Path(cwd) / ".stderr"
        pid = self.start(args, cwd, env, out, err, code)
        status = self._reply(timeout)  # the exit code
        if status is None:
            os.kill(pid, signal.SIGKILL)
            self._reply()
            raise subprocess.TimeoutExpired(args, timeout)
        texts = [path.read_text(errors="replace") for path in (out, err)]
        out.unlink()
        err.unlink()
        return subprocess.CompletedProcess(args, status, texts[0], self.printed_at_start() + texts[1])

    def printed_at_start(self) -> str:
        """What the server printed on stderr while importing: in front of each child's stderr."""
        self.started_with.seek(0)
        return self.started_with.read().decode(errors="replace")

    def start(self, args: list[str], cwd: Path, env: dict | None, stdout: Path, stderr: Path,
              code: str | None = None) -> int:
        """Start the command without waiting for it: its pid (its exit code is the server's next reply)."""
        self.server.stdin.write(json.dumps({"args": args, "cwd": str(cwd), "env": env, "stdout": str(stdout),
                                            "stderr": str(stderr), "code": code}).encode() + b"\n")
        return self._reply()

    def close(self):
        self.server.stdin.close()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a started command nobody waited for
            self.server.kill()
        self.started_with.close()


_idle: dict[tuple, list[ForkedCli]] = {}  # servers not running a command, per import-time values
_all: list[ForkedCli] = []


def _server(env: dict) -> ForkedCli:
    """An idle server for env's import-time values (a new one if none is idle)."""
    key = _import_time(env)
    if _idle.get(key):
        return _idle[key].pop()
    if not _all:
        atexit.register(lambda: [server.close() for server in _all])
    _all.append(ForkedCli({k: v for k, v in os.environ.items() if not k.startswith(IMPORT_TIME)} | dict(key)))
    return _all[-1]


def _release(server: ForkedCli, env: dict) -> None:
    _idle.setdefault(_import_time(env), []).append(server)


def forked(args: list[str], cwd: Path, env: dict, timeout: float, code: str | None = None) -> subprocess.CompletedProcess:
    """The command with environment `env`, forked from a server for env's import-time values; waited for.
    `code`: `python -c CODE ARGS` (a test's hook around the command, or the API) instead of the command."""
    server = _server(env)
    try:
        return server(args, cwd=cwd, env=env, timeout=timeout, code=code)
    finally:
        _release(server, env)


class Started:
    """The command started, not waited for, with Popen's face (pid, poll, send_signal, kill, communicate,
    returncode, stdout and stderr as text): a process of its own to signal or kill, forked from a server
    that runs it alone until it ends."""

    def __init__(self, args: list[str], cwd: Path, env: dict):
        self.args, self.env, self.returncode = list(args), env, None
        self.server = _server(env)
        self.folder = Path(tempfile.mkdtemp(prefix="started-"))
        self.pid = self.server.start(self.args, cwd, env, self.folder / "out", self.folder / "err")

    def _ended(self, code: int) -> None:
        self.returncode = code
        self.stdout, self.stderr = ((self.folder / name).read_text(errors="replace") for name in ("out", "err"))
        self.stderr = self.server.printed_at_start() + self.stderr
        shutil.rmtree(self.folder)
        _release(self.server, self.env)

    def poll(self) -> int | None:
        if self.returncode is None and (code := self.server._reply(0)) is not None:
            self._ended(code)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        if self.returncode is None:
            code = self.server._reply(timeout)
            if code is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._ended(code)
        return self.stdout, self.stderr
