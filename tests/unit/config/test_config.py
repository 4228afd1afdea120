"""Config composition and validation: no TensorFlow involved, and bad input is one line, exit 2."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dnn_train import DnnTrainError, compose
from dnn_train.config.help import options
from dnn_train.config.schema import CONF_DIR
from dnn_train.config.validate import validate
from dnn_train.errors import ConfigError
from tests.conftest import REPO, make_cfg, run_cli

REQUIRED = {
    "data": {"fashion_mnist", "mnist", "cifar10", "cifar100", "images", "synthetic"},
    "model": {"mlp", "cnn", "resnet", "backbone"},
    "augment": {"none", "flip", "flip_translate"},
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
    (["data=nope"], f"valid data options: {', '.join(options('data'))}"),
    (["optimizer=nadm"], "optimizer=nadm: unknown option (did you mean nadam or adam?)"),
    (["trainer.epochs=abc"], "trainer.epochs=abc"),
    (["optimizer.lr=0.1"], "optimizer.lr: unknown key (did you mean optimizer.learning_rate?)"),
    (["optimizer=adam", "optimizer.beta1=0.8"], "optimizer.beta1: unknown key (did you mean optimizer.beta_1?)"),
    (["trainer.bogus=1"], "trainer.bogus: unknown key"),
    (["+trainer.epoch=3"], "trainer.epoch: unknown key (did you mean trainer.epochs?)"),
    (["+newkey=1"], "newkey: unknown key"),
    (["task=bogus"], "task=bogus: expected one of train, find_lr, pretrain_autoencoder"),
    (["trainer.seed=-1"], "trainer.seed=-1: expected an integer >= 0"),
    (["data.split_seed=4294967296"], "data.split_seed=4294967296: expected an integer >= 0 and <= 4294967295"),
    (["optimizer.clipnorm=inf"], "optimizer.clipnorm=inf: expected a finite number > 0 or null"),
    (["regularizer=l2", "regularizer.l2=1e300"], "regularizer.l2=1e+300: expected a finite number >= 0 and <= 100"),
    (["model.depth=1.5"], "model.depth=1.5"),
    (["model.depth=1000"], "model.depth=1000: expected an integer >= 1 and <= 500"),
    (["data=synthetic", "data.synthetic.num_classes=0"], "data.synthetic.num_classes=0: expected an integer >= 2"),
    (["data=synthetic", "~data"], "~data: data cannot be removed, a run needs one"),  # not Fashion-MNIST silently
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
    (["optimizer.learning_rate=-0.1"], "optimizer.learning_rate=-0.1: expected a finite number > 0"),
    (["optimizer.learning_rate=inf"], "optimizer.learning_rate=inf: expected a finite number > 0"),
])
def test_range_errors_leave_no_run_directory(tmp_path, args, expected):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dnn_train: error: {expected}"), lines
    assert not (tmp_path / "outputs").exists()  # not even an empty directory: this invocation made it


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


def test_a_broken_install_without_its_configs_says_so_in_one_line(tmp_path):
    """A package whose conf/ did not ship (a wheel built wrong): --help and a run each end with one
    line naming what is missing, exit 2, no traceback."""
    import shutil

    shutil.copytree(REPO / "dnn_train", tmp_path / "pkg" / "dnn_train", ignore=shutil.ignore_patterns("__pycache__"))
    for args in (["--help"], ["optimizer=nadam"]):
        proc = subprocess.run([sys.executable, "-m", "dnn_train", *args], cwd=tmp_path, capture_output=True,
                              text=True, env={"PYTHONPATH": str(tmp_path / "pkg"), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dnn_train: error: dnn_train's configs are missing"), lines
        assert "reinstall" in lines[0]


# ---------------------------------------------------------------- configs run no foreign code
@pytest.mark.parametrize("target", ["pandas.read_pickle", "os.system", "numpy.load", "keras.saving.load_model",
                                    "keras.utils.get_file", "dnn_train.rundir.artifacts.write_text"])
def test_a_crafted_preset_cannot_name_a_foreign_target(tmp_path, target):
    """A shared preset (from --config-dir) with a nested _target_ is refused before anything runs."""
    presets = tmp_path / "presets" / "experiment"
    presets.mkdir(parents=True)
    (presets / "evil.yaml").write_text(
        "# @package _global_\ninitializer:\n  seed:\n    _target_: " + target + "\n    path: /tmp/x.pkl\n")
    marker = tmp_path / "ran"
    proc = run_cli("--config-dir", str(tmp_path / "presets"), "experiment=evil", "data=synthetic",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"dnn_train: error: initializer.seed._target_={target}: not an allowed target (configs may name Keras "
        "layers, initializers, optimizers, schedules, regularizers, constraints, applications, dnn_train's builders "
        "and callbacks, Hydra's and dnn_train's sweepers and launchers, Optuna's samplers and pruners; add it to "
        "allow_targets=[...] on the command line if you trust it)"]
    assert not (tmp_path / "run").exists() and not marker.exists()


def test_allow_targets_lets_a_trusted_target_through():
    """allow_targets on the command line (the API's overrides) trusts a name, or a module's own
    classes and functions (an entry ending in '.'); the same in a config file is refused."""
    from dnn_train import DnnTrainError, compose

    with pytest.raises(DnnTrainError, match="not an allowed target"):
        compose("+initializer.extra._target_=mypackage.MyThing")
    compose("+initializer.extra._target_=mypackage.MyThing", "allow_targets=[mypackage.MyThing]")
    compose("+initializer.extra._target_=tests.hostile.snapshot", "allow_targets=[tests.hostile.]")
    with pytest.raises(DnnTrainError, match=r"tests.hostile.run_cli: not an allowed target"):  # imported there
        compose("+initializer.extra._target_=tests.hostile.run_cli", "allow_targets=[tests.hostile.]")


# ---------------------------------------------------------------- keys that do not fit the chosen class
def test_a_key_the_keras_class_does_not_take_is_named_with_its_parameters():
    from dnn_train.config.make import check_targets

    with pytest.raises(ConfigError, match=r"^initializer\.stddev: not a parameter of keras\.initializers\."
                                          r"VarianceScaling; its parameters: distribution, .*mode, .*scale, seed$"):
        check_targets(make_cfg("experiment=vanishing_gradients", "initializer=lecun_normal"))
    check_targets(make_cfg("experiment=vanishing_gradients"))  # the preset's own choice fits
    with pytest.raises(ConfigError, match=r"^model\.depth: not a parameter of dnn_train\.models\.cnn\.build"):
        check_targets(make_cfg("experiment=transfer_a", "model=cnn"))


@pytest.mark.slow
def test_a_preset_key_that_does_not_fit_the_users_option_says_so_in_one_line(tmp_path):
    proc = run_cli("experiment=vanishing_gradients", "initializer=lecun_normal", "data=synthetic",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "dnn_train: error: initializer.stddev: not a parameter of keras.initializers.VarianceScaling (set by "
        "experiment=vanishing_gradients, which does not fit initializer=lecun_normal; drop initializer=lecun_normal "
        "or set a preset of your own); its parameters: distribution, "), lines
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", [
    (["schedule=exponential", "schedule.decay_epochs=0.0001"], "schedule.decay_epochs=0.0001: 0 steps at 57 steps per "
                                                               "epoch; durations must come to at least one step"),
    (["schedule=piecewise", "schedule.boundaries_epochs=[2,1]"], "schedule.boundaries_epochs=[2, 1]: [114, 57] steps"),
])
def test_a_duration_that_rounds_to_no_steps_is_refused_before_training(tmp_path, overrides, message):
    proc = run_cli("data=synthetic", f"data.root={tmp_path / 'data'}", *overrides, f"hydra.run.dir={tmp_path / 'run'}",
                   cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "run").exists()


def _groups_without_optional():
    """The groups conf/config.yaml's defaults list names without `optional` (read here as YAML)."""
    import yaml

    defaults = yaml.safe_load((CONF_DIR / "config.yaml").read_text())["defaults"]
    return [key for entry in defaults if isinstance(entry, dict) for key in entry if " " not in key]


@pytest.mark.parametrize("group", _groups_without_optional())
def test_removing_a_group_the_run_is_composed_from_is_refused(group):
    """`~GROUP` of any group the defaults list requires: a typed group's schema (data, trainer) used to
    refill it with its defaults (`data=synthetic ~data` trained on Fashion-MNIST); now refused, with the
    group's options. `~GROUP` of an optional group (experiment, hparams_search) stays valid."""
    with pytest.raises(DnnTrainError) as refused:
        compose(f"~{group}")
    assert refused.value.exit_code == 2
    assert str(refused.value).startswith(f"~{group}: {group} cannot be removed, a run needs one; choose one with "
                                         f"{group}=OPTION")
    assert f"valid {group} options: {', '.join(options(group))}" in str(refused.value)
    option = options(group)[-1]
    with pytest.raises(DnnTrainError, match=f"^~{group}: {group} cannot be removed"):
        compose(f"{group}={option}", f"~{group}")


def test_removing_an_optional_group_is_not_refused():
    validate(compose("~experiment", "~hparams_search"))


# ---------------------------------------------------------------- Hydra's errors, told without their traceback
@pytest.mark.parametrize("override, expected", [
    ("optimizer=nadm", "optimizer=nadm: unknown option (did you mean nadam or adam?); valid optimizer options: "),
    ("optimizer.lr=0.1", "optimizer.lr: unknown key (did you mean optimizer.learning_rate?)"),
    ("trainer.epochs=abc", "trainer.epochs=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ("optimizer=ädam", "optimizer=ädam: unknown option (did you mean adam?)"),
    ("data.synthetic.num_classes=3", "data.synthetic.num_classes: unknown key"),  # synthetic's own, another dataset
    ("data.classes.x=1", "data.classes.x=1: cannot be set, data.classes is null in this config"),
])
def test_describe_error_reads_the_exception_not_its_traceback(override, expected):
    """describe_error tells a Hydra or OmegaConf error by its type and message (and its cause's): with
    every traceback of the chain dropped, the line is the same."""
    from dnn_train.config.hydra_errors import describe_error

    with pytest.raises(Exception) as info:
        make_cfg(override)
    chain, ex = [], info.value
    while ex is not None and ex not in chain:
        chain.append(ex)
        ex = ex.__cause__ or ex.__context__
    for ex in chain:
        ex.__traceback__ = None
    assert describe_error(info.value).startswith(expected)


def test_a_hydra_logging_config_that_logging_refuses_is_named_as_such(tmp_path):
    """Hydra configures its own logging (hydra.hydra_logging) before any job: its refusal names that section."""
    proc = run_cli("hydra.hydra_logging.root.level=LOUD", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "dnn_train: error: hydra.hydra_logging: Unable to configure root logger (Unknown level: 'LOUD')"]
    assert not (tmp_path / "run").exists()
