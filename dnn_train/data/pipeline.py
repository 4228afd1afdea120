"""The input pipeline: tf.data batches of uint8 images gathered from the arrays on TensorFlow
(imported inside, so the rest of the data layer loads without it); on Keras' other backends (JAX)
a keras.utils.PyDataset of the same kind of batches, so that those runs never import TensorFlow."""
from __future__ import annotations

import numpy as np

EVAL_BATCH = 1024  # validation and test batches: no gradient, so big batches only save per-step overhead


def eval_batch(batch_size: int) -> int:
    return max(batch_size, EVAL_BATCH)


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, epoch=None,
                 group: int = 1):
    """A tf.data pipeline of uint8 batches that gathers whole batches from the arrays (no copy).

    With `shuffle`, each epoch's order is a function of (seed, epoch) alone: `epoch` is a tf.Variable
    that the EpochSeeds callback sets as each epoch begins, so a resumed run sees the same orders as
    an uninterrupted one (tf.data's own reshuffling would start over from the first epoch's order).
    With `group` > 1 (trainer.fuse_steps), elements are (images, labels, count): `group` consecutive
    batches stacked (group x batch x image) and how many of them are real (the last group is padded
    to `group`, so every element has one shape). With a partial last batch (of `rest` < batch_size
    images), each element also carries (rest_images, rest_labels, is_last): that batch, trained after
    the last group's batches, so that it too keeps one shape and nothing is traced twice.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        if group > 1:
            raise ValueError("grouped batches (trainer.fuse_steps) are for TensorFlow's fused loop")
        return array_batches(x, y, batch_size, shuffle, seed, epoch)
    import tensorflow as tf

    images, labels, n = tf.constant(x), tf.constant(y), len(x)
    full, rest = divmod(n, batch_size)
    plain = tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow: skip
    # AutoGraph's source rewriting (~0.1 s per function at start-up)

    def order(_):
        if not shuffle:
            return tf.range(n, dtype=tf.int64)
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)

    if shuffle and epoch is None:
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    if group > 1:
        count = max(-(-full // group), 1 if rest else 0)  # elements per epoch

        def groups(_):
            idx = order(_)
            batches = tf.pad(tf.reshape(idx[: full * batch_size], (full, batch_size)),
                             [[0, count * group - full], [0, 0]])  # index 0 fills the last group's tail
            elements = (tf.reshape(batches, (count, group, batch_size)),
                        tf.minimum(full - tf.range(0, count * group, group), group))
            if rest:
                elements += (tf.tile(idx[None, full * batch_size:], (count, 1)), tf.range(count) == count - 1)
            return tf.data.Dataset.from_tensor_slices(elements)

        def gather(i, k, *last):
            out = (tf.gather(images, i), tf.gather(labels, i), k)
            return out + (tf.gather(images, last[0]), tf.gather(labels, last[0]), last[1]) if last else out

        ds = tf.data.Dataset.from_tensors(0).flat_map(plain(groups))
        ds = ds.apply(tf.data.experimental.assert_cardinality(count))
        ds = ds.map(plain(gather), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = tf.data.Dataset.from_tensors(0).flat_map(plain(lambda _: tf.data.Dataset.from_tensor_slices(order(_))))
        ds = ds.apply(tf.data.experimental.assert_cardinality(n)).batch(batch_size)
        ds = ds.map(plain(lambda i: (tf.gather(images, i), tf.gather(labels, i))),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


class EpochCounter:
    """The epoch the data order is drawn for, off TensorFlow (there, a tf.Variable that tf.data's
    graph reads): EpochSeeds assigns it as each epoch begins."""

    def __init__(self, value: int = 0):
        self.value = int(value)

    def assign(self, value) -> None:
        self.value = int(value)


def epoch_counter():
    """What EpochSeeds sets and the training batches read: a tf.Variable on TensorFlow, an
    EpochCounter on the other backends."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.Variable(0, dtype=tf.int64, trainable=False)
    return EpochCounter()


def array_batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, epoch=None):
    """The batches as a keras.utils.PyDataset (Keras' backend-neutral input; the class is made at
    first use so that importing this module imports no Keras). With `shuffle` each epoch's order is
    numpy's permutation seeded with (seed, epoch): not TensorFlow's stateless shuffle, so another
    order than on TensorFlow, but as reproducible on resume."""
    import keras

    class ArrayBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = epoch if epoch is not None else EpochCounter()
            self._order = (None, np.arange(len(x)))
            self.endless = False

        def __len__(self):
            return -(-len(x) // batch_size)

        @property
        def num_batches(self):
            return None if self.endless else len(self)

        def repeat(self):
            """Endless, the same order over again: what tf.data's repeat() gives task=find_lr."""
            self.endless = True
            return self

        def __getitem__(self, i):
            i %= len(self)
            if shuffle and self._order[0] != self.epoch.value:
                self._order = (self.epoch.value, np.random.default_rng([seed, self.epoch.value]).permutation(len(x)))
            idx = self._order[1][i * batch_size:(i + 1) * batch_size]
            return x[idx], y[idx]

    return ArrayBatches()
