"""trainer.fuse_steps=K (default 64): K training steps in one compiled loop (ours: Keras has none).

Keras runs `steps_per_execution` steps as a TensorFlow while-loop that fetches each batch from the
iterator and launches each step separately; at batch 32 on a CPU that per-step overhead costs more
than the arithmetic. Here the input pipeline hands over K batches at once (K x batch x image, the
same batches in the same order; `data.make_dataset(group=K)`) and `train_step` loops over them inside
one function: K ordinary steps of Keras' own train_step, each with its own gradient, optimizer
update (so schedules see every step) and metric update.

With XLA (trainer.jit_compile=auto or true) that loop is compiled, once: every group has one shape
(the epoch's last, shorter group comes padded to K with the count of its real batches, and the odd
partial batch rides along with each group, trained after the last group's batches, outside XLA),
and validation and test run without XLA. Each extra shape would cost seconds of compiling for a
deep net. Start-up is kept short the same way: Keras' step is traced once, for any batch size,
and used by both paths, and the metrics', loss' and optimizer's variables are built before the
first trace (otherwise TensorFlow traces it twice).
"""
from __future__ import annotations

import keras

from dnn_train.errors import ConfigError
from dnn_train.models.parts import DROPOUT_LAYERS

if keras.backend.backend() == "tensorflow":  # the fused loop is TensorFlow's; other backends never import it
    import tensorflow as tf


class FusedSteps(keras.Model):
    """A functional model whose train_step runs Keras' train_step on each batch of a group."""

    xla: bool = False
    _compiled_loop = _traced_step = None

    def compile(self, *args, **kwargs):
        self._compiled_loop = self._traced_step = None  # a new optimizer: trace again
        super().compile(*args, **kwargs)

    def fit(self, x=None, *args, **kwargs):
        build_state(self, x)
        return super().fit(x, *args, **kwargs)

    def train_step(self, data):  # (AutoGraph is off for it, below: it holds only TensorFlow control flow)
        x, y, n, *last = data  # (k, batch, ...), (k, batch), real batches; [the epoch's partial batch]
        if self._traced_step is None:  # Keras' step, traced once for any batch size: used by both paths
            spec = [tf.TensorSpec((None,) + tuple(t.shape[2:]), t.dtype) for t in (x, y)]
            self._traced_step = tf.function(self._step, input_signature=spec, autograph=False)
        (self._xla_loop if self.xla else self._loop)(x, y, n)
        if last:
            x_last, y_last, is_last = last
            tf.cond(is_last, lambda: self._traced_step(x_last, y_last), lambda: tf.constant(0))
        return self.get_metrics_result()

    def _step(self, x, y):
        super().train_step((x, y))
        return tf.constant(0)

    def _loop(self, x, y, n):
        def body(i):
            self._traced_step(x[i], y[i])
            return (i + 1,)

        return tf.while_loop(lambda i: i < n, body, (tf.constant(0),))[0]

    def _xla_loop(self, x, y, n):
        if self._compiled_loop is None:
            self._compiled_loop = tf.function(self._loop, jit_compile=True, autograph=False)
        return self._compiled_loop(x, y, n)


if keras.backend.backend() == "tensorflow":  # AutoGraph's source rewriting would only cost start-up time
    FusedSteps.train_step = tf.autograph.experimental.do_not_convert(FusedSteps.train_step)


def available() -> bool:
    """The fused loop is TensorFlow's (tf.while_loop, tf.function): other backends use Keras'
    own steps_per_execution."""
    return keras.backend.backend() == "tensorflow"


def supports_xla(model: keras.Model) -> bool:
    """Whether XLA can compile every layer (Keras marks those it cannot, e.g. RandomTranslation,
    whose image transform has no XLA kernel on CPU): what jit_compile=auto asks."""
    return all(getattr(layer, "supports_jit", True) for layer in model._flatten_layers())


