"""Hyperparameter search with pruning: an Optuna (>= 4) study driven by our own Hydra sweeper
(hydra_plugins/dnn_train_optuna; config conf/hydra/sweeper/optuna_pruning.yaml). See README,
"Hyperparameter search", for why not Hydra's Optuna sweeper: neither its 1.3 (optuna 2) nor its
1.4 release lets a job report per-epoch values or be pruned, nor resumes a killed study's trials.

The driver (StudyDriver, in the `-m` process; several may work on one study, see docs/search-workers.md):
  * the study lives in SQLite under the sweep directory (<sweep dir>/optuna.db), or with
    hydra.sweeper.storage=journal in Optuna's journal file (<sweep dir>/optuna.journal: safe on NFS
    and other shared filesystems, where SQLite's locking is not), or at another Optuna storage URL;
    the search YAMLs fix the sweep directory (outputs/hparams_search/<study_name>), so rerunning the
    same command continues it, and running it again elsewhere adds a worker to it;
  * hydra.sweeper.n_trials is the study's total of finished trials (complete + pruned + failed):
    a rerun only tops the study up, and raising n_trials extends it;
  * each worker loops: claim up to n_jobs trials, run them, tell them, until the study has n_trials
    finished; a claim (worker_claims) is made under the sweep directory's optuna.claim.lock, so two
    workers never claim the same trial nor ask for more trials than n_trials;
  * a worker records itself (host, pid) in each trial it runs and beats (a system attribute) every
    heartbeat_interval seconds; a RUNNING trial is an orphan only when stale (Liveness): its worker,
    on this host, has exited, or its record has not changed for grace_period seconds; an orphan is
    run again first, with the same parameters in the same job directory (job number == trial number),
    where dnn_train resumes it from its checkpoint;
  * the search space is Hydra's sweep syntax (hydra.sweeper.params and command-line sweeps),
    mapped to Optuna distributions as Hydra 1.4's Optuna sweeper maps them (`distribution`);
  * a job that raises optuna.TrialPruned is told PRUNED; a NaN objective or any other exception
    FAIL, with the reason in the trial's user attribute `error` (optuna-dashboard shows it).

The job side (wherever the launcher runs the job: this process, joblib's or Ray's workers):
  * pruning_callbacks(): [optuna_integration.KerasPruningCallback] in a search, else [] (without
    importing Optuna): each epoch reports hydra.sweeper.monitor and raises TrialPruned when the
    pruner says so; dnn_train's run record then says "pruned" (dnn_train/rundir/record.py).
"""
from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from omegaconf import DictConfig, OmegaConf

from dnn_train.errors import ConfigError, is_pruned

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("dnn_train.search")

STUDY_FILE = "optuna.db"
JOURNAL_FILE = "optuna.journal"  # hydra.sweeper.storage=journal
CLAIM_LOCK = "optuna.claim"  # Optuna's lock adds ".lock": held while a worker picks its next trials
OWNER_ATTR = "dnn_train:owner"  # a RUNNING trial's system attribute: its worker (host, pid) and last beat
JOURNAL_SCHEME = "journal:///"  # our URL for a journal file (Optuna's own URLs name databases only)
RESULTS_FILE = "optimization_results.yaml"
SWEEPER_CLASS = "hydra_plugins.dnn_train_optuna.optuna_sweeper.OptunaPruningSweeper"
INSTALL = "pip install -e '.[sweeps]'"

# trial number -> optuna.trial.Trial, for the jobs the launcher runs in this process (basic launcher)
_ACTIVE: dict = {}


def _optuna():
    """optuna, or a one-line ConfigError saying how to get a recent enough one."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None:
        raise ConfigError("hydra-optuna-sweeper is installed: it requires optuna<3 and its sampler configs shadow "
                          "ours; pip uninstall hydra-optuna-sweeper")
    try:
        import optuna
        import optuna_integration  # noqa: F401
    except ImportError as ex:
        raise ConfigError(f"hparams_search needs optuna>=4 and optuna-integration ({ex}); {INSTALL}") from None
    if int(optuna.__version__.split(".")[0]) < 4:
        raise ConfigError(f"hparams_search needs optuna>=4 (found {optuna.__version__}); {INSTALL}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what each trial did
    return optuna


# ---------------------------------------------------------------- search space (Hydra's syntax)
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


# ---------------------------------------------------------------- storage
def study_file(hydra_cfg: DictConfig, name: str = STUDY_FILE) -> Path:
    """<sweep dir>/optuna.db, absolute (a Ray worker need not share the driver's working directory);
    a link at the file's own name is not resolved (journal_storage refuses it)."""
    return Path(os.path.join(hydra_cfg.runtime.cwd, hydra_cfg.sweep.dir)).resolve() / name


def storage_url(hydra_cfg: DictConfig) -> str:
    """hydra.sweeper.storage: null (SQLite in the sweep directory), journal (a journal file there),
    journal:///PATH (a journal file elsewhere) or any Optuna storage URL."""
    storage = hydra_cfg.sweeper.get("storage")
    if not storage:
        return f"sqlite:///{study_file(hydra_cfg)}"
    if str(storage) == "journal":
        return f"{JOURNAL_SCHEME}{study_file(hydra_cfg, JOURNAL_FILE)}"
    return str(storage)


def open_storage(url: str):
    optuna = _optuna()
    if url.startswith(JOURNAL_SCHEME):
        return journal_storage(Path(url[len(JOURNAL_SCHEME):]))
    if url.startswith("sqlite:"):  # parallel jobs report at once: wait for SQLite's lock
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.get_storage(url)


def journal_storage(path: Path):
    """Optuna's journal file storage with its O_EXCL lock file (JournalFileOpenLock: NFS v3 or
    later). The file is made or checked here first (Optuna opens it by name): a link, or anything
    but a plain file with one name, is refused, as the run directory's files are (rundir.links.refuse_links)."""
    import stat

    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    from dnn_train.rundir.artifacts import NOFOLLOW

    try:  # O_NONBLOCK: a named pipe would block the open
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | NOFOLLOW, 0o666)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as ex:
        raise ConfigError(f"hydra.sweeper.storage: cannot open the journal {path}: {ex.strerror}") from None
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        raise ConfigError(f"hydra.sweeper.storage: the journal {path} is not a plain file with one name "
                          "(a hard link, a pipe or a device): remove it, or choose another hydra.sweeper.storage")
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


