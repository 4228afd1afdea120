"""`task=find_lr`: the learning-rate range test the chapter uses to pick 1cycle's max_lr.

The rate grows exponentially from lr_find.start_lr to lr_find.end_lr over about one epoch
(a LearningRateSchedule, so it is exact per step); the loss of every batch is recorded, the
weights are restored afterwards, and the suggested max rate is a tenth of the rate where the
smoothed loss is lowest. Ours: Keras has no range test.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from dnn_train import fused
from dnn_train.models.network import loss_name
from dnn_train.rundir import artifacts
from dnn_train.rundir.record import Run
from dnn_train.train import setup, training_batches

log = logging.getLogger("dnn_train")
CSV_FILE, PLOT_FILE = "lr_find.csv", "lr_find.png"


class ExponentialRamp(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, start_lr, end_lr, steps):
        self.start_lr, self.end_lr, self.steps = float(start_lr), float(end_lr), max(1, int(steps))

    def __call__(self, step):
        return self.start_lr * ops.power(self.end_lr / self.start_lr, ops.cast(step, "float32") / self.steps)

    def get_config(self):
        return {"start_lr": self.start_lr, "end_lr": self.end_lr, "steps": self.steps}


class BatchLoss(keras.callbacks.Callback):
    """Records each batch's own loss (Keras logs the running mean) and stops once it explodes."""

    def __init__(self, schedule, stop_factor):
        super().__init__()
        self.schedule, self.stop_factor = schedule, stop_factor
        self.rates, self.losses, self._prev_mean = [], [], 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        loss = mean * (batch + 1) - self._prev_mean * batch
        self._prev_mean = mean
        self.rates.append(float(ops.convert_to_numpy(self.schedule(len(self.losses)))))
        self.losses.append(loss)
        if not math.isfinite(loss) or loss > self.stop_factor * min(self.losses):
            self.model.stop_training = True


def smoothed(losses, beta=0.98) -> list[float]:
    """Bias-corrected exponential moving average of the batch losses."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest(rates, smooth) -> tuple[float, float]:
    """(suggested max rate, rate at the lowest smoothed loss): the suggestion is a tenth of the latter."""
    best = int(np.nanargmin(smooth))
    return rates[best] / 10.0, rates[best]


def find_lr(cfg, run: Run, extra_callbacks=()) -> dict:
    run_dir, t, f = run.dir, cfg.trainer, cfg.lr_find
    s = setup(cfg)
    steps = max(1, int(round(s.steps_per_epoch * f.epochs)))
    ramp = ExponentialRamp(f.start_lr, f.end_lr, steps)
    s.optimizer.learning_rate = ramp
    recorder = BatchLoss(ramp, f.stop_factor)
    run.begin(task="find_lr", dataset=cfg.data.name, start_lr=f.start_lr, end_lr=f.end_lr)
    initial = s.model.get_weights()
    s.model.compile(optimizer=s.optimizer, loss=loss_name(cfg), steps_per_execution=1)
    train, epoch_seeds = training_batches(s.splits, t)
    fused.build_state(s.model, train)
    s.model.fit(train.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[recorder, epoch_seeds, *extra_callbacks],
                verbose=0, shuffle=False)
    s.model.set_weights(initial)

    smooth = smoothed(recorder.losses)
    suggested, at_min = suggest(recorder.rates, smooth)
    import pandas as pd

    table = pd.DataFrame({"step": range(1, len(recorder.losses) + 1), "learning_rate": recorder.rates,
                          "loss": recorder.losses, "smoothed_loss": smooth})
    artifacts.write_text(run_dir / CSV_FILE, table.to_csv(index=False))
    plot(table, suggested, at_min, run_dir / PLOT_FILE)
    results = run.finish("completed", suggested_max_lr=suggested, min_loss_lr=at_min, steps=len(recorder.losses))
    log.info("suggested max learning rate %.3g (lowest smoothed loss at %.3g) -> %s", suggested, at_min, run_dir)
    return results


def plot(table, suggested: float, at_min: float, path: Path) -> None:
    fig, ax = artifacts.figure(figsize=(7, 4.5), constrained_layout=True)
    ax.plot(table["learning_rate"], table["loss"], lw=1, alpha=0.5, label="batch loss")
    ax.plot(table["learning_rate"], table["smoothed_loss"], lw=2, label="smoothed")
    ax.axvline(at_min, color="grey", ls=":", label=f"lowest smoothed loss ({at_min:.3g})")
    ax.axvline(suggested, color="tab:red", ls="--", label=f"suggested max_lr ({suggested:.3g})")
    ax.set(xscale="log", xlabel="learning rate (log)", ylabel="loss", title="learning-rate range test")
    low = np.nanmin(table["loss"])
    ax.set_ylim(low * 0.9, min(np.nanmax(table["loss"]), 4 * low))
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    artifacts.save_figure(fig, path)
