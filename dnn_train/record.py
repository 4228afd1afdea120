"""Who owns a run directory, what it records, and whether its process is still alive.

A run holds an OS lock (`fcntl.flock`) on `RUN_DIR/.lock` for its whole life; the file names the
holder (pid, host, start time, command, scheduler job) and carries a heartbeat, rewritten every
HEARTBEAT_S seconds while the run lives. A second process that wants the directory (the same
command twice, a resume of a live run, two sweep jobs) is refused with that name. On one host the
flock decides: it dies with its process, whatever kills it, so a run left "running" whose lock is
free has crashed. A holder on another host is alive while its heartbeat is fresh (NFS and Lustre
may not show one host's flock to another), and dead once it is older than STALE_AFTER_S. A
requeued instance of the same scheduler job (SLURM, submitit) takes its own directory over.
Ours: Keras and Hydra have no notion of a directory owned by one process.
"""
from __future__ import annotations

import errno
import json
import logging
import logging.handlers
import math
import os
import shutil
import signal
import socket
import stat
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from hydra.experimental.callback import Callback

from dnn_train import provenance
from dnn_train.errors import NO_LINKS, ConfigError, Diverged, Interrupted, NoSpace, Refused, RunBusy, is_pruned, one_line

LOCK_FILE = ".lock"
HEARTBEAT_S = 30.0     # the lock file's heartbeat is rewritten this often while its run lives
STALE_AFTER_S = 300.0  # a holder on another host whose heartbeat is older than this is dead (hosts' clocks in sync)
LOCK_BYTES = 2048      # the holder's record, padded: each heartbeat rewrites the same bytes in place

try:
    import fcntl
except ImportError:  # not POSIX: no locking (documented)
    fcntl = None


