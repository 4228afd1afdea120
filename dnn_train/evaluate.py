"""Monte Carlo dropout evaluation (Gal & Ghahramani 2016, Géron ch. 11): ours, Keras has none.

The model is run `samples` times on the test set with its dropout layers active and everything
else (batch norm included) in inference mode; the mean of the passes is the prediction.
"""
from __future__ import annotations

import keras
import numpy as np

DROPOUT_LAYERS = (keras.layers.Dropout, keras.layers.AlphaDropout)


def stochastic_forward(model: keras.Model, x):
    """One pass of our layer chain with dropout on and every other layer in inference mode."""
    h = x
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        h = layer(h, training=isinstance(layer, DROPOUT_LAYERS))
    return h


def mc_dropout_predict(model: keras.Model, x: np.ndarray, samples: int, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities of `samples` stochastic passes: shape (samples, examples, classes)."""
    import tensorflow as tf

    forward = tf.function(lambda batch: stochastic_forward(model, batch))
    passes = []
    for _ in range(samples):
        passes.append(np.concatenate([keras.ops.convert_to_numpy(forward(x[i:i + batch_size]))
                                      for i in range(0, len(x), batch_size)]))
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
