"""A benchmark's measurement as one small JSON record, benchmarks/results/<page>/<slug>.json: its date,
machine and commit, the command, a table, and free text. The documentation site's results pages are
generated from these records (docs/hooks.py). A new measurement replaces the record of the same slug
(git keeps the earlier ones); its "text" and "notes" are for a person to write after reading it.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def machine() -> str:
    """The CPU's model name and the cores this process may use, and the Keras backend."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores of {cpu}, Keras backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}"


def commit() -> str:
    """The repository's short commit, with "+dirty" when the tree has changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def write(page: str, slug: str, title: str, *, columns: list | None = None, rows: list | None = None,
          text: str = "", notes: str = "", figure: str | None = None, command: str | list | None = None,
          results: Path = RESULTS) -> Path:
    """Write benchmarks/results/<page>/<slug>.json; `figure` is a path relative to the repository."""
    record = {"title": title, "date": datetime.date.today().isoformat(), "machine": machine(), "commit": commit(),
              "command": command or "python " + shlex.join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])}
    if text:
        record["text"] = text
    if columns:
        record["columns"], record["rows"] = list(columns), [list(r) for r in rows or []]
    if figure:
        record["figure"] = figure
    if notes:
        record["notes"] = notes
    path = results / page / f"{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"record: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return path


RESULT = "RESULT "  # the line a benchmark's child process ends its measurement with


def report(result: dict) -> None:
    """In a child process (see measure): print its measurement."""
    print(RESULT + json.dumps(result), flush=True)


def measure(script: str, *args: str, what: str) -> dict:
    """Run `python script ARGS` as a process of its own (its memory, its imports), and return the
    measurement it reported, with its whole wall time as "wall_seconds"; exit naming `what` if it failed."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(lines[-1][len(RESULT):]), "wall_seconds": wall}
