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
import warnings
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
# The one allowlist of what a config may call (the gate, `check_callables`, checks every `_target_`,
# nested and in the hydra: section, and every logging `()` and `class` against it before anything is
# instantiated). An entry ending in '.' is a module whose module-level names may be called (Keras'
# public API modules hold only what Keras exports); any other entry is one class or function. Not
# keras.saving, keras.utils or anything else that reads files or runs code. More: allow_targets.
ALLOWED_TARGETS = tuple(f"keras.{m}." for m in (
    "layers", "initializers", "optimizers", "optimizers.schedules", "regularizers", "constraints", "activations",
    "applications", "losses", "metrics")) + (
    "keras.callbacks.ReduceLROnPlateau", "keras.callbacks.EarlyStopping",
    *(f"dnn_train.models.{family}.build" for family in ("mlp", "cnn", "resnet", "backbone")),
    "dnn_train.optim.OneCycle", "dnn_train.optim.PowerDecay",
    # the hydra: section: our callbacks, the sweepers and launchers we ship, Optuna's samplers and pruners
    "dnn_train.record.RunDirs", "dnn_train.sweep.SweepSummary",
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.dnn_train_batched.batched_sweeper.BatchedSweeper",
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "hydra_plugins.dnn_train_optuna.optuna_sweeper.OptunaPruningSweeper",
    *(f"optuna.samplers.{c}" for c in ("TPESampler", "RandomSampler", "CmaEsSampler", "GPSampler", "QMCSampler",
                                       "NSGAIISampler", "NSGAIIISampler", "GridSampler", "BruteForceSampler")),
    *(f"optuna.pruners.{c}" for c in ("MedianPruner", "NopPruner", "HyperbandPruner", "SuccessiveHalvingPruner",
                                      "PercentilePruner", "ThresholdPruner", "PatientPruner", "WilcoxonPruner")),
)
# Inside those modules, what runs code or a graph from a file: keras.layers.TFSMLayer loads a SavedModel.
REFUSED_TARGETS = ("keras.layers.TFSMLayer",)
# What a logging config (hydra.job_logging, hydra.hydra_logging) may name as a handler's, formatter's
# or filter's `class` or `()`: handlers that print, or write a file in the run directory (LOG_STREAMS,
# and every `filename` under ${hydra.runtime.output_dir}/).
ALLOWED_LOGGING = ("logging.StreamHandler", "logging.NullHandler", "logging.FileHandler",
                   "logging.handlers.RotatingFileHandler", "logging.handlers.TimedRotatingFileHandler",
                   "logging.handlers.WatchedFileHandler", "logging.Formatter", "logging.Filter",
                   "colorlog.ColoredFormatter")
LOG_STREAMS = ("ext://sys.stdout", "ext://sys.stderr")
LOGGING_SECTIONS = ("job_logging", "hydra_logging")


from dnn_train.data import dataset
from dnn_train.data.catalog import COUNT_OR_FRACTION, DATASETS, DataConf
from dnn_train.errors import ConfigError


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
    distribution: Optional[str] = None  # null | data_parallel (JAX backend: dnn_train/distribute.py)
    devices: Optional[List[int]] = None  # data_parallel's devices, indices into keras.distribution.list_devices(); null: all


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
class RunConf:
    """A run's label (dnn_train/provenance.py): not configuration, so runs differing only here are repeats."""
    name: Optional[str] = None  # results.json "name", the MLflow run name, TensorBoard's HParams
    tags: List[str] = field(default_factory=list)  # results.json "tags"; `report --tag T` / `--group-by tag`
    notes: Optional[str] = None  # free text: results.json "notes", MLflow's run description


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
    run: RunConf = field(default_factory=RunConf)
    allow_targets: List[str] = field(default_factory=list)  # more callables (docs/guides/bad-input.md); command line only


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
    "trainer.distribution": _choice(None, "data_parallel"),
    "trainer.devices": ((lambda v: v is None or (_int_list(0, 65535)[0](v) and len(set(v)) == len(v))),
                        "null (all devices) or a non-empty list of distinct device indices >= 0"),
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
    "data.valid_split": COUNT_OR_FRACTION,
    "data.train_size": _number(1, integer=True, nullable=True),
    "data.valid_size": _number(1, integer=True, nullable=True),
    "data.test_size": _number(1, integer=True, nullable=True),
    "data.split_seed": SEED,
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
    if cfg.trainer.resume and cfg.task != "train":
        raise ConfigError(f"trainer.resume=true: only task=train runs can be resumed (task={cfg.task})")
    dataset(cfg.data)  # the chosen dataset's own keys (dnn_train/data/catalog.py)
    _validate_classes(cfg.data)
    _validate_transfer(cfg)
    _validate_distribution(cfg.trainer)
    check_network_keys(cfg)


