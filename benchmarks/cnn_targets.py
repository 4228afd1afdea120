"""The CNN presets' accuracy targets, measured on whole runs of the real datasets (README, "CNNs and
transfer: measured"). Not a test: it runs the presets as a user would, prints a table, writes JSON and
plots validation accuracy against training time.

    python benchmarks/cnn_targets.py fashion              # experiment=fashion_mnist_cnn (3-8 min)
    python benchmarks/cnn_targets.py transfer --seeds 5   # transfer_cnn_a once, then B from scratch and on A
    python benchmarks/cnn_targets.py cifar10              # experiment=cifar10_cnn (~30 min)
    python benchmarks/cnn_targets.py cifar10 --merge fashion.json transfer.json   # one plot of all three

Each run is `python -m dnn_train experiment=PRESET ...` in its own process; "training" is the sum of
its epochs' `epoch_seconds` (training and validation), "command" the wall time from the command to
its exit (start-up, data, compile, test, save and the reload check included).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dnn_train.rundir.artifacts import read_metrics  # noqa: E402

TARGETS = {  # preset: the test accuracy and the training time it must reach
    "fashion_mnist_cnn": (0.92, 5 * 60),
    "cifar10_cnn": (0.85, 30 * 60),
}
TRANSFER_GAIN = 0.05  # B on A must beat B from scratch by 5 points, as a mean over the seeds


def run(out: Path, *overrides: str) -> dict:
    """One whole run: its results.json, per-epoch metrics and wall times (a previous run in `out` is replaced)."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dnn_train", *overrides, "trainer.progress=line", f"hydra.run.dir={out}"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    command = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(overrides)} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    metrics = read_metrics(out / "metrics.csv")
    print(f"  {' '.join(overrides)}: test {results['test_accuracy']:.4f}, {len(metrics)} epochs, "
          f"training {metrics['epoch_seconds'].sum():.0f} s, command {command:.0f} s", flush=True)
    return {"overrides": list(overrides), "test_accuracy": results["test_accuracy"],
            "best_val_accuracy": results["best_val_accuracy"], "epochs": len(metrics),
            "training_seconds": round(float(metrics["epoch_seconds"].sum()), 1), "command_seconds": round(command, 1),
            "curve": {"seconds": metrics["epoch_seconds"].cumsum().round(1).tolist(),
                      "val_accuracy": metrics["val_accuracy"].tolist()}}


def preset_target(preset: str, out: Path, extra: list) -> dict:
    accuracy, seconds = TARGETS[preset]
    r = run(out / preset, f"experiment={preset}", *extra)
    r["met"] = r["test_accuracy"] >= accuracy and r["training_seconds"] <= seconds
    print(f"{preset}: test accuracy {r['test_accuracy']:.4f} (target >= {accuracy}) after {r['training_seconds']:.0f} s "
          f"of training (target <= {seconds} s), {r['command_seconds']:.0f} s for the whole command: "
          f"{'met' if r['met'] else 'NOT met'}")
    return {preset: r}


