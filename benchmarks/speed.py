"""Speed benchmark: dnn_train against plain Keras as the book writes it, on the same model, data
split, seed and number of epochs. Not a test: it prints a table (and writes JSON) for the README.

    python benchmarks/speed.py                      # every case, 3 epochs each way
    python benchmarks/speed.py --epochs 4 --seeds 3 --json results.json   # what the README quotes
    python benchmarks/speed.py --cases none --first-steps all --sweep-epochs 10   # start-up per preset, the sweep
    python benchmarks/speed.py --cases none --launchers 2          # sequential jobs against hydra/launcher=parallel
    python benchmarks/speed.py --cases none --seed-sweeps          # seeds sweeps, sharing the traced step or not

(b) "plain Keras" is the chapter's code: float32 NumPy arrays scaled to [0, 1], a Sequential
model, `compile()` with its defaults, `model.fit(X, y, batch_size, validation_data=...)`, and for
1cycle a per-batch callback that sets the learning rate (the book's OneCycleScheduler).
(a) is `dnn_train` with its defaults (uint8 data scaled in the graph, 64 steps fused into one
XLA-compiled loop, validation in batches of 1,024, ...).
Each way runs in its own process, so its peak memory (ru_maxrss) is its own; with --seeds N the
two ways alternate N times (seeds 42, 43, ...), and the validation accuracies of the seeds show
the noise that a difference between the ways must be compared with. Epoch times are the median
of the epochs after the first (which traces and compiles). FLOPs count the Dense layers' multiply-adds: 6 per weight per
training example (forward and backward), 2 per validation example; the roof is the measured
float32 matrix-multiply throughput of this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks import record  # noqa: E402

CASES = {
    "mlp_300_100": {"what": "300-100 ReLU MLP, Fashion-MNIST, SGD, batch 32", "data": "fashion_mnist",
                    "widths": [300, 100], "activation": "relu", "optimizer": "sgd", "lr": 0.01, "batch": 32},
    "cifar_20x100_elu": {"what": "20x100 ELU net, CIFAR-10, Nadam, batch 32", "data": "cifar10",
                         "widths": [100] * 20, "activation": "elu", "optimizer": "nadam", "lr": 5e-5, "batch": 32},
    "onecycle_3x100": {"what": "3x100 ReLU, Fashion-MNIST, SGD momentum + 1cycle, batch 128", "data": "fashion_mnist",
                       "widths": [100] * 3, "activation": "relu", "optimizer": "momentum", "lr": 0.1, "batch": 128,
                       "onecycle": True},
    # the fashion_mnist_cnn preset's net: unpadded conv(32)-BN-ReLU-pool, conv(64)-BN-ReLU-pool, flatten,
    # dense(128)-BN-ReLU, dropout 0.3, random horizontal flips; Nadam with 1cycle, batch 128
    "cnn_fashion": {"what": "CNN 32-64, dense 128 (experiment=fashion_mnist_cnn), Fashion-MNIST, Nadam + 1cycle, batch 128",
                    "data": "fashion_mnist", "filters": [32, 64], "head": 128, "optimizer": "nadam", "lr": 0.004, "batch": 128,
                    "onecycle": True, "preset": "fashion_mnist_cnn"},
}
SWEEP_OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax", "nadam"]


# ---------------------------------------------------------------- the two ways (child processes)
def run_dnn_train(case: dict, epochs: int, out: Path, seed: int, extra: tuple = ()) -> dict:
    from dnn_train.tasks import run_task
    from tests.conftest import make_cfg

    if case.get("preset"):
        overrides = [f"experiment={case['preset']}", f"trainer.epochs={epochs}", "trainer.progress=none",
                     f"trainer.seed={seed}", "trainer.early_stopping.enabled=false"]
    else:
        overrides = [f"data={case['data']}", f"model.widths={case['widths']}", f"activation={case['activation']}",
                     "initializer=he_normal", f"optimizer={case['optimizer']}", f"optimizer.learning_rate={case['lr']}",
                     f"trainer.batch_size={case['batch']}", f"trainer.epochs={epochs}", "trainer.progress=none",
                     f"trainer.seed={seed}", "trainer.early_stopping.enabled=false"]
        if case.get("onecycle"):
            overrides.append("schedule=1cycle")
    overrides += list(extra)  # --overrides, e.g. trainer.jit_compile=true
    import pandas as pd

    results = run_task(make_cfg(*overrides), out)
    metrics = pd.read_csv(out / "metrics.csv")
    from dnn_train import load_run

    return {"epoch_seconds": metrics["epoch_seconds"].tolist(), "val_accuracy": float(metrics["val_accuracy"].iloc[-1]),
            "train_examples": results["train_examples"], "valid_examples": results["valid_examples"],
            "macs": multiply_adds(load_run(out).model())}


def run_plain_keras(case: dict, epochs: int, out: Path, seed: int) -> dict:
    import keras
    import numpy as np

    from dnn_train import data
    from tests.conftest import make_cfg

    keras.utils.set_random_seed(seed)
    splits = data.load(make_cfg(f"data={case['data']}").data)  # the same split as dnn_train's
    x_train, x_valid = splits.x_train / 255.0, splits.x_valid / 255.0  # the book: X / 255. (float)
    x_train, x_valid = x_train.astype("float32"), x_valid.astype("float32")
    model = book_model(case, splits.image_shape)
    if case.get("filters"):  # the book's CNNs take (H, W, 1) images
        x_train, x_valid = x_train[..., None], x_valid[..., None]
    optimizer = {"sgd": lambda: keras.optimizers.SGD(learning_rate=case["lr"]),
                 "momentum": lambda: keras.optimizers.SGD(learning_rate=case["lr"], momentum=0.9),
                 "nadam": lambda: keras.optimizers.Nadam(learning_rate=case["lr"])}[case["optimizer"]]()
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    times = EpochTimer()
    callbacks = [times]
    if case.get("onecycle"):
        steps = int(np.ceil(len(x_train) / case["batch"])) * epochs
        callbacks.append(book_one_cycle(steps, case["lr"]))
    history = model.fit(x_train, splits.y_train, epochs=epochs, batch_size=case["batch"],
                        validation_data=(x_valid, splits.y_valid), callbacks=callbacks, verbose=0)
    return {"epoch_seconds": times.seconds, "val_accuracy": float(history.history["val_accuracy"][-1]),
            "train_examples": len(x_train), "valid_examples": len(x_valid), "macs": multiply_adds(model)}


def book_model(case: dict, image_shape: tuple):
    """The case's net as the book writes it: a Sequential of Keras layers on float inputs."""
    import keras

    if not case.get("filters"):
        layers = [keras.Input(image_shape), keras.layers.Flatten()]
        layers += [keras.layers.Dense(w, activation=case["activation"], kernel_initializer="he_normal")
                   for w in case["widths"]]
        return keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax")])
    layers = [keras.Input((*image_shape, 1)), keras.layers.RandomFlip("horizontal")]
    for filters in case["filters"]:
        layers += [keras.layers.Conv2D(filters, 3, use_bias=False, kernel_initializer="he_normal"),
                   keras.layers.BatchNormalization(), keras.layers.Activation("relu"), keras.layers.MaxPooling2D()]
    layers += [keras.layers.Flatten(), keras.layers.Dense(case["head"], use_bias=False, kernel_initializer="he_normal"),
               keras.layers.BatchNormalization(), keras.layers.Activation("relu"), keras.layers.Dropout(0.3),
               keras.layers.Dense(10, activation="softmax")]
    return keras.Sequential(layers)


