"""A sweep's summary at its root, rebuilt as each job ends and once more however the sweep ends (SweepSummary).

SweepSummary is the Hydra callback of multirun sweeps (registered in conf/config.yaml as
hydra.callbacks.summary): it rebuilds the sweep's summary (summary.csv, summary_groups.csv,
summary.md and two plots, see dnn_train/sweeps/render.py) at the sweep root as each job ends (the plots
at most every PLOT_EVERY seconds while jobs run), and once more at the sweep's end, whichever way
it ends (`ending`, around the Hydra app in dnn_train/__main__.py): after its last job it says how
many jobs did not complete (pruned trials of a search are counted apart: they are an outcome, not a
failure) and what each configuration's verdict is; interrupted (Ctrl-C, SIGTERM, during a job or
between jobs), the exit line says where the summary is and how to continue the sweep.

Its parameters: `metric` (trainer.objective), `baseline`, the configuration the others are
compared with ("KEY=VALUE ..."; default: job 0's), set on the command line as
'hydra.callbacks.summary.baseline="optimizer=adam"', and `correction`, for multiple comparisons:
holm (default), bh or none (hydra.callbacks.summary.correction=bh; docs/statistics.md).

Jobs run in whatever process the launcher chooses (this one, joblib's workers, Ray's); each
rebuilds the summary from the job directories on disk, so any launcher gets the same table, and
every job that started is in it with the status its results.json says. A job directory whose files
cannot be read is skipped with a warning; it never stops the summary.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("dnn_train")
# Drawing the two plots took ~0.4 s of every job's end, a tenth of a short job's fixed cost: between
# jobs they are redrawn only when the last drawing (on disk, whichever process made it) is this old.
PLOT_EVERY = 30.0
RUNNING: list = []  # the SweepSummary of the sweep this process runs (from on_multirun_start), for `ending`
SIGNALLED: list = []  # the signals that interrupted it between jobs (see `ending`)


def update_summary(sweep_dir: Path, metric: str, baseline: Optional[str] = None, final: bool = True,
                   correction: str = "holm"):
    """Rebuild the summary files at `sweep_dir` (the plots: if `final`, or if the last ones are older
    than PLOT_EVERY seconds); the Comparison, or None if no job has started."""
    from dnn_train.sweeps.read import find_runs
    from dnn_train.sweeps.render import CURVES_PLOT, write
    from dnn_train.sweeps.table import METRICS, build

    runs = find_runs([sweep_dir]) if Path(sweep_dir).is_dir() else []
    if not runs:
        return None
    if metric not in METRICS:  # e.g. reconstruction_loss: not a summary column
        metric = "best_val_accuracy"
    # strict=False: the baseline's jobs may not have run yet
    comparison = build(runs, metric, baseline, strict=False, correction=correction)
    for line in comparison.skipped:
        log.warning("sweep summary: skipping %s", line)
    write(comparison, sweep_dir, plots=final or _age(Path(sweep_dir) / CURVES_PLOT) >= PLOT_EVERY)
    return comparison


def _age(path: Path) -> float:
    """Seconds since `path` was written (infinite if it does not exist)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


@contextmanager
def ending():
    """Around the Hydra app: the one place where a sweep this process runs ends, whichever way it
    ends (its last job, Ctrl-C or SIGTERM during a job or between jobs, an exception). Hydra calls
    on_multirun_end only after the last job (an interrupted job never reaches on_job_end either), so
    the sweep's last summary is written here. A KeyboardInterrupt leaves with `sweep_note`: where the
    summary is and the command that continues the sweep, for the exit line."""
    try:
        yield
        if SIGNALLED:  # a signal's exception lost inside a library, which carried on: the sweep was interrupted
            from dnn_train.errors import Interrupted

            raise Interrupted(SIGNALLED[-1])
    except BaseException as ex:
        # A signal's exception raised inside a library's half-done work (OmegaConf composing the next
        # job's config) can be lost in its clean-up, which then fails in turn: the sweep was interrupted.
        lost = bool(SIGNALLED) and not isinstance(ex, KeyboardInterrupt)
        if lost:
            from dnn_train.errors import Interrupted

            ex = Interrupted(SIGNALLED[-1])
        if RUNNING:
            RUNNING.pop().end(ex)
        if lost:
            raise ex from None
        raise
    finally:
        SIGNALLED.clear()
    if RUNNING:
        RUNNING.pop().end(None)


