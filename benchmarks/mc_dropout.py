"""MC dropout's evaluation time: the passes grouped into few `predict` calls (dnn_train/evaluate.py) against
one `predict` per pass (dnn_train before) and the book's loop of `model(X, training=True)` calls (Géron
ch. 11), on the mc_dropout preset's network (300-100 ELU, dropout 0.2 on the inputs and each hidden
layer) and Fashion-MNIST's test images (random images of its shape when the files are not found).
Not a test: it prints a table and writes benchmarks/results/performance/mc-dropout.json.

    python benchmarks/mc_dropout.py                 # 100 passes on 100 and on 10,000 test images
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))



def test_images() -> tuple[np.ndarray, str]:
    from dnn_train.api import compose
    from dnn_train.data import load

    try:
        return load(compose("data=fashion_mnist", "data.download=false").data).x_test, "Fashion-MNIST's test images"
    except Exception:  # noqa: BLE001 (no files here: the timing needs only their shape)
        return np.random.default_rng(0).integers(0, 256, (10_000, 28, 28), dtype=np.uint8), "random 28x28 images"


def network():
    import keras

    inputs = keras.Input((28, 28))
    h = keras.layers.Dropout(0.2)(keras.layers.Rescaling(1 / 255)(keras.layers.Flatten()(inputs)))
    for units in (300, 100):
        h = keras.layers.Dropout(0.2)(keras.layers.Dense(units, activation="elu", kernel_initializer="he_normal")(h))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    from dnn_train.evaluate import mc_dropout_predict, mc_model

    x_all, source = test_images()
    model = network()
    ways = {
        "grouped predict calls (dnn_train)": lambda x: mc_dropout_predict(model, x, args.samples),
        "one predict per pass (before)": lambda x: np.stack([mc_model(model).predict(x, batch_size=1024, verbose=0)
                                                             for _ in range(args.samples)]),
        "the book's loop, model(X, training=True)": lambda x: np.stack([model(x, training=True)
                                                                        for _ in range(args.samples)]),
    }
    rows = []
    for n in (100, len(x_all)):
        x = x_all[:n]
        for way, predict in ways.items():
            predict(x[:10])  # traced once
            started = time.perf_counter()
            probs = predict(x)
            seconds = time.perf_counter() - started
            assert probs.shape == (args.samples, n, 10)
            rows.append([f"{n:,}", way, round(seconds, 2)])
            print(f"{n:>6} images  {way:<42} {seconds:7.2f} s")
    import record  # benchmarks/record.py, beside this script

    record.write("performance", "mc-dropout", f"MC dropout: {args.samples} passes over the test set",
                 columns=["test images", "way", "seconds"], rows=rows,
                 text=f"The mc_dropout preset's network (untrained: the time does not depend on the weights) on {source}.")


if __name__ == "__main__":
    main()
