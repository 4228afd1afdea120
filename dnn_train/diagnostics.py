"""Per-layer diagnostics (trainer.diagnostics): watch gradients vanish or explode, and units
saturate or die, layer by layer. Ours: Keras records only the loss and metrics.

Before training (epoch 0) and after every epoch, on one fixed batch of training images, for each
hidden layer i (the output of its activation act_i, and the kernel of hidden_i):
- act_mean, act_std: mean and standard deviation of the activations over the batch and the units;
- saturated: the fraction of sigmoid outputs below 0.05 or above 0.95, or of tanh outputs beyond
  +-0.95 (empty for other activations);
- dead: the fraction of units whose output is exactly 0 for every image of the batch (dead ReLUs);
- grad_norm: the L2 norm of the loss gradient with respect to the kernel of hidden_i.
The batch goes through the layers as in training (batch norm on batch statistics) but without
dropout, and batch norm's moving statistics are put back afterwards: measuring changes nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from dnn_train import artifacts
from dnn_train.evaluate import DROPOUT_LAYERS

log = logging.getLogger("dnn_train")

DIAGNOSTICS_FILE = "diagnostics.csv"
GRADIENTS_PLOT = "gradients.png"
COLUMNS = ["epoch", "layer", "name", "act_mean", "act_std", "saturated", "dead", "grad_norm"]
SATURATION = {"sigmoid": lambda a: (a < 0.05) | (a > 0.95), "tanh": lambda a: np.abs(a) > 0.95}


def hidden_layers(model: keras.Model) -> list[tuple[int, str, str]]:
    """(i, kernel layer hidden_i, activation layer act_i) for every hidden layer, bottom up."""
    names = {layer.name for layer in model.layers}
    out, i = [], 1
    while f"hidden_{i}" in names and f"act_{i}" in names:
        out.append((i, f"hidden_{i}", f"act_{i}"))
        i += 1
    return out


def activation_kind(layer) -> str:
    """'sigmoid', 'tanh' or another name, for the saturation rule."""
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", type(layer).__name__.lower())


def layer_stats(activations: np.ndarray, kind: str) -> dict:
    """Statistics of one layer's activations (examples x units) on the probe batch."""
    a = activations.reshape(len(activations), -1)
    return {"act_mean": float(a.mean()), "act_std": float(a.std()),
            "saturated": float(SATURATION[kind](a).mean()) if kind in SATURATION else None,
            "dead": float(np.all(a == 0, axis=0).mean())}


def probe(model: keras.Model, x, y, loss_fn) -> list[dict]:
    """One row per hidden layer: layer_stats and the kernel's gradient norm, on batch (x, y)."""
    import tensorflow as tf

    layers = hidden_layers(model)
    acts_wanted = {act for _, _, act in layers}
    kernels = [model.get_layer(h).kernel for _, h, _ in layers]
    saved = [v.numpy() for v in model.non_trainable_weights]  # BN moving statistics
    with tf.GradientTape() as tape:
        h, acts = x, {}
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            h = layer(h, training=not isinstance(layer, DROPOUT_LAYERS))
            if layer.name in acts_wanted:
                acts[layer.name] = h
        loss = loss_fn(y, h)
    grads = tape.gradient(loss, kernels)
    for v, value in zip(model.non_trainable_weights, saved):
        v.assign(value)
    rows = []
    for (i, h_name, act_name), g in zip(layers, grads):
        stats = layer_stats(keras.ops.convert_to_numpy(acts[act_name]), activation_kind(model.get_layer(act_name)))
        rows.append({"layer": i, "name": h_name, **stats,
                     "grad_norm": float(np.linalg.norm(keras.ops.convert_to_numpy(g))) if g is not None else None})
    return rows


def gradient_ratio(rows: list[dict]) -> float | None:
    """First hidden layer's gradient norm over the last one's: << 1 vanishing, >> 1 exploding."""
    norms = [r["grad_norm"] for r in sorted(rows, key=lambda r: r["layer"])]
    if len(norms) < 2 or not norms[0] or not norms[-1]:
        return None
    return norms[0] / norms[-1]


class Diagnostics(keras.callbacks.Callback):
    """Appends the probe's rows to diagnostics.csv at the start (epoch 0) and after every epoch."""

    def __init__(self, run_dir: Path, x: np.ndarray, y: np.ndarray, loss: str, tensorboard_dir: Path | None = None):
        super().__init__()
        self.path = Path(run_dir) / DIAGNOSTICS_FILE
        self.x, self.y = x, y
        self.loss_fn = {"binary_crossentropy": keras.losses.BinaryCrossentropy,
                        "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy}[loss]()
        self.writer = None
        if tensorboard_dir is not None:
            import tensorflow as tf

            self.writer = tf.summary.create_file_writer(str(Path(tensorboard_dir) / "diagnostics"))

    def on_train_begin(self, logs=None):
        if not self.path.exists():  # a resumed run has its epoch 0 already
            self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1)

    def _record(self, epoch: int) -> None:
        rows = probe(self.model, self.x, self.y, self.loss_fn)
        new = not self.path.exists()
        lines = [",".join(COLUMNS)] if new else []
        lines += [",".join(_fmt(v) for v in [epoch, r["layer"], r["name"], r["act_mean"], r["act_std"],
                                             r["saturated"], r["dead"], r["grad_norm"]]) for r in rows]
        with open(self.path, "a") as f:  # one write per epoch: whole rows only
            f.write("\n".join(lines) + "\n")
        if self.writer is not None:
            self._tensorboard(epoch, rows)

    def _tensorboard(self, epoch: int, rows: list[dict]) -> None:
        import tensorflow as tf

        with self.writer.as_default(step=epoch):
            for r in rows:
                tf.summary.scalar(f"grad_norm/{r['name']}", r["grad_norm"] or 0.0)
                tf.summary.scalar(f"act_std/{r['name']}", r["act_std"])
            h, wanted = self.x, {f"act_{r['layer']}" for r in rows}
            for layer in self.model.layers:  # activation histograms (Keras' callback draws only weights)
                if isinstance(layer, keras.layers.InputLayer):
                    continue
                h = layer(h, training=False)
                if layer.name in wanted:
                    tf.summary.histogram(f"activations/{layer.name}", h)
        self.writer.flush()


def ratio_at_epoch(table, epoch: int = 1) -> float | None:
    """gradient_ratio of the diagnostics.csv rows of one epoch."""
    rows = table[table["epoch"] == epoch]
    return gradient_ratio(rows.to_dict("records")) if len(rows) else None


def _fmt(value) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, (int, str)) else f"{value:.6g}"


def plot(table, path: Path, title: str = "") -> None:
    """Gradient norm per layer (log scale) and activation mean and std per layer, one line per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = sorted(table["epoch"].unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(epochs)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    panels = (("grad_norm", "gradient norm of the kernel (log)"), ("act_mean", "activation mean"),
              ("act_std", "activation std"))
    for ax, (column, label) in zip(axes, panels):
        for epoch, color in zip(epochs, colors):
            rows = table[table["epoch"] == epoch].sort_values("layer")
            ax.plot(rows["layer"], rows[column], marker="o", markersize=3, color=color,
                    label="init" if epoch == 0 else f"epoch {epoch}")
        ax.set(xlabel="hidden layer (1 = next to the input)", ylabel=label, title=label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8, ncol=2 if len(epochs) > 8 else 1)
    if title:
        fig.suptitle(title)
    with artifacts.atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
