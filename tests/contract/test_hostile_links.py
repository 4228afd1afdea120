"""Hostile links in a run directory: "dnn_train never follows a link it did not make".

A link planted in a run directory (a symbolic link to a file or folder outside, a dangling one, a
hard link to a file outside; and a named pipe, which would hang the run) must never be written
through, whichever name it takes. The names are
not listed here: they are every file and folder one real run leaves or holds while it runs (seen by
a callback at each epoch's end, then interrupted and resumed to completion). Each is planted in a
copy of the interrupted run, and taking the directory again (a resume, and a fresh run into it) is
refused with one line, nothing outside the sandbox's run directory changed (tests/hostile.py).
The gate (dnn_train/rundir/links.py, refuse_links) is checked in this process; three command lines prove
it end to end, and the writers' own O_NOFOLLOW is checked for a link planted after the gate.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import keras
import pytest

from dnn_train import checkpoint
from dnn_train.api import compose, run
from dnn_train.callbacks import MetricsCSV
from dnn_train.rundir import artifacts
from dnn_train.rundir.record import RESERVE_FILE, Run
from dnn_train.errors import Interrupted, Refused, one_line
from tests.hostile import SMALL_RUN, Sandbox

REFUSAL = "dnn_train never writes through a link it did not make: remove it or choose another hydra.run.dir"


class Template:
    """An interrupted run to resume (`dir`), its overrides, and every name a run had in its directory."""

    def __init__(self, root: Path):
        self.overrides = [*SMALL_RUN, "trainer.epochs=3", "trainer.tensorboard=true", f"data.root={root / 'data'}"]
        self.dir, live = root / "interrupted", root / "live"
        self.names: dict[str, bool] = {}  # relative name -> is a folder

        template = self

        class Watch(keras.callbacks.Callback):  # sees the directory while the run runs (.reserve, checkpoint/)
            def on_epoch_end(self, epoch, logs=None):
                template.see(live)
                if epoch == 1:
                    raise Interrupted(signal.SIGTERM)  # as a SIGTERM in epoch 2 would: status interrupted

        with pytest.raises(Interrupted):
            run(*self.overrides, run_dir=live, callbacks=[Watch()])
        assert json.loads((live / "results.json").read_text())["status"] == "interrupted"
        shutil.copytree(live, self.dir, symlinks=True)
        self.see(live)
        assert run(*self.overrides, "trainer.resume=true", run_dir=live)["status"] == "completed"
        self.see(live)  # model.keras, the plots, the HParams record

    def see(self, folder: Path) -> None:
        for path in folder.rglob("*"):
            self.names[str(path.relative_to(folder))] = path.is_dir()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Template:
    return Template(tmp_path_factory.mktemp("template"))


def plant(sandbox: Sandbox, source: Path, name: str, folder: bool, kind: str) -> str:
    """Copy the run `source` into the sandbox and put a link of `kind` at `name`; returns where it points."""
    shutil.copytree(source, sandbox.run, symlinks=True)
    path = sandbox.run / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    target = {"symlink": sandbox.outside / "folder" if folder else sandbox.victim, "fifo": "",
              "dangling": sandbox.outside / "made-through-the-link", "hardlink": sandbox.victim}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # not a link, but opening it to append would hang the run
    elif kind == "hardlink":
        os.link(target, path)
    else:
        path.symlink_to(target, target_is_directory=folder)
    return str(target)


def test_every_name_a_run_writes_refuses_a_planted_link(template, tmp_path):
    """For each name, each kind of link, a resume and a fresh run: refused by the gate, before the
    lock or anything else is opened, with the line naming the link; nothing outside changes."""
    cfg = compose(*template.overrides)
    for must in (".lock", "dnn_train.log", RESERVE_FILE, "results.json", "metrics.csv", "config.yaml", ".hydra",
                 "checkpoint", "tensorboard", "model.keras", "curves.png", "diagnostics.csv"):
        assert any(n == must or n.startswith(must + "/") for n in template.names), f"the run never wrote {must}"
    cases, failures = 0, []
    for n, (name, folder) in enumerate(sorted(template.names.items())):
        for kind in ("symlink", "dangling") + (() if folder else ("hardlink", "fifo")):
            for resume in (True, False):
                cases += 1
                sandbox = Sandbox(tmp_path / f"{n}-{kind}-{resume}")
                target = plant(sandbox, template.dir, name, folder, kind)
                sandbox.freeze()
                refused = None
                try:
                    with Run(sandbox.run, cfg, template.overrides, resume=resume):
                        pass
                except Refused as ex:
                    refused = str(ex)
                what = {"hardlink": f"is a hard link (one of 2 names of the same file); {REFUSAL}",
                        "fifo": "is not a regular file or folder (a pipe, socket or device); dnn_train writes only "
                                "files of its own in a run directory: remove it or choose another hydra.run.dir"
                        }.get(kind, f"is a symbolic link (to {target}); {REFUSAL}")
                try:
                    sandbox.check(None)
                    assert not (sandbox.outside / "made-through-the-link").exists(), "made through the link"
                    assert refused == f"{sandbox.run / name} {what}", refused
                except AssertionError as ex:
                    failures.append(f"{name} ({kind}, resume={resume}): {str(ex).splitlines()[0][:200]}")
    assert cases >= 100, cases
    assert not failures, f"{len(failures)} of {cases} cases:\n" + "\n".join(failures)


def test_a_run_directory_that_is_itself_a_link_is_the_users_choice(template, tmp_path):
    """hydra.run.dir=LINK: the user named it, so it is used (links *inside* it are refused)."""
    real = tmp_path / "real"
    shutil.copytree(template.dir, real, symlinks=True)
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    with Run(tmp_path / "alias", compose(*template.overrides), template.overrides, resume=True) as taken:
        assert taken.state == "resume"


@pytest.mark.parametrize("name", [".lock", "dnn_train.log", RESERVE_FILE])
def test_the_command_line_refuses_to_resume_through_a_planted_link(template, tmp_path, name):
    """End to end, the three links of the report: `.lock` truncated its target, `dnn_train.log`
    appended to it, a dangling `.reserve` made a 64 KB file where it pointed."""
    sandbox = Sandbox(tmp_path)
    target = plant(sandbox, template.dir, name, False, "dangling" if name == RESERVE_FILE else "symlink")
    proc = sandbox.cli(*template.overrides, "trainer.resume=true", f"hydra.run.dir={sandbox.run}")
    line = sandbox.check(proc, code=2, prefix="dnn_train: error: ")
    assert line == f"dnn_train: error: {sandbox.run / name} is a symbolic link (to {target}); {REFUSAL}"
    assert json.loads((sandbox.run / "results.json").read_text())["status"] == "interrupted"  # left as it was


# ---------------------------------------------------------------- a link planted after the gate
def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


WRITERS = {  # what the run writes itself, each given the run directory with a link planted at its name
    "dnn_train.log": lambda run: run.begin(),
    RESERVE_FILE: lambda run: run._reserve(),  # taken with the directory; made again if it has gone
    ".hydra": lambda run: run.begin(),
    "metrics.csv": lambda run: MetricsCSV(run.dir / "metrics.csv").on_epoch_end(0, {"loss": 1.0}),
    "checkpoint": lambda run: checkpoint.save_trained(run.dir, _model(), 1, 1),
    "results.json's temporary name": lambda run: artifacts.write_json(run.dir / "results.json", {"status": "x"}),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_link_planted_while_the_run_runs_is_not_written_through(tmp_path, writer):
    """The writers open without following links (O_NOFOLLOW), make folders that must not be links,
    and clear a temporary name before writing: a link that appears after the gate is refused (the
    run fails with one line naming it) or replaced, and nothing outside changes."""
    sandbox = Sandbox(tmp_path)
    cfg = compose(*SMALL_RUN)
    name = f".results.json.tmp{os.getpid()}" if writer.startswith("results.json") else writer
    with Run(sandbox.run, cfg, [], resume=False) as taken:
        folder = name in (".hydra", "checkpoint")
        target = sandbox.outside / "folder" if folder else \
            sandbox.outside / "made-through-the-link" if name == RESERVE_FILE else sandbox.victim
        (sandbox.run / name).unlink(missing_ok=True)  # .reserve: made when the run took its directory
        (sandbox.run / name).symlink_to(target, target_is_directory=folder)
        sandbox.freeze()
        try:
            WRITERS[writer](taken)
        except OSError as ex:
            assert name in str(ex.filename) and (name == RESERVE_FILE or "is a symbolic link" in one_line(ex)), ex
        else:
            assert name.startswith(".results.json.tmp"), "written through a link"
            assert not (sandbox.run / name).exists() and (sandbox.run / "results.json").is_file()
        sandbox.check(None)
        assert not (sandbox.outside / "made-through-the-link").exists()
