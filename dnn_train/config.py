"""Config schemas, validation and one-line error messages. Imports no TensorFlow.

Two kinds of config group live in conf/:
- fixed-key groups (data, model, trainer): typed by the dataclasses below, registered as Hydra
  schemas, so a wrong type or an unknown key fails while Hydra composes the config;
- Keras-class groups (initializer, activation, normalization, optimizer, schedule, regularizer):
  each option is a `_target_` plus the class's keyword arguments, so adding an option is adding a
  YAML file. Their values are checked by RULES (by key name) before TensorFlow is imported, and
  keys listed in BUILDER_KEYS are read by our builder instead of being passed to the class.
"""
from __future__ import annotations

import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

# conf/ sits at the top of the repository and ships inside the wheel as dnn_train/conf (pyproject.toml).
_PACKAGED_CONF = Path(__file__).resolve().parent / "conf"
CONF_DIR = _PACKAGED_CONF if _PACKAGED_CONF.is_dir() else Path(__file__).resolve().parent.parent / "conf"

TASKS = ("train", "find_lr", "pretrain_autoencoder")
KERAS_GROUPS = ("initializer", "activation", "normalization", "optimizer", "schedule", "regularizer")
# Keys of Keras-class groups that configure our builder rather than the Keras class.
BUILDER_KEYS = {
    "normalization": ("position", "input"),
    "regularizer": ("attach", "placement", "on_inputs"),
    "schedule": ("max_momentum", "min_momentum"),
}
# What a `_target_` may name (configs run no foreign code): Keras' building blocks and our builders.
# Not keras.saving, keras.utils or anything else that reads files or runs code. More: allow_targets.
ALLOWED_TARGETS = tuple(f"keras.{m}." for m in (
    "layers", "initializers", "optimizers", "regularizers", "constraints", "activations", "applications",
    "losses", "metrics")) + ("keras.callbacks.ReduceLROnPlateau", "keras.callbacks.EarlyStopping",
                             "dnn_train.models.", "dnn_train.optim.")


class ConfigError(ValueError):
    """A user-facing configuration problem: reported as one line, exit code 2."""


from dnn_train.data.catalog import DATASETS  # noqa: E402 - here, after ConfigError, which dnn_train.data imports


@dataclass
class SyntheticConf:
    num_classes: int = 4
    image_shape: List[int] = field(default_factory=lambda: [8, 8])
    train_examples: int = 2000  # before the validation split
    test_examples: int = 400
    noise: float = 3.0  # pixel noise, in units of the prototypes' spread (3: ~85% reachable)


@dataclass
class DataConf:
    name: str = "fashion_mnist"  # a dataset of dnn_train/data/catalog.py (conf/data/NAME.yaml)
    root: Optional[str] = None  # folder with the files (or its parent); searched before the Keras cache
    download: bool = True  # fetch with keras.utils.get_file when no local copy is found
    url: Optional[str] = None  # base URL to download from (a mirror, a proxy); null: the official one
    sha256: Any = None  # {FILE: SHA-256} expected of downloads, replacing the official hashes; null: the official ones
    valid_split: Any = 5000  # held out of the training set for validation: a count, or a fraction (< 1)
    train_size: Optional[int] = None  # class-balanced slice sizes (null: everything)
    valid_size: Optional[int] = None
    test_size: Optional[int] = None
    split_seed: int = 42  # fixes the held-out splits and the slices
    standardize: bool = False  # per-feature standardization from the training split
    classes: Optional[List[Any]] = None  # keep these classes (names or indices), relabelled 0..k-1
    binary: Optional[List[Any]] = None  # [NEG, POS]: a two-class task (sigmoid output)
    label_mode: str = "fine"  # cifar100: fine (100 classes) | coarse (20 superclasses)
    test_split: Any = 0.2  # images without train/ and test/: held out for testing, a count or a fraction (< 1)
    image_size: Optional[List[int]] = None  # images: [HEIGHT, WIDTH] to resize to; null: their own (equal) size
    color_mode: str = "rgb"  # images: rgb (H x W x 3) | grayscale (H x W)
    synthetic: Optional[SyntheticConf] = None


@dataclass
class EarlyStoppingConf:
    enabled: bool = True
    monitor: str = "val_loss"
    patience: int = 10
    restore_best_weights: bool = True


