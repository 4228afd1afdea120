"""What a run shows while it trains. On a terminal (a pseudo-terminal): one bar per epoch that counts
the true training steps and never passes them, ended before the epoch's one log line (no line holds
both), each epoch's metrics once, and a log line for each phase after training. In a notebook-like
process (no terminal, no logging set up, Keras imported first): one line per epoch, and no
TensorFlow C++ log lines."""
from __future__ import annotations

import math
import os
import pty
import re
import select
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import REPO

BAR = re.compile(r"(\d+)/(\d+) ━")  # Keras' Progbar: "12/57 ━━━━━..." (its colours removed)
ESCAPES = re.compile(r"(\x1b\[[0-9;]*[A-Za-z]|\r|\x08)")
LOG = "][dnn_train]["  # the console's log format: [time][dnn_train][INFO] - ...
TRAIN, BATCH, EPOCHS = 1800, 32, 2  # data=synthetic: 2000 images less 200 for validation


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DNN_TRAIN_DEBUG")}
    return {**env, "PYTHONPATH": str(REPO)}


def in_terminal(args: list, cwd, timeout: float = 400) -> tuple[int, str]:
    """Run `python -m dnn_train ARGS` with its stdout and stderr on a pseudo-terminal; its exit
    code and everything it wrote there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dnn_train", *args], cwd=cwd, stdin=slave, stdout=slave,
                            stderr=slave, env={**clean_env(), "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    out, deadline = bytearray(), time.monotonic() + timeout
    try:
        while select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=60), out.decode(errors="replace")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for `raw`: carriage return to the line's start, backspace one
    back, ESC[K erases to the line's end, other escape sequences (colours) take no room."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        cells, col = [], 0
        for token in ESCAPES.split(line):
            if token == "\r":
                col = 0
            elif token == "\x08":
                col = max(0, col - 1)
            elif token == "\x1b[K":
                del cells[col:]
            elif not token.startswith("\x1b["):
                for ch in token:
                    cells[col:col + 1] = [ch]
                    col += 1
        lines.append("".join(cells).rstrip())
    return lines


@pytest.mark.slow
def test_a_terminal_shows_one_true_bar_per_epoch_then_one_line(tmp_path):
    # two jobs in one process: Keras' loop with 10 steps a call (its bar overshot: 60/57) and the fused
    # loop with groups of 16 steps (its bar counted groups: 4/4)
    sweep = tmp_path / "sweep"
    code, raw = in_terminal(["-m", "data=synthetic", f"trainer.epochs={EPOCHS}", "trainer.diagnostics=false",
                             "trainer.fuse_steps=1,16", "trainer.steps_per_execution=10",
                             f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert code == 0, raw[-3000:]
    shown = screen(raw)
    both = [line for line in shown if "━" in line and LOG in line]
    assert not both, both
    steps = math.ceil(TRAIN / BATCH)
    counts = [(int(a), int(b)) for a, b in BAR.findall(ESCAPES.sub("", raw))]  # every state the bar was drawn in
    assert counts and all(total == steps and 0 <= done <= total for done, total in counts), counts
    bars = [line for line in shown if "━" in line]
    assert len(bars) == 2 * EPOCHS and all(line.lstrip().startswith(f"{steps}/{steps} ") for line in bars), bars
    # every epoch's metrics once: its summary line, and no second copy (Keras' bar printed them too)
    text = "\n".join(shown)
    rows = pd.concat([pd.read_csv(sweep / job / "metrics.csv") for job in ("0", "1")])
    for value, n in rows["loss"].map("{:.4f}".format).value_counts().items():
        assert text.count(value) == n, (value, text)
    for epoch in range(1, EPOCHS + 1):
        assert len([line for line in shown if LOG in line and f"epoch {epoch}/{EPOCHS} " in line]) == 2
    for phase in ("testing on 400 images", "saving the model", "plotting curves.png"):
        assert len([line for line in shown if LOG in line and phase in line]) == 2, phase


@pytest.mark.slow
def test_run_in_a_notebook_like_process_shows_one_line_per_epoch_and_no_tensorflow_lines(tmp_path):
    script = (
        "import sys\n"
        "import keras  # the notebook imported Keras first: TensorFlow's C++ logging is set up already\n"
        "print('--- keras imported', file=sys.stderr, flush=True)\n"
        "import dnn_train\n"
        "dnn_train.run('data=synthetic', 'data.synthetic.train_examples=400', 'data.valid_split=100',\n"
        "              'data.synthetic.test_examples=100', 'model.depth=1', 'model.units=16', 'trainer.epochs=3',\n"
        "              run_dir=sys.argv[1])\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], cwd=tmp_path, env=clean_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    during = proc.stderr.split("--- keras imported\n", 1)[1]
    assert not re.findall(r"^[IWE]\d{4} .*$", during, re.M), during  # Abseil's format: I1206 12:00:00.123 ...
    assert re.findall(r"\bepoch (\d+)/3 ", proc.stdout + during) == ["1", "2", "3"], proc.stdout + during
    assert "test accuracy" in during
