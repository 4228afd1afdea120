"""Keras-class groups made into objects, and their keys checked against the classes' parameters.

`make` is how every `_target_` of a Keras-class group and of the model is instantiated (the models'
builders and optim.py call it); `check_targets` runs once TensorFlow is loaded (tasks.py).
"""
from __future__ import annotations

import inspect

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method, get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from dnn_train.config.help import did_you_mean
from dnn_train.config.schema import BUILDER_KEYS, KERAS_GROUPS
from dnn_train.errors import ConfigError


def make(node, **kwargs):
    """hydra.utils.instantiate, passing lists and dicts to the object as plain Python ones: a Keras
    object holding an OmegaConf ListConfig cannot be saved (schedule=piecewise's values did that).
    Every Keras-class group is instantiated here, so numbers are taken as users type them here:
    an integer for a parameter whose default is a float becomes that float (`floats_as_declared`)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    return instantiate(floats_as_declared({**node, **kwargs}), _convert_="all")


def floats_as_declared(node):
    """`node` (a dict or list, nested `_target_`s included) with each integer given for a float
    parameter of its target (a float default, or a `float` annotation) made a float. Ours: Keras
    checks `isinstance(momentum, float)` and refuses momentum=0, and Hydra passes what YAML says."""
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


def check_targets(cfg: DictConfig) -> None:
    """Each key of a class-configured group must be a parameter of its `_target_` (imports Keras:
    called once TensorFlow is loaded). A preset's key that does not fit the option a user chose
    (experiment=vanishing_gradients sets initializer.stddev; initializer=lecun_normal takes no
    stddev) is named with where it came from."""
    for group in (*KERAS_GROUPS, "model"):
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or not node.get("_target_"):
            continue
        skip = set(BUILDER_KEYS.get(group, ())) | ({"_target_", "name", "init_from"} if group == "model" else {"_target_"})
        try:
            target = get_method(node._target_)
        except Exception as ex:  # noqa: BLE001
            raise ConfigError(f"{group}._target_={node._target_}: cannot be imported ({ex})") from None
        accepted = set(_keyword_parameters(target))
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


def _keyword_parameters(target) -> dict:
    """{name: inspect.Parameter} of the keywords `target` takes: for a class, along its __init__
    chain as far as **kwargs passes them on (the nearest class's default first)."""
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
    """The line for GROUP.KEY, not a parameter of `target`: where it came from if a preset set it."""
    origin = ""
    try:
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