@dataclass
class TrainerConf:
    epochs: int = 10
    batch_size: int = 32
    seed: int = 42
    early_stopping: EarlyStoppingConf = field(default_factory=EarlyStoppingConf)
    steps_per_execution: int = 64  # with fuse_steps=1 (or a CNN without XLA): steps per graph call in Keras' own loop
    fuse_steps: int = 64  # K steps fused into one compiled loop (dnn_train/fused.py)
    jit_compile: Any = "auto"  # true | false | auto (XLA on the fused loop where it pays: fused.xla_pays)
    share_compiled: bool = True  # a job differing from the last one only in seed (or constant rate) reuses its step
    precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16 (Keras' mixed-precision policy)
    progress: str = "auto"  # auto (on a terminal a bar per epoch, then its line; else the line) | bar | line | none
    mc_samples: int = 0  # MC dropout: stochastic test passes with dropout on (0: off)
    resume: bool = False  # continue the run in hydra.run.dir from its last completed epoch
    diagnostics: bool = True  # per-layer activation and gradient statistics: diagnostics.csv, gradients.png
    diagnostics_batch: int = 512  # training images in the fixed probe batch
    tensorboard: bool = False  # TensorBoard logs in the run's tensorboard/ folder
    objective: str = "best_val_accuracy"  # what a sweep's task returns to Hydra's sweepers (results.json key)
    threads: Any = "auto"  # TensorFlow threads per job: auto (all cores; cores / n_jobs under joblib) | N


@dataclass
class LrFindConf:
    start_lr: float = 1.0e-5
    end_lr: float = 10.0
    epochs: float = 1.0  # length of the ramp
    stop_factor: float = 4.0  # stop once the batch loss exceeds this multiple of the lowest


@dataclass
class TransferConf:
    reuse_layers: Optional[int] = None  # lowest K hidden layers of model.init_from (null: all of them)
    freeze_epochs: int = 0  # first phase: reused layers frozen for this many epochs
    finetune_lr: Optional[float] = None  # second phase (unfrozen): this learning rate (null: unchanged)


@dataclass
class AutoencoderConf:
    loss: str = "mse"  # reconstruction loss of the pixels in [0, 1]: mse | binary_crossentropy
    examples_plot: int = 10  # test images shown beside their reconstructions


@dataclass
class RootConf:
    """Schema of the whole config (conf/config.yaml lists it first in its defaults)."""

    data: DataConf = field(default_factory=DataConf)
    model: Any = None  # a family's keys (conf/model/*.yaml): checked against its builder's signature
    trainer: TrainerConf = field(default_factory=TrainerConf)
    augment: Any = None
    initializer: Any = None
    activation: Any = None
    normalization: Any = None
    optimizer: Any = None
    schedule: Any = None
    regularizer: Any = None
    transfer: TransferConf = field(default_factory=TransferConf)
    lr_find: LrFindConf = field(default_factory=LrFindConf)
    autoencoder: AutoencoderConf = field(default_factory=AutoencoderConf)
    task: str = "train"
    logger: Any = None  # conf/logger/*.yaml: none | mlflow (dnn_train/tracking.py)
    allow_targets: List[str] = field(default_factory=list)  # extra `_target_`s (or prefixes ending in '.') a config may name


ConfigStore.instance().store(name="dnn_train_schema", node=RootConf)


# ---------------------------------------------------------------- value rules (no TF needed)
def _number(lo=None, hi=None, lo_open=False, hi_open=False, integer=False, nullable=False):
    kind = "an integer" if integer else "a finite number"
    lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
    hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
    what = " and ".join(s for s in (lo_s, hi_s) if s)
    desc = f"{kind}{' ' + what if what else ''}{' or null' if nullable else ''}"

    def check(v):
        if v is None:
            return nullable
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        if hi is not None and (v >= hi if hi_open else v > hi):
            return False
        return True

    return check, desc


def _choice(*options):
    return (lambda v: not isinstance(v, (DictConfig, ListConfig)) and v in options), \
        "one of " + ", ".join("null" if o is None else str(o).lower() if isinstance(o, bool) else str(o)
                              for o in options)


def _int_list(lo=1, hi=None, nullable=False, empty=False):
    def check(v):
        if v is None:
            return nullable
        items = list(v) if isinstance(v, (list, ListConfig)) else None
        return items is not None and (empty or len(items) > 0) and len(items) <= 1000 and \
            all(_number(lo, hi, integer=True)[0](i) for i in items)

    what = f"a {'' if empty else 'non-empty '}list of integers >= {lo}{f' and <= {hi}' if hi else ''}"
    return check, what + (" or null" if nullable else "")


SEED = _number(0, 2 ** 32 - 1, integer=True)
BOOL = ((lambda v: isinstance(v, bool)), "true or false")
_COUNT_OR_FRACTION = ((lambda v: _number(1, integer=True)[0](v) or _number(0, 1, lo_open=True, hi_open=True)[0](v)),
                      "an integer >= 1 (a count) or a number > 0 and < 1 (a fraction)")  # data.*_split
# Checked wherever the key appears in a Keras-class group, and for the listed full keys. Upper bounds
# are where a value stops being an experiment and becomes a crash or a week of waiting.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": _number(0, lo_open=True),
    "max_lr": _number(0, lo_open=True),
    "momentum": _number(0, 1),  # Keras' SGD: [0, 1]
    "beta_1": _number(0, 1, hi_open=True),
    "beta_2": _number(0, 1, hi_open=True),
    "rho": _number(0, 1, hi_open=True),
    "epsilon": _number(0, lo_open=True),
    "weight_decay": _number(0, nullable=True),
    "clipnorm": _number(0, lo_open=True, nullable=True),
    "clipvalue": _number(0, lo_open=True, nullable=True),
    "global_clipnorm": _number(0, lo_open=True, nullable=True),
    "rate": _number(0, 1, hi_open=True),
    "alpha": _number(0),
    "negative_slope": _number(0),
    "l1": _number(0, 100),
    "l2": _number(0, 100),
    "max_value": _number(0, lo_open=True),
    "scale": _number(0, lo_open=True),
    "stddev": _number(0, lo_open=True),
    "mean": _number(),
    "minval": _number(),
    "maxval": _number(),
    "seed": _number(0, 2 ** 32 - 1, integer=True, nullable=True),
    "initial_accumulator_value": _number(0),
    "decay_epochs": _number(0, lo_open=True),
    "decay_rate": _number(0, lo_open=True),
    "power": _number(0, lo_open=True),
    "factor": _number(0, 1, lo_open=True, hi_open=True),
    "patience": _number(0, integer=True),
    "min_lr": _number(0),
    "div_factor": _number(1, lo_open=True),
    "final_div_factor": _number(1),
    "final_fraction": _number(0, 1, lo_open=True, hi_open=True),
    "max_momentum": _number(0, 1, hi_open=True),
    "min_momentum": _number(0, 1, hi_open=True),
    "mode": _choice("fan_in", "fan_out", "fan_avg"),
    "distribution": _choice("truncated_normal", "untruncated_normal", "uniform"),
    "position": _choice("none", "before", "after"),
    "attach": _choice("none", "kernel_regularizer", "kernel_constraint", "dropout_layer"),
    "placement": _choice("every_hidden", "before_output"),
    "on_inputs": BOOL,
    "nesterov": BOOL,
    "input": BOOL,
    "amsgrad": BOOL,
    # fixed-key groups: their types come from the dataclasses, their ranges from here
    "trainer.epochs": _number(1, 100_000, integer=True),
    "trainer.batch_size": _number(1, 1_000_000, integer=True),
    "trainer.seed": SEED,
    "trainer.steps_per_execution": _number(1, 100_000, integer=True),
    "trainer.fuse_steps": _number(1, 100_000, integer=True),
    "trainer.early_stopping.patience": _number(0, integer=True),
    "trainer.mc_samples": _number(0, 10_000, integer=True),
    "trainer.diagnostics_batch": _number(1, 100_000, integer=True),
    "trainer.jit_compile": _choice(True, False, "auto"),
    "trainer.precision": _choice("float32", "mixed_float16", "mixed_bfloat16"),
    "trainer.progress": _choice("auto", "bar", "line", "none"),
    "trainer.objective": _choice("best_val_accuracy", "test_accuracy", "best_val_loss", "reconstruction_loss"),
    "trainer.threads": ((lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024)),
                        "auto or an integer from 1 to 1024"),
    "trainer.early_stopping.monitor": _choice("val_loss", "val_accuracy", "loss", "accuracy"),
    # model families (keys present in the chosen family only)
    "model.depth": _number(1, 500, integer=True),
    "model.units": _number(1, 100_000, integer=True),
    "model.widths": _int_list(1, 100_000, nullable=True),
    "model.filters": _int_list(1, 100_000),
    "model.convs_per_block": _number(1, 50, integer=True),
    "model.kernel_size": _number(1, 31, integer=True),
    "model.padding": _choice("same", "valid"),
    "model.pool": _choice("max", "avg", "none"),
    "model.global_pool": _choice("avg", "flatten"),
    "model.head_units": _int_list(1, 100_000, empty=True),
    "model.stages": _number(1, 8, integer=True),
    "model.blocks_per_stage": _number(1, 100, integer=True),
    "model.width": _number(1, 4096, integer=True),
    "model.input_size": _int_list(1, 2048, nullable=True),
    "model.weights": ((lambda v: v is None or (isinstance(v, str) and v != "")), "imagenet, null or a file path"),
    "model.arch": ((lambda v: isinstance(v, str) and v.isidentifier()), "a keras.applications model name"),
    "task": _choice(*TASKS),
    "transfer.reuse_layers": _number(1, integer=True, nullable=True),
    "transfer.freeze_epochs": _number(0, integer=True),
    "transfer.finetune_lr": _number(0, lo_open=True, nullable=True),
    "autoencoder.loss": _choice("mse", "binary_crossentropy"),
    "autoencoder.examples_plot": _number(1, 50, integer=True),
    "lr_find.start_lr": _number(0, lo_open=True),
    "lr_find.end_lr": _number(0, lo_open=True),
    "lr_find.epochs": _number(0, 1000, lo_open=True),
    "lr_find.stop_factor": _number(1, lo_open=True),
    "data.name": _choice(*DATASETS),
    "data.valid_split": _COUNT_OR_FRACTION,
    "data.test_split": _COUNT_OR_FRACTION,
    "data.label_mode": _choice("fine", "coarse"),
    "data.color_mode": _choice("rgb", "grayscale"),
    "data.train_size": _number(1, integer=True, nullable=True),
    "data.valid_size": _number(1, integer=True, nullable=True),
    "data.test_size": _number(1, integer=True, nullable=True),
    "data.split_seed": SEED,
    "data.synthetic.num_classes": _number(2, 255, integer=True),
    "data.synthetic.image_shape": _int_list(1, 512),
    "data.synthetic.train_examples": _number(2, 2_000_000, integer=True),
    "data.synthetic.test_examples": _number(1, 2_000_000, integer=True),
    "data.synthetic.noise": _number(0),
    "logger.name": _choice(*sorted(p.stem for p in (CONF_DIR / "logger").glob("*.yaml"))),
    "logger.log_model": BOOL,
    "logger.experiment": ((lambda v: isinstance(v, str) and v.strip() != ""), "a non-empty name"),
    "logger.tracking_uri": ((lambda v: v is None or (isinstance(v, str) and v.strip() != "")), "a URI or null"),
    "augment.layers": ((lambda v: isinstance(v, ListConfig) and all(isinstance(i, DictConfig) and "_target_" in i
                                                                     for i in v)),
                       "a list of layers, each with a _target_ (see conf/augment/)"),
}
TOP_LEVEL_RULES = ("task",)