def resume_command(sweep_dir) -> str:
    """The command that continues a sweep: this one, into its sweep directory (README: rerun into
    the same directory, completed jobs are skipped and interrupted ones resume)."""
    args = sys.argv[1:]
    if not any(a.lstrip("+").startswith("hydra.sweep.dir=") for a in args):
        args = [*args, f"hydra.sweep.dir={sweep_dir}"]
    return shlex.join(["python", "-m", "dnn_train", *args])


class SweepSummary(Callback):
    def __init__(self, metric: str = "best_val_accuracy", baseline: Optional[str] = None, correction: str = "holm"):
        from dnn_train.errors import ConfigError
        from dnn_train.sweeps.stats import check_correction

        try:  # Hydra makes the callbacks before any job: a bad name stops the sweep before it starts
            self.correction = check_correction(correction)
        except ValueError as ex:
            raise ConfigError(f"hydra.callbacks.summary.{ex}") from None
        self.metric = metric
        self.baseline = baseline
        self.sweep_dir: Optional[Path] = None
        self._sigterm = self._sigint = None  # the SIGTERM and SIGINT handlers before the sweep's
        self._keeping = False  # keep_lost() holds, from the sweep's start to its end

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """The sweep ends in `ending`; from here to there SIGTERM interrupts it as Ctrl-C does, also
        between jobs (a job's own handler, dnn_train/rundir/signals.py, takes over while it runs)."""
        from dnn_train.errors import Interrupted
        from dnn_train.rundir.signals import keep_lost

        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        RUNNING[:] = [self]
        if threading.current_thread() is threading.main_thread():
            def interrupted(signum, frame):
                SIGNALLED.append(signum)
                raise Interrupted(signum)

            def again(signum):  # its exception was lost (keep_lost): the signal comes again shortly
                resend = threading.Timer(0.05, lambda: SIGNALLED and os.kill(os.getpid(), signum))
                resend.daemon = True
                resend.start()

            self._sigterm = signal.signal(signal.SIGTERM, interrupted)
            self._sigint = signal.signal(signal.SIGINT, interrupted)
            keep_lost(again)
            self._keeping = True

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

    def end(self, ex: Optional[BaseException]) -> None:
        """The sweep's end (`ending`): its last summary; then, after its last job (`ex` None), the
        report (exit 1 if a job did not complete), or, interrupted, ex.sweep_note."""
        from dnn_train.rundir.signals import stop_keeping

        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:  # the sweep is over: a second signal waits until its summary is whole
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if ex is None:
                self.report(update_summary(self.sweep_dir, self.metric, self.baseline, correction=self.correction))
                return
            try:
                comparison = update_summary(self.sweep_dir, self.metric, self.baseline, correction=self.correction)
            except Exception as problem:  # noqa: BLE001 - how the sweep ended is what gets reported
                log.warning("could not write the sweep summary: %s", problem)
                comparison = None
            if isinstance(ex, KeyboardInterrupt):
                ex.sweep_note = self.note(comparison)
        finally:
            if main_thread and not isinstance(ex, KeyboardInterrupt):  # interrupted: ignored until the exit line
                signal.signal(signal.SIGINT, self._sigint or signal.default_int_handler)
                signal.signal(signal.SIGTERM, self._sigterm or signal.SIG_DFL)
            if self._keeping:
                stop_keeping()
                self._keeping = False

    def note(self, comparison) -> str:
        """For the exit line of an interrupted sweep: the jobs that started, by status, where the
        summary is, and the command that continues the sweep."""
        if comparison is None:
            started = "no job of the sweep had started"
        else:
            table = comparison.runs
            counts = [f"{n} {status}" for status, n in table["status"].value_counts(sort=False).items()]
            counts += [f"{len(comparison.skipped)} unreadable"] if comparison.skipped else []
            started = (f"{len(table) + len(comparison.skipped)} of the sweep's jobs started ({', '.join(counts)}), "
                       f"summary in {self.sweep_dir / 'summary.md'}")
        return f"; {started}; continue with: {resume_command(self.sweep_dir)}"

    def report(self, comparison) -> None:
        """After the last job: how many jobs did not complete and why, and the verdicts; exit 1 if a
        job did not complete."""
        if comparison is None:
            return
        from dnn_train.rundir.created import REFUSED
        from dnn_train.sweeps.table import COMPLETED, PRUNED

        sweep_dir = self.sweep_dir
        table = comparison.runs
        pruned = int((table["status"] == PRUNED).sum())  # stopped by a search's pruner: an outcome, not a failure
        bad = table[~table["status"].isin([COMPLETED, PRUNED])]
        n_bad = len(bad) + len(comparison.skipped)
        total = len(table) + len(comparison.skipped)
        print(f"dnn_train: sweep of {total} jobs: {total - n_bad - pruned} completed, "
              f"{f'{pruned} pruned, ' if pruned else ''}{n_bad} not -> {sweep_dir / 'summary.md'}", flush=True)
        for row in bad.itertuples():
            print(f"dnn_train:   job {row.job} ({row.overrides}): {row.status}"
                  f"{': ' + row.error if row.error else ''}", flush=True)
        for line in comparison.skipped:
            print(f"dnn_train:   skipped {line}", flush=True)
        for line in REFUSED:  # their directories hold other runs, left as they were (and summarized as such)
            print(f"dnn_train:   {line.replace(':', ' refused:', 1)}", flush=True)
        for line in verdict_lines(comparison):
            print(f"dnn_train: {line}", flush=True)
        if n_bad or REFUSED:
            raise SystemExit(1)  # the sweep ran to its end, but not every job succeeded


