"""What jobs that share a process cost each other (a sweep on the basic launcher, a notebook's loop).
Not a test: it prints a table and writes its record to the Performance page.

    python benchmarks/jobs_in_one_process.py            # 20 jobs each way
    python benchmarks/jobs_in_one_process.py --jobs 8

N short jobs on synthetic data (1 epoch, 400 images, a 1-3 layer MLP, trainer.share_compiled=false
so that every job traces its step), in one process, as dnn_train runs them, and again with TensorFlow's
gradient registry left as it is (what Keras' clear_session() alone does: every traced step's graph, and
the job's model with it, kept for good; tensorflow/tensorflow#97697). Each way in a process of its own.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import record  # noqa: E402


def jobs(n: int, keep_registry: bool) -> dict:
    """Run n fresh jobs in this process; per-job wall seconds and what the process holds afterwards."""
    import resource

    from dnn_train import compiled
    from dnn_train.tasks import import_backend, run_task
    from tests.conftest import SMALL_SET, make_cfg

    import_backend()
    if keep_registry:  # Keras' clear_session() alone
        import keras

        compiled.new_session = keras.backend.clear_session
    folder = Path(tempfile.mkdtemp())
    walls = []
    for i in range(n):
        cfg = make_cfg("data=synthetic", f"data.root={folder / 'data'}", *SMALL_SET, "trainer.epochs=1",
                       "trainer.progress=none", "trainer.share_compiled=false", f"model.depth={1 + i % 3}",
                       f"trainer.seed={i}")
        start = time.perf_counter()
        run_task(cfg, folder / f"job{i}")
        walls.append(time.perf_counter() - start)
    gc.collect()
    start = time.perf_counter()
    gc.collect()
    return {"walls": walls, "objects": len(gc.get_objects()), "full_collection": time.perf_counter() - start,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--child", choices=["jobs", "jobs-kept"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        record.report(jobs(args.jobs, keep_registry=args.child == "jobs-kept"))
        return

    def child(kind: str) -> dict:
        return record.measure(__file__, "--child", kind, "--jobs", str(args.jobs), what=kind)

    ways = {"dnn_train (registry emptied at each fresh job)": child("jobs"),
            "Keras' clear_session() alone": child("jobs-kept")}
    k = max(1, args.jobs // 4)
    rows = []
    for way, r in ways.items():
        first, last = statistics.mean(r["walls"][:k]), statistics.mean(r["walls"][-k:])
        rows.append([way, f"{first:.2f} s", f"{last:.2f} s", f"{sum(r['walls']):.1f} s", f"{r['objects']:,}",
                     f"{r['full_collection'] * 1000:.0f} ms", f"{r['peak_rss_mb']} MB"])
        print(" | ".join(rows[-1]))
    record.write("performance", "jobs-in-one-process", f"{args.jobs} short jobs in one process",
                 columns=["way", f"first {k} jobs: mean wall", f"last {k} jobs: mean wall", "all jobs",
                          "objects the collector tracks after", "a full collection after", "peak memory"],
                 rows=rows)


if __name__ == "__main__":
    main()
