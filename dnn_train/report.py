"""`python -m dnn_train.report`: the command line that compares runs, puts two side by side, or runs one again.

`python -m dnn_train.report PATH...` compares runs made at any time, anywhere: summary.csv,
summary_groups.csv, summary.md and the two plots (built by dnn_train/sweeps/: read.py, table.py,
render.py), for the runs tagged --tag T, and per tag with --group-by tag. `--diff RUN_A RUN_B` and
`--rerun RUN_DIR`: dnn_train/sweeps/rundiff.py (docs/reproducibility.md).

Errors are one line on stderr, never a traceback (DNN_TRAIN_DEBUG=1 shows it): exit 2 for bad
input (no such path, no runs, a baseline that matches no configuration), 1 for anything else.
A run directory whose files cannot be read is named on stderr, with why, and skipped.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from dnn_train import errors
from dnn_train.rundir import artifacts, read
from dnn_train.sweeps import rundiff
from dnn_train.sweeps.read import find_runs
from dnn_train.sweeps.render import CURVES_PLOT, GROUPS_CSV, METRIC_PLOT, SUMMARY_CSV, SUMMARY_MD, markdown, write
from dnn_train.sweeps.stats import CORRECTIONS, HOLM
from dnn_train.sweeps.table import COMPLETED, LOWER_IS_BETTER, METRICS, build

PROG = "python -m dnn_train.report"
BASELINE_HELP = """\
the configuration the others are compared with: KEY=VALUE pairs separated by spaces (quote them),
each an override as typed, a config group's option or a resolved config value, e.g. --baseline
optimizer=adam or --baseline 'optimizer=sgd optimizer.learning_rate=0.1' (default: the configuration
of the first run, i.e. job 0: the first value of each swept key). During a sweep:
'hydra.callbacks.summary.baseline="optimizer=adam"' (the double quotes are Hydra's, the single
ones the shell's)"""


def main(argv=None) -> int:
    """Rebuild a summary from runs; one line on stderr for each run skipped, and for any error."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare runs: summary.csv (one row per run), summary_groups.csv (per configuration "
                    "and metric: n, mean, std, 95% CI, difference from the baseline paired by seed, "
                    "p-value raw and corrected for multiple comparisons, verdict), summary.md, the validation curves per configuration and the metric per "
                    "configuration with its 95% CI, from any run or sweep directories (e.g. made on "
                    "different days). Runs that differ only in trainer.seed are repeats of one configuration.")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="run directories or sweep directories")
    parser.add_argument("--metric", default="best_val_accuracy", choices=METRICS,
                        help="the metric to sort by and to plot (default: best_val_accuracy; lower is better "
                             f"for {', '.join(sorted(LOWER_IS_BETTER))})")
    parser.add_argument("--sort", choices=["desc", "asc"],
                        help="order of the tables (default: best first: desc, asc for the lower-is-better metrics)")
    parser.add_argument("--baseline", metavar="'KEY=VALUE ...'", help=BASELINE_HELP.replace("%", "%%"))
    parser.add_argument("--correction", choices=list(CORRECTIONS), default=HOLM,
                        help="for comparing many configurations with the baseline, per metric: holm (default: "
                             "Holm's method, the chance of any false better/worse stays under 5%%), bh "
                             "(Benjamini-Hochberg: the share of false ones among them) or none (each comparison "
                             "at 95%% on its own); summary.md shows the raw and the adjusted p-values")
    parser.add_argument("--out", metavar="DIR",
                        help="where to write (default: PATH if only one sweep directory is given, else .); "
                             "with --diff the plot's file (default: diff.png); with --rerun the new run "
                             "directory (default: outputs/<date>/<time>, as a run)")
    parser.add_argument("--tag", action="append", metavar="T", default=[],
                        help="only the runs tagged T (run.tags=[T,...]); repeated: runs with every one")
    parser.add_argument("--group-by", choices=["tag"],
                        help="tag: also one row per tag (its runs, and the metric's mean, std, min and max "
                             "over its completed ones): summary_tags.csv")
    parser.add_argument("--diff", nargs=2, metavar=("RUN_A", "RUN_B"),
                        help="two runs side by side: the config keys and the environment (commit, versions, "
                             "device, data hashes) that differ, the metrics, and one plot of both curves (--out)")
    parser.add_argument("--rerun", metavar="RUN_DIR",
                        help="run RUN_DIR's saved config again in a new directory (--out) and say whether the "
                             "numbers match: exactly on the same environment, else within --tolerance; "
                             "exit 1 when they do not")
    parser.add_argument("--tolerance", type=float, default=rundiff.DEFAULT_TOLERANCE,
                        help=f"--rerun on another environment: each number may differ by this much, absolute "
                             f"or relative (math.isclose; default {rundiff.DEFAULT_TOLERANCE})")
    args = parser.parse_args(argv)
    modes = [flag for flag, given in (("--diff", args.diff), ("--rerun", args.rerun), ("PATH", args.paths)) if given]
    if len(modes) != 1:
        parser.error("give PATH..., or --diff RUN_A RUN_B, or --rerun RUN_DIR" if not modes else
                     f"{' and '.join(modes)} do not go together")
    try:
        if args.diff:
            return _diff(args)
        if args.rerun:
            return _rerun(args)
        return _report(args)
    except Exception as ex:  # noqa: BLE001 - one line, never a traceback
        if os.environ.get("DNN_TRAIN_DEBUG"):
            raise
        return _error(f"{type(ex).__name__}: {ex}" if not isinstance(ex, OSError) else str(ex), 1)


def _error(message: str, code: int) -> int:
    print(f"dnn_train.report: error: {message}", file=sys.stderr)
    return code


def _report(args) -> int:
    try:
        runs = find_runs(args.paths)
    except FileNotFoundError as ex:
        return _error(str(ex), 2)
    if not runs:
        return _error(f"no runs under {' '.join(args.paths)} (a run directory holds results.json)", 2)
    if args.tag:
        runs = [r for r in runs if set(args.tag) <= set(read.tags(r))]
        if not runs:
            return _error(f"no runs tagged {' and '.join(args.tag)} under {' '.join(args.paths)}", 2)
    ascending = None if args.sort is None else args.sort == "asc"
    try:
        comparison = build(runs, args.metric, args.baseline, ascending, correction=args.correction)
    except errors.BaselineError as ex:
        return _error(str(ex), 2)
    for line in comparison.skipped:
        print(f"dnn_train.report: skipping {line}", file=sys.stderr)
    if comparison.runs.empty:
        return _error("no readable runs (every one was skipped)", 2)
    single_sweep = len(args.paths) == 1 and Path(args.paths[0]) not in runs
    out = Path(args.out or (args.paths[0] if single_sweep else "."))
    out.mkdir(parents=True, exist_ok=True)
    write(comparison, out)
    print(markdown(comparison), end="")
    written = [SUMMARY_MD, SUMMARY_CSV, GROUPS_CSV, CURVES_PLOT, METRIC_PLOT]
    if args.group_by == "tag":
        table = _by_tag(comparison, args.metric)
        artifacts.write_text(out / TAGS_CSV, table.to_csv(index=False))
        rows = [[rundiff.cell(v) for v in row.values()] for row in table.to_dict("records")]
        print(f"\nby tag ({args.metric}: mean, std, min, max over the completed runs):\n"
              + "\n".join(rundiff.table(list(table), rows)))
        written.append(TAGS_CSV)
    print("-> " + ", ".join(str(out / name) for name in written))
    return 0


# ---------------------------------------------------------------- tags (run.tags)
TAGS_CSV = "summary_tags.csv"
UNTAGGED = "(untagged)"


def _by_tag(comparison, metric: str):
    """One row per tag: its runs, completed ones, and the metric's mean, std, min, max over those."""
    import pandas as pd

    rows = []
    for r in comparison.runs.itertuples():
        for tag in read.tags(r.run_dir) or [UNTAGGED]:
            rows.append({"tag": tag, "status": r.status, metric: getattr(r, metric)})
    table = pd.DataFrame(rows, columns=["tag", "status", metric])
    done = table[table["status"] == COMPLETED]
    stats = done.groupby("tag")[metric].agg(["mean", "std", "min", "max"])
    counts = table.groupby("tag").agg(runs=("status", "size"),
                                      completed=("status", lambda s: int((s == COMPLETED).sum())))
    return counts.join(stats).reset_index()


# ---------------------------------------------------------------- --diff and --rerun (dnn_train/sweeps/rundiff.py)
def _diff(args) -> int:
    try:
        a, b = (rundiff.read(p) for p in args.diff)
    except errors.NotARun as ex:
        return _error(str(ex), 2)
    print(rundiff.diff_text(a, b), end="")
    out = Path(args.out or "diff.png")
    rundiff.plot(a, b, out)
    print(f"-> {out}")
    return 0


def _rerun(args) -> int:
    import time

    from dnn_train.config.hydra_errors import describe_error
    from dnn_train.rundir.created import note_created
    from dnn_train.tasks import run_task

    try:
        original = rundiff.read(args.rerun)
        cfg = rundiff.saved_config(original)
    except errors.NotARun as ex:
        return _error(str(ex), 2)
    now = time.time()
    new_dir = Path(args.out) if args.out else Path("outputs") / time.strftime("%Y-%m-%d", time.localtime(now)) / (
        time.strftime("%H-%M-%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}")
    note_created(new_dir)
    try:  # no overrides: the saved config is what runs (its record's command says --rerun RUN_DIR)
        run_task(cfg, new_dir, overrides=[])
    except KeyboardInterrupt:
        raise
    except Exception as ex:  # noqa: BLE001 - the run's own record says more; here one line
        message = describe_error(ex)
        return _error(f"rerun: {message}" if message else f"rerun failed: {type(ex).__name__}: {ex}",
                      2 if message else 1)
    ok, text = rundiff.verdict(original, rundiff.read(new_dir), args.tolerance)
    print(text, end="")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
