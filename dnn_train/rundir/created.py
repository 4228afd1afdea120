"""What this invocation created, so that bad input removes only that; and the sweep jobs it refused."""
from __future__ import annotations

import shutil
from pathlib import Path

from hydra.experimental.callback import Callback

# Directories Hydra (or the Python API) created for this invocation, so that bad input removes
# only those: filled by the RunDirs callback before Hydra makes the run directory.
CREATED: set = set()
REFUSED: list = []  # sweep jobs refused in this process (their directories hold other runs), for the sweep's end


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


class RunDirs(Callback):
    """Hydra callback (conf/config.yaml): notes, before Hydra makes the run or sweep directory,
    whether it already existed, so bad input removes only what this invocation made."""

    def on_run_start(self, config, **kwargs) -> None:
        note_created(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config, **kwargs) -> None:
        note_created(Path(str(config.hydra.sweep.dir)))