# Convolutions as XLA compiles them on a CPU are not oneDNN's: the fashion_mnist_cnn preset's epoch
# took 24x longer with XLA there; and XLA's dropout masks on a CPU are slow: a 784-300 MLP with dropout
# took 8.5-11 s an epoch with XLA, 1.5-2.7 s without (README, Performance). Dense-only nets without
# dropout gain 1.5-2x from it.
_CONVOLUTIONS = tuple(getattr(keras.layers, name) for name in (
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"))


# Compiling the loop costs a fixed start-up that only enough steps repay: on a CPU the break-even was
# 430 training steps for the chapter's 20x100 net and 610-1,900 for 16-16 to 300-100 MLPs
# (benchmarks/xla_break_even.py). Below this many a run, XLA costs more than it saves (a smoke run, a test).
XLA_MIN_STEPS = 500


def xla_pays(model: keras.Model, steps: int) -> bool:
    """What jit_compile=auto asks: XLA compiles every layer, and it is faster here for a run of
    `steps` training steps: on a GPU, or on a CPU for models without convolutions or dropout and runs
    of at least XLA_MIN_STEPS steps."""
    if not supports_xla(model):
        return False
    if tf.config.list_physical_devices("GPU"):
        return True
    return steps >= XLA_MIN_STEPS and not _contains(model, (*_CONVOLUTIONS, *DROPOUT_LAYERS))


def fusing_pays(model: keras.Model, xla: bool) -> bool:
    """Whether the fused loop beats Keras' own loop with steps_per_execution: with XLA, or for models
    without convolutions. Without XLA, TensorFlow's CPU loop body ran the fashion_mnist_cnn net at 0.87x
    plain Keras' speed an epoch, where Keras' own loop ran it at 1.26x (README, Performance)."""
    return xla or not _contains(model, _CONVOLUTIONS)


def choose(model: keras.Model, t, steps: int) -> keras.Model:
    """The loop trainer.fuse_steps and trainer.jit_compile (`t`) ask for a run of `steps` training steps:
    `model` fused (its loop XLA-compiled if asked, or with auto where it pays), or as it is (Keras' own loop)."""
    if t.fuse_steps <= 1 or not available():
        return model
    if t.jit_compile is True and not supports_xla(model):
        raise ConfigError("trainer.jit_compile=true: XLA cannot compile every layer of this model (e.g. "
                          "augment=flip_translate's RandomTranslation); use trainer.jit_compile=auto")
    xla = t.jit_compile is True or (t.jit_compile == "auto" and xla_pays(model, steps))
    return fuse(model, xla=xla) if fusing_pays(model, xla) else model


def describe(model: keras.Model, t) -> str:
    """The loop `model` trains in, for the run's log."""
    if is_fused(model):
        return f"{t.fuse_steps} fused a call, {'with' if model.xla else 'without'} XLA"
    return f"Keras' own, {t.steps_per_execution} a call"


def _contains(model: keras.Model, kinds: tuple) -> bool:
    return any(isinstance(layer, kinds) for layer in model._flatten_layers())


def build_state(model: keras.Model, batches) -> None:
    """Before fit: without a distribution strategy Keras creates the metrics', loss' and optimizer's
    variables while tracing the first step, and so TensorFlow traces every step function twice (Keras'
    own loop too: MobileNet's step took 5 s a trace here). Build them first, from the spec of one batch
    of `batches` (a tf.data dataset; a fused model's elements hold K batches): Keras' own builder, which
    fit calls under a strategy. Built parts are left as they are (a later phase's new optimizer is built)."""
    spec = getattr(batches, "element_spec", None)
    if spec is None or getattr(model, "_distribute_strategy", None) is not None:
        return  # not a tf.data dataset (another backend's), or a strategy's fit builds them in its scope
    if is_fused(model):
        spec = tuple(tf.TensorSpec(s.shape[1:], s.dtype) for s in spec[:2])
    model._symbolic_build(data_batch=spec)


def is_fused(model) -> bool:
    return isinstance(model, FusedSteps)


def fuse(model: keras.Model, xla: bool) -> FusedSteps:
    """The same layers and weights, with the fused train_step (its loop compiled by XLA if `xla`)."""
    out = FusedSteps(model.input, model.output, name=model.name)
    out.xla = xla
    return out


def plain(model: keras.Model) -> keras.Model:
    """A plain functional model on the same layers, compiled with the same optimizer (its state
    included), loss and metrics: what gets saved (loadable without dnn_train)."""
    if not isinstance(model, FusedSteps):
        return model
    out = keras.Model(model.input, model.output, name=model.name)
    if model.optimizer is not None:
        settings = model.get_compile_config()
        out.compile(optimizer=model.optimizer, loss=model.loss, metrics=settings["metrics"],
                    weighted_metrics=settings["weighted_metrics"])
    return out
