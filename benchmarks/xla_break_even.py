"""When XLA pays on a CPU: what compiling the fused loop costs once, against what it saves a step.
Not a test: it prints a table and writes its record to the Performance page.

    python benchmarks/xla_break_even.py                 # every net, twice each way
    python benchmarks/xla_break_even.py --nets tiny --repeats 1

Each net trains fresh jobs (trainer.share_compiled=false) with trainer.jit_compile=true and =false,
alternating, in one process. From metrics.csv's epoch_seconds: a later epoch's time gives the time a
step (steady), the first epoch's excess over it the start-up (tracing, and with XLA compiling). The
break-even is the start-up XLA adds over the steps it saves: the run length (training steps) from
which trainer.jit_compile=auto turns XLA on (dnn_train/fused.py, XLA_MIN_STEPS).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import record  # noqa: E402

SHARED = REPO.parent / "shared" / "datasets"
BATCH = 32
# name: (what, overrides); each trains 3 epochs of train_size images at batch BATCH
NETS = {
    "tiny": ("16-16 MLP, synthetic 8x8 (the tests' net)",
             ["data=synthetic", "data.synthetic.train_examples=6600", "model.depth=2", "model.units=16"]),
    "default": ("3x100 ReLU MLP, SGD, Fashion-MNIST (the defaults)", ["data=fashion_mnist"]),
    "book_300_100": ("300-100 ReLU MLP, SGD, Fashion-MNIST", ["data=fashion_mnist", "model.widths=[300,100]"]),
    "deep_20x100": ("20x100 ELU, He init, Nadam, CIFAR-10 (the chapter's exercise)",
                    ["experiment=cifar10_baseline"]),
}


def epochs(overrides: list[str], jit: bool, train_size: int, folder: Path) -> list[float]:
    """A fresh job's epoch times."""
    from dnn_train.rundir import artifacts
    from dnn_train.tasks import run_task
    from tests.conftest import make_cfg

    root = [f"data.root={SHARED}"] if "data=fashion_mnist" in overrides and SHARED.exists() else []
    run_dir = Path(tempfile.mkdtemp(dir=folder))
    cfg = make_cfg(*overrides, *root, f"data.train_size={train_size}", "data.valid_size=1000",
                   "data.test_size=1000", "trainer.epochs=3", f"trainer.batch_size={BATCH}", "trainer.progress=none",
                   "trainer.share_compiled=false", "trainer.early_stopping.enabled=false",
                   "trainer.diagnostics=false", f"trainer.jit_compile={str(jit).lower()}")
    run_task(cfg, run_dir)
    return artifacts.read_metrics(run_dir / artifacts.METRICS_FILE)["epoch_seconds"].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=list(NETS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=6400, help=f"training images a job (6,400: {6400 // BATCH} steps an epoch)")
    args = parser.parse_args()
    from dnn_train.tasks import import_backend

    import_backend()
    folder = Path(tempfile.mkdtemp())
    steps = -(-args.train_size // BATCH)  # the last, partial batch is a step too
    rows = []
    for name in args.nets:
        what, overrides = NETS[name]
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for jit in (True, False):
                times[jit].append(epochs(overrides, jit, args.train_size, folder))
        start, step = {}, {}
        for jit, runs in times.items():
            step[jit] = statistics.median(t for run in runs for t in run[1:]) / steps
            start[jit] = statistics.median(run[0] for run in runs) - step[jit] * steps
        extra, saved = start[True] - start[False], step[False] - step[True]
        even = round(extra / saved) if saved > 0 else None
        rows.append([what, f"{start[False]:.2f} s", f"{start[True]:.2f} s", f"{step[False] * 1e3:.2f} ms",
                     f"{step[True] * 1e3:.2f} ms", f"{even:,}" if even is not None else "never"])
        print(" | ".join(rows[-1]), flush=True)
    record.write("performance", "xla-break-even", "When XLA pays: its compile against its steps",
                 columns=[f"net (batch {BATCH})", "start-up without XLA", "with XLA", "a step without XLA", "with XLA",
                          "break-even (training steps)"], rows=rows,
                 text=f"{args.repeats} fresh jobs each way and net, 3 epochs of {args.train_size:,} images "
                      f"({steps} steps an epoch). Start-up: the first epoch's excess over a later one.")


if __name__ == "__main__":
    main()
