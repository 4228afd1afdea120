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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

TASKS = ("train", "find_lr", "pretrain_autoencoder")
KERAS_GROUPS = ("initializer", "activation", "normalization", "optimizer", "schedule", "regularizer")
# Keys of Keras-class groups that configure our builder rather than the Keras class.
BUILDER_KEYS = {
    "normalization": ("position", "input"),
    "regularizer": ("attach",),
}


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
class ModelConf:
    name: str = "mlp"
    depth: int = 3  # hidden layers
    units: int = 100  # neurons per hidden layer
    widths: Optional[List[int]] = None  # explicit per-layer widths, e.g. [300,100]; overrides depth/units
    init_from: Optional[str] = None  # transfer learning: a run directory or .keras file to reuse layers of


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
    steps_per_execution: int = 64  # with fuse_steps=1: steps per graph call in Keras' own loop
    fuse_steps: int = 64  # K steps fused into one compiled loop (dnn_train/fused.py)
    jit_compile: Any = "auto"  # true | false | auto (XLA on the fused loop; with fuse_steps=1, Keras' choice)
    progress: str = "auto"  # auto (bar on a terminal, a line per epoch otherwise) | bar | line | none
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
    model: ModelConf = field(default_factory=ModelConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
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


ConfigStore.instance().store(name="dnn_train_schema", node=RootConf)


# ---------------------------------------------------------------- value rules (no TF needed)
def _number(lo=None, hi=None, lo_open=False, hi_open=False, integer=False, nullable=False):
    kind = "an integer" if integer else "a number"
    lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
    hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
    what = " and ".join(s for s in (lo_s, hi_s) if s)
    desc = f"{kind}{' ' + what if what else ''}{' or null' if nullable else ''}"

    def check(v):
        if v is None:
            return nullable
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return False
        if isinstance(v, float) and math.isnan(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        if hi is not None and (v >= hi if hi_open else v > hi):
            return False
        return True

    return check, desc


def _choice(*options):
    return (lambda v: v in options), "one of " + ", ".join(map(str, options))


_COUNT_OR_FRACTION = ((lambda v: _number(1, integer=True)[0](v) or _number(0, 1, lo_open=True, hi_open=True)[0](v)),
                      "an integer >= 1 (a count) or a number > 0 and < 1 (a fraction)")  # data.*_split

# Checked wherever the key appears in a Keras-class group, and for the listed full keys.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": _number(0, lo_open=True),
    "max_lr": _number(0, lo_open=True),
    "momentum": _number(0, 1, hi_open=True),
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
    "l1": _number(0),
    "l2": _number(0),
    "max_value": _number(0, lo_open=True),
    "scale": _number(0, lo_open=True),
    "initial_accumulator_value": _number(0),
    "decay_epochs": _number(0, lo_open=True),
    "decay_rate": _number(0, lo_open=True),
    "power": _number(0, lo_open=True),
    "factor": _number(0, 1, lo_open=True, hi_open=True),
    "patience": _number(0, integer=True),
    "div_factor": _number(1, lo_open=True),
    "final_div_factor": _number(1),
    "final_fraction": _number(0, 1, lo_open=True, hi_open=True),
    "max_momentum": _number(0, 1, hi_open=True),
    "min_momentum": _number(0, 1, hi_open=True),
    "mode": _choice("fan_in", "fan_out", "fan_avg"),
    "distribution": _choice("truncated_normal", "untruncated_normal", "uniform"),
    "position": _choice("none", "before", "after"),
    "attach": _choice("none", "kernel_regularizer", "kernel_constraint", "dropout_layer"),
    "nesterov": ((lambda v: isinstance(v, bool)), "true or false"),
    "input": ((lambda v: isinstance(v, bool)), "true or false"),
    # fixed-key groups: their types come from the dataclasses, their ranges from here
    "trainer.epochs": _number(1, integer=True),
    "trainer.batch_size": _number(1, integer=True),
    "trainer.steps_per_execution": _number(1, integer=True),
    "trainer.fuse_steps": _number(1, integer=True),
    "trainer.early_stopping.patience": _number(0, integer=True),
    "trainer.mc_samples": _number(0, integer=True),
    "trainer.diagnostics_batch": _number(1, integer=True),
    "trainer.jit_compile": _choice(True, False, "auto"),
    "trainer.progress": _choice("auto", "bar", "line", "none"),
    "trainer.objective": _choice("best_val_accuracy", "test_accuracy", "best_val_loss", "reconstruction_loss"),
    "trainer.threads": ((lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)),
                        "auto or an integer >= 1"),
    "model.depth": _number(1, integer=True),
    "model.units": _number(1, integer=True),
    "model.name": _choice("mlp"),
    "task": _choice(*TASKS),
    "transfer.reuse_layers": _number(1, integer=True, nullable=True),
    "transfer.freeze_epochs": _number(0, integer=True),
    "transfer.finetune_lr": _number(0, lo_open=True, nullable=True),
    "autoencoder.loss": _choice("mse", "binary_crossentropy"),
    "autoencoder.examples_plot": _number(1, 50, integer=True),
    "lr_find.start_lr": _number(0, lo_open=True),
    "lr_find.end_lr": _number(0, lo_open=True),
    "lr_find.epochs": _number(0, lo_open=True),
    "lr_find.stop_factor": _number(1, lo_open=True),
    "data.name": _choice(*DATASETS),
    "data.valid_split": _COUNT_OR_FRACTION,
    "data.test_split": _COUNT_OR_FRACTION,
    "data.label_mode": _choice("fine", "coarse"),
    "data.color_mode": _choice("rgb", "grayscale"),
    "data.train_size": _number(1, integer=True, nullable=True),
    "data.valid_size": _number(1, integer=True, nullable=True),
    "data.test_size": _number(1, integer=True, nullable=True),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value is out of range."""
    for group in KERAS_GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        for key in node:
            if key in RULES:
                _check(f"{group}.{key}", node[key], RULES[key])
    for full_key, rule in RULES.items():
        if "." in full_key:
            _check(full_key, OmegaConf.select(cfg, full_key), rule)
    widths = OmegaConf.select(cfg, "model.widths")
    if widths is not None and (len(widths) == 0 or any(w < 1 for w in widths)):
        raise ConfigError(f"model.widths={list(widths)}: expected a non-empty list of positive integers")
    if cfg.data.name == "synthetic" and cfg.data.get("synthetic") is None:
        raise ConfigError("data.synthetic: missing; use data=synthetic to get its settings")
    if cfg.trainer.resume and cfg.task != "train":
        raise ConfigError(f"trainer.resume=true: only task=train runs can be resumed (task={cfg.task})")
    _validate_classes(cfg.data)
    _validate_transfer(cfg)


def _validate_classes(data: DictConfig) -> None:
    if data.classes is not None and data.binary is not None:
        raise ConfigError("data.classes and data.binary: choose one (binary=[NEG,POS] is already a subset)")
    if data.binary is not None and len(data.binary) != 2:
        raise ConfigError(f"data.binary={_show(data.binary)}: expected two classes [NEG,POS]")
    if data.classes is not None and len(data.classes) < 2:
        raise ConfigError(f"data.classes={_show(data.classes)}: expected at least two classes")


def _validate_transfer(cfg: DictConfig) -> None:
    init_from = cfg.model.init_from
    if init_from is None:
        for key in ("freeze_epochs", "reuse_layers", "finetune_lr"):
            if cfg.transfer[key]:
                raise ConfigError(f"transfer.{key} needs model.init_from=RUN_DIR (the earlier run to reuse "
                                  "layers of)")
        return
    source_file(init_from)  # raises if missing or not a run
    if cfg.transfer.freeze_epochs >= cfg.trainer.epochs and cfg.transfer.finetune_lr is not None:
        raise ConfigError(f"transfer.freeze_epochs={cfg.transfer.freeze_epochs} leaves no fine-tuning epochs "
                          f"of trainer.epochs={cfg.trainer.epochs}; raise trainer.epochs")


def source_file(init_from: str) -> Path:
    """The .keras file that `model.init_from` names (a run directory or the file itself)."""
    path = Path(init_from).expanduser()
    if not path.exists():
        raise ConfigError(f"model.init_from={init_from}: no such file or directory; give an earlier run's "
                          "directory or its model.keras")
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise ConfigError(f"model.init_from={init_from}: not a dnn_train run (no model.keras in it; "
                              "did that run finish?)")
        return path / "model.keras"
    if path.suffix != ".keras":
        raise ConfigError(f"model.init_from={init_from}: not a .keras model file")
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
    if isinstance(value, (DictConfig, ListConfig)) or not ok(value):
        raise ConfigError(f"{key}={_show(value)}: expected {desc}")


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


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


def describe_error(ex: BaseException) -> Optional[str]:
    """One line for a configuration error (Hydra, OmegaConf or ours); None if it is not one."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(ex, ConfigError):
        return str(ex)
    if isinstance(ex, MissingConfigException):
        m = re.search(r"Could not find '([^'/]+)/([^']+)'", str(ex))
        if m:
            group, name = m.groups()
            valid = ex.options or options(group)
            return f"{group}={name}: unknown option; valid {group} options: {', '.join(valid)}"
    text = f"{ex} {ex.__cause__ or ''}"
    m = re.search(r"Could not override '([\w.]+)'", text)
    if m and "not in" in text:
        return f"{m.group(1)}: unknown key (see the group's keys with --cfg job)"
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
