"""The comparison's tables: runs grouped into configurations, each against the baseline paired by seed (Comparison).

- run table (summary.csv): one row per run (COLUMNS), in job order, with its status; a run left
  "running" by a process that is gone shows as "crashed (process gone)" (dnn_train.rundir.lock.liveness).
- group table (summary_groups.csv): one row per configuration and metric (GROUP_COLUMNS): n, mean,
  std, 95% confidence interval, and against the baseline configuration the runs paired by seed:
  pairs, mean difference, its 95% interval, the paired t test's p-value, that p-value adjusted for
  the family of comparisons with the baseline on that metric (`correction`: Holm by default) and
  the verdict, which the adjusted p-value decides (the numbers: dnn_train/sweeps/stats.py).

Which runs are one configuration: dnn_train/sweeps/read.py (RunView.key); the files and plots made
from the tables: dnn_train/sweeps/render.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dnn_train.rundir import lock
from dnn_train.errors import BaselineError
from dnn_train.sweeps import stats
from dnn_train.sweeps.read import NOT_CONFIGURATION, SEED, RunView, load

COMPLETED = "completed"
PRUNED = "pruned"  # stopped by a search's pruner (dnn_train/sweeps/search_trial.py)
COLUMNS = ["job", "configuration", "seed", "overrides", "status", "epochs", "best_val_accuracy", "test_accuracy",
           "test_loss", "grad_ratio_epoch1", "wall_seconds", "error", "run_dir"]
# Compared per configuration; for these lower is better.
METRICS = ["best_val_accuracy", "test_accuracy", "test_loss", "wall_seconds"]
LOWER_IS_BETTER = {"test_loss", "wall_seconds"}
GROUP_COLUMNS = ["configuration", "metric", "n", "mean", "std", "ci_low", "ci_high", "baseline", "pairs",
                 "difference", "diff_ci_low", "diff_ci_high", "p_value", "p_adjusted", "correction", "verdict", "runs",
                 "not_completed"]
NO_COMPLETED_RUN = "no completed run"
BASELINE = "baseline"


@dataclass
class Comparison:
    """Both tables of a set of runs, the baseline they are compared with, and what was skipped or noted."""

    runs: object  # DataFrame: COLUMNS (+ "_key"), one row per run, job order
    groups: object  # DataFrame: GROUP_COLUMNS, one row per configuration and metric
    curves: dict  # run_dir -> metrics DataFrame
    metric: str  # what summary.md and sweep_metric.png lead with
    ascending: bool
    baseline: Optional[str]  # the baseline configuration's label (None: none chosen)
    baseline_spec: Optional[str] = None  # as the user named it (None: the first run's configuration)
    notes: list = field(default_factory=list)  # e.g. a baseline that matches no configuration yet
    skipped: list = field(default_factory=list)  # "RUN_DIR: reason" for each unreadable run
    correction: str = stats.HOLM  # for multiple comparisons (stats.CORRECTIONS)


def _short(value: str) -> str:
    """Numbers as a reader wants them in a label: 0.0046225890 -> 0.00462, 1000000000.0 -> 1e+09."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and abs(number) < 1e6 and "." not in value else f"{number:.3g}"


def _label(overrides: dict, keys: list) -> str:
    return " ".join(f"{k}={_short(overrides[k])}" for k in keys if k in overrides)


def _varying(dicts: list[dict]) -> list[str]:
    keys = sorted({k for d in dicts for k in d})
    return [k for k in keys if len({d.get(k) for d in dicts}) > 1]


def _configuration_labels(runs: list[RunView]) -> dict:
    """key -> a label: the overrides, other than the seed, that vary between configurations (the
    first run's); configurations that their overrides do not tell apart get the config keys that do."""
    firsts = {}
    for run in runs:
        firsts.setdefault(run.key, run)
    bare = [{k: v for k, v in r.overrides.items() if k not in NOT_CONFIGURATION} for r in firsts.values()]
    varying = _varying(bare)
    labels = {key: _label(o, varying or sorted(o)) or "defaults" for key, o in zip(firsts, bare)}
    for label in {v for v in labels.values() if list(labels.values()).count(v) > 1}:
        same = [key for key in labels if labels[key] == label]
        configs = [{k: v for k, v in (firsts[key].config or {}).items() if k not in NOT_CONFIGURATION} for key in same]
        differ = _varying(configs)[:3]
        for key, config in zip(same, configs):
            extra = " ".join(f"{k}={config.get(k)}" for k in differ) or str(firsts[key].dir)
            labels[key] = f"{label} [{extra}]"
    return labels


