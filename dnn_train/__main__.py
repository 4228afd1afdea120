"""`python -m dnn_train [overrides]` and the `dnn-train` script: a Hydra app.

TensorFlow is imported only when a job runs, so --help, --cfg and config errors answer at once.
Configuration errors end with one line on stderr and exit code 2; DNN_TRAIN_DEBUG=1 (or
HYDRA_FULL_ERROR=1) shows the full traceback instead.
"""
from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from dnn_train.config import CONF_DIR, describe_error

EXIT_CONFIG_ERROR = 2
EXIT_FAILED = 1


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _app(cfg: DictConfig):
    from dnn_train.tasks import run_task  # imports TensorFlow

    return run_task(cfg)


def main() -> None:
    debug = bool(os.environ.get("DNN_TRAIN_DEBUG") or os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us; we print them as one line
    try:
        _app()
    except KeyboardInterrupt:
        print("dnn_train: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as ex:  # noqa: BLE001 - the command line's last resort
        if debug:
            raise
        msg = describe_error(ex)
        if msg is not None:
            print(f"dnn_train: error: {msg}", file=sys.stderr)
            sys.exit(EXIT_CONFIG_ERROR)
        print(f"dnn_train: failed: {type(ex).__name__}: {_first_line(ex)} "
              "(the run's dnn_train.log has the traceback; DNN_TRAIN_DEBUG=1 prints it)", file=sys.stderr)
        sys.exit(EXIT_FAILED)


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip()
    return text.splitlines()[0] if text else ""


if __name__ == "__main__":
    main()
