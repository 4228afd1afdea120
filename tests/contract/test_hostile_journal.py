"""A search's journal file (hydra.sweeper.storage=journal, dnn_train/sweeps/search_storage.py journal_storage) is
appended to by every worker: a link or a special file planted at its name is refused in one line,
and nothing outside the sweep directory changes. Cases: every kind of planted file; and one through
the CLI (exit 2, no traceback)."""
from __future__ import annotations

import os

import pytest

from tests.hostile import SMALL_RUN, Sandbox

KINDS = ("symlink", "dangling", "hardlink", "fifo")


def _plant(sandbox: Sandbox, path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        path.symlink_to(sandbox.victim)
    elif kind == "dangling":
        path.symlink_to(sandbox.outside / "made-through-the-link")
    elif kind == "hardlink":
        os.link(sandbox.victim, path)
    else:
        os.mkfifo(path)


@pytest.mark.plugins
@pytest.mark.parametrize("kind", KINDS)
def test_a_planted_journal_is_refused_and_nothing_outside_changes(kind, tmp_path):
    pytest.importorskip("optuna", minversion="4", reason="needs the sweeps extra (optuna>=4)")
    pytest.importorskip("optuna_integration", reason="needs the sweeps extra (optuna-integration)")
    from dnn_train.sweeps.search_storage import JOURNAL_FILE, journal_storage
    from dnn_train.errors import ConfigError

    sandbox = Sandbox(tmp_path)
    journal = sandbox.run / JOURNAL_FILE
    _plant(sandbox, journal, kind)
    sandbox.freeze()
    with pytest.raises(ConfigError, match=f"^hydra.sweeper.storage: .*journal {journal}"):
        journal_storage(journal)
    sandbox.check(None)
    assert not (sandbox.outside / "made-through-the-link").exists()


@pytest.mark.plugins
def test_the_search_refuses_a_linked_journal_in_one_line(tmp_path):
    pytest.importorskip("optuna", minversion="4", reason="needs the sweeps extra (optuna>=4)")
    pytest.importorskip("optuna_integration", reason="needs the sweeps extra (optuna-integration)")
    sandbox = Sandbox(tmp_path)
    _plant(sandbox, sandbox.run / "optuna.journal", "symlink")
    proc = sandbox.cli("-m", "hydra/sweeper=optuna_pruning", "hydra.sweeper.storage=journal",
                       f"hydra.sweep.dir={sandbox.run}", "hydra.sweeper.n_trials=1",
                       "optimizer.learning_rate=choice(0.01,0.001)", *SMALL_RUN)
    line = sandbox.check(proc, code=2, prefix="dnn_train: error: hydra.sweeper.storage: cannot open the journal")
    assert "symbolic links" in line and not (sandbox.run / "0").exists()
