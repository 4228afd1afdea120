"""The one reader of a run directory's files: results.json, config.yaml (or Hydra's record), metrics.csv.

Each reader says what a missing file gives. results, flat_config, curve and overrides raise BadRun
(a ValueError) naming the file and why when one is there but cannot be read: a comparison skips
that run, `report --tag` counts it untagged, a search's trial trains it again, the API's
LoadedRun.results passes it on. saved_config and table (the API's config, metrics, diagnostics)
let OmegaConf's or pandas' own error through.
Readers: the API (load_run), the report, the comparison (sweeps/read.py), --diff and --rerun
(sweeps/rundiff.py), a search's trial. Not here: a run's reads of its own files while it runs (the
record deciding whether to resume, its checkpoint, the metrics it just wrote), which stay with their writers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from dnn_train.errors import BadRun
from dnn_train.rundir import artifacts

HYDRA_DIR = ".hydra"  # Hydra's record of a job: config.yaml (unresolved), overrides.yaml, hydra.yaml


def is_run(path: Path) -> bool:
    """A run directory: it holds results.json, or Hydra's record of a job (one that failed before results.json)."""
    return (path / artifacts.RESULTS_FILE).is_file() or (path / HYDRA_DIR / "overrides.yaml").is_file()


def _first_line(ex: BaseException) -> str:
    return (str(ex).strip().splitlines() or [type(ex).__name__])[0]


def _yaml(run_dir: Path, name: str):
    """RUN_DIR/name parsed; BadRun naming it if it cannot be."""
    import yaml

    try:
        return yaml.safe_load((run_dir / name).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as ex:
        raise BadRun(f"{name} cannot be read ({_first_line(ex)})") from None


# ---------------------------------------------------------------- results.json
def results(run_dir: Path) -> dict:
    """results.json's content: {} if there is none; BadRun if it is not a readable JSON object."""
    path = Path(run_dir) / artifacts.RESULTS_FILE
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as ex:
        raise BadRun(f"results.json is not valid JSON ({_first_line(ex)})") from None
    if not isinstance(content, dict):
        raise BadRun("results.json is not a JSON object")
    return content


def tags(run_dir: Path) -> list[str]:
    """results.json's `tags` (run.tags) as strings: [] if none, or if results.json cannot be read."""
    try:
        found = results(run_dir).get("tags")
    except BadRun:
        return []
    return [str(t) for t in found] if isinstance(found, list) else []


# ---------------------------------------------------------------- the config
def saved_config(run_dir: Path):
    """config.yaml as saved (an OmegaConf DictConfig, unresolved); OmegaConf's error if absent or unreadable."""
    from omegaconf import OmegaConf

    return OmegaConf.load(Path(run_dir) / artifacts.CONFIG_FILE)


def flat_config(run_dir: Path) -> Optional[dict]:
    """The flat resolved config ("a.b" -> value, empty sections kept as values): config.yaml, else Hydra's
    .hydra/config.yaml (resolved), else None; BadRun if the one there cannot be read."""
    run_dir = Path(run_dir)
    if (run_dir / artifacts.CONFIG_FILE).is_file():
        config = _yaml(run_dir, artifacts.CONFIG_FILE)
    elif (run_dir / HYDRA_DIR / "config.yaml").is_file():
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        config = _yaml(run_dir, f"{HYDRA_DIR}/config.yaml")
        try:
            config = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
        except (OmegaConfBaseException, ValueError):
            pass  # an interpolation only Hydra can resolve: compare it as written
    else:
        return None
    if not isinstance(config, dict):
        raise BadRun("config.yaml is not a mapping")
    return artifacts.flatten(config, keep_empty=True)


def overrides(run_dir: Path) -> dict:
    """KEY -> VALUE as typed on the command line (Hydra's record; hydra.* left out): {} if not recorded."""
    run_dir = Path(run_dir)
    typed = []
    if (run_dir / HYDRA_DIR / "overrides.yaml").is_file():
        typed = _yaml(run_dir, f"{HYDRA_DIR}/overrides.yaml") or []
        if not isinstance(typed, list):
            raise BadRun(".hydra/overrides.yaml is not a list of overrides")
    pairs = dict(str(o).split("=", 1) if "=" in str(o) else (str(o), "") for o in typed)
    return {k: v for k, v in pairs.items() if not k.startswith("hydra.")}


def choices(run_dir: Path) -> dict:
    """Hydra's record of the option chosen in each config group: {} if unknown or unreadable."""
    try:
        chosen = _yaml(Path(run_dir), f"{HYDRA_DIR}/hydra.yaml")["hydra"]["runtime"]["choices"]
    except (BadRun, KeyError, TypeError):
        return {}
    return {str(k): str(v) for k, v in chosen.items()} if isinstance(chosen, dict) else {}


# ---------------------------------------------------------------- metrics.csv
def table(run_dir: Path, name: str = artifacts.METRICS_FILE, optional: bool = False):
    """RUN_DIR/name (metrics.csv, diagnostics.csv) as a DataFrame, whole rows only; None if `optional`
    and absent, else pandas' error."""
    path = Path(run_dir) / name
    return None if optional and not path.is_file() else artifacts.read_metrics(path)


def curve(run_dir: Path):
    """metrics.csv, checked: an `epoch` column and numbers in it and in val_accuracy; None if absent or
    empty, BadRun if it cannot be read."""
    import pandas as pd

    path = Path(run_dir) / artifacts.METRICS_FILE
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
