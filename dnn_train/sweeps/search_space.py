"""A search's space: Hydra's sweep syntax (hydra.sweeper.params and command-line sweeps) as Optuna distributions.

Mapped as Hydra 1.4's Optuna sweeper maps them (`distribution`); the overrides that do not sweep go to
every trial as they are (`search_space`).
"""
from __future__ import annotations

from typing import Any, Iterable

from dnn_train.errors import ConfigError


def distribution(override):
    """Hydra sweep expression -> Optuna distribution (None: not a sweep, a fixed override). The
    mapping of Hydra 1.4's Optuna sweeper, which cannot be imported here (it needs hydra-core 1.4):

    choice(a, b, c), a,b,c     -> CategoricalDistribution([a, b, c])
    range(1, 5)                -> IntDistribution(1, 4)   (Hydra's stop is exclusive; Hydra 1.3's
                                  Optuna sweeper made range(1, 4) mean 1..4)
    range(0.0, 0.3, 0.1)       -> FloatDistribution(0.0, 0.2, step=0.1)
    interval(0.0, 0.5)         -> FloatDistribution(0.0, 0.5)   (Hydra makes interval bounds floats)
    tag(log, interval(a, b))   -> the same with log=True
    shuffled or tagged ranges  -> CategoricalDistribution of their values
    """
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and (value.shuffle or value.tags)):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        step = 1 if value.step is None else value.step
        values = list(override.sweep_iterator(transformer=Transformer.encode))
        if not values:
            raise ConfigError(f"{override.input_line}: an empty range")
        if all(isinstance(v, int) for v in (value.start, value.stop, step)):
            return IntDistribution(min(values), max(values), step=abs(step))
        return FloatDistribution(float(min(values)), float(max(values)), step=abs(float(step)))
    if override.is_interval_sweep():
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ConfigError(f"{override.input_line}: not a search space Optuna can sample (use choice, range, interval)")


def search_space(params, arguments: Iterable[str]):
    """(distributions by key, fixed overrides) from hydra.sweeper.params and the command line:
    command-line sweeps join the space; other overrides go to every trial as they are."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    distributions, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(lines):
        dist = distribution(override)
        if dist is None:
            fixed.append(override.input_line)
        else:
            distributions[override.get_key_element()] = dist
    return distributions, fixed


def format_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