@lru_cache(maxsize=None)
def required_groups() -> tuple:
    """The groups conf/config.yaml's defaults list names without `optional`: the run is composed with
    one option of each, so `~GROUP` is refused (check_choices), whatever the group."""
    entries = OmegaConf.load(CONF_DIR / "config.yaml").defaults
    return tuple(key.split("@")[0] for entry in entries if isinstance(entry, DictConfig)
                 for key in entry if " " not in key)  # "optional experiment", "override hydra/...": not required


# Sections a run needs besides its groups (`~transfer` is refused): read when validating, since a
# broken install without conf/ must still get its one line.
REQUIRED_SECTIONS = ("transfer", "lr_find", "autoencoder", "task")
# Groups whose keys are not checked against a class: the keys their options may have.
PLAIN_GROUP_KEYS = {"augment": ("layers",)}
OPTIONAL_KEYS_OF = ("model", "logger", "augment")  # a key of another option, or of none (~augment.layers)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value is unknown or out of range. Needs no
    TensorFlow; `check_targets` (after the import) checks the keys against the Keras classes."""
    for key in (*required_groups(), *REQUIRED_SECTIONS):
        if key not in cfg or (key != "task" and not isinstance(cfg.get(key), DictConfig)):
            raise ConfigError(f"{key}: missing (removed with ~{key}?); a run needs it"
                              + (f": choose one with {key}=OPTION" if (CONF_DIR / key).is_dir() else ""))
    check_keys(cfg)
    check_allowed_targets(cfg)
    for group in KERAS_GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        for key in node:
            if key in RULES:
                _check(f"{group}.{key}", node[key], RULES[key])
    _check_plain_group_keys(cfg)
    for full_key, rule in RULES.items():
        parent, _, leaf = full_key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if node is None or (parent in OPTIONAL_KEYS_OF and leaf not in node):  # another family's key, no synthetic
            continue
        if "." in full_key or full_key in TOP_LEVEL_RULES:
            _check(full_key, OmegaConf.select(cfg, full_key), rule)
    if cfg.data.name == "synthetic" and cfg.data.get("synthetic") is None:
        raise ConfigError("data.synthetic: missing; use data=synthetic to get its settings")
    if cfg.trainer.resume and cfg.task != "train":
        raise ConfigError(f"trainer.resume=true: only task=train runs can be resumed (task={cfg.task})")
    _validate_classes(cfg.data)
    _validate_transfer(cfg)
    check_network_keys(cfg)


# The keys whose values reach the network (README, "Bad input"): a download's base URL, MLflow's server.
NETWORK_KEYS = ("data.url", "logger.tracking_uri")
_INTERPOLATION = re.compile(r"\$\{\s*([^${}:]+?)\s*(:[^${}]*)?\}")
_HARMLESS_RESOLVERS = ("now", "hydra")  # a time stamp, Hydra's own settings


def check_network_keys(cfg: DictConfig) -> None:
    """A preset decides what to train, not where data goes: a URL a config writes may not carry a value
    read from the environment or a file (`http://HOST/${oc.env:SECRET}/` would send the secret to HOST).
    A whole URL taken from one variable (`${oc.env:MIRROR}`) is the user's own choice of destination and
    is allowed. The refusal shows the config's text, never the resolved value."""
    for key in NETWORK_KEYS:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent)
        if not isinstance(node, DictConfig) or leaf not in node:
            continue
        raw = node._get_node(leaf)._value()
        if isinstance(raw, str) and _reads_outside(cfg, raw, whole_ok=True):
            raise ConfigError(f"{key}={raw}: a URL may not embed a value read from the environment or a file (it "
                              f"would be sent to that server); write the URL out, or take all of it from one "
                              f"variable: {key}='${{oc.env:NAME}}'")


