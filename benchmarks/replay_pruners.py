"""Replay a finished search's learning curves through Optuna's pruners, in trial order: how many
epochs each pruner would have trained, and the best value it would have kept. Run it on a search
made with hydra/sweeper/pruner=nop (every trial ran all its epochs):

    python benchmarks/replay_pruners.py outputs/hparams_search/STUDY

(README, "Hyperparameter search". A replay, not a search: the sampler's later choices, which see the
pruned trials, are not replayed.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pandas as pd
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

PRUNERS = {
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
    "successive_halving (reduction_factor=3)": lambda: optuna.pruners.SuccessiveHalvingPruner(reduction_factor=3),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
    "median": lambda: optuna.pruners.MedianPruner(),
}


def main(sweep_dir: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    curves = [pd.read_csv(p / "metrics.csv")["val_accuracy"].tolist() for p in jobs]
    print(f"{len(curves)} trials, {sum(map(len, curves))} epochs without pruning, best {max(map(max, curves)):.4f}")
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
        print(f"{name}: {sum(epochs)} epochs {epochs}, best {best:.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
