"""Optimizers and learning-rate schedules, instantiated from the `optimizer` and `schedule` groups.

Keras provides the optimizers and most schedules; 1cycle and power scheduling with an exponent
are ours (Keras has neither). Step-based schedules are `LearningRateSchedule`s evaluated at the
optimizer's iteration count, so they stay exact per step however many steps a graph call runs.
A schedule option whose `_target_` is a Keras callback (ReduceLROnPlateau) acts between epochs.
Durations in the schedule YAMLs are in epochs (`decay_epochs`, `boundaries_epochs`): they are
converted to the steps Keras expects (`decay_steps`, `boundaries`).
"""
from __future__ import annotations

import inspect

import keras
from hydra.utils import get_class
from keras import ops
from omegaconf import OmegaConf

from dnn_train.config.make import keras_kwargs, make
from dnn_train.errors import ConfigError


@keras.saving.register_keras_serializable(package="dnn_train")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """1cycle (Smith 2018, as in Géron ch. 11): ours, since Keras has no 1cycle schedule.

    Linear from max_lr/div_factor up to max_lr over the first half of the cycle, back down over
    the second half, then a linear decay to max_lr/div_factor/final_div_factor over the last
    `final_fraction` of `total_steps`.
    """

    def __init__(self, max_lr, total_steps, div_factor=10.0, final_fraction=0.1, final_div_factor=1000.0):
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.div_factor = float(div_factor)
        self.final_fraction = float(final_fraction)
        self.final_div_factor = float(final_div_factor)

    def phases(self):
        """(start_lr, end_of_cycle_step, half_step, final_lr)."""
        start = self.max_lr / self.div_factor
        final_steps = max(1, int(round(self.total_steps * self.final_fraction)))
        cycle_end = max(2, self.total_steps - final_steps)
        return start, cycle_end, cycle_end / 2.0, start / self.final_div_factor

    def __call__(self, step):
        start, cycle_end, half, final = self.phases()
        step = ops.cast(step, "float32")
        up = start + (self.max_lr - start) * step / half
        down = self.max_lr - (self.max_lr - start) * (step - half) / half
        tail_len = max(1.0, float(self.total_steps - cycle_end))
        tail = start + (final - start) * ops.minimum((step - cycle_end) / tail_len, 1.0)
        return ops.where(step < half, up, ops.where(step < cycle_end, down, tail))

    def momentum(self, step, max_momentum=0.95, min_momentum=0.85):
        """The inverse cycle: max_momentum where the rate is lowest, min_momentum at its peak."""
        start = self.max_lr / self.div_factor
        rise = ops.clip((self(step) - start) / (self.max_lr - start), 0.0, 1.0)
        return max_momentum - (max_momentum - min_momentum) * rise

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "div_factor": self.div_factor,
                "final_fraction": self.final_fraction, "final_div_factor": self.final_div_factor}


@keras.saving.register_keras_serializable(package="dnn_train")
class OneCycleSGD(keras.optimizers.SGD):
    """SGD with momentum whose momentum follows 1cycle inversely to the rate, per step.

    Ours: Keras' SGD momentum is a constant. The update is SGD's, with the momentum taken from
    `learning_rate.momentum(iterations)`.
    """

    def __init__(self, max_momentum=0.95, min_momentum=0.85, **kwargs):
        super().__init__(**kwargs)
        self.max_momentum, self.min_momentum = float(max_momentum), float(min_momentum)

    def current_momentum(self):
        return self._learning_rate.momentum(self.iterations, self.max_momentum, self.min_momentum)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(self.current_momentum(), variable.dtype)
        m = self.momentums[self._get_variable_index(variable)]
        self.assign(m, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)))
        if self.nesterov:
            self.assign_add(variable, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, learning_rate)))
        else:
            self.assign_add(variable, m)

    def get_config(self):
        return {**super().get_config(), "max_momentum": self.max_momentum, "min_momentum": self.min_momentum}


