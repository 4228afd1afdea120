"""Config composition and validation: no TensorFlow involved, and bad input is one line, exit 2."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dnn_train.config import ConfigError, options, validate
from tests.conftest import REPO, make_cfg, run_cli

REQUIRED = {
    "data": {"fashion_mnist", "mnist", "cifar10", "cifar100", "images", "synthetic"},
    "model": {"mlp"},
    "initializer": {"glorot_uniform", "he_normal"},
    "activation": {"relu", "elu"},
    "normalization": {"none", "batchnorm"},
    "optimizer": {"sgd", "nadam"},
    "schedule": {"constant", "1cycle"},
    "regularizer": {"none", "l2"},
    "trainer": {"default"},
}


@pytest.mark.parametrize("group", sorted(REQUIRED))
def test_every_required_option_composes_and_validates(group):
    assert REQUIRED[group] <= set(options(group))
    for option in options(group):
        extra = ["data.root=/nowhere"] if group == "data" else []
        cfg = make_cfg(f"{group}={option}", *extra)
        validate(cfg)


def test_hyperparameters_are_overridable():
    cfg = make_cfg("optimizer=nadam", "optimizer.learning_rate=3e-4", "activation=elu", "activation.alpha=0.2",
                   "model.depth=20", "model.units=100")
    assert cfg.optimizer.learning_rate == 3e-4 and cfg.activation.alpha == 0.2
    assert (cfg.model.depth, cfg.model.units) == (20, 100)


def test_1cycle_peaks_at_the_optimizer_rate_by_default():
    cfg = make_cfg("optimizer=nadam", "schedule=1cycle", "optimizer.learning_rate=0.002")
    assert cfg.schedule.max_lr == 0.002


@pytest.mark.parametrize("override, key", [
    ("optimizer.learning_rate=-1", "optimizer.learning_rate"),
    ("optimizer.learning_rate=0", "optimizer.learning_rate"),
    ("trainer.epochs=0", "trainer.epochs"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("model.depth=0", "model.depth"),
    ("optimizer.momentum=1.5", "optimizer.momentum"),
    ("regularizer=l2", None),  # valid: control row
    ("initializer.mode=fan_sideways", "initializer.mode"),
    ("optimizer.learning_rate=abc", "optimizer.learning_rate"),
])
def test_out_of_range_values_name_the_key(override, key):
    cfg = make_cfg(override)
    if key is None:
        validate(cfg)
        return
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}="):
        validate(cfg)


BAD_INPUT = [
    # (overrides, text the one line must contain)
    (["optimizer=bogus"], "valid optimizer options: adagrad, adam, adamax, adamw, momentum, nadam, nesterov, rmsprop, sgd"),
    (["data=nope"], "valid data options: cifar10, cifar100, fashion_mnist, images, mnist, synthetic"),
    (["trainer.epochs=abc"], "trainer.epochs=abc"),
    (["optimizer.lr=0.1"], "optimizer.lr: unknown key"),
    (["trainer.bogus=1"], "trainer.bogus: unknown key"),
    (["model.depth=1.5"], "model.depth=1.5"),
]


@pytest.mark.parametrize("args, expected", BAD_INPUT)
def test_composition_errors_are_one_line_exit_2(tmp_path, args, expected):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("args, expected", [
    (["trainer.epochs=0"], "trainer.epochs=0: expected an integer >= 1"),
    (["optimizer.learning_rate=-0.1"], "optimizer.learning_rate=-0.1: expected a number > 0"),
])
def test_range_errors_leave_no_run_directory(tmp_path, args, expected):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"dnn_train: error: {expected}"]
    runs = list((tmp_path / "outputs").rglob("*")) if (tmp_path / "outputs").exists() else []
    assert not [p for p in runs if p.is_file()], runs


PROBE = """
import sys
sys.argv = ["dnn_train"] + sys.argv[1:]
from dnn_train.__main__ import main
try:
    main()
except SystemExit:
    pass
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow was imported"
print("NO_TF")
"""


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job", "optimizer=nadam"], ["optimizer=bogus"],
                                  ["trainer.epochs=0"]])
def test_help_cfg_and_errors_do_not_import_tensorflow(tmp_path, args):
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert "NO_TF" in proc.stdout, proc.stderr


def test_help_lists_groups_and_their_options(tmp_path):
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    listed, group = {}, None
    for line in proc.stdout.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.endswith(":"):
            group = line.strip()[:-1]
            listed[group] = set()
        elif line.startswith("    ") and group:
            listed[group].add(line.split()[0])
    for group, required in REQUIRED.items():
        assert required <= listed[group], (group, listed.get(group))
    assert "schema" not in proc.stdout
    assert re.search(r"^    sgd +\* Plain stochastic", proc.stdout, re.M)  # the default is marked


def test_readme_lists_every_option_with_its_summary():
    from dnn_train.config import option_summaries

    readme = (REPO / "README.md").read_text()
    for group, rows in option_summaries().items():
        for name, default, summary in rows:
            assert summary, f"conf/{group}/{name}.yaml needs a one-line summary as its first line"
            cell = f"**`{name}`**" if default else f"`{name}`"
            assert f"| `{group}` | {cell} | {summary} |" in readme, (group, name)