def transfer_target(out: Path, seeds: int, extra: list) -> dict:
    from dnn_train.sweeps.stats import mean_ci, paired

    a = run(out / "transfer_cnn_a", "experiment=transfer_cnn_a", *extra)
    scratch, on_a = [], []
    for seed in range(seeds):
        scratch.append(run(out / f"b_scratch_{seed}", "experiment=transfer_cnn_b", f"trainer.seed={seed}", *extra))
        on_a.append(run(out / f"b_on_a_{seed}", "experiment=transfer_cnn_b_on_a", f"model.init_from={out / 'transfer_cnn_a'}",
                        f"trainer.seed={seed}", *extra))
    acc_scratch = [r["test_accuracy"] for r in scratch]
    acc_on_a = [r["test_accuracy"] for r in on_a]
    diff = paired(acc_on_a, acc_scratch)
    s, t = mean_ci(acc_scratch), mean_ci(acc_on_a)
    met = diff.mean >= TRANSFER_GAIN
    print(f"transfer (cat vs dog, 200 training images, {seeds} seeds): from scratch {s.mean:.4f} +/- {s.std:.4f}, "
          f"on A {t.mean:.4f} +/- {t.std:.4f}; gain {diff.mean:+.4f} [95% CI {diff.low:+.4f}, {diff.high:+.4f}] "
          f"(target >= +{TRANSFER_GAIN}): {'met' if met else 'NOT met'}; task A: test {a['test_accuracy']:.4f}")
    return {"transfer": {"a": a, "b_scratch": scratch, "b_on_a": on_a, "gain": diff.mean,
                         "gain_ci": [diff.low, diff.high], "met": met}}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name: r for name, r in report.items() if "curve" in r}
    if "transfer" in report:
        curves["transfer_cnn_a"] = report["transfer"]["a"]
    if not curves:
        return
    # one panel per run: the CIFAR-10 runs take ten times Fashion-MNIST's time
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves) + 0.8, 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], curves.items()):
        ax.plot(r["curve"]["seconds"], r["curve"]["val_accuracy"], marker="o", ms=3)
        if name in TARGETS:
            ax.axhline(TARGETS[name][0], ls=":", color="C3")
            ax.axvline(TARGETS[name][1], ls=":", color="C3")
        ax.set_title(f"{name}\ntest {r['test_accuracy']:.4f} after {r['training_seconds']:.0f} s", fontsize=10)
        ax.set_xlabel("training time (s, cumulative epoch_seconds)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy")
    fig.suptitle("CNN presets: accuracy against wall time (dotted: the targets)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def write_records(report: dict, figure: Path) -> None:
    """The report as the records the documentation's CNN targets page is generated from (benchmarks/record.py)."""
    import record

    shown = str(figure.resolve().relative_to(REPO)) if figure.resolve().is_relative_to(REPO) else None
    for preset, r in report.items():
        if preset in TARGETS:
            accuracy, seconds = TARGETS[preset]
            record.write("cnn-targets", preset.replace("_", "-"), f"experiment={preset}: {accuracy:.0%} within "
                         f"{seconds // 60} minutes: {'met' if r['met'] else 'NOT met'}", figure=shown,
                         columns=["epochs", "training", "whole command", "test accuracy", "best val accuracy"],
                         rows=[[r["epochs"], f"{r['training_seconds']} s", f"{r['command_seconds']} s",
                                r["test_accuracy"], r["best_val_accuracy"]]])
    if "transfer" in report:
        t = report["transfer"]
        seeds = [next(o for o in r["overrides"] if o.startswith("trainer.seed=")).split("=")[1] for r in t["b_scratch"]]
        record.write("cnn-targets", "transfer-cnn", f"Transfer with a CNN: B on A gains {t['gain']:+.4f} "
                     f"[95% CI {t['gain_ci'][0]:+.4f}, {t['gain_ci'][1]:+.4f}]",
                     text=f"Task A (`transfer_cnn_a`): test accuracy {t['a']['test_accuracy']:.4f}.",
                     columns=["`trainer.seed`", *seeds],
                     rows=[["`transfer_cnn_b` (from scratch)", *(r["test_accuracy"] for r in t["b_scratch"])],
                           ["`transfer_cnn_b_on_a`", *(r["test_accuracy"] for r in t["b_on_a"])]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", choices=["fashion", "transfer", "cifar10"])
    parser.add_argument("--seeds", type=int, default=5, help="transfer: seeds of B from scratch and B on A")
    parser.add_argument("--out", type=Path, default=Path("/tmp/dnn_train_cnn_targets"),
                        help="scratch folder: each run's folder in it is replaced")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks" / "cnn_targets.png")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], metavar="JSON",
                        help="earlier --json reports to plot beside this one (this run's results win)")
    parser.add_argument("--overrides", nargs="*", default=[], metavar="KEY=VALUE", help="added to every run")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="do not write the records of benchmarks/results/cnn-targets/ (the docs' CNN targets page)")
    args = parser.parse_args()
    report: dict = {}
    for target in args.targets:
        if target == "transfer":
            report.update(transfer_target(args.out, args.seeds, args.overrides))
        else:
            preset = {"fashion": "fashion_mnist_cnn", "cifar10": "cifar10_cnn"}[target]
            report.update(preset_target(preset, args.out, args.overrides))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.record:
        write_records(report, args.plot)
    for earlier in args.merge:
        report = {**json.loads(earlier.read_text()), **report}
    plot(report, args.plot)


if __name__ == "__main__":
    main()