def run_table(runs: list[RunView]):
    """One row per run: COLUMNS (overrides: only those that differ between the runs), and "_key"."""
    import pandas as pd

    varying = _varying([r.overrides for r in runs])
    labels = _configuration_labels(runs)
    rows = [{"job": int(r.dir.name) if r.dir.name.isdigit() else r.dir.name, "configuration": labels[r.key],
             "seed": r.seed, "overrides": _label(r.overrides, varying) or "defaults",
             "status": lock.liveness(r.dir, r.results),
             **{c: r.results.get(c) for c in ("epochs", *METRICS, "grad_ratio_epoch1")},
             "error": r.results.get("error", ""), "run_dir": str(r.dir), "_key": r.key} for r in runs]
    table = pd.DataFrame(rows, columns=[*COLUMNS, "_key"])
    table["seed"] = table["seed"].astype("Int64")
    for column in ("epochs", *METRICS, "grad_ratio_epoch1"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def choose_baseline(runs: list[RunView], spec: Optional[str]) -> str:
    """The key of the configuration `spec` names ("KEY=VALUE ...": every pair must hold, as an
    override, a config group's option or a resolved config value); without spec the first run's."""
    if not spec or not spec.strip():
        return runs[0].key
    pairs = [p.split("=", 1) for p in spec.split()]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise BaselineError(f"baseline {spec!r}: expected KEY=VALUE pairs separated by spaces, e.g. optimizer=adam")
    if any(k == SEED for k, _ in pairs):
        raise BaselineError(f"baseline {spec!r}: {SEED} cannot choose a baseline (a configuration is all of its seeds)")
    keys = list(dict.fromkeys(r.key for r in runs if all(_matches(r, k, v) for k, v in pairs)))
    labels = _configuration_labels(runs)
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise BaselineError(f"baseline {spec!r} matches no configuration; the configurations are: "
                            + "; ".join(dict.fromkeys(labels.values())))
    raise BaselineError(f"baseline {spec!r} matches {len(keys)} configurations ("
                        + "; ".join(labels[k] for k in keys) + "); add KEY=VALUE pairs to choose one")


def _matches(run: RunView, key: str, value: str) -> bool:
    import yaml

    for source in (run.overrides, run.choices):
        if key in source:
            return _same(source[key], value)
    if run.config is not None and key in run.config:
        try:
            return _same(run.config[key], yaml.safe_load(value))
        except yaml.YAMLError:
            return _same(run.config[key], value)
    return False


def _same(a, b) -> bool:
    if a == b or str(a) == str(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def group_table(table, baseline_key: Optional[str], correction: str = stats.HOLM):
    """One row per configuration and metric (GROUP_COLUMNS): the completed runs' n, mean, std and
    95% CI; against the baseline, the runs paired by seed (a seed run twice: its mean), the paired t
    test's p-value and, per metric, the p-values of every configuration tested against the baseline
    adjusted by `correction` (stats.adjust), which decide the verdicts."""
    import pandas as pd

    stats.check_correction(correction)
    done = table[table["status"] == COMPLETED]
    labels = dict(zip(table["_key"], table["configuration"]))
    rows = []
    for metric in [m for m in METRICS if table[m].notna().any()]:
        first = len(rows)
        by_seed = done.dropna(subset=[metric, "seed"]).groupby(["_key", "seed"])[metric].mean().unstack()
        for key, runs in table.groupby("_key", sort=False):
            est = stats.mean_ci(runs.loc[runs["status"] == COMPLETED, metric])
            row = {"configuration": labels[key], "metric": metric, "n": est.n, "mean": est.mean, "std": est.std,
                   "ci_low": est.low, "ci_high": est.high, "baseline": labels.get(baseline_key),
                   "runs": len(runs), "not_completed": int((runs["status"] != COMPLETED).sum()), "verdict": ""}
            if baseline_key is None:
                pass  # no baseline (yet): no differences
            elif key == baseline_key:
                row["verdict"] = BASELINE
            elif est.n == 0:
                row["verdict"] = NO_COMPLETED_RUN
            else:
                pairs = by_seed.reindex([key, baseline_key]).T.dropna()
                diff = stats.paired(pairs[key], pairs[baseline_key], metric in LOWER_IS_BETTER)
                row.update(pairs=diff.pairs, difference=diff.mean, diff_ci_low=diff.low, diff_ci_high=diff.high,
                           p_value=diff.p, verdict=diff.verdict)
            rows.append(row)
        family = [r for r in rows[first:] if not missing(r.get("p_value"))]  # this metric's tested comparisons
        for row, p in zip(family, stats.adjust([r["p_value"] for r in family], correction)):
            row.update(p_adjusted=p, correction=correction,
                       verdict=stats.verdict(row["pairs"], row["difference"], p, metric in LOWER_IS_BETTER))
    groups = pd.DataFrame(rows, columns=GROUP_COLUMNS)
    groups["pairs"] = groups["pairs"].astype("Int64")
    return groups


def build(run_dirs: list[Path], metric: str = "best_val_accuracy", baseline: Optional[str] = None,
          ascending: Optional[bool] = None, strict: bool = True, correction: str = stats.HOLM) -> Comparison:
    """Read the runs and make both tables (`correction`: for multiple comparisons, stats.CORRECTIONS).
    A baseline that matches no configuration raises BaselineError if strict, else leaves the
    verdicts empty with a note (a sweep whose baseline job has not run yet)."""
    runs, skipped = load(run_dirs)
    table = run_table(runs)
    ascending = metric in LOWER_IS_BETTER if ascending is None else ascending
    notes, baseline_key = [], None
    if runs:
        try:
            baseline_key = choose_baseline(runs, baseline)
        except BaselineError as ex:
            if strict:
                raise
            notes.append(f"{ex}: no verdicts")
    labels = dict(zip(table["_key"], table["configuration"]))
    return Comparison(table, group_table(table, baseline_key, correction),
                      {str(r.dir): r.curve for r in runs if r.curve is not None},
                      metric, ascending, labels.get(baseline_key), baseline, notes, skipped, correction)


def sort_table(table, metric: str, ascending: bool = False):
    """Best first by `metric` (missing values last)."""
    return table.sort_values(metric, ascending=ascending, na_position="last", kind="stable")


def missing(value) -> bool:
    """None or NaN (a table's empty cell)."""
    import pandas as pd

    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))
