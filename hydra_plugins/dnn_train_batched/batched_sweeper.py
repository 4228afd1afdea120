"""Hydra sweeper plugin: Hydra's basic sweeper, with the grid drawn lazily and launched in batches.

Hydra 1.3's BasicSweeper builds the whole cartesian product as a list, then composes (validates)
every job's config of a batch before launching it, and its default batch is the whole sweep: a
`-m trainer.seed=range(0,10000)` started no job for minutes and held every job's overrides in
memory. This one draws the product with itertools.product as the jobs go, so the first job starts
after composing one batch and memory stays flat. The batch is `max_batch_size` jobs, or with null
(the default) the launcher's width: 1 for the basic launcher (one job after another, nothing gained by
composing ahead), 4 x the workers for joblib or Ray (enough to keep every worker busy between the
batch's barriers). Its schema is stored as `hydra/sweeper/basic`, in the place of Hydra's own, so it
is the default (hparams_search=NAME still replaces it); `max_batch_size` is set as Hydra's:
hydra.sweeper.max_batch_size=N. Everything else (job numbers, directories, the sweep summary,
resume) is Hydra's.
"""
from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException


@dataclass
class BatchedSweeperConf:
    _target_: str = "hydra_plugins.dnn_train_batched.batched_sweeper.BatchedSweeper"
    max_batch_size: Optional[int] = None  # jobs composed and launched at a time; null: the launcher's width
    params: Optional[Dict[str, str]] = None  # sweep expressions as a dict, as Hydra's basic sweeper takes them


# Stored after Hydra's plugin scan has stored its BasicSweeperConf (dnn_train/__main__.py registers
# this module after the scan): the name `basic` then composes this sweeper.
ConfigStore.instance().store(group="hydra/sweeper", name="basic", node=BatchedSweeperConf, provider="dnn_train")


class BatchedSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None) -> None:
        # BasicSweeper's attributes, set here: Hydra's plugin scan re-executes its module, so the
        # BasicSweeper that super() would name can be another class object than the one subclassed.
        self.overrides, self.batch_index, self.max_batch_size, self.params = None, 0, max_batch_size, params or {}
        self.hydra_context = self.config = self.launcher = None
        self._batches: Optional[Iterator[List[List[str]]]] = None
        self._next: Optional[List[List[str]]] = None

    def _width(self) -> int:
        if self.max_batch_size:
            return int(self.max_batch_size)
        launcher = type(self.launcher).__name__
        if launcher == "BasicLauncher":
            return 1
        n_jobs = int((self.config.hydra.launcher.get("n_jobs") if self.config is not None else None) or -1)
        return 4 * (os.cpu_count() or 1 if n_jobs < 0 else n_jobs)

    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> Any:  # type: ignore[override]
        """The product of the sweep's values, drawn lazily in batches of the launcher's width."""
        choices: "OrderedDict[str, Sequence[str]]" = OrderedDict()
        for override in overrides:
            key = override.get_key_element()
            if not override.is_sweep_override():
                choices[key] = [f"{key}={override.get_value_element_as_str()}"]
            elif override.is_discrete_sweep():
                choices[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
            else:
                raise HydraException(f"{key}: the basic sweeper takes lists and ranges, not {override.value_type.name}"
                                     " (that is for hparams_search=)")
        jobs = (list(job) for job in itertools.product(*choices.values()))
        width = self._width()
        self._batches = iter(lambda: list(itertools.islice(jobs, width)), [])
        self._next = next(self._batches, None)
        return self  # BasicSweeper.sweep stores it as self.overrides; only is_done/get_job_batch read it

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        batch, self._next = self._next, next(self._batches, None)
        return batch

    def is_done(self) -> bool:
        return self._next is None
