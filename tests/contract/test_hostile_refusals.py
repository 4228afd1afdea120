"""Every refusal exits 2 in words written for people, and leaves no run directory: the settings the issue's
author found answered with exit 1, a raw exception, "status unknown" or a warning. Each case goes through
the command line (a --config-dir preset where a preset is the way in)."""
from __future__ import annotations

import pytest

from tests.hostile import SMALL_RUN, Sandbox

PRESETS = {
    "launcher": "# @package _global_\ndefaults:\n  - override /hydra/launcher: evil\n",
    "env": "# @package _global_\nhydra:\n  job:\n    env_set:\n      LD_PRELOAD: /tmp/evil.so\n",
}
EVIL_LAUNCHER = "_target_: hydra_plugins.evil.EvilLauncher\n"

CASES = {  # name: (arguments, what the one line says)
    "run dir is a file": (["hydra.run.dir=afile"], "cannot make the run directory: afile exists and is not a folder"),
    "run dir under a file": (["hydra.run.dir=afile/sub"], "cannot make the run directory: afile/sub has a file"),
    "hydra's own output_subdir": (["hydra.output_subdir=.hydra", "hydra.run.dir=run"],
                                  "hydra.output_subdir=.hydra: dnn_train writes the run's .hydra/ itself"),
    "missing search path": (["hydra.searchpath=[file:///nonexistent/presets]", "hydra.run.dir=run"],
                            "hydra.searchpath: file:///nonexistent/presets is not a folder"),
    "preset's launcher": (["experiment=launcher", "hydra.run.dir=run"], "hydra.launcher._target_="),
    "preset's environment": (["experiment=env", "hydra.run.dir=run"], "hydra.job.env_set: set by a config file"),
}


@pytest.mark.parametrize("case", CASES)
def test_every_refusal_is_one_line_with_exit_2(case, tmp_path):
    box = Sandbox(tmp_path)
    (tmp_path / "afile").write_text("a file where a folder is expected\n")
    presets = tmp_path / "outside" / "presets"
    (presets / "experiment").mkdir(parents=True)
    (presets / "hydra" / "launcher").mkdir(parents=True)
    for name, text in PRESETS.items():
        (presets / "experiment" / f"{name}.yaml").write_text(text)
    (presets / "hydra" / "launcher" / "evil.yaml").write_text(EVIL_LAUNCHER)
    args, says = CASES[case]
    proc = box.cli("--config-dir", str(presets), *SMALL_RUN, *args)
    line = box.check(proc, code=2, prefix="dnn_train: error: ")
    assert says in line, line
    assert not (tmp_path / "run").exists() and (tmp_path / "afile").is_file()