# ---------------------------------------------------------------- workers: who runs which trial
def _this_host() -> tuple[str, str]:
    """(host name, pid namespace): a pid means this process only within both."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return socket.gethostname(), namespace


def _pid_exited(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, TypeError, ValueError, OverflowError):  # another user's process, or not a pid
        return False
    return False


def beat(trial) -> None:
    """Record this process as the trial's worker, with a fresh beat: another worker then sees the
    trial's record change and does not take it over."""
    host, namespace = _this_host()
    trial.storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, {
        "host": host, "pid_namespace": namespace, "pid": os.getpid(), "beat": time.time()})


@contextmanager
def heartbeat(trials: list, interval: float):
    """beat() the trials every `interval` seconds while the block runs (a thread: the job may run in
    this process's main thread). Ours: Optuna's heartbeat (RDBStorage only in Optuna 5.1, not the
    journal) fails a stale trial, and its retry makes a new trial, in a new job directory, which
    loses the trial's checkpoint."""
    stop = threading.Event()

    def loop():
        while not stop.wait(interval):
            for trial in trials:
                try:
                    beat(trial)
                except Exception as ex:  # noqa: BLE001 - a missed beat is retried; the job goes on
                    log.warning("trial %d: heartbeat not recorded (%s)", trial.number, ex)

    thread = threading.Thread(target=loop, name="dnn_train-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Liveness:
    """Which RUNNING trials are stale, as this worker sees them: a trial whose worker, on this host
    (and pid namespace), has exited; or one whose state and worker record (with its beat) have not
    changed for `grace` seconds of this worker's own clock, so no other host's clock is compared."""

    def __init__(self, grace: float, clock=time.monotonic) -> None:
        self.grace, self.clock = grace, clock
        self.host = _this_host()
        self.seen: dict = {}  # trial id -> (what the trial's record was, when this worker first saw it so)

    def stale(self, frozen) -> str | None:
        """Why the trial is stale, or None while it is live."""
        owner = frozen.system_attrs.get(OWNER_ATTR)
        if (isinstance(owner, dict) and (owner.get("host"), owner.get("pid_namespace")) == self.host
                and _pid_exited(owner.get("pid"))):
            return f"its worker, pid {owner.get('pid')} on this host, has exited"
        record, now = repr((frozen.datetime_start, owner)), self.clock()
        seen = self.seen.get(frozen._trial_id)
        if seen is None or seen[0] != record:
            self.seen[frozen._trial_id] = (record, now)
            return None
        if now - seen[1] >= self.grace:
            where = f"pid {owner.get('pid')} on {owner.get('host')}" if isinstance(owner, dict) else "unknown"
            return f"no heartbeat for {now - seen[1]:.0f} s (its worker: {where})"
        return None


@contextmanager
def claim_lock(sweep_dir: Path):
    """Held while a worker picks its next trials. Optuna's O_EXCL lock file, safe on NFS v3 or later
    (fcntl locks are not): a holder killed in its few milliseconds is replaced after 30 s."""
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(str(sweep_dir / CLAIM_LOCK))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------- the driver
class StudyDriver:
    def __init__(self, sampler: DictConfig, pruner: DictConfig, direction: str, study_name: str,
                 storage: str | None, n_trials: int, n_jobs: int, params: DictConfig | None,
                 monitor: str, interval: int = 1, heartbeat_interval: float = 10, grace_period: float = 60) -> None:
        _optuna()
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
        optuna = _optuna()

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
        optuna = _optuna()
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
        _ACTIVE.update({trial.number: trial for trial in trials})
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        finally:
            for trial in trials:
                _ACTIVE.pop(trial.number, None)
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
    optuna = _optuna()
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


# ---------------------------------------------------------------- the job side
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
    if number in _ACTIVE:
        return _ACTIVE[number]
    optuna = _optuna()
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
    import json

    if _search_config() is None:
        return
    try:
        results = json.loads((Path(run_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return
    if results.get("status") == "pruned":
        raise _optuna().TrialPruned(results.get("error") or "pruned in an earlier run")
