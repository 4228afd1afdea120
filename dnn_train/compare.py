"""Comparing runs: the tables, the grouping of runs into configurations, and the plots.

Runs that differ only in `trainer.seed` are repeats of one configuration: two runs are one
configuration iff every key of their resolved config (config.yaml; Hydra's .hydra/config.yaml for a
job that failed before writing it; the overrides for a run without either) is equal, except
trainer.seed and the keys that do not change a run (NOT_CONFIGURATION).

- summary.csv: one row per run (COLUMNS), in job order, with its status; a run left "running" by a
  process that is gone shows as "crashed (process gone)" (dnn_train.rundir.lock.liveness).
- summary_groups.csv: one row per configuration and metric (GROUP_COLUMNS): n, mean, std, 95%
  confidence interval, and against the baseline configuration the runs paired by seed: pairs, mean
  difference, its 95% interval, the paired t test's p-value, that p-value adjusted for the family of
  comparisons with the baseline on that metric (`correction`: Holm by default) and the verdict,
  which the adjusted p-value decides (the numbers: dnn_train/stats.py).
- summary.md: the configurations first (mean ± CI and verdict), then the per-run table.
- sweep_curves.png: validation accuracy against epochs, one line per configuration (mean over its
  seeds) with a band (min to max over seeds); sweep_metric.png: each configuration's mean with its
  95% CI as an error bar, and its single runs as dots, on one shared axis.

Built from any run or sweep directories: a sweep writes them at its root as each job ends and however it ends (the
plots at most every 30 s until its end: dnn_train/sweep.py), `python -m dnn_train.report PATH...` rebuilds them (dnn_train/report.py). A
run directory whose files cannot be read is skipped, with the reason (Comparison.skipped).
"""
from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dnn_train import stats
from dnn_train.rundir import artifacts, lock
from dnn_train.errors import BadRun, BaselineError

SUMMARY_CSV = "summary.csv"
GROUPS_CSV = "summary_groups.csv"
SUMMARY_MD = "summary.md"
CURVES_PLOT = "sweep_curves.png"
METRIC_PLOT = "sweep_metric.png"
COMPLETED = "completed"
PRUNED = "pruned"  # stopped by a search's pruner (dnn_train/search.py)
COLUMNS = ["job", "configuration", "seed", "overrides", "status", "epochs", "best_val_accuracy", "test_accuracy",
           "test_loss", "grad_ratio_epoch1", "wall_seconds", "error", "run_dir"]
# Compared per configuration; for these lower is better.
METRICS = ["best_val_accuracy", "test_accuracy", "test_loss", "wall_seconds"]
LOWER_IS_BETTER = {"test_loss", "wall_seconds"}
GROUP_COLUMNS = ["configuration", "metric", "n", "mean", "std", "ci_low", "ci_high", "baseline", "pairs",
                 "difference", "diff_ci_low", "diff_ci_high", "p_value", "p_adjusted", "correction", "verdict", "runs",
                 "not_completed"]
# The seed makes repeats; resume and progress change how a run is driven, not what it computes
# (a rerun sweep sets trainer.resume=true itself; checkpoint.py ignores both when resuming).
SEED = "trainer.seed"
NOT_CONFIGURATION = (SEED, "trainer.resume", "trainer.progress", "run.name", "run.tags", "run.notes")
NO_COMPLETED_RUN = "no completed run"
BASELINE = "baseline"


@dataclass
class Run:
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


@dataclass
class Comparison:
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


