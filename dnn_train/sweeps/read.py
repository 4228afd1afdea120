"""Reading run directories for a comparison: each one's results, overrides, resolved config and curve (RunView).

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

from dnn_train.rundir import artifacts
from dnn_train.errors import BadRun

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
        candidates = [path] if _is_run(path) else sorted((p for p in path.rglob("*") if p.is_dir() and _is_run(p)),
                                                         key=_job_key)
        found.extend(c for c in candidates if c not in found)
    return found


def _is_run(path: Path) -> bool:
    return (path / artifacts.RESULTS_FILE).is_file() or (path / ".hydra" / "overrides.yaml").is_file()


def _job_key(path: Path):
    return (str(path.parent), int(path.name) if path.name.isdigit() else math.inf, path.name)


def _yaml(run_dir: Path, name: str):
    """RUN_DIR/name parsed; BadRun naming it if it cannot be."""
    import yaml

    try:
        return yaml.safe_load((run_dir / name).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as ex:
        raise BadRun(f"{name} cannot be read ({_first_line(ex)})") from None


def _first_line(ex: BaseException) -> str:
    return (str(ex).strip().splitlines() or [type(ex).__name__])[0]


def _config(run_dir: Path) -> Optional[dict]:
    """The flat resolved config: config.yaml, else Hydra's .hydra/config.yaml (resolved), else None."""
    if (run_dir / artifacts.CONFIG_FILE).is_file():
        config = _yaml(run_dir, artifacts.CONFIG_FILE)
    elif (run_dir / ".hydra" / "config.yaml").is_file():
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        config = _yaml(run_dir, ".hydra/config.yaml")
        try:
            config = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
        except (OmegaConfBaseException, ValueError):
            pass  # an interpolation only Hydra can resolve: compare it as written
    else:
        return None
    if not isinstance(config, dict):
        raise BadRun("config.yaml is not a mapping")
    return artifacts.flatten(config, keep_empty=True)


def _results(run_dir: Path) -> dict:
    path = run_dir / artifacts.RESULTS_FILE
    if not path.is_file():
        return {}
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as ex:
        raise BadRun(f"results.json is not valid JSON ({_first_line(ex)})") from None
    if not isinstance(results, dict):
        raise BadRun("results.json is not a JSON object")
    return results


def _curve(run_dir: Path):
    """metrics.csv, checked: an `epoch` column and numbers in it and in val_accuracy."""
    import pandas as pd

    path = run_dir / artifacts.METRICS_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        metrics = artifacts.read_metrics(path)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as ex:
        raise BadRun(f"metrics.csv cannot be read ({_first_line(ex)})") from None
    if "epoch" not in metrics:
        raise BadRun("metrics.csv has no epoch column")
    for column in ("epoch", "val_accuracy"):
        if column in metrics and not pd.api.types.is_numeric_dtype(metrics[column]):
            raise BadRun(f"metrics.csv: {column} holds values that are not numbers")
    return metrics if len(metrics) else None


def _choices(run_dir: Path) -> dict:
    """Hydra's record of the option chosen in each config group (only to match a baseline)."""
    try:
        choices = _yaml(run_dir, ".hydra/hydra.yaml")["hydra"]["runtime"]["choices"]
    except (BadRun, KeyError, TypeError):
        return {}
    return {str(k): str(v) for k, v in choices.items()} if isinstance(choices, dict) else {}


def read_run(run_dir: Path) -> RunView:
    """A run directory's record; BadRun (with the reason) if one of its files cannot be read."""
    run_dir = Path(run_dir)
    results = _results(run_dir)
    overrides = []
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        overrides = _yaml(run_dir, ".hydra/overrides.yaml") or []
        if not isinstance(overrides, list):
            raise BadRun(".hydra/overrides.yaml is not a list of overrides")
    pairs = dict(str(o).split("=", 1) if "=" in str(o) else (str(o), "") for o in overrides)
    return RunView(run_dir, results, {k: v for k, v in pairs.items() if not k.startswith("hydra.")},
               _choices(run_dir), _config(run_dir), _curve(run_dir))


def load(run_dirs: list[Path]) -> tuple[list[RunView], list[str]]:
    """The readable runs, and "RUN_DIR: reason" for each one skipped."""
    runs, skipped = [], []
    for run_dir in run_dirs:
        try:
            runs.append(read_run(run_dir))
        except BadRun as ex:
            skipped.append(f"{run_dir}: {ex}")
    return runs, skipped
