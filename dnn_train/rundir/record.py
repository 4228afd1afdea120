"""A run's record, from taking its directory to its final status (results.json), and who is told it finished.

Nothing is written before `begin()`: bad input found while setting up leaves the directory as it
was. The lock (rundir/lock.py), the signals that end a run (rundir/signals.py) and what this
invocation created (rundir/created.py) are taken and let go of here, in the run's order.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import shutil
import socket
import time
from pathlib import Path

from dnn_train import provenance
from dnn_train.errors import ConfigError, Diverged, Interrupted, NoSpace, Refused, RunBusy, is_pruned
from dnn_train.failures import explain
from dnn_train.rundir import artifacts, reserve, signals
from dnn_train.rundir.created import remove_created
from dnn_train.rundir.links import refuse_links
from dnn_train.rundir.lock import LOCK_FILE, RunLock, job_identity
from dnn_train.rundir.reserve import RESERVE_FILE
from dnn_train.rundir.signals import PREEMPT_SIGNAL, SIGNALLED

_ABSENT = object()
_FINISHED: list = []  # called with each Run once its final record is written (on_finish)
# may differ between the two commands: how it is shown and labelled, and the devices (they change who
# computes, not what: a run resumes on fewer)
IGNORED_ON_RESUME = ("trainer.resume", "trainer.progress", "run.name", "run.tags", "run.notes",
                     "trainer.distribution", "trainer.devices")
RUN_FILES = {"results.json", "config.yaml", ".hydra", "metrics.csv", "dnn_train.log", "checkpoint"}


def on_finish(observer) -> None:
    """Have `observer(run)` called once each run's final record is written, whatever its status
    (dnn_train/tracking.py: TensorBoard HParams and the MLflow run). Registered once, however often."""
    if observer not in _FINISHED:
        _FINISHED.append(observer)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


class Run:
    """The run directory as one invocation holds it, from validation to the final status.

    Entered: the lock is taken (Refused if another process holds it) and what the directory holds
    is judged: `state` is "new", "resume" (trainer.resume, or a sweep rerun, with the same config)
    or "completed" (nothing to do). Nothing is written until `begin()`, so bad input found while
    setting up (exit 2) leaves the directory as it was, and removes it if this invocation made it.
    `begin` writes .hydra/ (a new run only), config.yaml and results.json ("running", with the pid
    and host); `finish` writes the final status. Left by an exception, the record says what ended
    it: interrupted (signals, also during set-up), diverged, or failed with the one-line reason.
    """

    def __init__(self, run_dir: Path, cfg, overrides=(), hydra_cfg=None, resume: bool = False,
                 record_bad_input: bool = False, threads=None):
        self.dir = Path(run_dir).absolute()
        self.cfg, self.overrides, self.hydra_cfg = cfg, list(overrides), hydra_cfg
        self.threads = threads  # the threads the job is given (None: all), for its provenance
        self.resume = resume
        self.record_bad_input = record_bad_input  # a sweep job: bad input is this job's recorded failure
        self.lock = RunLock(self.dir)
        self.state = "new"
        self.results: dict = {}
        self.started = time.time()
        self._begun = False
        self._wrote: list[Path] = []
        self._buffer = logging.handlers.MemoryHandler(10_000, flushLevel=logging.CRITICAL + 1)
        self._file_handler = None
        self._signals = signals.Handlers()

    # ------------------------------------------------------------ entering
    def __enter__(self) -> "Run":
        with reserve.space_or_refuse(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        contents = {p.name for p in self.dir.iterdir()} - {LOCK_FILE, RESERVE_FILE}
        if contents and not contents & RUN_FILES:  # judged before anything is opened, or the walk below
            raise Refused(f"{self.dir} exists and holds files that are not a dnn_train run; choose a new or "
                          "empty directory (hydra.run.dir=DIR)")
        refuse_links(self.dir)
        lock_existed = self.lock.path.exists()
        try:
            with reserve.space_or_refuse(self.dir):
                self.lock.acquire()
        except RunBusy as ex:
            raise Refused(str(ex)) from None
        except NoSpace:
            if not remove_created(self.dir):
                _remove_if_empty(self.dir)
            raise
        if not lock_existed:
            self._wrote.append(self.lock.path)
        if logging.getLogger("dnn_train").getEffectiveLevel() > logging.INFO:  # the Python API: no logging set up
            logging.getLogger("dnn_train").setLevel(logging.INFO)
        logging.getLogger().addHandler(self._buffer)
        self._signals.install()
        try:
            self._judge()
            if self.state != "completed":
                self._reserve()
        except BaseException as ex:
            self._remove_what_we_made()
            self._leave()
            if isinstance(ex, NoSpace):  # a sweep job's folder that Hydra made: no record, so no folder
                _remove_if_empty(self.dir)
            raise
        if self.state != "completed" and self.lock.held:
            self.lock.announce()
        return self

    def _judge(self) -> None:
        contents = {p.name for p in self.dir.iterdir()} - {LOCK_FILE, RESERVE_FILE}
        results_path = self.dir / artifacts.RESULTS_FILE
        if not contents:
            return
        try:
            previous = json.loads(results_path.read_text()) if results_path.is_file() else {}
        except ValueError:
            previous = {"status": "unreadable"}
        status = previous.get("status", "unknown")
        requeued = previous.get("job") is not None and previous.get("job") == job_identity()
        if requeued:  # the scheduler restarted this very job (preempted, timed out): it goes on by itself
            logging.getLogger("dnn_train").info("%s: this job (%s) was requeued; continuing its run", self.dir,
                                                previous["job"])
        if not self.resume and not requeued:
            raise Refused(f"{self.dir} already holds a run (status {status}); add trainer.resume=true to "
                          "continue it, or choose another hydra.run.dir")
        changed = self._changed_keys(self.dir / artifacts.CONFIG_FILE)
        if changed:
            raise Refused(f"{self.dir} holds a run with a different config ({', '.join(changed[:6])}"
                          f"{', ...' if len(changed) > 6 else ''}); rerun it with the same overrides, or choose "
                          "another directory")
        self.results = previous
        self.state = "completed" if status == "completed" else "resume"

    def _changed_keys(self, recorded: Path) -> list[str]:
        from omegaconf import OmegaConf

        if not recorded.is_file():
            return []
        old = OmegaConf.to_container(OmegaConf.load(recorded), resolve=False)
        new = OmegaConf.to_container(self.cfg, resolve=True)
        flat_old, flat_new = artifacts.flatten(old), artifacts.flatten(new)
        return sorted(k for k in flat_old.keys() | flat_new.keys()
                      if k not in IGNORED_ON_RESUME and flat_old.get(k, _ABSENT) != flat_new.get(k, _ABSENT))

    # ------------------------------------------------------------ writing
    def begin(self, **fields) -> None:
        """The run starts for real: write its record (.hydra/ for a new run, config.yaml, results.json
        "running"), and from now on its log goes to dnn_train.log too."""
        from omegaconf import OmegaConf

        if self._begun:
            return
        self._begun = True
        if self.state == "new":
            hydra_dir = artifacts.make_dir(self.dir / ".hydra")
            artifacts.write_text(hydra_dir / "config.yaml", OmegaConf.to_yaml(self.cfg))
            artifacts.write_text(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(self.overrides)))
            if self.hydra_cfg is not None:
                artifacts.write_text(hydra_dir / "hydra.yaml", OmegaConf.to_yaml(self.hydra_cfg))
            artifacts.write_text(self.dir / artifacts.CONFIG_FILE, OmegaConf.to_yaml(self.cfg, resolve=True))
        self._attach_log_file()
        if self.state == "resume":
            for key in ("error", "diverged_epoch", "diverged_step", "wall_seconds", "job"):
                self.results.pop(key, None)
        if job_identity() is not None:  # a requeued instance of this job recognizes its run by it
            self.results["job"] = job_identity()
        self.results.update(fields)
        self.results.update(status="running", pid=os.getpid(), host=socket.gethostname(),
                            started=time.strftime("%Y-%m-%d %H:%M:%S"))
        self.results.update(_label(self.cfg), provenance=provenance.collect(self))  # every task begins here
        reserve.write_results(self.dir, self.results)

    def update(self, **fields) -> None:
        self.results.update(fields)

    def finish(self, status: str, **fields) -> dict:
        """The final record: results.json with `status`, the wall time and this process's memory."""
        self.results.update(fields)
        self.results.update(status=status, wall_seconds=round(time.time() - self.started, 2), rss_mb=_rss_mb())
        for key in ("pid", "host"):
            self.results.pop(key, None)
        with signals.blocked():  # a second Ctrl-C waits until the record is whole
            reserve.write_results(self.dir, self.results)
        for observer in _FINISHED:
            observer(self)
        return self.results

    def _reserve(self) -> None:
        reserve.take(self.dir, self._wrote)

    def _attach_log_file(self) -> None:
        handler = _LogFile(self.dir / "dnn_train.log")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        self._buffer.setTarget(handler)
        self._buffer.flush()  # what was logged while setting up
        logging.getLogger().removeHandler(self._buffer)
        logging.getLogger().addHandler(handler)
        self._file_handler = handler

    # ------------------------------------------------------------ leaving
    def __exit__(self, kind, ex, tb) -> bool:
        # A signal's exception raised inside a library's C code or clean-up can come out as another
        # exception (TensorFlow: "SystemError: ... returned a result with an exception set"), or as none
        # at all when it was lost after the last step's end (signals.keep_lost): the run was interrupted
        # all the same. The record stays "completed" if it was final; the command and a sweep still stop.
        lost = bool(SIGNALLED) and not isinstance(ex, KeyboardInterrupt)
        if lost:
            ex = Interrupted(SIGNALLED[-1])
        try:
            if ex is not None:
                self._record_exception(ex)
        finally:
            SIGNALLED.clear()
            requeue = self._leave()
        if requeue is not None:  # the run's record is written: now the scheduler's own handler requeues the job
            requeue()
        if lost:
            raise ex from None
        return False

    def _record_exception(self, ex: BaseException) -> None:
        if isinstance(ex, ConfigError) and not self._begun and not self.record_bad_input:
            self._remove_what_we_made()  # bad input: as if this invocation never ran
            return
        if self.state == "completed" or self.results.get("status") == "completed":
            return  # nothing to do, or a signal right after the final record: the run did complete
        if not self._begun:
            self.begin()
        if isinstance(ex, KeyboardInterrupt):
            if getattr(ex, "signum", None) == PREEMPT_SIGNAL:
                logging.getLogger("dnn_train").warning(
                    "%s (preempted, or the time limit is near): interrupted; a requeued job resumes the run from its "
                    "last epoch's checkpoint", PREEMPT_SIGNAL.name)
            self.finish("interrupted")
        elif isinstance(ex, Diverged):
            self.finish("diverged", error=str(ex), diverged_epoch=ex.epoch, diverged_step=ex.step)
        elif is_pruned(ex):  # a search's pruner stopped it: it will never resume
            done = self._epochs_done()
            message = f"pruned by the search's pruner after epoch {done.get('epochs')}"
            logging.getLogger("dnn_train").info("%s (best val accuracy %s)", message, done.get("best_val_accuracy"))
            self.finish("pruned", error=message, **done)
            shutil.rmtree(self.dir / "checkpoint", ignore_errors=True)  # dnn_train.checkpoint.CHECKPOINT_DIR
        else:
            failure = explain(ex)
            if self._file_handler is not None and not failure.bad_input:  # the traceback, in dnn_train.log only
                self._file_handler.handle(logging.LogRecord("dnn_train", logging.ERROR, __file__, 0, "run failed: %s",
                                                            (failure.message,), (type(ex), ex, ex.__traceback__)))
            self.finish("failed", error=failure.message)

    def _epochs_done(self) -> dict:
        """epochs, best_val_accuracy and best_epoch from metrics.csv (a run that stopped early)."""
        path = self.dir / artifacts.METRICS_FILE
        try:
            metrics = artifacts.read_metrics(path)
        except (OSError, ValueError):
            return {}
        return {"epochs": len(metrics), **artifacts.best_epoch(metrics)}

    def _remove_what_we_made(self) -> None:
        logging.getLogger().removeHandler(self._buffer)
        self.lock.release()
        if self.record_bad_input or not remove_created(self.dir):  # a sweep's root holds its other jobs
            for path in self._wrote:
                path.unlink(missing_ok=True)

    def _leave(self):
        """Let go of everything; returns the preemption handler to call now (signals.Handlers.restore)."""
        requeue = self._signals.restore()
        logging.getLogger().removeHandler(self._buffer)
        if self._file_handler is not None:
            logging.getLogger().removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None
        self.lock.release()
        return requeue


class _LogFile(logging.FileHandler):
    """logging's FileHandler, opening its file without following a link (artifacts.nofollow)."""

    def _open(self):
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors, opener=artifacts.nofollow)


def _label(cfg) -> dict:
    """results.json's name, tags and notes (config/schema.py RunConf)."""
    label = cfg.get("run") or {}
    return {"name": label.get("name"), "tags": [str(t) for t in label.get("tags") or []],
            "notes": label.get("notes")}


def _rss_mb():
    """This process's resident memory now (MB; Linux), to watch memory across a sweep's jobs."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
