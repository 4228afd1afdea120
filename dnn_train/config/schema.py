"""The typed config: where conf/ is, the groups and tasks, and the dataclasses Hydra composes against.

Two kinds of config group live in conf/:
- fixed-key groups (data, model, trainer): typed by the dataclasses below, registered as Hydra's
  `dnn_train_schema` on import, so a wrong type or an unknown key fails while Hydra composes the config;
- Keras-class groups (initializer, activation, normalization, optimizer, schedule, regularizer):
  each option is a `_target_` plus the class's keyword arguments, so adding an option is adding a
  YAML file. Their values are checked by RULES (rules.py) by key name before TensorFlow is imported,
  and keys listed in BUILDER_KEYS are read by our builder instead of being passed to the class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore

from dnn_train.data.catalog import DataConf

# conf/ sits at the top of the repository and ships inside the wheel as dnn_train/conf (pyproject.toml).
_PACKAGE = Path(__file__).resolve().parent.parent
CONF_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf").is_dir() else _PACKAGE.parent / "conf"

TASKS = ("train", "find_lr", "pretrain_autoencoder")
KERAS_GROUPS = ("initializer", "activation", "normalization", "optimizer", "schedule", "regularizer")
# Keys of Keras-class groups that configure our builder rather than the Keras class.
BUILDER_KEYS = {
    "normalization": ("position", "input"),
    "regularizer": ("attach", "placement", "on_inputs"),
    "schedule": ("max_momentum", "min_momentum"),
}


@dataclass
class EarlyStoppingConf:
    enabled: bool = True
    monitor: str = "val_loss"
    patience: int = 10
    restore_best_weights: bool = True


@dataclass
class TrainerConf:
    epochs: int = 10
    batch_size: int = 32
    seed: int = 42
    early_stopping: EarlyStoppingConf = field(default_factory=EarlyStoppingConf)
    steps_per_execution: int = 64  # with fuse_steps=1 (or a CNN without XLA): steps per graph call in Keras' own loop
    fuse_steps: int = 64  # K steps fused into one compiled loop (dnn_train/fused.py)
    jit_compile: Any = "auto"  # true | false | auto (XLA on the fused loop where it pays: fused.xla_pays)
    share_compiled: bool = True  # a job differing from the last one only in seed (or constant rate) reuses its step
    precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16 (Keras' mixed-precision policy)
    progress: str = "auto"  # auto (on a terminal a bar per epoch, then its line; else the line) | bar | line | none
    mc_samples: int = 0  # MC dropout: stochastic test passes with dropout on (0: off)
    resume: bool = False  # continue the run in hydra.run.dir from its last completed epoch
    diagnostics: bool = True  # per-layer activation and gradient statistics: diagnostics.csv, gradients.png
    diagnostics_batch: int = 512  # training images in the fixed probe batch
    tensorboard: bool = False  # TensorBoard logs in the run's tensorboard/ folder
    objective: str = "best_val_accuracy"  # what a sweep's task returns to Hydra's sweepers (results.json key)
    threads: Any = "auto"  # TensorFlow threads per job: auto (all cores; cores / n_jobs under joblib) | N
    distribution: Optional[str] = None  # null | data_parallel (JAX backend: dnn_train/distribute.py)
    devices: Optional[List[int]] = None  # data_parallel's devices, indices into keras.distribution.list_devices(); null: all


@dataclass
class LrFindConf:
    start_lr: float = 1.0e-5
    end_lr: float = 10.0
    epochs: float = 1.0  # length of the ramp
    stop_factor: float = 4.0  # stop once the batch loss exceeds this multiple of the lowest


@dataclass
class TransferConf:
    reuse_layers: Optional[int] = None  # lowest K hidden layers of model.init_from (null: all of them)
    freeze_epochs: int = 0  # first phase: reused layers frozen for this many epochs
    finetune_lr: Optional[float] = None  # second phase (unfrozen): this learning rate (null: unchanged)


@dataclass
class AutoencoderConf:
    loss: str = "mse"  # reconstruction loss of the pixels in [0, 1]: mse | binary_crossentropy
    examples_plot: int = 10  # test images shown beside their reconstructions


@dataclass
class RunConf:
    """A run's label (dnn_train/provenance.py): not configuration, so runs differing only here are repeats."""
    name: Optional[str] = None  # results.json "name", the MLflow run name, TensorBoard's HParams
    tags: List[str] = field(default_factory=list)  # results.json "tags"; `report --tag T` / `--group-by tag`
    notes: Optional[str] = None  # free text: results.json "notes", MLflow's run description


@dataclass
class RootConf:
    """Schema of the whole config (conf/config.yaml lists it first in its defaults)."""

    data: DataConf = field(default_factory=DataConf)
    model: Any = None  # a family's keys (conf/model/*.yaml): checked against its builder's signature
    trainer: TrainerConf = field(default_factory=TrainerConf)
    augment: Any = None
    initializer: Any = None
    activation: Any = None
    normalization: Any = None
    optimizer: Any = None
    schedule: Any = None
    regularizer: Any = None
    transfer: TransferConf = field(default_factory=TransferConf)
    lr_find: LrFindConf = field(default_factory=LrFindConf)
    autoencoder: AutoencoderConf = field(default_factory=AutoencoderConf)
    task: str = "train"
    logger: Any = None  # conf/logger/*.yaml: none | mlflow (dnn_train/tracking.py)
    run: RunConf = field(default_factory=RunConf)
    allow_targets: List[str] = field(default_factory=list)  # more callables (docs/guides/bad-input.md); command line only


ConfigStore.instance().store(name="dnn_train_schema", node=RootConf)
