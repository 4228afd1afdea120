"""trainer.share_compiled (default true): a job whose config differs from the previous finished
job's in this process only in `trainer.seed`, or in `optimizer.learning_rate` where no schedule
makes the rate a formula of the step (the seeds or rates of a sweep, a notebook's loop over them),
trains that job's model object, whose step Keras traced (and XLA compiled) already, instead
of tracing and compiling the same program again: a second to ten seconds a job, as deep as the net.

What makes it this job's run: its own freshly built model and optimizer are made as usual (cheap:
no tracing), and their values, the initial weights of this seed, batch-norm statistics, seed-generator
states, and the optimizer's slots, step count and learning rate, are copied into the kept objects.
The kept model then computes what the fresh one would, bit for bit (a test compares the two runs).
Ours: Keras has no way to reset a compiled model to new initial values.

Only plain training runs take part: one phase, no reused layers (model.init_from, a pretrained
backbone), not a resumed run, not trainer.precision=mixed_float16 (below); anything else, or any
other difference in the config, builds anew.
One model is kept, the last; the next miss frees it.
"""
from __future__ import annotations

import json

from omegaconf import OmegaConf

_kept: tuple | None = None  # (key, model, optimizer) of the last finished job


def _key(cfg) -> str:
    """What must be equal for the step to be the same program: the config without trainer.seed, and
    without optimizer.learning_rate where the rate is a variable of the optimizer (copied in like the
    rest; a schedule's rates are constants of the traced step)."""
    from dnn_train.optim import rate_is_a_variable

    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.get("trainer", {}).pop("seed", None)
    if rate_is_a_variable(cfg.get("schedule")):
        plain.get("optimizer", {}).pop("learning_rate", None)
    return json.dumps(plain, sort_keys=True, default=str)


def kept_for(cfg) -> bool:
    """Whether the kept model is this job's to take. Then the job seeds with set_seed, and skips
    Keras' clear_session(): both would drop TensorFlow's instantiated kernels of the kept step,
    and instantiating them again cost the 20-layer net 3 of the 5 seconds saved."""
    return _kept is not None and bool(cfg.trainer.get("share_compiled")) and _kept[0] == _key(cfg)


def new_session() -> None:
    """Keras' clear_session() (a fresh Keras state per job: sweep jobs do not leak), after dropping
    what it leaves of earlier jobs: TensorFlow's gradient registry keeps for good every graph that used
    tf.custom_gradient, as each traced optimizer step does through its all-reduce, and with it all of
    that job's traced functions (tensorflow/tensorflow#97697; keras-team/tf-keras#898 drops them the same
    way). Ours: Keras does not. Those gradients were built while the steps were traced; none is asked
    for again. Each job left ~1,300 objects (a CNN ~15,000) that every later collection scanned."""
    import keras

    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import ops

        registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
        for name in [name for name in registry if name.startswith("CustomGradient-")]:
            del registry[name]
    keras.backend.clear_session()


def set_seed(seed: int) -> None:
    """keras.utils.set_random_seed (Python, NumPy, Keras' global seed generator) without
    tf.random.set_seed, which clears TensorFlow's kernel caches: called inside a throwaway graph,
    it seeds that graph instead. TensorFlow's own global seed draws nothing in a run: Keras draws
    from its seed generators, and the data order from stateless ops seeded with trainer.seed."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return keras.utils.set_random_seed(seed)
    import tensorflow as tf

    with tf.Graph().as_default():
        keras.utils.set_random_seed(seed)


def _values_match(kept: list, fresh: list) -> bool:
    return len(kept) == len(fresh) and all(
        tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype for a, b in zip(kept, fresh))


def take(cfg, model, optimizer):
    """(model, optimizer, traced): the kept model and optimizer holding `model`'s and `optimizer`'s
    initial values if the last job's config matches, else `model` and `optimizer` themselves."""
    global _kept
    matches, kept, _kept = kept_for(cfg), _kept, None  # taken or not, the old model goes
    if not matches:
        return model, optimizer, False
    _, kept_model, kept_optimizer = kept
    optimizer.build(model.trainable_variables)  # the initial slot values (zeros, Adagrad's 0.1, Nadam's 1)
    pairs = ((kept_model.variables, model.variables), (kept_optimizer.variables, optimizer.variables))
    if not all(_values_match(a, b) for a, b in pairs):
        return model, optimizer, False
    for kept_vars, fresh_vars in pairs:
        for a, b in zip(kept_vars, fresh_vars):
            a.assign(b.value)
    kept_model.reset_metrics()
    return kept_model, kept_optimizer, True


def keep(cfg, model, optimizer) -> None:
    """Keep a finished job's model and optimizer for the next job (if trainer.share_compiled). Not
    under mixed_float16: Keras' LossScaleOptimizer does not list every variable of the optimizer it
    wraps (Nadam's u_product is missing from its .variables), so no reset could be complete."""
    import keras

    global _kept
    shareable = cfg.trainer.share_compiled and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    _kept = (_key(cfg), model, optimizer) if shareable else None