def multiply_adds(model) -> int:
    """Multiply-adds per example of the model's Dense and Conv2D layers (the forward pass)."""
    import keras

    total = 0
    for layer in model.layers:
        for sub in getattr(layer, "layers", [layer]):
            if isinstance(sub, keras.layers.Dense):
                total += int(sub.kernel.shape[0] * sub.kernel.shape[1])
            elif isinstance(sub, keras.layers.Conv2D):
                h, w = sub.output.shape[1:3]
                total += int(h * w * sub.kernel.shape[0] * sub.kernel.shape[1] * sub.kernel.shape[2] * sub.kernel.shape[3])
    return total


def book_one_cycle(iterations: int, max_lr: float):
    """The book's OneCycleScheduler: a per-batch callback interpolating the learning rate."""
    import keras

    class OneCycleScheduler(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.start_lr, self.last_lr = max_lr / 10, max_lr / 10 / 1000
            self.half = int(iterations * 0.9) // 2
            self.iteration = 0

        def _interpolate(self, i1, i2, lr1, lr2):
            return (lr2 - lr1) * (self.iteration - i1) / (i2 - i1) + lr1

        def on_train_batch_begin(self, batch, logs=None):
            if self.iteration < self.half:
                lr = self._interpolate(0, self.half, self.start_lr, max_lr)
            elif self.iteration < 2 * self.half:
                lr = self._interpolate(self.half, 2 * self.half, max_lr, self.start_lr)
            else:
                lr = self._interpolate(2 * self.half, iterations, self.start_lr, self.last_lr)
            self.iteration += 1
            self.model.optimizer.learning_rate.assign(lr)

    return OneCycleScheduler()


def EpochTimer():
    import keras

    class Timer(keras.callbacks.Callback):
        seconds: list = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    t = Timer()
    t.seconds = []
    return t


def child(case_name: str, way: str, epochs: int, out: Path, seed: int, extra: tuple = ()) -> None:
    case = CASES[case_name]
    out = out / f"{way}-{seed}"
    result = run_dnn_train(case, epochs, out, seed, extra) if way == "dnn_train" else \
        run_plain_keras(case, epochs, out, seed)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record.report(result)


# ---------------------------------------------------------------- the parent: measure, compare, report
def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matrix-multiply throughput (GFLOP/s): the compute roof."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    tf.matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_epoch(macs: int, train: int, valid: int) -> float:
    """2 FLOPs per multiply-add; training costs 3 forward passes' worth (forward, and backward for
    the inputs and the weights), validation one."""
    return 6 * macs * train + 2 * macs * valid


def run_child(case: str, way: str, epochs: int, out: Path, seed: int, extra: list) -> dict:
    """One way's run in a process of its own; its wall_seconds: the whole run (start-up, data, build,
    compile, epochs, test, save)."""
    return record.measure(__file__, "--child", case, way, "--epochs", str(epochs), "--out", str(out),
                          "--seed", str(seed), "--overrides", *extra, what=f"{case}/{way}")


def startup_seconds(out: Path, repeats: int = 3) -> dict:
    """Medians over `repeats` rounds of: command start to the first training step of the default
    run; `import tensorflow` alone (most of it, and the noisiest part on a shared machine, whose
    page cache may have dropped TensorFlow's libraries); `--help`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs: dict[str, list] = {"first_step": [], "import_tensorflow": [], "help": []}
    for i in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "dnn_train", "trainer.progress=line",
                                 f"hydra.run.dir={out}/startup{i}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=out)
        for line in proc.stdout:
            if "first training step done" in line:
                runs["first_step"].append(time.perf_counter() - start)
                proc.kill()
                break
        proc.wait()
        for key, args in (("import_tensorflow", ["-c", "import tensorflow"]), ("help", ["-m", "dnn_train", "--help"])):
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], capture_output=True, env=env, check=True)
            runs[key].append(time.perf_counter() - start)
    return {key: round(statistics.median(values), 2) for key, values in runs.items() if values}


def first_step_seconds(out: Path, presets: list, extra: list) -> dict:
    """Command to the first training step, for each preset (one epoch on a 2,000-image slice: the
    first step does not depend on the data's size, only on reading it). A preset whose data is not
    on this machine, or that needs an earlier run or a folder of images, is skipped with the reason."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out.mkdir(parents=True, exist_ok=True)
    found = {}
    for preset in presets:
        if preset.endswith("_b_on_a") or preset == "backbone_finetune":
            found[preset] = "skipped: needs an earlier run or a folder of images"
            continue
        run_dir = out / f"first-{preset}"
        proc = subprocess.run([sys.executable, "-m", "dnn_train", f"experiment={preset}", "trainer.epochs=1",
                               "data.train_size=2000", "trainer.progress=line", "trainer.mc_samples=0",
                               f"hydra.run.dir={run_dir}", *extra], capture_output=True, text=True, env=env, cwd=out)
        line = next((ln for ln in proc.stdout.splitlines() if "first training step done" in ln), None)
        if line is None:
            found[preset] = "skipped: " + (proc.stderr.strip().splitlines() or ["no first step"])[-1][:120]
            continue
        found[preset] = float(line.split("done, ")[1].split("s after")[0])
    return found


def sweep_case(out: Path, epochs: int, extra: list) -> dict:
    """The chapter's optimizer comparison as a sweep: 8 optimizers x `epochs` epochs of the default
    3x100 net on Fashion-MNIST. dnn_train: one `-m` command, its jobs one after another, then the same
    command with hydra/launcher=parallel (a job per core). Plain Keras: the notebook's loop, the 8
    models built, compiled and fit one after another in one process. Reported: the wall times, and
    each dnn_train wall time over the ideal: the sum of the sequential jobs' steady-state epochs (the
    median epoch after the first, times the epochs) plus one start-up (the first job's
    command-to-first-step). Both ratios share that denominator: the work with no overhead, done
    one job after another."""
    import pandas as pd

    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    walls = {}
    for launcher, args in (("sequential", []), ("parallel", ["hydra/launcher=parallel"])):
        sweep = out / f"sweep-{launcher}"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dnn_train", "-m", f"optimizer={','.join(SWEEP_OPTIMIZERS)}",
                               f"trainer.epochs={epochs}", "trainer.progress=line", "trainer.early_stopping.enabled=false",
                               f"hydra.sweep.dir={sweep}", *args, *extra], capture_output=True, text=True, env=env, cwd=out)
        walls[launcher] = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"sweep ({launcher}) failed:\n{proc.stderr[-3000:]}")
        if launcher == "sequential":
            steady = 0.0
            for job in range(len(SWEEP_OPTIMIZERS)):
                seconds = pd.read_csv(sweep / str(job) / "metrics.csv")["epoch_seconds"].tolist()
                steady += statistics.median(seconds[1:] or seconds) * len(seconds)
            line = next(ln for ln in proc.stdout.splitlines() if "first training step done" in ln)
            first_step = float(line.split("done, ")[1].split("s after")[0])
    keras_wall = record.measure(__file__, "--child", "sweep", "plain_keras", "--epochs", str(epochs), "--out", str(out),
                                what="plain-Keras sweep")["wall_seconds"]
    ideal = steady + first_step
    return {"jobs": len(SWEEP_OPTIMIZERS), "epochs": epochs, "dnn_train_wall": round(walls["sequential"], 1),
            "parallel_wall": round(walls["parallel"], 1), "steady_epochs_sum": round(steady, 1),
            "first_step": first_step, "overhead_ratio": round(walls["sequential"] / ideal, 3),
            "parallel_ratio": round(walls["parallel"] / ideal, 3), "plain_keras_wall": round(keras_wall, 1),
            "speedup": round(keras_wall / walls["sequential"], 2),
            "parallel_speedup": round(keras_wall / walls["parallel"], 2)}


