"""The search's driver (StudyDriver, in the `-m` process): claim trials, launch their jobs, tell Optuna how each ended.

An Optuna (>= 4) study driven by our own Hydra sweeper (hydra_plugins/dnn_train_optuna; config
conf/hydra/sweeper/optuna_pruning.yaml). See README, "Hyperparameter search", for why not Hydra's
Optuna sweeper: neither its 1.3 (optuna 2) nor its 1.4 release lets a job report per-epoch values or
be pruned, nor resumes a killed study's trials. Several drivers may work on one study
(docs/search-workers.md):
  * hydra.sweeper.n_trials is the study's total of finished trials (complete + pruned + failed):
    a rerun only tops the study up, and raising n_trials extends it;
  * each worker loops: claim up to n_jobs trials, run them, tell them, until the study has n_trials
    finished; a claim is made under the claim lock (search_workers.py), so two workers never claim
    the same trial nor ask for more trials than n_trials;
  * a stale RUNNING trial (search_workers.Liveness) is run again first, with the same parameters in
    the same job directory (job number == trial number), where dnn_train resumes it from its checkpoint;
  * a job that raises optuna.TrialPruned is told PRUNED; a NaN objective or any other exception
    FAIL, with the reason in the trial's user attribute `error` (optuna-dashboard shows it).
The study's storage: search_storage.py; its space: search_space.py; the job side: search_trial.py.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dnn_train.errors import ConfigError, is_pruned
from dnn_train.sweeps.search_space import format_value, search_space
from dnn_train.sweeps.search_storage import open_storage, require_optuna, storage_url, study_file
from dnn_train.sweeps.search_trial import ACTIVE
from dnn_train.sweeps.search_workers import Liveness, beat, claim_lock, heartbeat

log = logging.getLogger("dnn_train.search")

RESULTS_FILE = "optimization_results.yaml"


class StudyDriver:
    """One worker of a search: its loop over claimed trials (`work`), and the study's results file at its end."""

    def __init__(self, sampler: DictConfig, pruner: DictConfig, direction: str, study_name: str,
                 storage: str | None, n_trials: int, n_jobs: int, params: DictConfig | None,
                 monitor: str, interval: int = 1, heartbeat_interval: float = 10, grace_period: float = 60) -> None:
        require_optuna()
        if str(direction) not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction={direction}: expected minimize or maximize")
        if int(n_trials) < 1 or int(n_jobs) < 1 or int(interval) < 1:
            raise ConfigError("hydra.sweeper.n_trials, n_jobs and interval: expected integers >= 1")
        if not 0 < float(heartbeat_interval) < float(grace_period):
            raise ConfigError(f"hydra.sweeper.heartbeat_interval={heartbeat_interval}, grace_period={grace_period}: "
                              "expected 0 < heartbeat_interval < grace_period (seconds)")
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.direction, self.study_name = str(direction), str(study_name)
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.heartbeat_interval, self.grace_period = float(heartbeat_interval), float(grace_period)
        self.params = params
        self._next_number = None  # the study's trial count after this worker's last ask (reseed when it moved)

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        optuna = require_optuna()

        hydra_cfg = self.config.hydra
        sweep_dir = study_file(hydra_cfg).parent
        sweep_dir.mkdir(parents=True, exist_ok=True)
        distributions, fixed = search_space(self.params, arguments)
        url = storage_url(hydra_cfg)
        storage = open_storage(url)
        study = optuna.create_study(study_name=self.study_name, storage=storage, direction=self.direction,
                                    load_if_exists=True, sampler=self._sampler(storage), pruner=self._pruner())
        if study.direction.name.lower() != self.direction:
            raise ConfigError(f"study {self.study_name} in {url} maximizes or minimizes the other way "
                              f"({study.direction.name.lower()}); keep hydra.sweeper.direction, or start a new study")
        log.info("study %s in %s: %s; sampler %s, pruner %s; %d finished trials wanted", study.study_name, url,
                 _counts(study) or "new", type(study.sampler).__name__, type(study.pruner).__name__, self.n_trials)
        self.work(study, distributions, fixed, sweep_dir)
        self._write_results(study, sweep_dir)

    def work(self, study, distributions: dict, fixed: list[str], sweep_dir: Path) -> None:
        """This worker's loop: claim trials, run them while beating, tell them; when there is none to
        claim, wait (watching for stale ones) until the other workers' trials have finished."""
        from optuna.trial import TrialState

        liveness, waiting = Liveness(self.grace_period), None
        while True:
            with claim_lock(sweep_dir):
                batch = self.claim(study, distributions, liveness)
            if batch:
                waiting = None
                with heartbeat(batch, self.heartbeat_interval):
                    for group in _consecutive(batch):  # job number == trial number: one job directory per trial
                        self._run(study, group, fixed)
                continue
            running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
            if not running or _n_finished(study) >= self.n_trials:
                return
            if running != waiting:
                log.info("waiting for trial(s) %s, which other workers run", running)
                waiting = running
            time.sleep(self.heartbeat_interval)

    def claim(self, study, distributions: dict, liveness: Liveness) -> list:
        """Up to n_jobs trials for this worker (under claim_lock): stale RUNNING trials first, then new
        ones while finished + running trials are fewer than n_trials. Each is beaten at once, so no
        other worker sees it stale."""
        optuna = require_optuna()
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        batch, reasons = [], []
        for frozen in trials:
            reason = liveness.stale(frozen) if frozen.state == TrialState.RUNNING else None
            if reason and len(batch) < self.n_jobs:
                batch.append(optuna.trial.Trial(study, frozen._trial_id))
                reasons.append(f"{frozen.number}: {reason}")
        if batch:
            log.info("resuming %d trial(s) a previous search left running: %s (%s)", len(batch),
                     [t.number for t in batch], "; ".join(reasons))
        busy = sum(t.state == TrialState.RUNNING or t.state.is_finished() for t in trials)
        n_new = min(self.n_jobs - len(batch), self.n_trials - busy)
        if n_new > 0:
            if self._next_number != len(trials):  # another worker asked since: a seed of its own for this stream
                study.sampler = self._sampler(study._storage)
            batch += [study.ask(distributions) for _ in range(n_new)]
            self._next_number = len(trials) + n_new
        for trial in batch:
            beat(trial)
        return batch

    def _sampler(self, storage):
        """A seeded sampler on a study that has trials gets seed + their number: a resumed search
        neither repeats the first run's start-up points nor loses reproducibility."""
        from hydra.utils import instantiate

        cfg, done = self.sampler_cfg, _n_trials(storage, self.study_name)
        if done and cfg.get("seed") is not None:
            return instantiate(cfg, seed=int(cfg.seed) + done)
        return instantiate(cfg)

    def _pruner(self):
        from hydra.utils import instantiate

        return instantiate(self.pruner_cfg)

    def _run(self, study, trials: list, fixed: list[str]) -> None:
        overrides = [tuple(f"{k}={format_value(v)}" for k, v in trial.params.items()) + tuple(fixed)
                     for trial in trials]
        ACTIVE.update({trial.number: trial for trial in trials})
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        finally:
            for trial in trials:
                ACTIVE.pop(trial.number, None)
        from optuna.exceptions import UpdateFinishedTrialError

        for trial, ret in zip(trials, returns):
            try:
                self._tell(study, trial, ret)
            except UpdateFinishedTrialError:  # taken over (this worker stalled) and told by another worker
                log.warning("trial %d: already finished by another worker; this run's result is dropped", trial.number)

    @staticmethod
    def _tell(study, trial, ret) -> None:
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        if ret.status == JobStatus.COMPLETED:
            try:
                value = float(ret.return_value)
            except (TypeError, ValueError):
                value = math.nan
            if math.isfinite(value):
                study.tell(trial, value)
                log.info("trial %d: %s", trial.number, value)
                return
            if "error" not in trial.user_attrs:  # the job may have said why
                trial.set_user_attr("error", f"objective is {ret.return_value!r}")
        elif is_pruned(ret._return_value):
            frozen = study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d: pruned after epoch %s (%s)", trial.number,
                     None if frozen.last_step is None else frozen.last_step + 1, frozen.value)
            return
        else:
            trial.set_user_attr("error", f"{type(ret._return_value).__name__}: {ret._return_value}"[:500])
        frozen = study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d: failed (%s)", trial.number, frozen.user_attrs.get("error"))

    def _write_results(self, study, sweep_dir: Path) -> None:
        from optuna.trial import TrialState

        from dnn_train.rundir.artifacts import write_text

        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "direction": self.direction,
                                   "storage": storage_url(self.config.hydra), "trials": _counts(study)}
        if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            best = study.best_trial
            results.update(best_trial=best.number, best_params=best.params, best_value=best.value)
            log.info("best trial %d: %s = %s", best.number, best.params, best.value)
        write_text(sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(results))  # atomic: every worker writes it


def _n_trials(storage, study_name: str) -> int:
    optuna = require_optuna()
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False))
    except KeyError:  # no such study yet
        return 0


def _n_finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))


def _counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def _consecutive(trials: list) -> list[list]:
    groups: list[list] = []
    for trial in sorted(trials, key=lambda t: t.number):
        if groups and trial.number == groups[-1][-1].number + 1:
            groups[-1].append(trial)
        else:
            groups.append([trial])
    return groups