def _reads_outside(cfg: DictConfig, raw: str, whole_ok: bool = False, depth: int = 0) -> bool:
    """Whether the unresolved text `raw` takes any part of its value from outside the config (a resolver
    such as oc.env or oc.decode), following references to other keys; `whole_ok`: a text that is one
    resolver call and nothing else is the user's whole value, not an embedded one."""
    if "${" not in raw or depth > 20:
        return depth > 20
    whole = _INTERPOLATION.fullmatch(raw.strip())
    if "${" in _INTERPOLATION.sub("", raw):  # nested interpolations: not read here, so not trusted
        return True
    for m in _INTERPOLATION.finditer(raw):
        name, args = m.group(1), m.group(2)
        if args is not None:  # a resolver call
            if name not in _HARMLESS_RESOLVERS and not (whole_ok and whole is not None):
                return True
            continue
        target = OmegaConf.select(cfg, name.lstrip("."), throw_on_missing=False)
        parent, _, leaf = name.lstrip(".").rpartition(".")
        holder = OmegaConf.select(cfg, parent) if parent else cfg
        value = holder._get_node(leaf)._value() if isinstance(holder, DictConfig) and leaf in holder else target
        if isinstance(value, str) and _reads_outside(cfg, value, whole_ok=whole_ok and whole is not None,
                                                     depth=depth + 1):
            return True
    return False