# Seeds (and constant rates) sweeps, with trainer.share_compiled on (the default: each job after the first
# trains the first job's model object, its step traced and compiled already) and off (every job traces anew).
SEED_SWEEPS = {
    "mlp_3x100": {"what": "5 seeds x 5 epochs, the default 3x100 ReLU net, Fashion-MNIST, batch 32",
                  "overrides": ["trainer.seed=1,2,3,4,5", "trainer.epochs=5"]},
    "cifar_20x100": {"what": "4 seeds x 2 epochs, 20x100 ELU net with BN (experiment=cifar10_batchnorm), CIFAR-10",
                     "overrides": ["experiment=cifar10_batchnorm", "trainer.seed=1,2,3,4", "trainer.epochs=2"]},
    "cifar_20x100_rates": {"what": "4 learning rates x 2 epochs, the same 20x100 BN net (Nadam, constant rate)",
                           "overrides": ["experiment=cifar10_batchnorm", "optimizer.learning_rate=1e-4,3e-4,1e-3,3e-3",
                                         "trainer.epochs=2"]},
}


def seed_sweep_case(out: Path, name: str, extra: list) -> dict:
    """Wall time of one seeds sweep and its jobs' first epochs, sharing the traced step or not."""
    import pandas as pd

    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    row = {"sweep": name, "what": SEED_SWEEPS[name]["what"]}
    for share in ("false", "true"):
        sweep = out / f"seeds-{name}-{share}"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dnn_train", "-m", *SEED_SWEEPS[name]["overrides"],
                               f"trainer.share_compiled={share}", "trainer.progress=none",
                               "trainer.early_stopping.enabled=false", f"hydra.sweep.dir={sweep}", *extra],
                              capture_output=True, text=True, env=env, cwd=out)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"seeds sweep {name} (share_compiled={share}) failed:\n{proc.stderr[-3000:]}")
        jobs = sorted((d for d in sweep.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
        firsts = [float(pd.read_csv(d / "metrics.csv")["epoch_seconds"].iloc[0]) for d in jobs]
        key = "shared" if share == "true" else "traced_anew"
        row[key] = {"wall": round(wall, 1), "first_epoch_seconds": [round(f, 2) for f in firsts]}
    row["speedup"] = round(row["traced_anew"]["wall"] / row["shared"]["wall"], 2)
    return row


# The launcher comparison: the same sweep run one job after another (each job all the cores' threads)
# and with hydra/launcher=parallel (joblib, n_jobs at once, each job cores / n_jobs threads).
LAUNCHER_SWEEPS = {
    "mlp_3x100": {"what": "8 optimizers x 5 epochs, the default 3x100 ReLU net, Fashion-MNIST, batch 32",
                  "overrides": [f"optimizer={','.join(SWEEP_OPTIMIZERS)}", "trainer.epochs=5"]},
    "onecycle_3x100": {"what": "8 optimizers x 5 epochs, 3x100 ReLU + 1cycle, Fashion-MNIST, batch 128",
                       "overrides": [f"optimizer={','.join(SWEEP_OPTIMIZERS)}", "trainer.epochs=5", "schedule=1cycle",
                                     "trainer.batch_size=128"]},
    "cifar_20x100": {"what": "4 optimizers x 2 epochs, 20x100 ELU net with BN (experiment=cifar10_batchnorm), CIFAR-10",
                     "overrides": ["experiment=cifar10_batchnorm", "optimizer=sgd,momentum,adam,nadam",
                                   "trainer.epochs=2"]},
}


def launcher_case(out: Path, name: str, n_jobs: int, extra: list) -> dict:
    """Wall time of one sweep, sequential (hydra's basic launcher) against hydra/launcher=parallel."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    walls = {}
    for launcher, args in (("sequential", []), ("parallel", ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}"])):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dnn_train", "-m", *LAUNCHER_SWEEPS[name]["overrides"], *args,
                               "trainer.progress=none", "trainer.early_stopping.enabled=false",
                               f"hydra.sweep.dir={out / f'{name}-{launcher}'}", *extra],
                              capture_output=True, text=True, env=env, cwd=out)
        walls[launcher] = round(time.perf_counter() - started, 1)
        if proc.returncode != 0:
            raise SystemExit(f"{name} ({launcher}) failed:\n{proc.stderr[-3000:]}")
    return {"sweep": name, "what": LAUNCHER_SWEEPS[name]["what"], "n_jobs": n_jobs, **walls,
            "parallel_speedup": round(walls["sequential"] / walls["parallel"], 2)}


def plain_keras_sweep(epochs: int) -> None:
    """The book's notebook: one model per optimizer, built, compiled and fit in one process."""
    import keras

    from dnn_train import data
    from tests.conftest import make_cfg

    splits = data.load(make_cfg("data=fashion_mnist").data)
    x_train, x_valid = (splits.x_train / 255.0).astype("float32"), (splits.x_valid / 255.0).astype("float32")
    optimizers = {"sgd": lambda: keras.optimizers.SGD(0.01),
                  "momentum": lambda: keras.optimizers.SGD(0.01, momentum=0.9),
                  "nesterov": lambda: keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  "adagrad": lambda: keras.optimizers.Adagrad(0.001), "rmsprop": lambda: keras.optimizers.RMSprop(0.001),
                  "adam": lambda: keras.optimizers.Adam(0.001), "adamax": lambda: keras.optimizers.Adamax(0.001),
                  "nadam": lambda: keras.optimizers.Nadam(0.001)}
    for name in SWEEP_OPTIMIZERS:
        keras.backend.clear_session()
        keras.utils.set_random_seed(42)
        model = keras.Sequential([keras.Input(splits.image_shape), keras.layers.Flatten()]
                                 + [keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal")
                                    for _ in range(3)] + [keras.layers.Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizers[name](), metrics=["accuracy"])
        model.fit(x_train, splits.y_train, epochs=epochs, validation_data=(x_valid, splits.y_valid), verbose=0)
        model.evaluate((splits.x_test / 255.0).astype("float32"), splits.y_test, verbose=0)
    record.report({})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES) +
                        "; none: only the start-up times")
    parser.add_argument("--first-steps", default="", metavar="PRESETS",
                        help="command to first training step for these presets (comma-separated, or all)")
    parser.add_argument("--sweep-epochs", type=int, default=0, metavar="N",
                        help="the 8-optimizer sweep case with N epochs per job (0: skip it)")
    parser.add_argument("--launchers", type=int, default=0, metavar="N",
                        help="each sweep of LAUNCHER_SWEEPS sequential and with hydra/launcher=parallel, N jobs at once")
    parser.add_argument("--seed-sweeps", action="store_true",
                        help="each seeds or rates sweep of SEED_SWEEPS with trainer.share_compiled=false, then true (the default)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1, help="runs per way and case (seeds 42, 43, ...), alternating")
    parser.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dnn_train_bench"))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="do not write the records of benchmarks/results/performance/ (the docs' Performance page)")
    parser.add_argument("--overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra dnn_train overrides, e.g. trainer.jit_compile=true")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child == ["sweep", "plain_keras"]:
        return plain_keras_sweep(args.epochs)
    if args.child:
        return child(*args.child, args.epochs, args.out / args.child[0], args.seed, tuple(args.overrides))

    import shutil

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    roof = matmul_gflops()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"float32 matmul roof {roof:.0f} GFLOP/s; {args.epochs} epochs per way and seed, {args.seeds} seed(s); "
          f"s/epoch: median over the epochs after the first; "
          f"dnn_train overrides: {' '.join(args.overrides) or 'none (defaults)'}")
    rows = []
    for name in [c for c in args.cases.split(",") if c != "none"]:
        case = CASES[name]
        runs = {"plain_keras": [], "dnn_train": []}
        for seed in range(42, 42 + args.seeds):  # the two ways alternate, so a slow spell hits both
            for way in runs:
                runs[way].append(run_child(name, way, args.epochs, args.out, seed, args.overrides))
        row = {"case": name, "what": case["what"], "seeds": args.seeds}
        for way, results in runs.items():
            steady = [t for r in results for t in (r["epoch_seconds"][1:] or r["epoch_seconds"])]
            seconds = statistics.median(steady)  # robust to the shared machine's slow spells
            accuracies = [r["val_accuracy"] for r in results]
            flops = flops_per_epoch(results[0]["macs"], results[0]["train_examples"], results[0]["valid_examples"])
            row[way] = {"epoch_seconds": round(seconds, 3), "val_accuracy": [round(a, 4) for a in accuracies],
                        "val_accuracy_mean": round(statistics.mean(accuracies), 4),
                        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results)),
                        "wall_seconds": round(statistics.median(r["wall_seconds"] for r in results), 1),
                        "gflops": round(flops / seconds / 1e9, 1),
                        "roof_percent": round(100 * flops / seconds / 1e9 / roof, 1)}
        row["speedup"] = round(row["plain_keras"]["epoch_seconds"] / row["dnn_train"]["epoch_seconds"], 2)
        row["whole_run_speedup"] = round(row["plain_keras"]["wall_seconds"] / row["dnn_train"]["wall_seconds"], 2)
        rows.append(row)
        print(f"\n{name}: {case['what']}")
        for way in ("plain_keras", "dnn_train"):
            w = row[way]
            print(f"  {way:<12} {w['epoch_seconds']:7.2f} s/epoch  val acc {w['val_accuracy_mean']:.4f} "
                  f"({' '.join(f'{a:.4f}' for a in w['val_accuracy'])})  "
                  f"{w['gflops']:6.1f} GFLOP/s ({w['roof_percent']:4.1f}% of roof)  peak RSS {w['peak_rss_mb']} MB  "
                  f"whole run {w['wall_seconds']:.1f} s")
        print(f"  speed-up {row['speedup']:.2f}x per epoch, {row['whole_run_speedup']:.2f}x for the whole run "
              f"({args.epochs} epochs, start-up and compiling included)")
    startup = startup_seconds(args.out)
    print(f"\nstart-up, medians of 3: command to the first training step of the default run "
          f"{startup['first_step']:.2f} s (`import tensorflow` alone: {startup['import_tensorflow']:.2f} s); "
          f"--help {startup['help']:.2f} s")
    report = {"roof_gflops": round(roof), "epochs": args.epochs, "seeds": args.seeds, "overrides": args.overrides,
              "cases": rows, "startup_seconds": startup}
    if args.first_steps:
        from dnn_train.config.help import options

        presets = options("experiment") if args.first_steps == "all" else args.first_steps.split(",")
        report["first_step_seconds"] = first_step_seconds(args.out / "first", presets, args.overrides)
        print("\ncommand to first training step, per preset:")
        for preset, value in report["first_step_seconds"].items():
            print(f"  {preset:<32} {value if isinstance(value, str) else f'{value:.1f} s'}")
    if args.sweep_epochs:
        report["sweep"] = sw = sweep_case(args.out, args.sweep_epochs, args.overrides)
        print(f"\nsweep, {sw['jobs']} optimizers x {sw['epochs']} epochs: dnn_train {sw['dnn_train_wall']} s "
              f"one job after another, {sw['parallel_wall']} s with hydra/launcher=parallel; the ideal (sequential "
              f"steady-state epochs {sw['steady_epochs_sum']} s + start-up {sw['first_step']} s): ratios "
              f"{sw['overhead_ratio']} and {sw['parallel_ratio']}; plain Keras loop {sw['plain_keras_wall']} s: "
              f"{sw['speedup']}x and {sw['parallel_speedup']}x")
    if args.launchers:
        report["launchers"] = []
        for name in LAUNCHER_SWEEPS:
            row = launcher_case(args.out, name, args.launchers, args.overrides)
            report["launchers"].append(row)
            print(f"\nlaunchers, {row['what']}: sequential {row['sequential']} s, parallel ({row['n_jobs']} jobs at "
                  f"once) {row['parallel']} s: {row['parallel_speedup']}x")
    if args.seed_sweeps:
        report["seed_sweeps"] = []
        for name in SEED_SWEEPS:
            row = seed_sweep_case(args.out, name, args.overrides)
            report["seed_sweeps"].append(row)
            print(f"\n{row['what']}: traced anew {row['traced_anew']['wall']} s (first epochs "
                  f"{row['traced_anew']['first_epoch_seconds']}), sharing the traced step {row['shared']['wall']} s "
                  f"(first epochs {row['shared']['first_epoch_seconds']}): {row['speedup']}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.record:
        write_records(report)


def write_records(report: dict) -> None:
    """The report as the records the documentation's Performance page is generated from (benchmarks/record.py)."""
    ways = ("plain_keras", "dnn_train")
    if report["cases"]:
        jax = os.environ.get("KERAS_BACKEND") == "jax"
        cnn_only = all(CASES[row["case"]].get("filters") for row in report["cases"])
        record.write("performance", "speed-jax" if jax else "speed-cnn" if cnn_only else "speed",
                     f"dnn_train against plain Keras{' on JAX' if jax else ''}: {report['epochs']} epochs, "
                     f"{report['seeds']} seed(s), roof {report['roof_gflops']} GFLOP/s",
                     columns=["case", "plain Keras s/epoch", "dnn_train s/epoch", "speed-up", "val accuracy: plain Keras",
                              "dnn_train", "GFLOP/s (share of roof): Keras / dnn_train", "peak memory: Keras / dnn_train"],
                     rows=[[row["what"], row["plain_keras"]["epoch_seconds"], row["dnn_train"]["epoch_seconds"],
                            f"{row['speedup']}x", *(" / ".join(map(str, row[w]["val_accuracy"])) for w in ways),
                            " / ".join(f"{row[w]['gflops']} ({row[w]['roof_percent']}%)" for w in ways),
                            " / ".join(f"{row[w]['peak_rss_mb']} MB" for w in ways)] for row in report["cases"]])
    s = report["startup_seconds"]
    record.write("performance", "startup", "Start-up and --help (medians of 3)",
                 columns=["command to the first training step", "import tensorflow", "--help"],
                 rows=[[f"{s.get('first_step')} s", f"{s.get('import_tensorflow')} s", f"{s.get('help')} s"]])
    if "first_step_seconds" in report:
        record.write("performance", "first-steps", "Command to the first training step, per preset",
                     columns=["preset", "first step"],
                     rows=[[f"`{k}`", v if isinstance(v, str) else f"{v:.1f} s"]
                           for k, v in report["first_step_seconds"].items()])
    if "sweep" in report:
        sw = report["sweep"]
        record.write("performance", "sweep-8-optimizers", f"The {sw['jobs']}-optimizer sweep, {sw['epochs']} epochs a job",
                     columns=["one after another", "hydra/launcher=parallel", "the book's loop in one process",
                              "steady epochs + start-up", "ratio: sequential / parallel"],
                     rows=[[f"{sw['dnn_train_wall']} s", f"{sw['parallel_wall']} s", f"{sw['plain_keras_wall']} s",
                            f"{sw['steady_epochs_sum']} + {sw['first_step']} s",
                            f"{sw['overhead_ratio']}x / {sw['parallel_ratio']}x"]])
    if "launchers" in report:
        record.write("performance", "launchers", "Launchers: one job after another against hydra/launcher=parallel",
                     columns=["sweep", "one after another", "`hydra/launcher=parallel`", "speed-up"],
                     rows=[[r["what"], f"{r['sequential']} s", f"{r['parallel']} s", f"{r['parallel_speedup']}x"]
                           for r in report["launchers"]])
    if "seed_sweeps" in report:
        record.write("performance", "share-compiled", "Seeds and rates sharing the traced step",
                     columns=["seeds or rates sweep", "traced anew: wall, first epochs",
                              "sharing the traced step: wall, first epochs", "speed-up"],
                     rows=[[r["what"], *(f"{r[k]['wall']} s; " + ", ".join(f"{f} s" for f in r[k]["first_epoch_seconds"])
                                         for k in ("traced_anew", "shared")), f"{r['speedup']}x"]
                           for r in report["seed_sweeps"]])


if __name__ == "__main__":
    main()
