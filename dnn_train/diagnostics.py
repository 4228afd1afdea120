"""Per-block diagnostics (trainer.diagnostics): watch gradients vanish or explode, and units
saturate or die, block by block. Ours: Keras records only the loss and metrics.

Before training (epoch 0) and after every epoch, on one fixed batch of training images, for each
hidden block i of the model (dnn_train/models/blocks.py; in an MLP, one Dense layer and its
activation; in a CNN, its convolutions, pooling and dropout):
- act_mean, act_std: mean and standard deviation of the block's output over the batch and units;
- saturated: the fraction of sigmoid outputs below 0.05 or above 0.95, or of tanh outputs beyond
  +-0.95 (empty for other activations);
- dead: the fraction of units (feature maps: each position counts as a unit) whose output is
  exactly 0 for every image of the batch (dead ReLUs);
- grad_norm: the L2 norm of the loss gradient with respect to the block's kernels (all of them).
The batch goes through the model as in training (batch norm on batch statistics) but without
dropout, and batch norm's moving statistics are put back afterwards: measuring changes nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from dnn_train.models.blocks import blocks
from dnn_train.models.parts import DROPOUT_LAYERS
from dnn_train.rundir import artifacts

log = logging.getLogger("dnn_train")

DIAGNOSTICS_FILE = "diagnostics.csv"
GRADIENTS_PLOT = "gradients.png"
COLUMNS = ["epoch", "layer", "name", "act_mean", "act_std", "saturated", "dead", "grad_norm"]
SATURATION = {"sigmoid": lambda a: (a < 0.05) | (a > 0.95), "tanh": lambda a: np.abs(a) > 0.95}


def activation_kind(layer) -> str:
    """'sigmoid', 'tanh' or another name, for the saturation rule."""
    fn = getattr(layer, "activation", None)
    return getattr(fn, "__name__", type(layer).__name__.lower())


def layer_stats(activations: np.ndarray, kind: str) -> dict:
    """Statistics of one block's output (examples x units) on the probe batch."""
    a = activations.reshape(len(activations), -1)
    return {"act_mean": float(a.mean()), "act_std": float(a.std()),
            "saturated": float(SATURATION[kind](a).mean()) if kind in SATURATION else None,
            "dead": float(np.all(a == 0, axis=0).mean())}


class Probe:
    """The model's block outputs and the loss, as one function of the weights: built once."""

    def __init__(self, model: keras.Model, loss_fn):
        self.model, self.loss_fn = model, loss_fn
        self.blocks = blocks(model)
        outputs = [b.output_tensor for b in self.blocks] + list(model.outputs)
        self.net = keras.Model(model.input, outputs)  # the same layers and weights, more outputs
        self.dropouts = [layer for layer in model.layers if isinstance(layer, DROPOUT_LAYERS)]
        self._jax_steps = {}  # JAX: the compiled forward-backward, per set of trainable variables

    def rows(self, x, y) -> list[dict]:
        """One row per hidden block: layer_stats and the kernels' gradient norm, on batch (x, y)."""
        kernels = [b.kernels() for b in self.blocks]
        saved = [keras.ops.convert_to_numpy(v) for v in self.model.non_trainable_weights]  # BN moving statistics
        rates = [layer.rate for layer in self.dropouts]
        for layer in self.dropouts:
            layer.rate = 0.0  # no dropout while measuring
        try:
            acts, grads = self._forward_backward(x, y, [k for ks in kernels for k in ks])
        finally:
            for layer, rate in zip(self.dropouts, rates):
                layer.rate = rate
            for v, value in zip(self.model.non_trainable_weights, saved):
                v.assign(value)
        rows, i = [], 0
        for block, act, ks in zip(self.blocks, acts, kernels):
            g = [keras.ops.convert_to_numpy(t) for t in grads[i:i + len(ks)] if t is not None]
            i += len(ks)
            kind = activation_kind(block.activation) if block.activation is not None else "none"
            rows.append({"layer": block.index, "name": block.name, **layer_stats(keras.ops.convert_to_numpy(act), kind),
                         "grad_norm": float(np.sqrt(sum(float((t ** 2).sum()) for t in g))) if g else None})
        return rows

    def _forward_backward(self, x, y, variables):
        """The blocks' outputs and the loss gradient w.r.t. `variables`, on the backend in use."""
        if keras.backend.backend() == "jax":
            trainable = self.net.trainable_variables
            (_, acts), grads = self._jax_step(trainable)([v.value for v in trainable],
                                                        [v.value for v in self.net.non_trainable_variables], x, y)
            at = {id(v): g for v, g in zip(trainable, grads)}
            return acts, [at.get(id(v)) for v in variables]
        import tensorflow as tf

        with tf.GradientTape() as tape:
            *acts, out = self.net(x, training=True)
            loss = self.loss_fn(y, out)
        return acts, tape.gradient(loss, variables)

    def _jax_step(self, trainable: list):
        """The loss's value and gradient as one compiled JAX function, traced once per set of trainable
        variables (a transfer phase changes the set; the dropout rates are 0 whenever it runs). Run op by
        op, JAX compiles every op the first time it meets it, for each new net: a 2-epoch MobileNet run
        took 40 s with the probe op by op, 20 s with it compiled (Performance page)."""
        key = tuple(id(v) for v in trainable)
        if key not in self._jax_steps:
            import jax

            def loss(weights, values, x, y):
                *acts, out = self.net.stateless_call(weights, values, x, training=True)[0]
                return self.loss_fn(y, out), acts

            self._jax_steps[key] = jax.jit(jax.value_and_grad(loss, has_aux=True))
        return self._jax_steps[key]


def probe(model: keras.Model, x, y, loss_fn) -> list[dict]:
    """One row per hidden block (see Probe.rows)."""
    return Probe(model, loss_fn).rows(x, y)


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
        self._probe = None
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
        if self._probe is None:
            self._probe = Probe(self.model, self.loss_fn)
        rows = self._probe.rows(self.x, self.y)
        new = not self.path.exists()
        lines = [",".join(COLUMNS)] if new else []
        lines += [",".join(_fmt(v) for v in [epoch, r["layer"], r["name"], r["act_mean"], r["act_std"],
                                             r["saturated"], r["dead"], r["grad_norm"]]) for r in rows]
        with open(self.path, "a", opener=artifacts.nofollow) as f:  # one write per epoch: whole rows only
            f.write("\n".join(lines) + "\n")
        if self.writer is not None:
            self._tensorboard(epoch, rows)

    def _tensorboard(self, epoch: int, rows: list[dict]) -> None:
        import tensorflow as tf

        with self.writer.as_default(step=epoch):
            for r in rows:
                tf.summary.scalar(f"grad_norm/{r['name']}", r["grad_norm"] or 0.0)
                tf.summary.scalar(f"act_std/{r['name']}", r["act_std"])
            *acts, _ = self._probe.net(self.x, training=False)  # activation histograms (Keras' callback: weights only)
            for r, act in zip(rows, acts):
                tf.summary.histogram(f"activations/{r['name']}", act)
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

    epochs = sorted(table["epoch"].unique())
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(epochs)))
    fig, axes = artifacts.row_of_panels(3, (15, 4.5), title)
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
    artifacts.save_figure(fig, path)