# The keys whose values reach the network (docs/guides/bad-input.md): a download's base URL, MLflow's server.
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
                walk(child, OmegaConf.get_type(child), full + ".")  # a dataset's keys: its subclass

    walk(cfg, RootConf, "")
    model = cfg.get("model")
    if not isinstance(model, DictConfig) or "_target_" not in model:
        raise ConfigError("model: no family chosen; use model=mlp|cnn|resnet|backbone")


def check_callables(cfg: DictConfig, trusted=()) -> None:
    """The gate: raise ConfigError unless everything the composed config `cfg` (its hydra: section
    included) would call is allowed: every `_target_` names an ALLOWED_TARGETS entry or a `trusted`
    one (allow_targets), exactly, as a module-level name (not `X.from_config`); no `safe_mode` is
    turned off; the logging configs name only ALLOWED_LOGGING classes and factories, print to stdout
    or stderr and write files only inside the run directory. Run by `install_gate` on every config
    Hydra composes, before Hydra instantiates its callbacks or configures logging."""
    def walk(node, path):
        if isinstance(node, DictConfig) and not node._is_none():
            for key in node:
                child, where = node._get_node(key), f"{path}{key}"
                if where in (f"hydra.{s}" for s in LOGGING_SECTIONS):
                    _check_logging(cfg, where, trusted)
                elif key == "_target_" and child._value() is not None:
                    _check_target(where, child._value(), ALLOWED_TARGETS, trusted)
                elif key == "safe_mode" and child._value() is not True:
                    raise ConfigError(f"{where}={_show(child._value())}: Keras' safe mode stays on (a config "
                                      "cannot turn it off)")
                else:
                    walk(child, where + ".")
        elif isinstance(node, ListConfig) and not node._is_none():
            for i in range(len(node)):
                walk(node._get_node(i), f"{path}{i}.")

    walk(cfg, "")


def _check_target(where: str, target, allowed, trusted) -> None:
    """A target is a module-level class or function named exactly: an allowlist entry, or a name
    in an entry's module ('keras.layers.' allows keras.layers.Dense, not keras.layers.Lambda.from_config)."""
    target = str(target)
    module, _, name = target.rpartition(".")
    ok = re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", target) is not None and target not in REFUSED_TARGETS and (
        target in allowed or module + "." in allowed or target in trusted
        or (module + "." in trusted and _defined_in(module, name)))
    if ok:
        return
    inside = next((a for a in (*allowed, *trusted) if a.endswith(".") and target.startswith(a)
                   and "." in target[len(a):]), None)
    why = f"an attribute of {inside}{target[len(inside):].split('.')[0]}; a target is a module-level class or " \
          "function" if inside else f"{target} loads and runs a saved graph" if target in REFUSED_TARGETS else \
        "configs may name Keras layers, initializers, optimizers, schedules, regularizers, constraints, " \
        "applications, dnn_train's builders and callbacks, Hydra's and dnn_train's sweepers and launchers, " \
        "Optuna's samplers and pruners" if allowed is ALLOWED_TARGETS else \
        f"a logging config may name {', '.join(ALLOWED_LOGGING)}"
    raise ConfigError(f"{where}={target}: not an allowed target ({why}; add it to allow_targets=[...] on the "
                      "command line if you trust it)")


def _defined_in(module: str, name: str) -> bool:
    """Whether module.name is a class or function that module defines or exports (__all__), not one
    it imported (a trusted mypackage.copyfile is shutil's). Imports the module: the user trusts it."""
    import importlib
    import inspect

    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - not a module: nothing in it is trusted
        return False
    obj = vars(mod).get(name)
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and \
        (getattr(obj, "__module__", None) == module or name in getattr(mod, "__all__", ()))


