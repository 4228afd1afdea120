"""The value rules: each checked key's test and its words, applied to one value before TensorFlow loads.

RULES is a plain dict: a bare name (learning_rate) is checked wherever the key appears in a
Keras-class group, a full key (trainer.epochs) at that place. Upper bounds are where a value stops
being an experiment and becomes a crash or a week of waiting. `validate` (validate.py) applies them;
the rules are made by rule_builders.py (number, choice, int_list), as a dataset's and a model family's are.
"""
from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig, ListConfig

from dnn_train.config.help import options
from dnn_train.config.rule_builders import BOOL, COUNT_OR_FRACTION, SEED, choice, int_list, number
from dnn_train.config.schema import TASKS
from dnn_train.data.catalog import DATASETS

RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": number(0, lo_open=True),
    "max_lr": number(0, lo_open=True),
    "momentum": number(0, 1),  # Keras' SGD: [0, 1]
    "beta_1": number(0, 1, hi_open=True),
    "beta_2": number(0, 1, hi_open=True),
    "rho": number(0, 1, hi_open=True),
    "epsilon": number(0, lo_open=True),
    "weight_decay": number(0, nullable=True),
    "clipnorm": number(0, lo_open=True, nullable=True),
    "clipvalue": number(0, lo_open=True, nullable=True),
    "global_clipnorm": number(0, lo_open=True, nullable=True),
    "rate": number(0, 1, hi_open=True),
    "alpha": number(0),
    "negative_slope": number(0),
    "l1": number(0, 100),
    "l2": number(0, 100),
    "max_value": number(0, lo_open=True),
    "scale": number(0, lo_open=True),
    "stddev": number(0, lo_open=True),
    "mean": number(),
    "minval": number(),
    "maxval": number(),
    "seed": number(0, 2 ** 32 - 1, integer=True, nullable=True),
    "initial_accumulator_value": number(0),
    "decay_epochs": number(0, lo_open=True),
    "decay_rate": number(0, lo_open=True),
    "power": number(0, lo_open=True),
    "factor": number(0, 1, lo_open=True, hi_open=True),
    "patience": number(0, integer=True),
    "min_lr": number(0),
    "div_factor": number(1, lo_open=True),
    "final_div_factor": number(1),
    "final_fraction": number(0, 1, lo_open=True, hi_open=True),
    "max_momentum": number(0, 1, hi_open=True),
    "min_momentum": number(0, 1, hi_open=True),
    "mode": choice("fan_in", "fan_out", "fan_avg"),
    "distribution": choice("truncated_normal", "untruncated_normal", "uniform"),
    "position": choice("none", "before", "after"),
    "attach": choice("none", "kernel_regularizer", "kernel_constraint", "dropout_layer"),
    "placement": choice("every_hidden", "before_output"),
    "on_inputs": BOOL,
    "nesterov": BOOL,
    "input": BOOL,
    "amsgrad": BOOL,
    # fixed-key groups: their types come from the dataclasses, their ranges from here
    "trainer.epochs": number(1, 100_000, integer=True),
    "trainer.batch_size": number(1, 1_000_000, integer=True),
    "trainer.seed": SEED,
    "trainer.steps_per_execution": number(1, 100_000, integer=True),
    "trainer.fuse_steps": number(1, 100_000, integer=True),
    "trainer.early_stopping.patience": number(0, integer=True),
    "trainer.mc_samples": number(0, 10_000, integer=True),
    "trainer.diagnostics_batch": number(1, 100_000, integer=True),
    "trainer.jit_compile": choice(True, False, "auto"),
    "trainer.precision": choice("float32", "mixed_float16", "mixed_bfloat16"),
    "trainer.progress": choice("auto", "bar", "line", "none"),
    "trainer.objective": choice("best_val_accuracy", "test_accuracy", "best_val_loss", "reconstruction_loss"),
    "trainer.threads": ((lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024)),
                        "auto or an integer from 1 to 1024"),
    "trainer.early_stopping.monitor": choice("val_loss", "val_accuracy", "loss", "accuracy"),
    "trainer.distribution": choice(None, "data_parallel"),
    "trainer.devices": ((lambda v: v is None or (int_list(0, 65535)[0](v) and len(set(v)) == len(v))),
                        "null (all devices) or a non-empty list of distinct device indices >= 0"),
    "task": choice(*TASKS),
    "transfer.reuse_layers": number(1, integer=True, nullable=True),
    "transfer.freeze_epochs": number(0, integer=True),
    "transfer.finetune_lr": number(0, lo_open=True, nullable=True),
    "autoencoder.loss": choice("mse", "binary_crossentropy"),
    "autoencoder.examples_plot": number(1, 50, integer=True),
    "lr_find.start_lr": number(0, lo_open=True),
    "lr_find.end_lr": number(0, lo_open=True),
    "lr_find.epochs": number(0, 1000, lo_open=True),
    "lr_find.stop_factor": number(1, lo_open=True),
    "data.name": choice(*DATASETS),
    "data.valid_split": COUNT_OR_FRACTION,
    "data.train_size": number(1, integer=True, nullable=True),
    "data.valid_size": number(1, integer=True, nullable=True),
    "data.test_size": number(1, integer=True, nullable=True),
    "data.split_seed": SEED,
    "logger.name": choice(*options("logger")),
    "logger.log_model": BOOL,
    "logger.experiment": ((lambda v: isinstance(v, str) and v.strip() != ""), "a non-empty name"),
    "logger.tracking_uri": ((lambda v: v is None or (isinstance(v, str) and v.strip() != "")), "a URI or null"),
    "augment.layers": ((lambda v: isinstance(v, ListConfig) and all(isinstance(i, DictConfig) and "_target_" in i
                                                                     for i in v)),
                       "a list of layers, each with a _target_ (see conf/augment/)"),
}
TOP_LEVEL_RULES = ("task",)

