"""`python -m dnn_train.report PATH...`: compare runs made at any time, anywhere: summary.csv,
summary.md, the validation curves overlaid and the final metric per run (dnn_train/compare.py)."""
from __future__ import annotations

from pathlib import Path


def main(argv=None) -> int:
    """Rebuild a summary (summary.csv, summary.md, sweep_curves.png, sweep_metric.png) from runs."""
    import argparse
    import sys

    from dnn_train import compare

    numeric = ["best_val_accuracy", "test_accuracy", "epochs", "wall_seconds", "grad_ratio_epoch1"]
    parser = argparse.ArgumentParser(
        prog="python -m dnn_train.report",
        description="Compare runs: summary.csv, summary.md (sorted), validation curves overlaid and the "
                    "final metric per run, from any run or sweep directories (e.g. made on different days).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run directories or sweep directories")
    parser.add_argument("--metric", default="best_val_accuracy", choices=numeric,
                        help="the metric to sort by and to draw as bars (default: best_val_accuracy)")
    parser.add_argument("--sort", default="desc", choices=["desc", "asc"], help="best first: desc (default)")
    parser.add_argument("--out", metavar="DIR",
                        help="where to write (default: PATH if only one sweep directory is given, else .)")
    args = parser.parse_args(argv)
    try:
        runs = compare.find_runs(args.paths)
    except FileNotFoundError as ex:
        print(f"dnn_train.report: error: {ex}", file=sys.stderr)
        return 2
    if not runs:
        print(f"dnn_train.report: error: no runs under {' '.join(args.paths)} (a run directory holds results.json)",
              file=sys.stderr)
        return 2
    single_sweep = len(args.paths) == 1 and Path(args.paths[0]) not in runs
    out = Path(args.out or (args.paths[0] if single_sweep else "."))
    out.mkdir(parents=True, exist_ok=True)
    table = compare.collect(runs)
    compare.write(table, out, args.metric, ascending=args.sort == "asc")
    print(compare.markdown(compare.sort_table(table, args.metric, args.sort == "asc"), args.metric), end="")
    print(f"-> {out / compare.SUMMARY_MD}, {out / compare.SUMMARY_CSV}, {out / compare.CURVES_PLOT}, "
          f"{out / compare.METRIC_PLOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
