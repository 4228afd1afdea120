"""The gate: everything a composed config would call is checked against one allowlist before Hydra runs it.

`install_gate` (run at the import of dnn_train) wraps the one method through which Hydra composes
every config; `check_callables` checks each `_target_` and the logging configs, `check_hydra_settings`
the Hydra settings only the command line may set. More callables: allow_targets on the command line.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf, read_write

from dnn_train.config.hydra_errors import describe_error, name_unnamed_errors
from dnn_train.config.rule_builders import show
from dnn_train.errors import ConfigError
from dnn_train.models.families import builders

# The one allowlist of what a config may call (the gate, `check_callables`, checks every `_target_`,
# nested and in the hydra: section, and every logging `()` and `class` against it before anything is
# instantiated). An entry ending in '.' is a module whose module-level names may be called (Keras'
# public API modules hold only what Keras exports); any other entry is one class or function. Not
# keras.saving, keras.utils or anything else that reads files or runs code. More: allow_targets.
ALLOWED_TARGETS = tuple(f"keras.{m}." for m in (
    "layers", "initializers", "optimizers", "optimizers.schedules", "regularizers", "constraints", "activations",
    "applications", "losses", "metrics")) + (
    "keras.callbacks.ReduceLROnPlateau", "keras.callbacks.EarlyStopping",
    *builders().values(),  # the model families (conf/model/NAME.yaml: read once, shared with validate)
    "dnn_train.optim.OneCycle", "dnn_train.optim.PowerDecay",
    # the hydra: section: our callbacks, the sweepers and launchers we ship, Optuna's samplers and pruners
    "dnn_train.rundir.created.RunDirs", "dnn_train.sweeps.summary.SweepSummary",
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.dnn_train_batched.batched_sweeper.BatchedSweeper",
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "hydra_plugins.dnn_train_optuna.optuna_sweeper.OptunaPruningSweeper",
    *(f"optuna.samplers.{c}" for c in ("TPESampler", "RandomSampler", "CmaEsSampler", "GPSampler", "QMCSampler",
                                       "NSGAIISampler", "NSGAIIISampler", "GridSampler", "BruteForceSampler")),
    *(f"optuna.pruners.{c}" for c in ("MedianPruner", "NopPruner", "HyperbandPruner", "SuccessiveHalvingPruner",
                                      "PercentilePruner", "ThresholdPruner", "PatientPruner", "WilcoxonPruner")),
)
# Inside those modules, what runs code or a graph from a file: keras.layers.TFSMLayer loads a SavedModel.
REFUSED_TARGETS = ("keras.layers.TFSMLayer",)
# What a logging config (hydra.job_logging, hydra.hydra_logging) may name as a handler's, formatter's
# or filter's `class` or `()`: handlers that print, or write a file in the run directory (LOG_STREAMS,
# and every `filename` under ${hydra.runtime.output_dir}/).
ALLOWED_LOGGING = ("logging.StreamHandler", "logging.NullHandler", "logging.FileHandler",
                   "logging.handlers.RotatingFileHandler", "logging.handlers.TimedRotatingFileHandler",
                   "logging.handlers.WatchedFileHandler", "logging.Formatter", "logging.Filter",
                   "colorlog.ColoredFormatter")
LOG_STREAMS = ("ext://sys.stdout", "ext://sys.stderr")
LOGGING_SECTIONS = ("job_logging", "hydra_logging")


def check_callables(cfg: DictConfig, trusted=()) -> None:
    """The gate: raise ConfigError unless everything the composed config `cfg` (its hydra: section
    included) would call is allowed: every `_target_` names an ALLOWED_TARGETS entry or a `trusted`
    one (allow_targets), exactly, as a module-level name (not `X.from_config`); no `safe_mode` is
    turned off; the logging configs name only ALLOWED_LOGGING classes and factories, print to stdout
    or stderr and write files only inside the run directory. Run by `install_gate` on every config
    Hydra composes, before Hydra instantiates its callbacks or configures logging."""
    def walk(node, path):
        if isinstance(node, DictConfig) and not node._is_none():
            for key in node:
                child, where = node._get_node(key), f"{path}{key}"
                if where in (f"hydra.{s}" for s in LOGGING_SECTIONS):
                    _check_logging(cfg, where, trusted)
                elif key == "_target_" and child._value() is not None:
                    _check_target(where, child._value(), ALLOWED_TARGETS, trusted)
                elif key == "safe_mode" and child._value() is not True:
                    raise ConfigError(f"{where}={show(child._value())}: Keras' safe mode stays on (a config "
                                      "cannot turn it off)")
                else:
                    walk(child, where + ".")
        elif isinstance(node, ListConfig) and not node._is_none():
            for i in range(len(node)):
                walk(node._get_node(i), f"{path}{i}.")

    walk(cfg, "")


def _check_target(where: str, target, allowed, trusted) -> None:
    """A target is a module-level class or function named exactly: an allowlist entry, or a name
    in an entry's module ('keras.layers.' allows keras.layers.Dense, not keras.layers.Lambda.from_config)."""
    target = str(target)
    module, _, name = target.rpartition(".")
    ok = re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", target) is not None and target not in REFUSED_TARGETS and (
        target in allowed or module + "." in allowed or target in trusted
        or (module + "." in trusted and _defined_in(module, name)))
    if ok:
        return
    inside = next((a for a in (*allowed, *trusted) if a.endswith(".") and target.startswith(a)
                   and "." in target[len(a):]), None)
    why = f"an attribute of {inside}{target[len(inside):].split('.')[0]}; a target is a module-level class or " \
          "function" if inside else f"{target} loads and runs a saved graph" if target in REFUSED_TARGETS else \
        "configs may name Keras layers, initializers, optimizers, schedules, regularizers, constraints, " \
        "applications, dnn_train's builders and callbacks, Hydra's and dnn_train's sweepers and launchers, " \
        "Optuna's samplers and pruners" if allowed is ALLOWED_TARGETS else \
        f"a logging config may name {', '.join(ALLOWED_LOGGING)}"
    raise ConfigError(f"{where}={target}: not an allowed target ({why}; add it to allow_targets=[...] on the "
                      "command line if you trust it)")


