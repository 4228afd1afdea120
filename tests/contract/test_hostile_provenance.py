"""Hostile input to `report --tag`, `--diff` and `--rerun` (tests/hostile.py): run directories whose
results.json says anything, and a saved config carrying a payload. One line, the right exit code,
nothing outside changed, no payload run."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO
from tests.hostile import Sandbox
from tests.unit.sweeps.test_compare import report

# Every JSON type where dnn_train writes an object, a list or a string.
WRONG = [None, 0, 1.5, True, "text", [], [1, "a"], {}, {"versions": "x", "code": [1], "data": {"sha256": 3}}]


def _report(box: Sandbox, *args: str) -> subprocess.CompletedProcess:
    box.freeze()
    return subprocess.run([sys.executable, "-m", "dnn_train.report", *args], cwd=box.root, capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(REPO), **box.env})


def _runs(box: Sandbox) -> list:
    """A run directory per wrong value, in provenance, tags and name at once."""
    out = []
    for i, value in enumerate(WRONG):
        run = box.run / f"r{i}"
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({"status": "completed", "best_val_accuracy": 0.5,
                                                      "provenance": value, "tags": value, "name": value}))
        (run / "config.yaml").write_text("trainer:\n  seed: 1\n")
        out.append(str(run))
    return out


def test_report_tag_and_diff_read_any_results_json(tmp_path):
    box = Sandbox(tmp_path)
    runs = _runs(box)
    proc = _report(box, str(box.run), "--tag", "x", "--out", str(box.run / "out"))
    assert "no runs tagged x" in box.check(proc, 2, "dnn_train.report: error:")
    for a, b in zip(runs[::2], runs[1::2] + runs[:1]):  # every value once as A, once as B; in this process
        box.freeze()
        proc = report("--diff", a, b, "--out", box.run / "diff.png", cwd=box.root, env=box.env)
        box.check(proc, 0)
        assert "environment:" in proc.stdout and "metrics:" in proc.stdout and proc.stderr == ""


def test_rerun_of_a_config_with_a_payload_is_refused(tmp_path):
    box = Sandbox(tmp_path)
    run = box.run / "victim_run"
    run.mkdir(parents=True)
    (run / "results.json").write_text('{"status": "completed"}')
    (run / "config.yaml").write_text(
        "task: train\noptimizer:\n  _target_: os.system\n  command: touch $MARKER\n")
    proc = _report(box, "--rerun", str(run), "--out", str(box.run / "again"))
    box.check(proc, 2, "dnn_train.report: error: rerun:")
    assert not (box.run / "again").exists()
