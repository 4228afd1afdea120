"""trainer.distribution=data_parallel: one job on several devices, through Keras' distribution API
(keras.distribution.DataParallel) on the JAX backend (docs/multi-device.md).

Each device holds a copy of the weights and takes an equal slice of every batch; the gradients are
averaged across the devices, so a step is the step one device takes on the whole batch
(trainer.batch_size is the global batch). trainer.devices picks them by index among
keras.distribution.list_devices() (null: all of them).

The checks are in three places, each as early as it can be: the config's values before anything
loads (config/validate.py: the batch divides by a listed device count); the backend and the devices once
Keras has loaded (`check`); and, once the data is loaded, every batch's size, the last one's of
each split included (`check_batches`): JAX shards a batch only in equal parts, and Keras passes
the last, shorter batch as it is.
Keras' clear_session(), which a job calls before building its model, also drops the distribution,
so `apply` sets it after that, and `job` clears it when the job ends (the next job of a sweep, a
notebook, trains on whatever it asks for).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

from dnn_train.config.validate import check_batch_split
from dnn_train.errors import ConfigError

log = logging.getLogger("dnn_train")

DATA_PARALLEL = "data_parallel"


def devices(t) -> list[str]:
    """The devices of trainer.distribution (Keras' names, e.g. cpu:0), checked: [] without one."""
    if t.get("distribution") != DATA_PARALLEL:
        return []
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise ConfigError(f"trainer.distribution={DATA_PARALLEL}: Keras' distribution API runs on the JAX "
                          f"backend, not {backend}; run with KERAS_BACKEND=jax (pip install jax)")
    found = keras.distribution.list_devices()
    chosen = found if t.devices is None else [found[i] for i in t.devices if i < len(found)]
    if t.devices is not None and len(chosen) < len(t.devices):
        raise ConfigError(f"trainer.devices={list(t.devices)}: this machine has {len(found)} device(s), "
                          f"indices 0 to {len(found) - 1} ({', '.join(found)})")
    check_batch_split(t.batch_size, len(chosen), f"all of this machine's: {', '.join(found)}")
    return chosen


@contextmanager
def job(cfg):
    """Around a job: check trainer.distribution's devices before anything loads, and leave no
    distribution set when the job ends, however it ends."""
    chosen = devices(cfg.trainer)
    if chosen:
        log.info("data parallel over %d devices (%s): global batch %d, %d per device", len(chosen),
                 ", ".join(chosen), cfg.trainer.batch_size, cfg.trainer.batch_size // len(chosen))
    try:
        yield
    finally:
        if chosen:
            import keras

            keras.distribution.set_distribution(None)


def apply(cfg) -> None:
    """Set the job's distribution, before its model is built (after Keras' clear_session)."""
    chosen = devices(cfg.trainer)
    if chosen:
        import keras

        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))


def check_batches(cfg, sizes: dict, eval_batch: int) -> None:
    """Every batch of every split must split evenly over the devices: `sizes` maps a split's name
    (train, valid, test) to its example count; train comes in trainer.batch_size, the others in
    `eval_batch`."""
    chosen = devices(cfg.trainer)
    if not chosen:
        return
    n = len(chosen)
    for split, count in sizes.items():
        batch = cfg.trainer.batch_size if split == "train" else eval_batch
        last = count % batch
        if last % n:
            raise ConfigError(
                f"trainer.distribution={DATA_PARALLEL}: the last {split} batch holds {last} examples "
                f"({count} % {batch}), which do not split evenly over {n} devices; choose data sizes "
                f"(data.train_size, data.valid_split, data.test_size) or trainer.batch_size that leave a multiple of {n}")
