"""validate(): a composed config refused in one line, naming the first key that is unknown, missing or out of range.

Needs no TensorFlow: the values by RULES (rules.py), the keys by the schema (schema.py), the choices
of the command line by conf/; `check_targets` (make.py) checks keys against the Keras classes later.
"""
from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from dnn_train.config.help import did_you_mean, options, unknown_option
from dnn_train.config.network import check_network_keys
from dnn_train.config.rule_builders import check_value, show
from dnn_train.config.rules import RULES, TOP_LEVEL_RULES
from dnn_train.config.files import source_file
from dnn_train.data import dataset
from dnn_train.config.schema import BUILDER_KEYS, CONF_DIR, KERAS_GROUPS, RootConf
from dnn_train.errors import ConfigError


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
                check_value(f"{group}.{key}", node[key], RULES[key])
    _check_plain_group_keys(cfg)
    from dnn_train.models import families  # the model families' keys: each family's module has their rules

    for full_key, rule in {**RULES, **families.rules()}.items():
        parent, _, leaf = full_key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if node is None or (parent in OPTIONAL_KEYS_OF and leaf not in node):  # another family's key, no synthetic
            continue
        if "." in full_key or full_key in TOP_LEVEL_RULES:
            check_value(full_key, OmegaConf.select(cfg, full_key), rule)
    if cfg.trainer.resume and cfg.task != "train":
        raise ConfigError(f"trainer.resume=true: only task=train runs can be resumed (task={cfg.task})")
    dataset(cfg.data)  # the chosen dataset's own keys (dnn_train/data/catalog.py)
    _validate_classes(cfg.data)
    _validate_transfer(cfg)
    _validate_distribution(cfg.trainer)
    check_network_keys(cfg)


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


def check_keys(cfg: DictConfig) -> None:
    """Unknown keys are refused, `+` additions included (Hydra lets `+trainer.epoch=3` through
    silently): the typed groups hold only their dataclass's fields. The class-configured groups
    and the model are checked against their targets' parameters by `check_targets`."""
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
        raise ConfigError(f"model: no family chosen; use model={'|'.join(options('model'))}")


def _validate_classes(data: DictConfig) -> None:
    if data.classes is not None and data.binary is not None:
        raise ConfigError("data.classes and data.binary: choose one (binary=[NEG,POS] is already a subset)")
    if data.binary is not None and len(data.binary) != 2:
        raise ConfigError(f"data.binary={show(data.binary)}: expected two classes [NEG,POS]")
    if data.classes is not None and len(data.classes) < 2:
        raise ConfigError(f"data.classes={show(data.classes)}: expected at least two classes")


def _validate_distribution(t: DictConfig) -> None:
    """What can be said of trainer.distribution before the backend loads (the rest: dnn_train/distribute.py)."""
    if t.devices is not None and t.distribution is None:
        raise ConfigError(f"trainer.devices={show(t.devices)}: only with trainer.distribution=data_parallel")
    if t.devices is not None:
        check_batch_split(t.batch_size, len(t.devices), f"trainer.devices={show(t.devices)}")


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
