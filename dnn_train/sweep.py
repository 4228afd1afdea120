"""Multirun sweeps: a Hydra callback that keeps the sweep's summary (summary.csv, summary.md and two
plots, see dnn_train/compare.py) up to date at the sweep root as each job ends, and at the end says
how many jobs did not complete. Registered in conf/config.yaml under hydra.callbacks.

Jobs run in whatever process the launcher chooses (this one, joblib's workers, Ray's); each
rebuilds the summary from the job directories on disk, so any launcher gets the same table.
"""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("dnn_train")


def update_summary(sweep_dir: Path, metric: str):
    from dnn_train import compare

    runs = compare.find_runs([sweep_dir]) if Path(sweep_dir).is_dir() else []
    if not runs:
        return None
    table = compare.collect(runs)
    if metric not in table.columns:  # e.g. reconstruction_loss: not a summary column
        metric = "best_val_accuracy"
    compare.write(table, sweep_dir, metric, ascending=metric.endswith("loss"))
    return table


class SweepSummary(Callback):
    def __init__(self, metric: str = "best_val_accuracy"):
        self.metric = metric

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        try:
            update_summary(Path(config.hydra.sweep.dir), self.metric)
        except Exception as ex:  # noqa: BLE001 - a summary problem must not fail the job
            log.warning("could not update the sweep summary: %s", ex)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table = update_summary(sweep_dir, self.metric)
        if table is None:
            return
        bad = table[table["status"] != "completed"]
        print(f"dnn_train: sweep of {len(table)} jobs: {len(table) - len(bad)} completed, {len(bad)} not "
              f"-> {sweep_dir / 'summary.md'}", flush=True)
        for row in bad.itertuples():
            print(f"dnn_train:   job {row.job} ({row.overrides}): {row.status}"
                  f"{': ' + row.error if row.error else ''}", flush=True)
        if len(bad):
            raise SystemExit(1)  # the sweep ran to its end, but not every job succeeded