def job_identity() -> Optional[str]:
    """This process's scheduler job, the same in a requeued instance of it and different in any
    other: SLURM's job id (an array task's JOBID_TASK), step and task rank, or submitit's local
    executor's job and rank. None outside a scheduler."""
    env = os.environ
    if env.get("SLURM_JOB_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID')}" if env.get("SLURM_ARRAY_JOB_ID") \
            else env["SLURM_JOB_ID"]
        return f"slurm:{job}.{env.get('SLURM_STEP_ID', 'batch')}/{env.get('SLURM_PROCID', '0')}"
    if env.get("SUBMITIT_LOCAL_JOB_ID"):
        return f"submitit-local:{env['SUBMITIT_LOCAL_JOB_ID']}/{env.get('SUBMITIT_LOCAL_GLOBALID', '0')}"
    return None


def _read_holder(fd: int) -> dict:
    """The holder's record in the lock file ({} if none, or unreadable: then nobody is named)."""
    for _ in range(3):  # a heartbeat rewriting it at this instant: read again
        try:
            info = json.loads(os.pread(fd, 1 << 16, 0).decode() or "{}")
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            time.sleep(0.01)
    return {}


def _holder_text(info: dict) -> str:
    if not info:
        return "another process"
    beat = info.get("heartbeat")
    age = f", heartbeat {round(time.time() - beat)} s ago" if type(beat) in (int, float) and math.isfinite(beat) else ""
    pid, host, started, command = (_printable(info.get(k, "")) for k in ("pid", "host", "started", "command"))
    return f"pid {pid} on {host} since {started}{age} ({command})"


def _printable(value, limit: int = 300) -> str:
    """A lock file's field as one printable line (the file is anyone's to write)."""
    text = "".join(c if c.isprintable() else " " for c in str(value)[:limit])
    return " ".join(text.split())


def _holder_alive(info: dict, flock_works: bool, takeover: bool = False) -> bool:
    """Whether the process the lock file names is alive, once this process could take the flock (or
    the filesystem has none): on this host the flock said no already; on another host its heartbeat
    decides. `takeover`: a requeued instance of the holder's own scheduler job replaces it."""
    pid, beat = info.get("pid"), info.get("heartbeat")
    if type(pid) is not int or pid <= 0:  # nobody named (a released lock, or not a holder's record)
        return False
    if takeover and info.get("job") and info.get("job") == job_identity():
        return False
    # fresh: within STALE_AFTER_S either way (a clock ahead by more, or a planted "forever", is not trusted)
    fresh = type(beat) in (int, float) and abs(time.time() - beat) < STALE_AFTER_S
    if info.get("host") == socket.gethostname():
        return not flock_works and fresh and _pid_alive(pid)
    return fresh


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OverflowError:
        return False
    except OSError:
        return True  # another user's process (EPERM): it exists
    return True


def _flock(fd: int, how: int) -> bool:
    """flock, or False where the filesystem has none (Lustre without -o flock: ENOSYS; some NFS:
    ENOLCK): the heartbeat alone decides there. BlockingIOError: held."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        raise
    except OSError as ex:
        if ex.errno in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return False
        raise


class RunLock:
    """The lock on a run directory, held from acquire() until release() or the process's end."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: Optional[int] = None
        self._announced = False
        self._info: dict = {}
        self._io = threading.Lock()  # the heartbeat thread and release() share the descriptor
        self._stop = threading.Event()

    def acquire(self, wait: float = 0.5) -> None:
        """Take the lock or raise RunBusy naming its holder (after `wait` seconds: a report may be
        probing it for an instant). A holder on another host with a fresh heartbeat holds it too."""
        if fcntl is None:
            return
        from dnn_train.artifacts import NOFOLLOW

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                flock_works = _flock(fd, fcntl.LOCK_EX)
                holder = _read_holder(fd)
                if not _holder_alive(holder, flock_works, takeover=True):
                    break
            except BlockingIOError:
                holder = None
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunBusy(f"{self.path.parent} is in use by {_holder_text(holder or _read_path(self.path))}; "
                              "wait for it to end, or choose another hydra.run.dir") from None
            time.sleep(0.05)
        self._fd = fd
        self._announced = False

    def announce(self) -> None:
        """Name this process in the lock file, for whoever is refused while it runs (only a process
        that will use the directory does: a refused or no-op one leaves the file as it was), and
        keep its heartbeat fresh from a thread until release()."""
        self._info = {"pid": os.getpid(), "host": socket.gethostname(), "job": job_identity(),
                      "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}
        self._beat()
        self._announced = True
        self._stop.clear()
        threading.Thread(target=self._heartbeat, name="dnn_train-lock-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        data = json.dumps({**self._info, "heartbeat": round(time.time(), 3)}).encode()
        data += b" " * (LOCK_BYTES - len(data))  # the same length every time: a reader never sees it shrink
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._io:
                if self._fd is None:
                    return
                try:
                    self._beat()
                except OSError as ex:  # a full disk, a lost mount: the run goes on; others may take over after STALE_AFTER_S
                    logging.getLogger("dnn_train").warning("cannot refresh %s (%s)", self.path, ex.strerror)

    def release(self) -> None:
        self._stop.set()
        with self._io:
            if self._fd is not None:
                if self._announced:
                    os.ftruncate(self._fd, 0)  # no holder any more
                os.close(self._fd)  # closing the descriptor releases the flock
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_path(path: Path) -> dict:
    from dnn_train.artifacts import NOFOLLOW

    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return {}
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def is_alive(run_dir: Path) -> Optional[bool]:
    """True if a live process holds the run's lock (here: its flock; on another host: a fresh
    heartbeat), False if none does (a run left "running" then crashed), None if it cannot be told
    (no lock file: an older run, or no fcntl)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    from dnn_train.artifacts import NOFOLLOW

    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return None
    try:
        flock_works = _flock(fd, fcntl.LOCK_SH)
        return _holder_alive(_read_holder(fd), flock_works)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def liveness(run_dir: Path, results: dict) -> str:
    """The status to show for a run: results.json's, except that a run left "running" by a process
    that is gone shows as "crashed (process gone)"."""
    status = results.get("status", "not started")
    if status != "running":
        return status
    alive = is_alive(run_dir)
    if alive is False:
        return "crashed (process gone)"
    return status


# ---------------------------------------------------------------- one invocation's hold on a run
RESERVE_FILE, RESERVE_BYTES = ".reserve", 65536  # freed when the disk fills up, so the final record still fits
# may differ between the two commands: how it is shown and labelled, and the devices (they change who
# computes, not what: a run resumes on fewer)
IGNORED_ON_RESUME = ("trainer.resume", "trainer.progress", "run.name", "run.tags", "run.notes",
                     "trainer.distribution", "trainer.devices")
RUN_FILES = {"results.json", "config.yaml", ".hydra", "metrics.csv", "dnn_train.log", "checkpoint"}
# Directories Hydra (or the Python API) created for this invocation, so that bad input removes
# only those: filled by the RunDirs callback before Hydra makes the run directory.
CREATED: set = set()
REFUSED: list = []  # sweep jobs refused in this process (their directories hold other runs), for the sweep's end


def _preempt_signal() -> signal.Signals:
    """submitit's preemption and timeout signal: SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL names another."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


PREEMPT_SIGNAL = _preempt_signal()


SIGNALLED: list = []  # the signal that is ending the running run (see raise_if_signalled)


def raise_if_signalled() -> None:
    """At a step boundary (a Keras callback): a signal whose exception was lost inside a library (raised
    in TensorFlow's C code, which swallowed it) ends the run here, as it would have where it arrived."""
    if SIGNALLED:
        raise Interrupted(SIGNALLED[-1])


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


@contextmanager
def _space_or_refuse(run_dir: Path):
    """ENOSPC (or a full quota) while taking the run directory: the run is refused, not failed."""
    try:
        yield
    except OSError as ex:
        if ex.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = next((p for p in (run_dir, *run_dir.parents) if p.exists()), run_dir)
        free = shutil.disk_usage(where).free // 1024 if where.exists() else 0
        raise NoSpace(run_dir, free, RESERVE_BYTES // 1024) from None


def remove_created(run_dir: Path) -> bool:
    """Bad input: remove the run directory (from its topmost new ancestor) if this invocation made
    it; False if it existed before."""
    run_dir = Path(run_dir).absolute()
    top = next((p for p in (run_dir, *run_dir.parents) if p in CREATED), None)
    if top is None:
        return False
    shutil.rmtree(top, ignore_errors=True)
    CREATED.discard(top)
    return True


def remove_created_unused() -> None:
    """Bad input that ends a whole invocation after Hydra made its directory (a sweep job's config
    refused by the gate, a logging config logging refuses): remove what this invocation made,
    unless a job recorded something there (results.json)."""
    for top in list(CREATED):
        if not any(top.rglob("results.json")):
            shutil.rmtree(top, ignore_errors=True)
            CREATED.discard(top)


def note_created(path: Path) -> None:
    """Before `path` is made: remember its topmost ancestor that does not exist yet."""
    path = Path(path).absolute()
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    if missing is not None:
        CREATED.add(missing)




def refuse_links(run_dir: Path) -> None:
    """The gate every run passes before it writes in its directory: everything in it, at any depth,
    is a plain file with one name or a folder. A symbolic link (dangling or not) or a hard link
    planted there would have the run write (truncate its lock, append its log, make its .reserve)
    wherever it points; a named pipe would hang it. dnn_train makes none of these, so any one is
    refused (Refused: one line, exit 2), whatever its name. The run directory itself may be a link:
    the user named it. Ours: neither Hydra nor Keras checks what a directory holds."""
    for here, folders, files in os.walk(run_dir):  # a linked folder is listed, never entered
        for name in folders + files:
            path = Path(here, name)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                raise Refused(f"{path} is a symbolic link (to {os.readlink(path)}); {NO_LINKS}")
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                raise Refused(f"{path} is a hard link (one of {st.st_nlink} names of the same file); {NO_LINKS}")
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                raise Refused(f"{path} is not a regular file or folder (a pipe, socket or device); dnn_train writes "
                              "only files of its own in a run directory: remove it or choose another hydra.run.dir")


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
                 record_bad_input: bool = False):
        self.dir = Path(run_dir).absolute()
        self.cfg, self.overrides, self.hydra_cfg = cfg, list(overrides), hydra_cfg
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
        self._signals: dict = {}
        self._arrived = None  # the signal that ended the run, if one did

    # ------------------------------------------------------------ entering
    def __enter__(self) -> "Run":
        with _space_or_refuse(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        contents = {p.name for p in self.dir.iterdir()} - {LOCK_FILE, RESERVE_FILE}
        if contents and not contents & RUN_FILES:  # judged before anything is opened, or the walk below
            raise Refused(f"{self.dir} exists and holds files that are not a dnn_train run; choose a new or "
                          "empty directory (hydra.run.dir=DIR)")
        refuse_links(self.dir)
        lock_existed = self.lock.path.exists()
        try:
            with _space_or_refuse(self.dir):
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
        self._install_signals()
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
        from dnn_train.artifacts import CONFIG_FILE, RESULTS_FILE

        contents = {p.name for p in self.dir.iterdir()} - {LOCK_FILE, RESERVE_FILE}
        results_path = self.dir / RESULTS_FILE
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
        changed = self._changed_keys(self.dir / CONFIG_FILE)
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
        flat_old, flat_new = _flatten(old), _flatten(new)
        return sorted(k for k in flat_old.keys() | flat_new.keys()
                      if k not in IGNORED_ON_RESUME and flat_old.get(k, _ABSENT) != flat_new.get(k, _ABSENT))

    # ------------------------------------------------------------ writing
    def begin(self, **fields) -> None:
        """The run starts for real: write its record (.hydra/ for a new run, config.yaml, results.json
        "running"), and from now on its log goes to dnn_train.log too."""
        from omegaconf import OmegaConf

        from dnn_train import artifacts

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
        self._write(self.results)

    def update(self, **fields) -> None:
        self.results.update(fields)

    def finish(self, status: str, **fields) -> dict:
        """The final record: results.json with `status`, the wall time and this process's memory."""
        self.results.update(fields)
        self.results.update(status=status, wall_seconds=round(time.time() - self.started, 2), rss_mb=_rss_mb())
        for key in ("pid", "host"):
            self.results.pop(key, None)
        with _signals_blocked():  # a second Ctrl-C waits until the record is whole
            self._write(self.results)
        from dnn_train import tracking

        tracking.finished(self)  # TensorBoard HParams, and the MLflow run (logger=mlflow)
        return self.results

    def _reserve(self) -> None:
        """Room for the final record, taken before anything else is written (data loaded, TensorFlow
        imported): random bytes, which a compressing filesystem cannot shrink. No room: NoSpace."""
        from dnn_train import artifacts

        reserve = self.dir / RESERVE_FILE
        if reserve.is_file() and not reserve.is_symlink():
            return
        try:
            with _space_or_refuse(self.dir), open(reserve, "xb", opener=artifacts.nofollow) as f:
                self._wrote.append(reserve)
                f.write(os.urandom(RESERVE_BYTES))
                f.flush()
                os.fsync(f.fileno())
        except NoSpace:
            reserve.unlink(missing_ok=True)
            raise

    def _write(self, results: dict) -> None:
        from dnn_train import artifacts

        path, reserve = self.dir / artifacts.RESULTS_FILE, self.dir / RESERVE_FILE
        try:
            artifacts.write_json(path, results)
        except OSError as ex:
            if ex.errno not in (errno.ENOSPC, errno.EDQUOT) or not reserve.exists():
                raise
            reserve.unlink()  # the disk is full: give back the reserved room, and write the record in it
            artifacts.write_json(path, results)
        if results.get("status") != "running":
            reserve.unlink(missing_ok=True)

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
        # exception (TensorFlow: "SystemError: ... returned a result with an exception set"): the run
        # was interrupted all the same.
        lost = ex is not None and SIGNALLED and not isinstance(ex, KeyboardInterrupt)
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
        from dnn_train.config.hydra_errors import describe_error

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
            self.finish("diverged", error=str(ex), diverged_epoch=getattr(ex, "epoch", None),
                        diverged_step=getattr(ex, "step", None))
        elif is_pruned(ex):  # a search's pruner stopped it: it will never resume
            done = self._epochs_done()
            message = f"pruned by the search's pruner after epoch {done.get('epochs')}"
            logging.getLogger("dnn_train").info("%s (best val accuracy %s)", message, done.get("best_val_accuracy"))
            self.finish("pruned", error=message, **done)
            shutil.rmtree(self.dir / "checkpoint", ignore_errors=True)  # dnn_train.checkpoint.CHECKPOINT_DIR
        else:
            message = describe_error(ex) or one_line(ex)
            if self._file_handler is not None and describe_error(ex) is None:  # the traceback, in dnn_train.log only
                self._file_handler.handle(logging.LogRecord("dnn_train", logging.ERROR, __file__, 0, "run failed: %s",
                                                            (message,), (type(ex), ex, ex.__traceback__)))
            self.finish("failed", error=message)

    def _epochs_done(self) -> dict:
        """epochs, best_val_accuracy and best_epoch from metrics.csv (a run that stopped early)."""
        from dnn_train import artifacts

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
        """Let go of everything; returns the preemption handler to call now (see _install_signals)."""
        requeue = self._restore_signals()
        logging.getLogger().removeHandler(self._buffer)
        if self._file_handler is not None:
            logging.getLogger().removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None
        self.lock.release()
        return requeue

    # ------------------------------------------------------------ signals
    def _install_signals(self) -> None:
        """SIGTERM ends the run as Ctrl-C does: the current step finishes (Python handles signals
        between graph calls), then the record says "interrupted". Once one has arrived, the run is
        stopping: further ones are ignored until its record is written (a second Ctrl-C a few
        milliseconds later once cut the record short, leaving "running").
        The preemption signal (SIGUSR2, submitit's; SUBMITIT_PREEMPT_SIGNAL names another) ends the
        run the same way; then, if the process had its own handler for it (submitit's: it pickles
        the job and requeues it), that handler runs, and the requeued job resumes this run from its
        last epoch's checkpoint. In a submitit job SIGTERM keeps submitit's handler (it ignores
        SIGTERM: SLURM sends it before the preemption signal)."""
        self._arrived = None
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            for sig in self._signals:
                signal.signal(sig, signal.SIG_IGN)  # _leave puts the previous handlers back
            self._arrived = signum
            SIGNALLED.append(signum)
            raise Interrupted(signum)

        signals = [signal.SIGINT, PREEMPT_SIGNAL]
        if not os.environ.get("SUBMITIT_EXECUTOR"):
            signals.append(signal.SIGTERM)
        for sig in signals:
            self._signals[sig] = signal.signal(sig, handler)

    def _restore_signals(self):
        """Put the previous handlers back; returns the previous preemption handler, bound to its
        signal, if that signal arrived and the handler is the process's own (else None)."""
        previous = self._signals.get(PREEMPT_SIGNAL)
        for sig, old in self._signals.items():
            signal.signal(sig, old)
        self._signals = {}
        if self._arrived == PREEMPT_SIGNAL and callable(previous):
            self._arrived = None
            return lambda: previous(PREEMPT_SIGNAL, None)
        return None


class _LogFile(logging.FileHandler):
    """logging's FileHandler, opening its file without following a link (artifacts.nofollow)."""

    def _open(self):
        from dnn_train.artifacts import nofollow

        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors, opener=nofollow)


class RunDirs(Callback):
    """Hydra callback (conf/config.yaml): notes, before Hydra makes the run or sweep directory,
    whether it already existed, so bad input removes only what this invocation made."""

    def on_run_start(self, config, **kwargs) -> None:
        note_created(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config, **kwargs) -> None:
        note_created(Path(str(config.hydra.sweep.dir)))


_ABSENT = object()


def _flatten(node, prefix: str = "") -> dict:
    out = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _label(cfg) -> dict:
    """results.json's name, tags and notes (config.py RunConf)."""
    label = cfg.get("run") or {}
    return {"name": label.get("name"), "tags": [str(t) for t in label.get("tags") or []],
            "notes": label.get("notes")}


@contextmanager
def _signals_blocked():
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, PREEMPT_SIGNAL})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _rss_mb():
    """This process's resident memory now (MB; Linux), to watch memory across a sweep's jobs."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
