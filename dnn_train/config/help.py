"""What conf/ offers, by name: each group's options and keys, --help's summaries, and did-you-mean.

Read from conf/ and the schema as text, without composing a config (so --help and a typo's line
answer at once, before Hydra or TensorFlow do any work).
"""
from __future__ import annotations

import difflib
import re
import sys
import typing

import yaml

from dnn_train.config.schema import CONF_DIR, RootConf


def options(group: str) -> list[str]:
    """The options of conf/GROUP/, sorted."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _defaults() -> dict[str, str]:
    """{group: its default option}, from conf/config.yaml's defaults list."""
    return dict(re.findall(r"^  - (?:optional )?(\w+): (\S+)", (CONF_DIR / "config.yaml").read_text(), re.M))


def option_summaries() -> dict[str, list[tuple[str, bool, str]]]:
    """{group: [(option, is_default, first comment line of its YAML)]}, read from conf/ as text."""
    defaults = _defaults()
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
    path = CONF_DIR / group / f"{chosen or _defaults().get(group)}.yaml"
    try:
        keys = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [f"{group}.{k}" for k in keys if k != "_target_"] if "." not in prefix else []


def unknown_option(group: str, name: str, valid=None) -> str:
    """The one line for GROUP=NAME where conf/GROUP/ has no NAME.yaml."""
    valid = valid or options(group)
    return f"{group}={name}: unknown option{did_you_mean(name, valid)}; valid {group} options: {', '.join(valid)}"


def did_you_mean(name: str, candidates) -> str:
    """' (did you mean X?)' for the closest candidates, or '': an abbreviation or a prefix of a
    candidate's last part first (optimizer.lr -> optimizer.learning_rate), else a close spelling."""
    by_leaf = {str(c).rsplit(".", 1)[-1].lower(): str(c) for c in candidates}
    leaf = str(name).rsplit(".", 1)[-1].lower()
    close = [c for k, c in by_leaf.items() if k != leaf and (_initials(k) == leaf or (len(leaf) > 1 and k.startswith(leaf)))]
    if not close:
        close = [by_leaf[k] for k in difflib.get_close_matches(leaf, list(by_leaf), n=2, cutoff=0.75)]
    return f" (did you mean {' or '.join(close[:2])}?)" if close else ""


def _initials(key: str) -> str:
    parts = key.split("_")
    return "".join(p[0] for p in parts if p) if len(parts) > 1 else ""
