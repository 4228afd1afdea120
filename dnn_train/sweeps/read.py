"""Reading run directories for a comparison: each one's results, overrides, resolved config and curve (RunView).

The files are read by dnn_train/rundir/read.py, the one reader of a run directory; here they become
a RunView, the configuration its runs share and the seed that makes repeats.

Runs that differ only in `trainer.seed` are repeats of one configuration: two runs are one
configuration iff every key of their resolved config (config.yaml; Hydra's .hydra/config.yaml for a
job that failed before writing it; the overrides for a run without either) is equal, except
trainer.seed and the keys that do not change a run (NOT_CONFIGURATION): RunView.key.

A run directory whose files cannot be read raises BadRun with the reason; `load` skips it and says why.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dnn_train.errors import BadRun
from dnn_train.rundir import read

# The seed makes repeats; resume and progress change how a run is driven, not what it computes
# (a rerun sweep sets trainer.resume=true itself; checkpoint.py ignores both when resuming).
SEED = "trainer.seed"
NOT_CONFIGURATION = (SEED, "trainer.resume", "trainer.progress", "run.name", "run.tags", "run.notes")


@dataclass
class RunView:
    """What a run directory says: results.json, overrides, group choices, flat resolved config, curve."""

    dir: Path
    results: dict
    overrides: dict  # KEY -> VALUE as typed on the command line (hydra.* left out)
    choices: dict  # config group -> option, from Hydra's record ({} if unknown)
    config: Optional[dict]  # "a.b" -> value, the resolved config (None if not recorded)
    curve: Optional[object]  # metrics.csv as a DataFrame (None if absent or empty)

    @property
    def key(self) -> str:
        """The configuration: equal for two runs iff they differ only in NOT_CONFIGURATION keys."""
        if self.config is not None:
            same = {k: v for k, v in self.config.items() if k not in NOT_CONFIGURATION}
            return json.dumps({"config": same}, sort_keys=True, default=str)
        return json.dumps({"overrides": {k: v for k, v in self.overrides.items() if k not in NOT_CONFIGURATION}},
                          sort_keys=True)

    @property
    def seed(self):
        value = (self.config or {}).get(SEED, self.overrides.get(SEED))
        try:
            return int(value)
        except (TypeError, ValueError):
            return None  # unknown: the run pairs with no other


def find_runs(paths: list) -> list[Path]:
    """Run directories (holding results.json or Hydra's record) under each path, in job order."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such run or sweep directory")
        candidates = [path] if read.is_run(path) else sorted(
            (p for p in path.rglob("*") if p.is_dir() and read.is_run(p)), key=_job_key)
        found.extend(c for c in candidates if c not in found)
    return found


def _job_key(path: Path):
    return (str(path.parent), int(path.name) if path.name.isdigit() else math.inf, path.name)


def read_run(run_dir: Path) -> RunView:
    """A run directory's record (rundir/read.py reads each file); BadRun (with the reason) if one cannot be read."""
    run_dir = Path(run_dir)
    results = read.results(run_dir)
    overrides = read.overrides(run_dir)
    return RunView(run_dir, results, overrides, read.choices(run_dir), read.flat_config(run_dir), read.curve(run_dir))


def load(run_dirs: list[Path]) -> tuple[list[RunView], list[str]]:
    """The readable runs, and "RUN_DIR: reason" for each one skipped."""
    runs, skipped = [], []
    for run_dir in run_dirs:
        try:
            runs.append(read_run(run_dir))
        except BadRun as ex:
            skipped.append(f"{run_dir}: {ex}")
    return runs, skipped