def _check_plain_group_keys(cfg: DictConfig) -> None:
    """Keys of groups that no class checks: an option without `_target_` (schedule=constant,
    regularizer=none, normalization=none) takes only its builder's keys, augment only `layers`,
    a logger only its YAML's keys (`+schedule.epochs=1` would otherwise be ignored)."""
    allowed = {g: BUILDER_KEYS.get(g, ()) for g in KERAS_GROUPS}
    allowed.update(PLAIN_GROUP_KEYS)
    logger = cfg.get("logger")
    if isinstance(logger, DictConfig) and logger.get("name") in options("logger"):
        allowed["logger"] = tuple(OmegaConf.load(CONF_DIR / "logger" / f"{logger.name}.yaml").keys())
    for group, keys in allowed.items():
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" in node:
            continue
        for key in node:
            if key not in keys:
                raise ConfigError(f"{group}.{key}: unknown key{did_you_mean(f'{group}.{key}', [f'{group}.{k}' for k in keys])}"
                                  f" (the chosen {group} option takes {', '.join(keys) or 'no keys'})")


def check_choices(overrides, search_dirs=()) -> None:
    """Each `GROUP=OPTION` override names an option of conf/GROUP/ (or of a --config-dir in
    `search_dirs`): Hydra silently skips an unknown option of an optional group (experiment=,
    hparams_search=), so a typo would run the defaults. No `~GROUP` removes a required group."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    required = required_groups()
    for parsed in OverridesParser.create().parse_overrides([str(o) for o in overrides or ()]):
        # `~GROUP` drops the group from the defaults list, but a typed group's schema (data, trainer)
        # fills the composed config with its defaults again: only the override says it was removed.
        if parsed.is_delete() and parsed.key_or_group in required:
            group = parsed.key_or_group
            raise ConfigError(f"{parsed.input_line}: {group} cannot be removed, a run needs one; choose one with "
                              f"{group}=OPTION{f' ({group}=none turns it off)' if 'none' in options(group) else ''}"
                              f"; valid {group} options: {', '.join(options(group))}")
    dirs = [CONF_DIR, *(Path(d) for d in search_dirs)]
    for override in overrides or ():
        key, eq, value = str(override).lstrip("+").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if not eq or key.startswith("~") or "." in key or "/" in key or value == "null" \
                or not (CONF_DIR / key).is_dir():
            continue
        if not any((d / key / f"{value}.yaml").is_file() for d in dirs):
            raise ConfigError(unknown_option(key, value))


def unknown_option(group: str, name: str, valid=None) -> str:
    valid = valid or options(group)
    return f"{group}={name}: unknown option{did_you_mean(name, valid)}; valid {group} options: {', '.join(valid)}"


def check_keys(cfg: DictConfig) -> None:
    """Unknown keys are refused, `+` additions included (Hydra lets `+trainer.epoch=3` through
    silently): the typed groups hold only their dataclass's fields. The class-configured groups
    and the model are checked against their targets' parameters by `check_targets`."""
    import dataclasses
    import typing

    def walk(node, cls, prefix):
        hints = typing.get_type_hints(cls)
        for key in node:
            full = f"{prefix}{key}"
            if key not in hints:
                if prefix == "" and key == "hydra":
                    continue
                raise ConfigError(f"{full}: unknown key{did_you_mean(full, [prefix + k for k in hints])}")
            sub = next((t for t in (hints[key], *typing.get_args(hints[key])) if dataclasses.is_dataclass(t)), None)
            child = node._get_node(key)
            if sub is not None and isinstance(child, DictConfig) and not child._is_none():
                walk(child, sub, full + ".")

    walk(cfg, RootConf, "")
    model = cfg.get("model")
    if not isinstance(model, DictConfig) or "_target_" not in model:
        raise ConfigError("model: no family chosen; use model=mlp|cnn|resnet|backbone")


