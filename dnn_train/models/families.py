"""Which model families there are: one per conf/model/NAME.yaml, whose `_target_` names its `build`.

A family is that YAML plus one module of dnn_train/models, which imports no TensorFlow until it
builds (config validation reads it first) and carries everything the rest needs to know:
- `build(inputs, knobs, **keys)`: the layers from the uint8 input to the last hidden tensor, named in
  numbered blocks (`blocks.layer_name`) through the knobs (`parts.Knobs`);
- `RULES`: the value rule of each of its keys, checked as `model.KEY` before TensorFlow is imported;
- `TINY`: the overrides that make a small one (what the tests build and train);
- optionally `pretrained_layers(model_cfg, model)`: the layers that arrive trained (frozen first).
"""
from __future__ import annotations

import sys
from functools import lru_cache
from types import ModuleType

from hydra.utils import get_method
from omegaconf import OmegaConf

from dnn_train.config.help import options
from dnn_train.config.schema import CONF_DIR


@lru_cache(maxsize=None)
def builders() -> dict[str, str]:
    """{family: the dotted name of its `build`}, read from conf/model/*.yaml."""
    return {name: OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")._target_ for name in options("model")}


def module(target: str) -> ModuleType:
    """The module of the `build` that `target` names (a family's, or a trusted one of a user's)."""
    return sys.modules[get_method(target).__module__]


def rules() -> dict:
    """{model.KEY: (check, what it expects)} of every family's keys."""
    return {f"model.{key}": rule for target in builders().values()
            for key, rule in module(target).RULES.items()}


def tiny(name: str) -> list[str]:
    """The overrides that make a small model of family `name` (for tests)."""
    return list(module(builders()[name]).TINY)