def _defined_in(module: str, name: str) -> bool:
    """Whether module.name is a class or function that module defines or exports (__all__), not one
    it imported (a trusted mypackage.copyfile is shutil's). Imports the module: the user trusts it."""
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - not a module: nothing in it is trusted
        return False
    obj = vars(mod).get(name)
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and \
        (getattr(obj, "__module__", None) == module or name in getattr(mod, "__all__", ()))


def _check_logging(cfg: DictConfig, where: str, trusted) -> None:
    """A logging config, as Hydra will hand it to logging.config.dictConfig (resolved, with the run
    directory standing in as a placeholder): its `class` and `()` callables, its `ext://` objects,
    no `.` (attributes set on a handler), and each `filename` inside the run directory."""
    run_dir = f"/{uuid.uuid4().hex}"  # the run directory is not known before the run; a path nothing else names
    node = OmegaConf.select(cfg, where)
    if node is None:  # hydra/job_logging=none: Hydra's own default console
        return
    try:
        with _output_dir_set(cfg, run_dir):
            section = OmegaConf.to_container(node, resolve=True)
    except Exception as ex:  # noqa: BLE001 - e.g. ${hydra:...}, which has no value before the run
        raise ConfigError(f"{where}: cannot be checked before the run ({describe_error(ex) or ex}); write the run "
                          "directory as ${hydra.runtime.output_dir}") from None

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}"
                if key in ("class", "()"):
                    _check_target(here, value, ALLOWED_LOGGING, trusted)
                elif key == ".":
                    raise ConfigError(f"{here}: a logging config cannot set attributes on a handler")
                elif key == "filename":
                    name = os.path.normpath(str(value))
                    if not name.startswith(run_dir + os.sep) or ".." in str(value).split("/"):
                        raise ConfigError(f"{here}={str(value).replace(run_dir, '${hydra.runtime.output_dir}')}: "
                                          "a log file must be inside the run directory "
                                          "(${hydra.runtime.output_dir}/NAME)")
                walk(value, here)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}.{i}")
        elif isinstance(node, str) and node.startswith("ext://") and node not in LOG_STREAMS:
            raise ConfigError(f"{path}={node}: a logging config may name only {' or '.join(LOG_STREAMS)}")

    walk(section, where)


