"""Replay a finished search's learning curves through Optuna's pruners, in trial order: how many
epochs each pruner would have trained, and the best value it would have kept. Run it on a search
made with hydra/sweeper/pruner=nop (every trial ran all its epochs):

    python benchmarks/replay_pruners.py outputs/hparams_search/STUDY    # --no-record: do not write
                                                                        # benchmarks/results/search-pruning/replay.json

It prints, per pruner, the epochs each trial would have trained, the best value kept, and an
estimate of the wall time: each trial's fixed part (its wall_seconds less its epochs) plus the
epochs it trains. (README, "Hyperparameter search". A replay, not a search: the sampler's later
choices, which see the pruned trials, are not replayed.)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

PRUNERS = {
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
    "successive_halving (reduction_factor=3)": lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=3),
    "successive_halving (min_resource=1)": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
    "median": lambda: optuna.pruners.MedianPruner(),
    "median (n_startup_trials=3, n_warmup_steps=1)": lambda: optuna.pruners.MedianPruner(3, 1),
    "percentile 25 (n_startup_trials=3, n_warmup_steps=1)": lambda: optuna.pruners.PercentilePruner(25, 3, 1),
}


def main(sweep_dir: Path, record_it: bool = True) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    tables = [pd.read_csv(p / "metrics.csv") for p in jobs]
    curves = [t["val_accuracy"].tolist() for t in tables]
    # a trial's cost: its fixed part (wall_seconds less its epochs: set-up, compiling, test, save,
    # plots) plus the epochs it trains; the first trial's fixed part also holds the process start
    seconds = [t["epoch_seconds"].tolist() for t in tables]
    fixed = [json.loads((p / "results.json").read_text())["wall_seconds"] - sum(s) for p, s in zip(jobs, seconds)]
    total = sum(fixed) + sum(map(sum, seconds))
    print(f"{len(curves)} trials, {sum(map(len, curves))} epochs without pruning, best {max(map(max, curves)):.4f}, "
          f"{total:.0f} s (fixed part per trial: median {np.median(fixed):.1f} s)")
    rows = []
    for name, make in PRUNERS.items():
        study = optuna.create_study(direction="maximize", pruner=make())
        epochs, best = [], None
        for curve in curves:
            trial = study.ask({"x": FloatDistribution(0, 1)})
            for step, value in enumerate(curve):
                trial.report(value, step)
                if trial.should_prune():
                    study.tell(trial, state=TrialState.PRUNED)
                    epochs.append(step + 1)
                    break
            else:
                study.tell(trial, max(curve))
                epochs.append(len(curve))
                best = max(curve) if best is None else max(best, max(curve))
        cost = sum(fixed) + sum(sum(s[:n]) for s, n in zip(seconds, epochs))
        print(f"{name}: {sum(epochs)} epochs {epochs}, best {best:.4f}, ~{cost:.0f} s ({cost / total:.0%})")
        rows.append([name, sum(epochs), f"{best:.4f}", f"~{cost:.0f} s ({cost / total:.0%})"])
    if record_it:  # the record the documentation's Search pruning page is generated from
        import record

        record.write("search-pruning", "replay", "Pruners replayed on an unpruned search's learning curves",
                     text=f"{len(curves)} trials, {sum(map(len, curves))} epochs without pruning, best "
                          f"{max(map(max, curves)):.4f}, {total:.0f} s.",
                     columns=["pruner", "epochs trained", "best value kept", "estimated wall time"], rows=rows)


if __name__ == "__main__":
    main(Path(next(a for a in sys.argv[1:] if a != "--no-record")), "--no-record" not in sys.argv)
