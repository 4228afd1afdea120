"""`python -m dnn_train.report PATH...`: the command line that compares runs made at any time,
anywhere: summary.csv, summary_groups.csv, summary.md and the two plots (built by dnn_train/compare.py).

Errors are one line on stderr, never a traceback (DNN_TRAIN_DEBUG=1 shows it): exit 2 for bad
input (no such path, no runs, a baseline that matches no configuration), 1 for anything else.
A run directory whose files cannot be read is named on stderr, with why, and skipped.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

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

    from dnn_train import compare, stats

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare runs: summary.csv (one row per run), summary_groups.csv (per configuration "
                    "and metric: n, mean, std, 95% CI, difference from the baseline paired by seed, "
                    "p-value raw and corrected for multiple comparisons, verdict), summary.md, the validation curves per configuration and the metric per "
                    "configuration with its 95% CI, from any run or sweep directories (e.g. made on "
                    "different days). Runs that differ only in trainer.seed are repeats of one configuration.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run directories or sweep directories")
    parser.add_argument("--metric", default="best_val_accuracy", choices=compare.METRICS,
                        help="the metric to sort by and to plot (default: best_val_accuracy; lower is better "
                             f"for {', '.join(sorted(compare.LOWER_IS_BETTER))})")
    parser.add_argument("--sort", choices=["desc", "asc"],
                        help="order of the tables (default: best first: desc, asc for the lower-is-better metrics)")
    parser.add_argument("--baseline", metavar="'KEY=VALUE ...'", help=BASELINE_HELP.replace("%", "%%"))
    parser.add_argument("--correction", choices=list(stats.CORRECTIONS), default=stats.HOLM,
                        help="for comparing many configurations with the baseline, per metric: holm (default: "
                             "Holm's method, the chance of any false better/worse stays under 5%%), bh "
                             "(Benjamini-Hochberg: the share of false ones among them) or none (each comparison "
                             "at 95%% on its own); summary.md shows the raw and the adjusted p-values")
    parser.add_argument("--out", metavar="DIR",
                        help="where to write (default: PATH if only one sweep directory is given, else .)")
    args = parser.parse_args(argv)
    try:
        return _report(args, compare)
    except Exception as ex:  # noqa: BLE001 - one line, never a traceback
        if os.environ.get("DNN_TRAIN_DEBUG"):
            raise
        return _error(f"{type(ex).__name__}: {ex}" if not isinstance(ex, OSError) else str(ex), 1)


def _error(message: str, code: int) -> int:
    print(f"dnn_train.report: error: {message}", file=sys.stderr)
    return code


def _report(args, compare) -> int:
    try:
        runs = compare.find_runs(args.paths)
    except FileNotFoundError as ex:
        return _error(str(ex), 2)
    if not runs:
        return _error(f"no runs under {' '.join(args.paths)} (a run directory holds results.json)", 2)
    ascending = None if args.sort is None else args.sort == "asc"
    try:
        comparison = compare.build(runs, args.metric, args.baseline, ascending, correction=args.correction)
    except compare.BaselineError as ex:
        return _error(str(ex), 2)
    for line in comparison.skipped:
        print(f"dnn_train.report: skipping {line}", file=sys.stderr)
    if comparison.runs.empty:
        return _error("no readable runs (every one was skipped)", 2)
    single_sweep = len(args.paths) == 1 and Path(args.paths[0]) not in runs
    out = Path(args.out or (args.paths[0] if single_sweep else "."))
    out.mkdir(parents=True, exist_ok=True)
    compare.write(comparison, out)
    print(compare.markdown(comparison), end="")
    print("-> " + ", ".join(str(out / name) for name in (compare.SUMMARY_MD, compare.SUMMARY_CSV, compare.GROUPS_CSV,
                                                         compare.CURVES_PLOT, compare.METRIC_PLOT)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
