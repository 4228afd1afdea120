"""Where a search's Optuna study lives: SQLite in the sweep directory, a journal file, or any Optuna storage URL.

The study lives in SQLite under the sweep directory (<sweep dir>/optuna.db), or with
hydra.sweeper.storage=journal in Optuna's journal file (<sweep dir>/optuna.journal: safe on NFS and
other shared filesystems, where SQLite's locking is not), or at another Optuna storage URL. The
search YAMLs fix the sweep directory (outputs/hparams_search/<study_name>), so rerunning the same
command continues it, and running it again elsewhere adds a worker to it (docs/search-workers.md).
`require_optuna` is the one gate to Optuna: a recent enough one, or a one-line ConfigError.
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from dnn_train.errors import ConfigError

STUDY_FILE = "optuna.db"
JOURNAL_FILE = "optuna.journal"  # hydra.sweeper.storage=journal
JOURNAL_SCHEME = "journal:///"  # our URL for a journal file (Optuna's own URLs name databases only)
INSTALL = "pip install -e '.[sweeps]'"


def require_optuna():
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
    optuna = require_optuna()
    if url.startswith(JOURNAL_SCHEME):
        return journal_storage(Path(url[len(JOURNAL_SCHEME):]))
    if url.startswith("sqlite:"):  # parallel jobs report at once: wait for SQLite's lock
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.get_storage(url)


def journal_storage(path: Path):
    """Optuna's journal file storage with its O_EXCL lock file (JournalFileOpenLock: NFS v3 or
    later). The file is made or checked here first (Optuna opens it by name): a link, or anything
    but a plain file with one name, is refused, as the run directory's files are (record.refuse_links)."""
    import stat

    optuna = require_optuna()
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
