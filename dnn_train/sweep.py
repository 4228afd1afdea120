"""The Hydra callback of multirun sweeps (SweepSummary, registered in conf/config.yaml as
hydra.callbacks.summary): it rebuilds the sweep's summary (summary.csv, summary_groups.csv,
summary.md and two plots, see dnn_train/compare.py) at the sweep root as each job ends (the plots
at most every PLOT_EVERY seconds while jobs run, and always at the end), and at the end says how
many jobs did not complete (pruned trials of a search are counted apart: they are an outcome, not
a failure) and what each configuration's verdict is.

Its parameters: `metric` (trainer.objective), `baseline`, the configuration the others are
compared with ("KEY=VALUE ..."; default: job 0's), set on the command line as
'hydra.callbacks.summary.baseline="optimizer=adam"', and `correction`, for multiple comparisons:
holm (default), bh or none (hydra.callbacks.summary.correction=bh; docs/statistics.md).

Jobs run in whatever process the launcher chooses (this one, joblib's workers, Ray's); each
rebuilds the summary from the job directories on disk, so any launcher gets the same table. A job
directory whose files cannot be read is skipped with a warning; it never stops the summary.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("dnn_train")
PRUNED = "pruned"  # results.json's status of a trial a search's pruner stopped (dnn_train/search.py)
# Drawing the two plots took ~0.4 s of every job's end, a tenth of a short job's fixed cost: between
# jobs they are redrawn only when the last drawing (on disk, whichever process made it) is this old.
PLOT_EVERY = 30.0


def update_summary(sweep_dir: Path, metric: str, baseline: Optional[str] = None, final: bool = True,
                   correction: str = "holm"):
    """Rebuild the summary files at `sweep_dir` (the plots: if `final`, or if the last ones are older
    than PLOT_EVERY seconds); the Comparison, or None if no job has started."""
    from dnn_train import compare

    runs = compare.find_runs([sweep_dir]) if Path(sweep_dir).is_dir() else []
    if not runs:
        return None
    if metric not in compare.METRICS:  # e.g. reconstruction_loss: not a summary column
        metric = "best_val_accuracy"
    # strict=False: the baseline's jobs may not have run yet
    comparison = compare.build(runs, metric, baseline, strict=False, correction=correction)
    for line in comparison.skipped:
        log.warning("sweep summary: skipping %s", line)
    compare.write(comparison, sweep_dir, plots=final or _age(Path(sweep_dir) / compare.CURVES_PLOT) >= PLOT_EVERY)
    return comparison


def _age(path: Path) -> float:
    """Seconds since `path` was written (infinite if it does not exist)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


class SweepSummary(Callback):
    def __init__(self, metric: str = "best_val_accuracy", baseline: Optional[str] = None, correction: str = "holm"):
        from dnn_train.config import ConfigError
        from dnn_train.stats import check_correction

        try:  # Hydra makes the callbacks before any job: a bad name stops the sweep before it starts
            self.correction = check_correction(correction)
        except ValueError as ex:
            raise ConfigError(f"hydra.callbacks.summary.{ex}") from None
        self.metric = metric
        self.baseline = baseline

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        try:
            update_summary(Path(config.hydra.sweep.dir), self.metric, self.baseline, final=False,
                           correction=self.correction)
        except Exception as ex:  # noqa: BLE001 - a summary problem must not fail the job
            log.warning("could not update the sweep summary: %s", ex)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        comparison = update_summary(sweep_dir, self.metric, self.baseline, correction=self.correction)
        if comparison is None:
            return
        table = comparison.runs
        pruned = int((table["status"] == PRUNED).sum())  # stopped by a search's pruner: an outcome, not a failure
        bad = table[~table["status"].isin(["completed", PRUNED])]
        n_bad = len(bad) + len(comparison.skipped)
        total = len(table) + len(comparison.skipped)
        print(f"dnn_train: sweep of {total} jobs: {total - n_bad - pruned} completed, "
              f"{f'{pruned} pruned, ' if pruned else ''}{n_bad} not -> {sweep_dir / 'summary.md'}", flush=True)
        for row in bad.itertuples():
            print(f"dnn_train:   job {row.job} ({row.overrides}): {row.status}"
                  f"{': ' + row.error if row.error else ''}", flush=True)
        for line in comparison.skipped:
            print(f"dnn_train:   skipped {line}", flush=True)
        from dnn_train.record import REFUSED

        for line in REFUSED:  # their directories hold other runs, left as they were (and summarized as such)
            print(f"dnn_train:   {line.replace(':', ' refused:', 1)}", flush=True)
        for line in verdict_lines(comparison):
            print(f"dnn_train: {line}", flush=True)
        if n_bad or REFUSED:
            raise SystemExit(1)  # the sweep ran to its end, but not every job succeeded


def verdict_lines(comparison) -> list[str]:
    """One line per configuration other than the baseline: its verdict on the sweep's metric."""
    from dnn_train import compare

    groups = comparison.groups[comparison.groups["metric"] == comparison.metric]
    if len(groups) < 2:
        return [f"note: {note}" for note in comparison.notes]
    from dnn_train.stats import NOT_ENOUGH_SEEDS

    lines, unpaired = [], 0
    for _, row in groups.iterrows():
        if row["verdict"] == NOT_ENOUGH_SEEDS:  # one line for all of them (a search: every trial)
            unpaired += 1
        elif row["verdict"] and row["verdict"] != compare.BASELINE:
            pairs = 0 if compare.missing(row["pairs"]) else int(row["pairs"])
            lines.append(f"{row['configuration']} vs {row['baseline']}: {row['verdict']} ({comparison.metric} "
                         f"{compare.difference_text(row) or 'difference unknown'}, {pairs} pairs{_p(row)})")
    if unpaired:
        many = unpaired > 1
        lines.append(f"{unpaired} configuration{'s' if many else ''} {'share' if many else 'shares'} fewer than 2 "
                     "seeds with the baseline: no verdict (sweep trainer.seed for repeats; summary.md has the differences)")
    return lines + [f"note: {note}" for note in comparison.notes]


def _p(row) -> str:
    """", p 0.0292, Holm 0.117": the verdict's p-values, raw and corrected (compare.correction_text)."""
    from dnn_train import compare, stats

    if compare.missing(row["p_value"]):
        return ""
    correction = row["correction"]
    adjusted = "" if correction == stats.NONE else \
        f", {stats.CORRECTIONS[correction]} {compare.p_text(row['p_adjusted'])}"
    return f", p {compare.p_text(row['p_value'])}{adjusted}"
