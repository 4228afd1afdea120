"""Hydra sweeper plugin: an Optuna search with a pruner (the work: dnn_train/sweeps/search_driver.py).

The study is persisted under the sweep directory (SQLite, or a journal file that several workers
share): conf/hydra/sweeper/optuna_pruning.yaml.

Hydra 1.3 instantiates only plugin classes defined under the `hydra_plugins` namespace package,
and imports every module under it at each start-up: this module stays thin, and Optuna is
imported only when a search runs.
"""
from __future__ import annotations

from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaPruningSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        from dnn_train.sweeps.search_driver import StudyDriver

        self._driver = StudyDriver(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self._driver.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self._driver.sweep(arguments)