def check_allowed_targets(cfg: DictConfig) -> None:
    """Every `_target_` in the config, nested ones included, must be allowlisted: a shared preset
    cannot make a run call pandas.read_pickle or os.system."""
    extra = tuple(cfg.get("allow_targets") or ())

    def walk(node, path):
        if isinstance(node, (DictConfig, ListConfig)) and node._is_none():
            return
        if isinstance(node, DictConfig):
            for key in node:
                child = node._get_node(key)
                if key == "_target_":
                    target = str(child._value())
                    if not any(target == a or (a.endswith(".") and target.startswith(a))
                               for a in ALLOWED_TARGETS + extra):
                        raise ConfigError(f"{path}_target_={target}: not an allowed target (configs may name "
                                          "Keras layers, initializers, optimizers, schedules, regularizers, "
                                          "constraints, applications and dnn_train's builders; add it to "
                                          "allow_targets=[...] if you trust it)")
                else:
                    walk(child, f"{path}{key}.")
        elif isinstance(node, ListConfig):
            for i, item in enumerate(node):
                walk(node._get_node(i), f"{path}{i}.")

    for key in cfg:
        if key != "hydra":
            walk(cfg._get_node(key), f"{key}.")


def check_targets(cfg: DictConfig) -> None:
    """Each key of a class-configured group must be a parameter of its `_target_` (imports Keras:
    called once TensorFlow is loaded). A preset's key that does not fit the option a user chose
    (experiment=vanishing_gradients sets initializer.stddev; initializer=lecun_normal takes no
    stddev) is named with where it came from."""

    from hydra.utils import get_method

    for group in (*KERAS_GROUPS, "model"):
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or not node.get("_target_"):
            continue
        skip = set(BUILDER_KEYS.get(group, ())) | ({"_target_", "name", "init_from"} if group == "model" else {"_target_"})
        try:
            target = get_method(node._target_)
        except Exception as ex:  # noqa: BLE001
            raise ConfigError(f"{group}._target_={node._target_}: cannot be imported ({ex})") from None
        accepted = _parameters(target)
        if accepted is None:
            continue
        if group == "schedule":
            accepted |= {k.removesuffix("_steps") + "_epochs" for k in accepted} | {"boundaries_epochs"}
        unknown = [key for key in node if key not in skip and key not in accepted]
        if unknown and not _constructs(node, group):  # some classes take more through **kwargs (alpha)
            raise ConfigError(_misfit(cfg, group, unknown[0], node._target_, sorted(accepted - {"kwargs", "name"})))


def _constructs(node: DictConfig, group: str) -> bool:
    """Whether the class accepts the node's keys (it may take deprecated names, such as
    LeakyReLU's alpha, through **kwargs)."""
    if group in ("model", "schedule"):  # built with arguments only the run knows
        return False
    try:
        make(keras_kwargs(node, group)[0])
        return True
    except Exception:  # noqa: BLE001 - any refusal of the arguments
        return False


def _parameters(target) -> Optional[set]:
    """The names of the keyword parameters `target` accepts (for a class, along its __init__ chain)."""
    return set(_keyword_parameters(target))


def _keyword_parameters(target) -> dict:
    """{name: inspect.Parameter} of the keywords `target` takes: for a class, along its __init__
    chain as far as **kwargs passes them on (the nearest class's default first)."""
    import inspect

    classes = [c for c in target.__mro__ if "__init__" in vars(c)] if inspect.isclass(target) else [target]
    found: dict = {}
    for c in classes:
        params = inspect.signature(c.__init__ if inspect.isclass(target) else c).parameters
        for n, p in params.items():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self":
                found.setdefault(n, p)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return found  # Keras' base classes take **kwargs and check them themselves: the named ones are the API


def _misfit(cfg: DictConfig, group: str, key: str, target: str, accepted: list) -> str:
    origin = ""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        preset = hc.runtime.choices.get("experiment")
        option = hc.runtime.choices.get(group)
        if preset and not any(o.split("=", 1)[0].lstrip("+~") == f"{group}.{key}" for o in hc.overrides.task):
            origin = f" (set by experiment={preset}, which does not fit {group}={option}; drop {group}={option} " \
                     f"or set a preset of your own)"
    except ValueError:  # no Hydra context (the Python API)
        pass
    return f"{group}.{key}: not a parameter of {target}{did_you_mean(key, accepted)}{origin}; " \
           f"its parameters: {', '.join(accepted)}"


def did_you_mean(name: str, candidates) -> str:
    """' (did you mean X?)' for the closest candidates, or '': an abbreviation or a prefix of a
    candidate's last part first (optimizer.lr -> optimizer.learning_rate), else a close spelling."""
    import difflib

    by_leaf = {str(c).rsplit(".", 1)[-1].lower(): str(c) for c in candidates}
    leaf = str(name).rsplit(".", 1)[-1].lower()
    close = [c for k, c in by_leaf.items() if k != leaf and (_initials(k) == leaf or (len(leaf) > 1 and k.startswith(leaf)))]
    if not close:
        close = [by_leaf[k] for k in difflib.get_close_matches(leaf, list(by_leaf), n=2, cutoff=0.75)]
    return f" (did you mean {' or '.join(close[:2])}?)" if close else ""


def _initials(key: str) -> str:
    parts = key.split("_")
    return "".join(p[0] for p in parts if p) if len(parts) > 1 else ""


