"""`python -m dnn_train [overrides]` and the `dnn-train` script: a Hydra app.

TensorFlow is imported only when a job runs, so --help, --cfg and config errors answer at once.
Configuration errors end with one line on stderr and exit code 2; DNN_TRAIN_DEBUG=1 (or
HYDRA_FULL_ERROR=1) shows the full traceback instead. In a sweep (-m), a job that fails is recorded
in its results.json and the next one runs; each job returns trainer.objective to Hydra's sweeper
(hparams_search=NAME: our Optuna sweeper, dnn_train/sweeps/search_driver.py, which may prune a job's trial).
"""
from __future__ import annotations

import errno
import logging
import os
import sys
import hydra
from omegaconf import DictConfig

from dnn_train import errors
from dnn_train.config.help import option_summaries
from dnn_train.config.schema import CONF_DIR
from dnn_train.errors import EXIT_BAD_INPUT, one_line
from dnn_train.failures import explain
from dnn_train.rundir.created import remove_created_unused
from dnn_train.sweeps.summary import ending

USAGE = """\
dnn_train: train a deep neural network from Hydra config groups (Keras 3).

Usage: python -m dnn_train [GROUP=OPTION ...] [KEY=VALUE ...]      one run
       python -m dnn_train -m GROUP=A,B,C ...                      a sweep (multirun)
Examples:
  python -m dnn_train optimizer=nadam schedule=1cycle
  python -m dnn_train data=cifar10 model.depth=20 model.units=100 trainer.epochs=5
  python -m dnn_train -m optimizer=sgd,nadam optimizer.learning_rate=3e-4
  python -m dnn_train -m optimizer=sgd,adam,nadam hydra/launcher=parallel   the jobs side by side, one per core
  python -m dnn_train -m hparams_search=fashion_mnist     Optuna search with pruning (rerun: it continues)
Results go to outputs/<date>/<time>/ (sweeps: outputs/multirun/..., searches: outputs/hparams_search/<study>/);
see README.md.

Config groups (GROUP=OPTION; the default is marked *):
{groups}
Every key of the chosen options can be overridden (optimizer.learning_rate=3e-4).
See all keys and their values without running: python -m dnn_train [overrides] --cfg job
Hydra's own flags (--multirun, --cfg, --info, ...): python -m dnn_train --hydra-help
"""


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _app(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from dnn_train.tasks import run_task  # imports TensorFlow once the config is valid

    run_dir = HydraConfig.get().runtime.output_dir
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return _sweep_job(cfg)
    if _debug():
        return objective(cfg, run_task(cfg))
    # A single run: report its failure ourselves, as one line (Hydra would add its own lines).
    try:
        return objective(cfg, run_task(cfg))
    except (KeyboardInterrupt, Exception) as ex:  # noqa: BLE001
        failure = explain(ex)
        _fail(failure.line + RUN_HINTS[failure.kind].format(run_dir=run_dir), failure.code)


RUN_HINTS = {  # what a single run's last line adds, by kind of failure
    "interrupted": "; continue with trainer.resume=true hydra.run.dir={run_dir}",
    "error": "",
    "diverged": " (results.json: status diverged)",
    "failed": " (traceback in the run's dnn_train.log; DNN_TRAIN_DEBUG=1 prints it)",
}


def objective(cfg: DictConfig, results) -> float:
    """What a sweeper optimizes: results.json's `trainer.objective` (NaN for a failed job)."""
    value = (results or {}).get(cfg.trainer.objective)
    return float("nan") if value is None else float(value)


def _sweep_job(cfg: DictConfig) -> float:
    """One job of a sweep: a job that fails is recorded (results.json, the summary) and the sweep
    goes on; rerun into the same sweep directory, a job resumes, or is skipped if it completed
    with the same config (a different config is refused and its directory left alone)."""
    from hydra.core.hydra_config import HydraConfig

    from dnn_train.rundir.created import REFUSED
    from dnn_train.sweeps import search_trial
    from dnn_train.errors import Refused
    from dnn_train.tasks import run_task

    try:
        search_trial.raise_if_pruned(HydraConfig.get().runtime.output_dir)
        return objective(cfg, run_task(cfg, sweep_job=True))
    except KeyboardInterrupt:
        raise
    except Exception as ex:  # noqa: BLE001 - recorded, and the next job runs
        if _debug() or errors.is_pruned(ex):
            raise  # pruned: the search's sweeper records the trial as such
        message = explain(ex).message
        job = HydraConfig.get().job.num
        if isinstance(ex, Refused):
            REFUSED.append(f"job {job}: {message}")
        logging.getLogger("dnn_train").error("job %s %s: %s", job, "refused" if isinstance(ex, Refused) else "failed",
                                             message)
        search_trial.note_failure(message)
        return float("nan")


def _setup_error(ex: OSError) -> str:
    """A file-system refusal met while Hydra sets up the run, before dnn_train's run began."""
    if ex.errno in (errno.EEXIST, errno.ENOTDIR):
        what = "exists and is not a folder" if ex.errno == errno.EEXIST else "has a file, not a folder, on its path"
        return f"cannot make the run directory: {ex.filename} {what}; choose another hydra.run.dir (or hydra.sweep.dir)"
    return one_line(ex)


def _debug() -> bool:
    return bool(os.environ.get("DNN_TRAIN_DEBUG"))


def _fail(message: str, code: int):
    print(f"dnn_train: {message}", file=sys.stderr)
    raise SystemExit(code)


def print_help() -> None:
    """Our --help: Hydra's own lists every plugin group and takes ~1 s; this reads conf/ directly."""
    lines, summaries = [], option_summaries()
    width = max(22, *(len(name) for options in summaries.values() for name, _, _ in options))
    for group, options in summaries.items():
        lines.append(f"  {group}:")
        lines.extend(f"    {name:<{width}} {'*' if default else ' '} {summary}" for name, default, summary in options)
    print(USAGE.format(groups="\n".join(lines)))


def _register_sweeper() -> None:
    """Hydra 1.3 finds plugins by walking the hydra_plugins namespace package, which an editable
    install (PEP 660) hides from it (hydra #2359): register our sweepers (the default batched one, and
    the Optuna search's) by hand: after the scan, whose import of Hydra's basic sweeper stores the
    `hydra/sweeper/basic` schema that ours then replaces."""
    from hydra.core.plugins import Plugins

    import importlib

    plugins = Plugins.instance()  # the scan
    for module, name in (("hydra_plugins.dnn_train_batched.batched_sweeper", "BatchedSweeper"),
                         ("hydra_plugins.dnn_train_optuna.optuna_sweeper", "OptunaPruningSweeper")):
        try:  # an install whose path hides our plugins keeps Hydra's own basic sweeper, and runs
            plugins.register(getattr(importlib.import_module(module), name))
        except ImportError:
            continue


def main() -> None:
    if not (CONF_DIR / "config.yaml").is_file():  # a broken install: say what is missing, not a traceback
        _fail(f"error: dnn_train's configs are missing (no {CONF_DIR / 'config.yaml'}); reinstall the package "
              "(pip install . from a checkout, or pip install -e .)", EXIT_BAD_INPUT)
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        try:
            print_help()
            sys.stdout.flush()
        except BrokenPipeError:  # `--help | head`: the reader left; not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except Exception as ex:  # noqa: BLE001 - --help never prints a traceback
            _fail(f"error: cannot read the configs in {CONF_DIR} for --help ({one_line(ex)})", EXIT_BAD_INPUT)
        return
    if os.environ.get("HYDRA_FULL_ERROR"):
        os.environ["DNN_TRAIN_DEBUG"] = "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us; we print them as one line
    try:
        _register_sweeper()
        with ending():  # a sweep's last summary, however it ends
            _app()
    except KeyboardInterrupt as ex:  # a sweep's: where its summary is, how to continue it
        failure = explain(ex)
        _fail(failure.line + getattr(ex, "sweep_note", ""), failure.code)
    except Exception as ex:  # noqa: BLE001 - the command line's last resort
        if _debug():
            raise
        failure = explain(ex)
        if failure.bad_input:
            remove_created_unused()
        elif isinstance(ex, OSError):  # before any run began: Hydra making the run (or sweep) directory
            failure = failure._replace(code=EXIT_BAD_INPUT, kind="error", message=_setup_error(ex))
        else:
            failure = failure._replace(message=f"{failure.message} (DNN_TRAIN_DEBUG=1 prints the traceback)")
        _fail(failure.line, failure.code)


if __name__ == "__main__":
    main()
