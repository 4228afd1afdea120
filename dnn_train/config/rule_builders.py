"""The rule builders: a value rule is (test, words), made here and applied to one value by check_value.

The one set of builders for every rule: the config's RULES (rules.py), a dataset's own keys
(dnn_train/data/catalog.py) and each model family's keys (dnn_train/models/*.py). Imports nothing of
dnn_train but errors, so the catalog, which the schema imports, can use it without a cycle.
"""
from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from dnn_train.errors import ConfigError


def number(lo=None, hi=None, lo_open=False, hi_open=False, integer=False, nullable=False):
    """A rule (test, words) for a finite number (or an integer) within the bounds given."""
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


def choice(*options):
    """A rule for one of `options` (a scalar: not a list or a mapping)."""
    return (lambda v: not isinstance(v, (DictConfig, ListConfig)) and v in options), \
        "one of " + ", ".join("null" if o is None else str(o).lower() if isinstance(o, bool) else str(o)
                              for o in options)


def int_list(lo=1, hi=None, nullable=False, empty=False):
    """A rule for a list of integers within bounds (at most 1000 of them)."""
    def check(v):
        if v is None:
            return nullable
        items = list(v) if isinstance(v, (list, ListConfig)) else None
        return items is not None and (empty or len(items) > 0) and len(items) <= 1000 and \
            all(number(lo, hi, integer=True)[0](i) for i in items)

    what = f"a {'' if empty else 'non-empty '}list of integers >= {lo}{f' and <= {hi}' if hi else ''}"
    return check, what + (" or null" if nullable else "")


SEED = number(0, 2 ** 32 - 1, integer=True)
BOOL = ((lambda v: isinstance(v, bool)), "true or false")
# data.valid_split, and data.test_split of data=images: a count of examples, or a fraction of them
COUNT_OR_FRACTION = ((lambda v: number(1, integer=True)[0](v) or number(0, 1, lo_open=True, hi_open=True)[0](v)),
                     "an integer >= 1 (a count) or a number > 0 and < 1 (a fraction)")


def check_value(key: str, value: Any, rule, error: type = ConfigError) -> None:
    """Raise `error` (ConfigError) `KEY=VALUE: expected ...` unless `rule` (test, words) accepts `value`."""
    ok, desc = rule
    if isinstance(value, DictConfig) or not ok(value):
        raise error(f"{key}={show(value)}: expected {desc}")


def show(value: Any) -> str:
    """A config value as a user types it (null, true, [1, 2])."""
    if isinstance(value, (DictConfig, ListConfig)):
        return str(OmegaConf.to_container(value))
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