def _validate_classes(data: DictConfig) -> None:
    if data.classes is not None and data.binary is not None:
        raise ConfigError("data.classes and data.binary: choose one (binary=[NEG,POS] is already a subset)")
    if data.binary is not None and len(data.binary) != 2:
        raise ConfigError(f"data.binary={_show(data.binary)}: expected two classes [NEG,POS]")
    if data.classes is not None and len(data.classes) < 2:
        raise ConfigError(f"data.classes={_show(data.classes)}: expected at least two classes")


def _validate_transfer(cfg: DictConfig) -> None:
    init_from = cfg.model.get("init_from")
    if init_from is None:
        for key in ("freeze_epochs", "reuse_layers", "finetune_lr"):
            if cfg.transfer[key] and not cfg.model.get("weights"):
                raise ConfigError(f"transfer.{key} needs model.init_from=RUN_DIR (the earlier run to reuse "
                                  "layers of) or a pretrained model=backbone")
        return
    source_file(init_from)  # raises if missing or not a run
    if cfg.transfer.freeze_epochs >= cfg.trainer.epochs and cfg.transfer.finetune_lr is not None:
        raise ConfigError(f"transfer.freeze_epochs={cfg.transfer.freeze_epochs} leaves no fine-tuning epochs "
                          f"of trainer.epochs={cfg.trainer.epochs}; raise trainer.epochs")


def source_file(init_from: str, key: str = "model.init_from") -> Path:
    """The .keras file that `model.init_from` names (a run directory or the file itself), checked to be
    a readable zip archive no larger than memory: Keras' load_model calls anything else "File not found"."""
    path, where = Path(str(init_from)).expanduser(), f"{key}={init_from}"
    if not path.exists():
        raise ConfigError(f"{where}: no such file or directory; give an earlier run's directory or its model.keras")
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise ConfigError(f"{where}: not a dnn_train run (no model.keras in it; did that run finish?)")
        path = path / "model.keras"
    elif not path.is_file():
        raise ConfigError(f"{where}: not a regular file or a run directory")
    elif path.suffix != ".keras":
        raise ConfigError(f"{where}: not a .keras model file")
    try:
        with open(path, "rb") as f:
            is_zip, st = zipfile.is_zipfile(f), os.fstat(f.fileno())
    except OSError as ex:
        raise ConfigError(f"{where}: not a readable Keras model (cannot open {path.name}: {ex.strerror})") from None
    size = f"{st.st_size / 1e9:.1f} GB" if st.st_size >= 1e8 else f"{st.st_size} bytes"
    if not is_zip:
        sparse = ", a sparse file: mostly holes" if st.st_blocks * 512 < st.st_size // 2 else ""
        raise ConfigError(f"{where}: not a readable Keras model ({path.name}: {size}{sparse}, not a zip archive, "
                          "which a .keras file is)")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if st.st_size > memory:
        raise ConfigError(f"{where}: too large to load ({path.name}: {size}, more than this machine's "
                          f"{memory / 1e9:.1f} GB of memory)")
    return path


def chapter_warnings(cfg: DictConfig) -> list[str]:
    """Combinations that chapter 11 says defeat their purpose: warned about, not refused."""
    selu = cfg.activation.get("activation") == "selu"
    init = cfg.initializer
    lecun = init.get("_target_", "").endswith("VarianceScaling") and init.get("scale") == 1.0 \
        and init.get("mode") == "fan_in"
    alpha_dropout = str(cfg.regularizer.get("_target_", "")).endswith("AlphaDropout")
    out = []
    if selu and cfg.normalization.get("position", "none") != "none":
        out.append("SELU with batch normalization: BN breaks self-normalization (use normalization=none)")
    if selu and not lecun:
        out.append("SELU needs LeCun initialization to self-normalize (initializer=lecun_normal)")
    if selu and not cfg.data.standardize:
        out.append("SELU needs standardized inputs to self-normalize (data.standardize=true)")
    if alpha_dropout and not selu:
        out.append("alpha_dropout is meant for SELU nets; use regularizer=dropout with other activations")
    if cfg.trainer.mc_samples and cfg.regularizer.get("attach") != "dropout_layer":
        out.append("trainer.mc_samples without dropout: every MC pass is the same (regularizer=dropout)")
    return out


def _check(key: str, value: Any, rule) -> None:
    ok, desc = rule
    if isinstance(value, DictConfig) or not ok(value):
        raise ConfigError(f"{key}={_show(value)}: expected {desc}")


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def make(node, **kwargs):
    """hydra.utils.instantiate, passing lists and dicts to the object as plain Python ones: a Keras
    object holding an OmegaConf ListConfig cannot be saved (schedule=piecewise's values did that).
    Every Keras-class group is instantiated here, so numbers are taken as users type them here:
    an integer for a parameter whose default is a float becomes that float (`floats_as_declared`)."""
    from hydra.utils import instantiate

    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    return instantiate(floats_as_declared({**node, **kwargs}), _convert_="all")