@keras.saving.register_keras_serializable(package="dnn_train")
class PowerDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Power scheduling: initial_learning_rate / (1 + step / decay_steps) ** power.

    Ours: Keras' InverseTimeDecay is the power=1 case only.
    """

    def __init__(self, initial_learning_rate, decay_steps, power=1.0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = float(decay_steps)
        self.power = float(power)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        return self.initial_learning_rate / ops.power(1.0 + step / self.decay_steps, self.power)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "power": self.power}


def _epochs_to_steps(kwargs: dict, accepted, steps_per_epoch: int) -> dict:
    """`decay_epochs: 20` -> `decay_steps: 20 * steps_per_epoch`; `boundaries_epochs` -> `boundaries`."""
    out = {}
    for key, value in kwargs.items():
        if key.endswith("_epochs"):
            epochs = value
            base = key[: -len("_epochs")]
            key = f"{base}_steps" if f"{base}_steps" in accepted else base
            value = [int(round(v * steps_per_epoch)) for v in value] if isinstance(value, list) \
                else int(round(value * steps_per_epoch))
            steps = value if isinstance(value, list) else [value]
            if min(steps, default=1) < 1 or steps != sorted(set(steps)):
                raise ConfigError(f"schedule.{base}_epochs={epochs}: {steps if len(steps) > 1 else steps[0]} steps at "
                                  f"{steps_per_epoch} steps per epoch; durations must come to at least one step "
                                  f"({1 / steps_per_epoch:.3g} epochs){' and increase' if len(steps) > 1 else ''}")
            if key == "boundaries":  # Keras keeps values[i] up to and including step boundaries[i]
                value = [v - 1 for v in value]
        out[key] = value
    return out


def _callback_or_none(target) -> bool:
    return not target or issubclass(get_class(target), keras.callbacks.Callback)


def rate_is_a_variable(schedule_cfg) -> bool:
    """Whether the optimizer's learning rate stays a number it keeps in a variable (no schedule, or a
    callback such as ReduceLROnPlateau that sets it between epochs), not a formula of the step."""
    return _callback_or_none(OmegaConf.select(schedule_cfg, "_target_"))


def build_schedule(schedule_cfg, learning_rate: float, steps_per_epoch: int, epochs: int):
    """(learning rate or LearningRateSchedule for the optimizer, callbacks for the fit).

    What only the run knows is passed to any schedule whose constructor takes it:
    initial_learning_rate (the optimizer's rate), total_steps and steps_per_epoch.
    """
    kwargs, _ = keras_kwargs(schedule_cfg, "schedule")
    kwargs.pop("max_momentum", None), kwargs.pop("min_momentum", None)  # read by build_optimizer
    if not kwargs.get("_target_"):
        return learning_rate, []
    if _callback_or_none(kwargs["_target_"]):
        return learning_rate, [make(kwargs)]
    cls = get_class(kwargs["_target_"])
    accepted = inspect.signature(cls).parameters
    kwargs = _epochs_to_steps(kwargs, accepted, steps_per_epoch)
    runtime = {"initial_learning_rate": learning_rate, "total_steps": steps_per_epoch * epochs,
               "steps_per_epoch": steps_per_epoch}
    kwargs.update({k: v for k, v in runtime.items() if k in accepted and k not in kwargs})
    return make(kwargs), []


def build_optimizer(cfg, steps_per_epoch: int) -> tuple[keras.optimizers.Optimizer, list]:
    """The configured optimizer with its schedule, and the callbacks the schedule needs (if any)."""
    kwargs, _ = keras_kwargs(cfg.optimizer, "optimizer")
    kwargs["learning_rate"], callbacks = build_schedule(cfg.schedule, kwargs["learning_rate"], steps_per_epoch,
                                                        cfg.trainer.epochs)
    if isinstance(kwargs["learning_rate"], OneCycle) and kwargs["_target_"] == "keras.optimizers.SGD" \
            and kwargs.get("momentum"):
        kwargs.update(_target_=f"{__name__}.OneCycleSGD", max_momentum=cfg.schedule.max_momentum,
                      min_momentum=cfg.schedule.min_momentum)
    return make(kwargs), callbacks


def current_learning_rate(optimizer) -> float:
    return float(ops.convert_to_numpy(optimizer.learning_rate))
