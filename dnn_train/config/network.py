"""What a URL key of a config may embed: no value read from the environment or a file."""
from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf

from dnn_train.errors import ConfigError

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