def floats_as_declared(node):
    """`node` (a dict or list, nested `_target_`s included) with each integer given for a float
    parameter of its target (a float default, or a `float` annotation) made a float. Ours: Keras
    checks `isinstance(momentum, float)` and refuses momentum=0, and Hydra passes what YAML says."""
    from hydra.utils import get_object

    if isinstance(node, list):
        return [floats_as_declared(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: floats_as_declared(value) for key, value in node.items()}
    try:
        params = _keyword_parameters(get_object(node["_target_"])) if node.get("_target_") else {}
    except Exception:  # noqa: BLE001 - not importable: instantiate says why
        params = {}
    floats = {n for n, p in params.items() if type(p.default) is float or p.annotation in (float, "float")}
    return {key: float(value) if key in floats and type(value) is int else value for key, value in node.items()}


def keras_kwargs(node: DictConfig, group: str) -> tuple[dict, dict]:
    """Split a Keras-class group node into (kwargs for hydra.utils.instantiate, builder settings)."""
    cfg = OmegaConf.to_container(node, resolve=True)
    builder = {k: cfg.pop(k) for k in BUILDER_KEYS.get(group, ()) if k in cfg}
    return cfg, builder


# ---------------------------------------------------------------- one-line error messages
def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def option_summaries() -> dict[str, list[tuple[str, bool, str]]]:
    """{group: [(option, is_default, first comment line of its YAML)]}, read from conf/ as text."""
    defaults = dict(re.findall(r"^  - (?:optional )?(\w+): (\S+)", (CONF_DIR / "config.yaml").read_text(), re.M))
    summaries = {}
    for group in sorted(defaults):
        rows = []
        for name in options(group):
            comments = [ln for ln in (CONF_DIR / group / f"{name}.yaml").read_text().splitlines()
                        if ln.startswith("#") and not ln.startswith("# @package")][:1]
            rows.append((name, defaults[group] == name, comments[0].lstrip("# ").strip() if comments else ""))
        summaries[group] = rows
    return summaries


def known_keys(prefix: str) -> list[str]:
    """The full keys under `prefix` (e.g. "optimizer"): a typed group's fields, or the keys of the
    option chosen on the command line (else the default) of a class-configured group."""
    import sys
    import typing

    import yaml

    node = RootConf
    for part in prefix.split("."):
        hints = typing.get_type_hints(node) if isinstance(node, type) else {}
        node = next((t for t in (hints.get(part), *typing.get_args(hints.get(part))) if isinstance(t, type)
                     and hasattr(t, "__dataclass_fields__")), None)
        if node is None:
            break
    if node is not None:
        return [f"{prefix}.{k}" for k in typing.get_type_hints(node)]
    group = prefix.split(".")[0]
    chosen = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(f"{group}=")), None)
    chosen = chosen or dict(re.findall(r"^  - (?:optional )?(\w+): (\S+)", (CONF_DIR / "config.yaml").read_text(),
                                       re.M)).get(group)
    path = CONF_DIR / group / f"{chosen}.yaml"
    try:
        keys = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [f"{group}.{k}" for k in keys if k != "_target_"] if "." not in prefix else []


def describe_error(ex: BaseException) -> Optional[str]:
    """One line for a configuration error (Hydra, OmegaConf or ours); None if it is not one."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(ex, ConfigError):
        return str(ex)
    if isinstance(ex, AssertionError):  # OmegaConf's, while Hydra applies an override under a null key
        tb = ex.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "_apply_overrides_to_config":
                override = tb.tb_frame.f_locals.get("override")
                key = str(getattr(override, "key_or_group", "") or "")
                parent = key.rpartition(".")[0] or key
                return f"{getattr(override, 'input_line', None) or override}: cannot be set, {parent} is null in " \
                       "this config (data.synthetic.* needs data=synthetic)"
            tb = tb.tb_next
    if isinstance(ex, HydraException) and isinstance(ex.__cause__, ConfigError):  # e.g. raised by a Hydra plugin
        return str(ex.__cause__)
    if isinstance(ex, MissingConfigException):
        m = re.search(r"Could not find '([^'/]+)/([^']+)'", str(ex))
        if m:
            group, name = m.groups()
            return unknown_option(group, name, ex.options)
    text = f"{ex} {ex.__cause__ or ''}"
    m = re.search(r"Could not override '([\w.]+)'", text)
    if m and "not in" in text:
        key = m.group(1)
        return f"{key}: unknown key{did_you_mean(key, known_keys(key.rsplit('.', 1)[0]))} (see the group's keys " \
               "with --cfg job)"
    m = re.search(r"Error merging override ([\w.]+=\S*).*?(Value '.*?' .*?could not be converted to \w+)", text, re.S)
    if m:
        return f"{m.group(1)}: {m.group(2)}"
    if isinstance(ex, (HydraException, OmegaConfBaseException)):
        parts = []
        for e in (ex, ex.__cause__):
            if e is None:
                continue
            lines = [ln.strip() for ln in str(e).splitlines()]
            keep = [ln for ln in lines if ln and not ln.startswith(("full_key:", "object_type=", "Config search path", "provider=", "reference_type="))]
            keep = [ln for ln in keep if not ln.startswith("To append to your config")]
            parts.extend(keep[:2])
        msg = "; ".join(dict.fromkeys(parts))  # de-duplicated, in order
        return msg or type(ex).__name__
    return None