@contextmanager
def _output_dir_set(cfg: DictConfig, run_dir: str):
    """`cfg` with hydra.runtime.output_dir = `run_dir` while the logging section is resolved, then as it
    was (set and put back, not a copy of the whole config: a deep copy was a tenth of every compose)."""
    saved = cfg.hydra.runtime._get_node("output_dir")._value()  # (??? until the run: not readable as a value)
    with read_write(cfg):
        cfg.hydra.runtime.output_dir = run_dir
    try:
        yield
    finally:
        with read_write(cfg):
            cfg.hydra.runtime.output_dir = saved


def command_line_allow_targets(cfg: DictConfig, overrides) -> tuple:
    """allow_targets, if the command line (or the Python API's overrides) set it; a config file that
    sets it is refused: a shared preset cannot allow its own targets."""
    value = tuple(str(t) for t in (cfg.get("allow_targets") or ()))
    if any(o.key_or_group == "allow_targets" for o in OverridesParser.create().parse_overrides(list(overrides or ()))):
        return value
    if value:
        raise ConfigError(f"allow_targets={list(value)}: set by a config file; only the command line may allow "
                          "targets (allow_targets=[...])")
    return ()


def check_hydra_settings(cfg: DictConfig, overrides) -> None:
    """Hydra settings that dnn_train's run directory and presets rely on, refused in one line before
    Hydra makes any directory: .hydra/ is written by the run itself (rundir/record.py), a search path names
    folders that exist, and only the command line sets environment variables for the job's processes
    (a preset's hydra.job.env_set could set LD_PRELOAD)."""
    hydra = cfg.get("hydra")
    if not isinstance(hydra, DictConfig):
        return
    if hydra.get("output_subdir") is not None:
        raise ConfigError(f"hydra.output_subdir={hydra.output_subdir}: dnn_train writes the run's .hydra/ itself, once "
                          "the directory is the run's; leave hydra.output_subdir null")
    for entry in hydra.get("searchpath") or ():
        scheme, _, where = str(entry).rpartition("://")
        if scheme in ("", "file") and not Path(where).is_dir():
            raise ConfigError(f"hydra.searchpath: {entry} is not a folder")
    typed = {o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides or ()))}
    for key in ("env_set", "env_copy"):
        if (hydra.get("job") or {}).get(key) and not any(k.startswith(f"hydra.job.{key}") for k in typed):
            raise ConfigError(f"hydra.job.{key}: set by a config file; only the command line may set the job's "
                              f"environment (hydra.job.{key}...)")


def install_gate() -> None:
    """Run `check_callables` on every config Hydra composes: Hydra 1.3 composes through
    ConfigLoaderImpl.load_configuration for a run, a multirun's master config, each sweep job (its
    load_sweep_config, in whatever process the launcher runs it) and the compose API, and then
    instantiates callbacks, sweeper and launcher and configures logging. Hydra has no allowlist
    of its own (its target policy only blocks a few names): ours wraps that one method. Called at
    the import of the dnn_train package, so every entry point (and every launcher's worker, which
    unpickles dnn_train's task) has it, and with it Hydra's errors that name no key made to name it
    (hydra_errors.name_unnamed_errors)."""
    name_unnamed_errors()
    load = ConfigLoaderImpl.load_configuration
    if getattr(load, "dnn_train_gate", False):
        return

    @functools.wraps(load)
    def gated(self, config_name, overrides, *args, **kwargs):
        with warnings.catch_warnings():  # a missing search path is refused below, not warned about
            warnings.filterwarnings("ignore", message=r"provider=.* is not available", category=UserWarning)
            cfg = load(self, config_name, overrides, *args, **kwargs)
        check_callables(cfg, command_line_allow_targets(cfg, overrides))
        check_hydra_settings(cfg, overrides)
        return cfg

    gated.dnn_train_gate = True
    ConfigLoaderImpl.load_configuration = gated