def verdict_lines(comparison) -> list[str]:
    """One line per configuration other than the baseline: its verdict on the sweep's metric."""
    from dnn_train.sweeps.render import difference_text
    from dnn_train.sweeps.stats import NOT_ENOUGH_SEEDS
    from dnn_train.sweeps.table import BASELINE, missing

    groups = comparison.groups[comparison.groups["metric"] == comparison.metric]
    if len(groups) < 2:
        return [f"note: {note}" for note in comparison.notes]

    lines, unpaired = [], 0
    for _, row in groups.iterrows():
        if row["verdict"] == NOT_ENOUGH_SEEDS:  # one line for all of them (a search: every trial)
            unpaired += 1
        elif row["verdict"] and row["verdict"] != BASELINE:
            pairs = 0 if missing(row["pairs"]) else int(row["pairs"])
            lines.append(f"{row['configuration']} vs {row['baseline']}: {row['verdict']} ({comparison.metric} "
                         f"{difference_text(row) or 'difference unknown'}, {pairs} pairs{_p(row)})")
    if unpaired:
        many = unpaired > 1
        lines.append(f"{unpaired} configuration{'s' if many else ''} {'share' if many else 'shares'} fewer than 2 "
                     "seeds with the baseline: no verdict (sweep trainer.seed for repeats; summary.md has the differences)")
    return lines + [f"note: {note}" for note in comparison.notes]


def _p(row) -> str:
    """", p 0.0292, Holm 0.117": the verdict's p-values, raw and corrected (render.correction_text)."""
    from dnn_train.sweeps import stats
    from dnn_train.sweeps.render import p_text
    from dnn_train.sweeps.table import missing

    if missing(row["p_value"]):
        return ""
    correction = row["correction"]
    adjusted = "" if correction == stats.NONE else \
        f", {stats.CORRECTIONS[correction]} {p_text(row['p_adjusted'])}"
    return f", p {p_text(row['p_value'])}{adjusted}"
