"""A search's job side: this job's Optuna trial, its per-epoch pruning callback, its failure note, a pruned rerun.

Wherever the launcher runs the job (this process, joblib's or Ray's workers): pruning_callbacks() is
[optuna_integration.KerasPruningCallback] in a search, else [] (without importing Optuna): each epoch
reports hydra.sweeper.monitor and raises TrialPruned when the pruner says so; dnn_train's run record
then says "pruned" (dnn_train/rundir/record.py).
"""
from __future__ import annotations

from pathlib import Path

from dnn_train.sweeps.search_storage import open_storage, require_optuna, storage_url

SWEEPER_CLASS = "hydra_plugins.dnn_train_optuna.optuna_sweeper.OptunaPruningSweeper"

# trial number -> optuna.trial.Trial, for the jobs the launcher runs in this process (basic launcher)
ACTIVE: dict = {}


def _search_config():
    """hydra.sweeper when this process runs a job of our search, else None (Optuna not imported)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN or hc.sweeper.get("_target_") != SWEEPER_CLASS:
        return None
    return hc


def current_trial():
    """This job's optuna Trial in a search, else None: the driver's own object when the job runs in
    its process, else the trial re-opened from the storage (joblib and Ray workers)."""
    hc = _search_config()
    if hc is None:
        return None
    number = int(hc.job.num)
    if number in ACTIVE:
        return ACTIVE[number]
    optuna = require_optuna()
    from hydra.utils import instantiate
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=hc.sweeper.study_name, storage=open_storage(storage_url(hc)),
                              pruner=instantiate(hc.sweeper.pruner))
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if frozen.number == number:
            return optuna.trial.Trial(study, frozen._trial_id)
    raise RuntimeError(f"trial {number} of study {hc.sweeper.study_name} is not running")


def pruning_callbacks() -> list:
    """[KerasPruningCallback] in a search (reports hydra.sweeper.monitor every `interval` epochs and
    raises optuna.TrialPruned when the pruner says so), else []."""
    trial = current_trial()
    if trial is None:
        return []
    from optuna_integration.keras import KerasPruningCallback

    sweeper = _search_config().sweeper
    return [KerasPruningCallback(trial, monitor=str(sweeper.monitor), interval=int(sweeper.get("interval", 1)))]


def note_failure(message: str) -> None:
    """In a search, the reason a job failed, as its trial's user attribute `error`."""
    trial = current_trial()
    if trial is not None:
        trial.set_user_attr("error", message[:500])


def raise_if_pruned(run_dir: Path) -> None:
    """A trial whose job directory already says "pruned" (the search was killed before it was told)
    is pruned again rather than trained from scratch."""
    if _search_config() is None:
        return
    from dnn_train.errors import BadRun
    from dnn_train.rundir import read

    try:
        results = read.results(Path(run_dir))
    except BadRun:  # unreadable: trained again
        return
    if results.get("status") == "pruned":
        raise require_optuna().TrialPruned(results.get("error") or "pruned in an earlier run")
