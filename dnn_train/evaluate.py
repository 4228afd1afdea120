"""Monte Carlo dropout evaluation (Gal & Ghahramani 2016, Géron ch. 11): ours, Keras has none.

The model is run `samples` times on the test set with its dropout layers active and everything
else (batch norm included) in inference mode; the mean of the passes is the prediction. The
model is cloned with each dropout layer wrapped so that it always drops (the book's MCDropout),
sharing every other layer and its weights, so it works for any graph, residual ones included.
"""
from __future__ import annotations

import keras
import numpy as np

from dnn_train.models.parts import DROPOUT_LAYERS


class AlwaysDrop(keras.layers.Layer):
    """A dropout layer that drops at inference too (the book's MCDropout, for any dropout class)."""

    def __init__(self, inner, **kwargs):
        super().__init__(name=f"mc_{inner.name}", **kwargs)
        self.inner = inner

    def call(self, x, training=None):
        return self.inner(x, training=True)


def mc_model(model: keras.Model) -> keras.Model:
    """`model` with dropout always on; every other layer shared (same weights)."""
    return keras.models.clone_model(
        model, clone_function=lambda layer: AlwaysDrop(layer) if isinstance(layer, DROPOUT_LAYERS) else layer)


# Passes per `predict` call: the test set repeated up to this many bytes. Each `predict` costs ~0.1 s of
# set-up whatever its size, so 100 passes one by one took 17 s on a 100-image test set (2 cores).
PASSES_BYTES = 256 << 20


def mc_dropout_predict(model: keras.Model, x: np.ndarray, samples: int, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities of `samples` stochastic passes: shape (samples, examples, classes). Several
    passes go through one `predict` as copies of the test set (each row draws its own dropout mask)."""
    stochastic = mc_model(model)
    per_call = max(1, min(samples, PASSES_BYTES // max(1, x.nbytes)))
    passes = []
    while len(passes) < samples:
        k = min(per_call, samples - len(passes))
        probs = stochastic.predict(np.concatenate([x] * k) if k > 1 else x, batch_size=batch_size, verbose=0)
        passes.extend(np.split(probs, k))
    return np.stack(passes)


def mc_metrics(probs: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy of the mean prediction, mean predictive std and mean entropy of the mean prediction."""
    if probs.shape[-1] == 1:  # one sigmoid unit (data.binary): P(positive) -> two class columns
        probs = np.concatenate([1.0 - probs, probs], axis=-1)
    mean = probs.mean(axis=0)
    entropy = -(mean * np.log(np.clip(mean, 1e-12, 1.0))).sum(axis=1)
    return {"mc_samples": int(probs.shape[0]),
            "mc_accuracy": float((mean.argmax(axis=1) == y).mean()),
            "mc_mean_std": float(probs.std(axis=0).mean()),
            "mc_mean_entropy": float(entropy.mean())}