# ----------------------------------------------------------------------------------- reading runs
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


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict) and node:
        return {k: v for key, value in node.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


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
    return _flatten(config)


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


def read_run(run_dir: Path) -> Run:
    """A run directory's record; BadRun (with the reason) if one of its files cannot be read."""
    run_dir = Path(run_dir)
    results = _results(run_dir)
    overrides = []
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        overrides = _yaml(run_dir, ".hydra/overrides.yaml") or []
        if not isinstance(overrides, list):
            raise BadRun(".hydra/overrides.yaml is not a list of overrides")
    pairs = dict(str(o).split("=", 1) if "=" in str(o) else (str(o), "") for o in overrides)
    return Run(run_dir, results, {k: v for k, v in pairs.items() if not k.startswith("hydra.")},
               _choices(run_dir), _config(run_dir), _curve(run_dir))


def load(run_dirs: list[Path]) -> tuple[list[Run], list[str]]:
    """The readable runs, and "RUN_DIR: reason" for each one skipped."""
    runs, skipped = [], []
    for run_dir in run_dirs:
        try:
            runs.append(read_run(run_dir))
        except BadRun as ex:
            skipped.append(f"{run_dir}: {ex}")
    return runs, skipped


# ----------------------------------------------------------------------------------- the tables
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


def _configuration_labels(runs: list[Run]) -> dict:
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


def run_table(runs: list[Run]):
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


def choose_baseline(runs: list[Run], spec: Optional[str]) -> str:
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


def _matches(run: Run, key: str, value: str) -> bool:
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


def write(comparison: Comparison, out_dir: Path, plots: bool = True) -> None:
    """summary.csv (job order), summary_groups.csv, summary.md and (if `plots`) the two plots, in `out_dir`."""
    out_dir = Path(out_dir)
    artifacts.write_text(out_dir / SUMMARY_CSV, comparison.runs[COLUMNS].to_csv(index=False))
    artifacts.write_text(out_dir / GROUPS_CSV, comparison.groups.to_csv(index=False))
    artifacts.write_text(out_dir / SUMMARY_MD, markdown(comparison))
    if plots:
        plot_curves(comparison, out_dir / CURVES_PLOT)
        plot_metric(comparison, out_dir / METRIC_PLOT)


# ----------------------------------------------------------------------------------- summary.md
FORMATS = {"wall_seconds": "{:.1f}", "grad_ratio_epoch1": "{:.3g}", "epochs": "{:.0f}"}
SIGNED = {"wall_seconds": "{:+.1f}"}


def sort_table(table, metric: str, ascending: bool = False):
    """Best first by `metric` (missing values last)."""
    return table.sort_values(metric, ascending=ascending, na_position="last", kind="stable")


def missing(value) -> bool:
    import pandas as pd

    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _cell(value, column: str = "") -> str:
    if missing(value):
        return ""
    if isinstance(value, float):
        return FORMATS.get(column, "{:.4f}").format(value)
    return str(value).replace("|", "\\|")


def _mean_ci(row) -> str:
    if row["n"] == 0:
        return ""
    text = _cell(row["mean"], row["metric"])
    return text if missing(row["ci_low"]) else f"{text} ± {_cell((row['ci_high'] - row['ci_low']) / 2, row['metric'])}"


def difference_text(row) -> str:
    if missing(row["difference"]):
        return ""
    fmt = SIGNED.get(row["metric"], "{:+.4f}")
    text = fmt.format(row["difference"])
    if not missing(row["diff_ci_low"]):
        text += f" [{fmt.format(row['diff_ci_low'])}, {fmt.format(row['diff_ci_high'])}]"
    return text


def _table(header: list, rows: list) -> list[str]:
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(comparison: Comparison) -> str:
    """The configurations (mean ± CI, difference from the baseline, verdict), then the runs."""
    table, metric = comparison.runs, comparison.metric
    n_configs = table["_key"].nunique()
    direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
    lines = [f"# {n_configs} configuration{'s' * (n_configs != 1)}, {len(table)} run{'s' * (len(table) != 1)}: "
             f"{metric} ({direction})", ""]
    lines += _configurations_md(comparison, n_configs)
    lines += [line for note in comparison.notes for line in ("", f"Note: {note}.")]
    shown = [c for c in COLUMNS if c not in ("configuration", "seed", "error", "run_dir")
             and not table[c].isna().all()]
    lines += ["", f"## Runs, sorted by {metric}", ""]
    lines += _table(shown, [[_cell(row[c], c) for c in shown]
                            for _, row in sort_table(table, metric, comparison.ascending).iterrows()])
    pruned = table[table["status"] == PRUNED]
    if len(pruned):  # a search's pruner stopped them: an outcome, not a failure
        lines += ["", f"{len(pruned)} pruned by the search (stopped early; their metrics are of the epochs they ran):",
                  ""]
        lines += [f"- job {r.job} ({r.overrides}): {r.error}" for r in pruned.itertuples()]
    failed = table[~table["status"].isin([COMPLETED, PRUNED])]
    if len(failed):
        lines += ["", f"{len(failed)} not completed:", ""]
        lines += [f"- job {r.job} ({r.overrides}): {r.status}{': ' + r.error if r.error else ''}"
                  for r in failed.itertuples()]
    if comparison.skipped:
        lines += ["", f"{len(comparison.skipped)} skipped (unreadable):", ""]
        lines += [f"- {s}" for s in comparison.skipped]
    return "\n".join(lines) + "\n"


def _configurations_md(comparison: Comparison, n_configs: int) -> list[str]:
    groups, metric = comparison.groups, comparison.metric
    main = sort_table(groups[groups["metric"] == metric], "mean", comparison.ascending)
    if not len(main):
        return []
    lines = ["A configuration is the runs that differ only in `trainer.seed`. n: its completed runs; "
             "mean ± the half-width of the 95% confidence interval (Student t); difference: "
             "configuration − baseline, averaged over the seeds both ran, with its 95% interval "
             f"(paired t); p: that paired t test's p-value. {correction_text(comparison)}", ""]
    if comparison.baseline is not None and n_configs > 1:
        how = "" if comparison.baseline_spec else \
            " (the first run's configuration; choose another with `--baseline KEY=VALUE`, or in a sweep " \
            "`'hydra.callbacks.summary.baseline=\"KEY=VALUE\"'`)"
        lines += [f"Baseline: {comparison.baseline}{how}", ""]
    lines += _table(["configuration", "n", f"{metric} mean ± 95% CI", "std", "difference [95% CI]", "pairs", "verdict",
                     "p", f"p ({stats.CORRECTIONS[comparison.correction]})"],
                    [[_cell(r["configuration"]), str(r["n"]), _mean_ci(r), _cell(r["std"], metric),
                      difference_text(r), _cell(r["pairs"]), r["verdict"], p_text(r["p_value"]),
                      p_text(r["p_adjusted"])] for _, r in main.iterrows()])
    others = [m for m in groups["metric"].unique() if m != metric and groups.loc[groups["metric"] == m, "n"].any()]
    if others and n_configs > 1:
        wide = {m: groups[groups["metric"] == m].set_index("configuration") for m in others}
        lines += ["", "Other metrics (mean ± 95% CI, verdict where there are 2 pairs or more, corrected as above "
                  f"within each metric; lower is better for {', '.join(sorted(LOWER_IS_BETTER))}):", ""]
        lines += _table(["configuration", *others],
                        [[_cell(c)] + [_other(wide[m].loc[c]) for m in others] for c in main["configuration"]])
    if main["n"].max() == 1:
        lines += ["", "At most one completed run per configuration: differences between seeds are unknown. Sweep "
                      "seeds to tell real differences from seed noise, e.g. `trainer.seed=0,1,2,3,4`."]
    return lines


def p_text(p) -> str:
    return "" if missing(p) else f"{p:.3g}"


def correction_text(comparison: Comparison) -> str:
    """How the verdicts were decided: which correction for multiple comparisons, over how many."""
    main = comparison.groups[comparison.groups["metric"] == comparison.metric]
    m = int(main["p_adjusted"].notna().sum())
    if comparison.correction == stats.NONE:
        return ("No correction for multiple comparisons: better or worse when p < 0.05 (when the interval "
                "excludes 0), each comparison at 95% on its own.")
    how = {stats.HOLM: "Holm's method: the familywise error rate, the chance of any false verdict, stays ≤ 5%",
           stats.BH: "Benjamini-Hochberg: the expected share of false verdicts among the better/worse ones "
                     "stays ≤ 5%"}[comparison.correction]
    return (f"p ({stats.CORRECTIONS[comparison.correction]}): p adjusted for the {m} comparison{'s' * (m != 1)} "
            f"with the baseline on {comparison.metric} ({how}); better or worse when the adjusted p < 0.05. "
            "The intervals are not adjusted.")


def _other(row) -> str:
    text = _mean_ci(row)
    shown = row["verdict"] not in ("", BASELINE, stats.NOT_ENOUGH_SEEDS)
    return f"{text} ({row['verdict']})" if text and shown else text


# ----------------------------------------------------------------------------------- plots
def _wrapped(label: str) -> str:
    """A configuration's label on several lines: on one, a sweep's long overrides (a single
    configuration is labelled with all of them) left the axes no room, and the plot came out empty."""
    return textwrap.fill(label, 60, break_on_hyphens=False)


def _not_completed(runs) -> str:
    """ "2 of 3 completed; 1 crashed (process gone)" for a configuration's runs, "" if all completed."""
    bad = runs[runs["status"] != COMPLETED]
    if not len(bad):
        return ""
    counts = ", ".join(f"{n} {status}" for status, n in bad["status"].value_counts().items())
    return f"{len(runs) - len(bad)} of {len(runs)} completed; {counts}"


MARKERS = "os^vDP<>X*"  # with the 10 colours of matplotlib's cycle: 70 configurations told apart before one repeats


def plot_curves(comparison: Comparison, path: Path) -> None:
    """Validation accuracy against epochs: per configuration the mean over its completed runs, a
    band from the lowest to the highest of them, and its other runs dotted. Each configuration has
    its own colour and marker and is shifted a few points along the epochs, so that configurations
    with the same values do not hide each other; the legend, below the plot, holds the wrapped labels
    and the figure grows to fit it."""
    import matplotlib
    import matplotlib.transforms
    import pandas as pd

    configurations = list(comparison.runs.groupby("_key", sort=False))
    fig, ax = artifacts.figure(figsize=(12, 5.5), constrained_layout=True)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (_, runs) in enumerate(configurations):
        color, label = colors[i % len(colors)], _wrapped(runs["configuration"].iloc[0])
        shifted = matplotlib.transforms.offset_copy(ax.transData, fig, units="points",
                                                    x=2.5 * (i - (len(configurations) - 1) / 2))
        drawn = []  # shifted once drawn (a line drawn shifted would not count in the axes' limits)
        curves = {r.status: [] for r in runs.itertuples()}
        for r in runs.itertuples():
            curve = comparison.curves.get(r.run_dir)
            if curve is not None and "val_accuracy" in curve:
                curves[r.status].append(curve[["epoch", "val_accuracy"]])
        done = curves.get(COMPLETED, [])
        if done:
            by_epoch = pd.concat(done).groupby("epoch")["val_accuracy"].agg(["mean", "min", "max"])
            drawn += ax.plot(by_epoch.index, by_epoch["mean"], "-", marker=MARKERS[i % len(MARKERS)], markersize=4,
                             color=color, label=f"{label} (n={len(done)})")
            if len(done) > 1:
                drawn.append(ax.fill_between(by_epoch.index, by_epoch["min"], by_epoch["max"], color=color,
                                             alpha=0.2, lw=0))
        others = [c for status, cs in curves.items() if status != COMPLETED for c in cs]
        for j, curve in enumerate(others):
            drawn += ax.plot(curve["epoch"], curve["val_accuracy"], ":", color=color, lw=1,
                             label=f"{label}: {_not_completed(runs)}" if j == 0 else None)
        for artist in drawn:
            artist.set_transform(shifted)
    dotted = "; dotted: runs not completed" if (comparison.runs["status"] != COMPLETED).any() else ""
    ax.set(xlabel="epoch", ylabel="validation accuracy",
           title=f"validation accuracy per configuration: mean over seeds, band: lowest to highest seed{dotted}")
    ax.title.set_fontsize(10)
    artifacts.integer_epochs(ax)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        columns = 1 if len(labels) < 4 else 2
        rows = [labels[k:k + columns] for k in range(0, len(labels), columns)]
        text_lines = sum(max(label.count("\n") + 1 for label in row) for row in rows)
        fig.set_figheight(4.5 + 0.17 * text_lines + 0.05 * len(rows))  # room for the legend below the plot
        fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=8)
    artifacts.save_figure(fig, path)


