"""trainer.fuse_steps=K: K training steps fused into one compiled loop (ours: Keras has no such option).

Keras runs `steps_per_execution` steps as a TensorFlow while-loop that fetches each batch from the
iterator and launches each step separately; at batch 32 on a CPU that per-step overhead costs more
than the arithmetic. Here the input pipeline hands over K batches at once (shape K x batch x image,
the same batches in the same order) and `train_step` loops over them inside the one function
Keras compiles (with XLA when trainer.jit_compile=true): K ordinary steps of Keras' own train_step,
each with its own gradient, optimizer update (so schedules see every step) and metric update.
"""
from __future__ import annotations

import keras


class FusedSteps(keras.Model):
    """A functional model whose train_step runs Keras' train_step on each batch of a group."""

    def train_step(self, data):
        import tensorflow as tf

        x, y = data  # (k, batch, ...) and (k, batch)

        def body(i):
            super(FusedSteps, self).train_step((x[i], y[i]))
            return (i + 1,)

        tf.while_loop(lambda i: i < tf.shape(x)[0], body, (tf.constant(0),))
        return self.get_metrics_result()


def fuse(model: keras.Model) -> FusedSteps:
    """The same layers and weights, with the fused train_step."""
    return FusedSteps(model.inputs, model.outputs, name=model.name)


def plain(model: keras.Model) -> keras.Model:
    """A plain functional model on the same layers, to save (loadable without dnn_train)."""
    return keras.Model(model.inputs, model.outputs, name=model.name) if isinstance(model, FusedSteps) else model