def _check_logging(cfg: DictConfig, where: str, trusted) -> None:
    """A logging config, as Hydra will hand it to logging.config.dictConfig (resolved, with the run
    directory standing in as a placeholder): its `class` and `()` callables, its `ext://` objects,
    no `.` (attributes set on a handler), and each `filename` inside the run directory."""
    import copy
    import os
    import uuid

    from omegaconf import open_dict, read_write

    run_dir = f"/{uuid.uuid4().hex}"  # the run directory is not known before the run; a path nothing else names
    probe = copy.deepcopy(cfg)
    with read_write(probe), open_dict(probe):
        probe.hydra.runtime.output_dir = run_dir
    node = OmegaConf.select(probe, where)
    if node is None:  # hydra/job_logging=none: Hydra's own default console
        return
    try:
        section = OmegaConf.to_container(node, resolve=True)
    except Exception as ex:  # noqa: BLE001 - e.g. ${hydra:...}, which has no value before the run
        raise ConfigError(f"{where}: cannot be checked before the run ({describe_error(ex) or ex}); write the run "
                          "directory as ${hydra.runtime.output_dir}") from None

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}"
                if key in ("class", "()"):
                    _check_target(here, value, ALLOWED_LOGGING, trusted)
                elif key == ".":
                    raise ConfigError(f"{here}: a logging config cannot set attributes on a handler")
                elif key == "filename":
                    name = os.path.normpath(str(value))
                    if not name.startswith(run_dir + os.sep) or ".." in str(value).split("/"):
                        raise ConfigError(f"{here}={str(value).replace(run_dir, '${hydra.runtime.output_dir}')}: "
                                          "a log file must be inside the run directory "
                                          "(${hydra.runtime.output_dir}/NAME)")
                walk(value, here)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}.{i}")
        elif isinstance(node, str) and node.startswith("ext://") and node not in LOG_STREAMS:
            raise ConfigError(f"{path}={node}: a logging config may name only {' or '.join(LOG_STREAMS)}")

    walk(section, where)


def command_line_allow_targets(cfg: DictConfig, overrides) -> tuple:
    """allow_targets, if the command line (or the Python API's overrides) set it; a config file that
    sets it is refused: a shared preset cannot allow its own targets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    value = tuple(str(t) for t in (cfg.get("allow_targets") or ()))
    if any(o.key_or_group == "allow_targets" for o in OverridesParser.create().parse_overrides(list(overrides or ()))):
        return value
    if value:
        raise ConfigError(f"allow_targets={list(value)}: set by a config file; only the command line may allow "
                          "targets (allow_targets=[...])")
    return ()


def check_hydra_settings(cfg: DictConfig, overrides) -> None:
    """Hydra settings that dnn_train's run directory and presets rely on, refused in one line before
    Hydra makes any directory: .hydra/ is written by the run itself (record.py), a search path names
    folders that exist, and only the command line sets environment variables for the job's processes
    (a preset's hydra.job.env_set could set LD_PRELOAD)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra = cfg.get("hydra")
    if not isinstance(hydra, DictConfig):
        return
    if hydra.get("output_subdir") is not None:
        raise ConfigError(f"hydra.output_subdir={hydra.output_subdir}: dnn_train writes the run's .hydra/ itself, once "
                          "the directory is the run's; leave hydra.output_subdir null")
    for entry in hydra.get("searchpath") or ():
        scheme, _, where = str(entry).rpartition("://")
        if scheme in ("", "file") and not Path(where).is_dir():
            raise ConfigError(f"hydra.searchpath: {entry} is not a folder")
    typed = {o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides or ()))}
    for key in ("env_set", "env_copy"):
        if (hydra.get("job") or {}).get(key) and not any(k.startswith(f"hydra.job.{key}") for k in typed):
            raise ConfigError(f"hydra.job.{key}: set by a config file; only the command line may set the job's "
                              f"environment (hydra.job.{key}...)")


