"""dnn_train: train deep neural networks from Hydra config groups (Keras 3), one knob at a time.

Command line: `python -m dnn_train [GROUP=OPTION ...] [KEY=VALUE ...]` (see README.md).
Python: `from dnn_train import compose, run, load_run` (dnn_train/api.py).
"""
import dnn_train.config.schema  # noqa: F401 - registers the typed schema (dnn_train_schema) with Hydra
from dnn_train.config.gate import install_gate

install_gate()  # every config Hydra composes in a process that imports dnn_train passes the gate (config/gate.py)

from dnn_train.api import DnnTrainError, LoadedRun, compose, load_run, run  # noqa: E402

__all__ = ["DnnTrainError", "LoadedRun", "compose", "load_run", "run"]