def plot_metric(comparison: Comparison, path: Path) -> None:
    """Per configuration, on one shared axis: its mean `metric` with the 95% CI as an error bar, and
    each completed run as a dot; the baseline's mean as a dashed line. Configurations with runs not
    completed say so in red."""
    metric, table = comparison.metric, comparison.runs
    groups = comparison.groups[comparison.groups["metric"] == metric]
    groups = sort_table(groups, "mean", not comparison.ascending)  # best at the top
    fig, ax = artifacts.figure(figsize=(10, 4), constrained_layout=True)
    labels = []
    for y, row in enumerate(groups.itertuples()):
        runs = table[table["configuration"] == row.configuration]
        values = runs.loc[runs["status"] == COMPLETED, metric].dropna()
        ax.plot(values, [y] * len(values), "o", color="tab:blue", alpha=0.35, markersize=5)
        if row.n:
            err = [[row.mean - row.ci_low], [row.ci_high - row.mean]] if row.n > 1 else None
            ax.errorbar([row.mean], [y], xerr=err, fmt="D", color="black", capsize=4, markersize=5)
            ax.annotate(f"{row.mean:.4g}", (row.mean, y), xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize=8)
        if row.verdict == BASELINE:
            ax.axvline(row.mean, color="grey", ls="--", lw=1)
        note = _not_completed(runs)
        verdict = f"; {row.verdict}" if row.verdict and row.verdict != BASELINE else \
            ("; baseline" if row.verdict == BASELINE else "")
        labels.append((_wrapped(f"{row.configuration} (n={row.n}{verdict})") + (f"\n{note}" if note else ""),
                       bool(note)))
    ax.set_yticks(range(len(labels)), [t for t, _ in labels], fontsize=8)
    for tick, (_, bad) in zip(ax.get_yticklabels(), labels):
        if bad:
            tick.set_color("tab:red")
    ax.set_ylim(-0.7, len(labels) - 0.3)
    # the figure's height: each configuration's rows of label text (8 points), at least 0.45 in; the title
    # above the whole figure (over the axes alone, pushed right by the labels, it ran off the edge)
    rows = sum(max(2, text.count("\n") + 1) for text, _ in labels)
    fig.set_figheight(1.9 + 0.15 * rows + 0.1 * len(labels))
    fig.suptitle(f"{metric} per configuration: mean over seeds (black) with its 95% confidence interval "
                 "(Student t)\nas error bar; dots: single runs; dashed: the baseline's mean", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    artifacts.save_figure(fig, path)