def install_gate() -> None:
    """Run `check_callables` on every config Hydra composes: Hydra 1.3 composes through
    ConfigLoaderImpl.load_configuration for a run, a multirun's master config, each sweep job (its
    load_sweep_config, in whatever process the launcher runs it) and the compose API, and then
    instantiates callbacks, sweeper and launcher and configures logging. Hydra has no allowlist
    of its own (its target policy only blocks a few names): ours wraps that one method. Called at
    the import of the dnn_train package, so every entry point (and every launcher's worker, which
    unpickles dnn_train's task) has it."""
    import functools

    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    load = ConfigLoaderImpl.load_configuration
    if getattr(load, "dnn_train_gate", False):
        return

    @functools.wraps(load)
    def gated(self, config_name, overrides, *args, **kwargs):
        with warnings.catch_warnings():  # a missing search path is refused below, not warned about
            warnings.filterwarnings("ignore", message=r"provider=.* is not available", category=UserWarning)
            cfg = load(self, config_name, overrides, *args, **kwargs)
        check_callables(cfg, command_line_allow_targets(cfg, overrides))
        check_hydra_settings(cfg, overrides)
        return cfg

    gated.dnn_train_gate = True
    ConfigLoaderImpl.load_configuration = gated


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


def _validate_distribution(t: DictConfig) -> None:
    """What can be said of trainer.distribution before the backend loads (the rest: dnn_train/distribute.py)."""
    if t.devices is not None and t.distribution is None:
        raise ConfigError(f"trainer.devices={_show(t.devices)}: only with trainer.distribution=data_parallel")
    if t.devices is not None:
        check_batch_split(t.batch_size, len(t.devices), f"trainer.devices={_show(t.devices)}")


def check_batch_split(batch_size: int, devices: int, which: str) -> None:
    """The global batch (trainer.batch_size) goes to the devices in equal parts."""
    if batch_size % devices:
        raise ConfigError(f"trainer.batch_size={batch_size}: does not split evenly over {devices} devices "
                          f"({which}); use a multiple of {devices}")


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
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(ex, ConfigError):
        return str(ex)
    frame = _frame(ex, "_apply_overrides_to_config")
    if isinstance(ex, AssertionError) and frame:  # OmegaConf's, while Hydra applies an override under a null key
        override = frame.f_locals.get("override")
        key = str(getattr(override, "key_or_group", "") or "")
        parent = key.rpartition(".")[0] or key
        return f"{getattr(override, 'input_line', None) or override}: cannot be set, {parent} is null in " \
               "this config (data.synthetic.* needs data=synthetic)"
    if _frame(ex, "configure_log"):  # logging.config.dictConfig refused a logging config that passed the gate
        section = "hydra.job_logging" if _frame(ex, "run_job") else "hydra.hydra_logging"
        return f"{section}: {ex}{f' ({ex.__cause__})' if ex.__cause__ else ''}"
    if isinstance(ex, HydraException) and isinstance(ex.__cause__, ConfigError):  # e.g. raised by a Hydra plugin
        return str(ex.__cause__)
    if isinstance(ex, MissingConfigException):
        m = re.search(r"Could not find '([^'/]+)/([^']+)'", str(ex))
        if m:
            group, name = m.groups()
            return unknown_option(group, name, ex.options)
    if isinstance(ex, OverrideParseException) and str(ex).startswith("LexerNoViableAltException"):
        return _unlexable(ex.override)
    text = f"{ex} {ex.__cause__ or ''}"
    m = re.search(r"Could not override '([\w.]+)'", text)
    if m and "not in" in text:
        return _unknown_key(m.group(1))
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


def _frame(ex: BaseException, function: str):
    """The frame of `function` in the traceback of `ex`, or None."""
    tb = ex.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_name != function:
        tb = tb.tb_next
    return tb.tb_frame if tb is not None else None


def _unknown_key(key: str) -> str:
    return f"{key}: unknown key{did_you_mean(key, known_keys(key.rsplit('.', 1)[0]))} (see the group's keys " \
           "with --cfg job)"


def _unlexable(override: str) -> str:
    """An override with a character Hydra's grammar does not take unquoted (optimizer=ädam): named
    as the typo it usually is, like any unknown option or key; a value, with how to quote it."""
    key, eq, value = override.partition("=")
    name = key.lstrip("+~")
    if eq and (CONF_DIR / name).is_dir():
        return unknown_option(name, value)
    if not re.fullmatch(r"[\w./@-]+", name, re.ASCII):
        return _unknown_key(name)
    return f"{override}: Hydra's override grammar takes such characters only in quotes: {key}='{value}'"
