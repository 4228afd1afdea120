"""Runs compared where people compare runs: TensorBoard's HParams dashboard (every run) and MLflow
(`logger=mlflow`).

- HParams: when a run ends, whatever its status, `RUN_DIR/tensorboard/` gets an event file with
  the run's hyperparameters (tensorboard.plugins.hparams: the config groups chosen, the keys set on
  the command line, a few core keys, and its status) and its final metrics, so
  `tensorboard --logdir SWEEP_DIR` shows the table and the parallel-coordinates view. Written by the
  tensorboard package alone (no TensorFlow needed); skipped, with a logged reason, without it.
- MLflow: one MLflow run per dnn_train run, found again by its run directory (a resumed run goes
  on in the same MLflow run): the resolved config as params, every epoch's metrics, the final
  metrics, results.json / config.yaml / metrics.csv / curves.png / dnn_train.log as artifacts, and
  the trained model (mlflow.keras). Its status: FINISHED (completed), KILLED (pruned, interrupted),
  FAILED (failed, diverged); the tag `dnn_train.status` has ours. run.name is the run's name,
  run.notes its description, and the tags `dnn_train.tags` and `dnn_train.provenance.*` (also
  HParams columns) say where it came from (dnn_train/provenance.py).

Neither may fail a run: a problem while logging is a warning in the run's log.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dnn_train.errors import ConfigError
from dnn_train.rundir import artifacts

log = logging.getLogger("dnn_train")

BOARD_DIR = "tensorboard"  # shared with trainer.tensorboard's train/ and validation/
HPARAMS_SUFFIX = ".hparams"  # our event files, rewritten when the run ends again (a resume)
FINAL_METRICS = ("best_val_accuracy", "test_accuracy", "test_loss", "epochs", "wall_seconds", "best_val_loss",
                 "reconstruction_loss", "mc_accuracy")
CORE_KEYS = ("optimizer.learning_rate", "model.depth", "model.units", "trainer.batch_size", "trainer.epochs",
             "trainer.seed")
NOT_HYPERPARAMETERS = ("data.root", "trainer.resume", "trainer.progress")  # where and how a run is driven
MLFLOW_INSTALL = "pip install -e '.[mlflow]'"
MLFLOW_STATUS = {"completed": "FINISHED", "pruned": "KILLED", "interrupted": "KILLED"}  # else FAILED
RUN_DIR_TAG = "dnn_train.run_dir"


def _uses_mlflow(cfg) -> bool:
    return (cfg.get("logger") or {}).get("name") == "mlflow"


def check(cfg) -> None:
    """Before a run starts: logger=mlflow needs MLflow installed (one line, exit 2)."""
    if _uses_mlflow(cfg):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ConfigError(f"logger=mlflow: MLflow is not installed; {MLFLOW_INSTALL}") from None


def callbacks(cfg, run) -> list:
    """The Keras callbacks of the chosen logger: MLflow's per-epoch metrics, or none."""
    if not _uses_mlflow(cfg):
        return []
    return [_epoch_metrics(*_mlflow_run(cfg, run))]


def finished(run) -> None:
    """The run has its final record (an observer of dnn_train/rundir/record.py, registered by tasks.py):
    write its HParams and close its MLflow run."""
    for step in (write_hparams, _mlflow_finish):
        try:
            step(run)
        except Exception as ex:  # noqa: BLE001 - tracking never fails a run
            log.warning("%s: %s: %s", step.__name__.strip("_"), type(ex).__name__, str(ex).splitlines()[0] if str(ex)
                        else "")


# ---------------------------------------------------------------- the hyperparameters
def hyperparameters(run) -> dict:
    """What the HParams table shows: the config groups chosen (optimizer=nadam), the keys set on the
    command line, and CORE_KEYS, as resolved; plus the run's status."""
    cfg, out = run.cfg, {}
    choices = run.hydra_cfg.runtime.choices if run.hydra_cfg is not None else {}
    for group, option in (choices or {}).items():
        if option is not None and not group.startswith("hydra") and group != "dnn_train_schema":
            out[group] = str(option)
    keys = [o.split("=", 1)[0].lstrip("+~") for o in run.overrides if "=" in o] + list(CORE_KEYS)
    for key in keys:
        if key.startswith("hydra.") or key in out or key in NOT_HYPERPARAMETERS:
            continue
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if isinstance(value, DictConfig) or value is None:
            continue
        out[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    out["status"] = str(run.results.get("status"))
    out.update(labels_and_provenance(run.results))
    return out


def labels_and_provenance(results: dict) -> dict:
    """The run's name, tags and notes and its environment (dnn_train/provenance.py), flat, as text:
    HParams columns and MLflow tags."""
    from dnn_train.provenance import environment

    out = {key: str(results[key]) for key in ("name", "notes") if results.get(key)}
    if results.get("tags"):
        out["tags"] = ",".join(results["tags"])
    prov = results.get("provenance") or {}
    if prov.get("command"):
        out["provenance.command"] = " ".join(prov["command"])
    out.update({f"provenance.{k}": str(v) for k, v in environment(prov).items()})
    return out


def final_metrics(results: dict) -> dict:
    return {k: float(results[k]) for k in FINAL_METRICS
            if isinstance(results.get(k), (int, float)) and not isinstance(results.get(k), bool)}


# ---------------------------------------------------------------- TensorBoard HParams
def write_hparams(run) -> None:
    """RUN_DIR/tensorboard/events...hparams: the HParams session of this run and its final metrics,
    one scalar each at the last epoch. tensorboard.plugins.hparams.api re-exports hparams_pb from
    summary_v2; the api module itself imports TensorFlow (for its Keras callback), summary_v2 does not."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as ex:
        log.info("TensorBoard HParams not written: the tensorboard package cannot be imported (%s)", ex)
        return
    board = artifacts.make_dir(Path(run.dir) / BOARD_DIR)
    for old in board.glob(f"events.out.tfevents.*{HPARAMS_SUFFIX}"):
        old.unlink()  # the run ended before (and was resumed): its last ending is the one shown
    step = int(run.results.get("epochs") or 0)
    now = time.time()
    writer = EventFileWriter(str(board), filename_suffix=HPARAMS_SUFFIX)
    try:
        writer.add_event(event_pb2.Event(wall_time=now, summary=hparams_pb(
            hyperparameters(run), trial_id=_trial_id(run), start_time_secs=int(run.started))))
        for name, value in final_metrics(run.results).items():
            writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=scalar_pb(name, value)))
    finally:
        writer.close()


def _trial_id(run) -> str:
    """The session's name in the table: a sweep job's number with its sweep, else the run directory."""
    return f"{run.dir.parent.name}/{run.dir.name}" if run.dir.name.isdigit() else run.dir.name


# ---------------------------------------------------------------- MLflow
def _tracking_uri(cfg) -> str:
    uri = cfg.logger.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return str(uri)
    db = Path("outputs", "mlflow.db").absolute()
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def _client(cfg):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = _tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    name = str(cfg.logger.experiment)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return client, experiment.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, not in ./mlruns of whatever directory
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").absolute().as_uri()
    try:
        return client, client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - a parallel job created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return client, experiment.experiment_id


def _mlflow_run(cfg, run):
    """(client, MLflow run id) of this dnn_train run: the one tagged with its directory (a resumed
    run), else a new one with the resolved config as its params."""
    from mlflow.entities import Param, RunStatus

    client, experiment_id = _client(cfg)
    path = str(run.dir).replace("'", "\\'")
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{path}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    else:
        overrides = " ".join(o for o in run.overrides if not o.startswith("hydra."))
        name = f"{run.dir.parent.name}/{run.dir.name}" if run.dir.name.isdigit() else run.dir.name
        name = run.results.get("name") or name
        created = client.create_run(experiment_id, run_name=name,
                                    tags={RUN_DIR_TAG: str(run.dir), "dnn_train.overrides": overrides or "defaults"})
        run_id = created.info.run_id
        config = artifacts.flatten(OmegaConf.to_container(run.cfg, resolve=True))
        params = [Param(k, str(v)[:6000]) for k, v in config.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            client.log_batch(run_id, params=params[i:i + 100])
    run.update(mlflow_run_id=run_id)
    return client, run_id


def _epoch_metrics(client, run_id):
    """A Keras callback logging each epoch's logs as MLflow metrics (step: the epoch, from 1, as in
    metrics.csv). Not mlflow.keras.MlflowCallback: it logs the optimizer's config as params at every
    fit, which MLflow refuses once the second phase of transfer learning changes the learning rate."""
    import keras
    from mlflow.entities import Metric

    class MlflowEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, float(v), now, epoch + 1) for k, v in (logs or {}).items()])

    return MlflowEpochs()


def _mlflow_finish(run) -> None:
    if not _uses_mlflow(run.cfg):
        return
    import mlflow

    client, run_id = _mlflow_run(run.cfg, run)
    status = str(run.results.get("status"))
    metrics = final_metrics(run.results)
    step = int(run.results.get("epochs") or 0)
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])
    client.set_tag(run_id, "dnn_train.status", status)
    from mlflow.entities import RunTag

    tags = {f"dnn_train.{k}": v[:5000] for k, v in labels_and_provenance(run.results).items()}
    if run.results.get("notes"):
        tags["mlflow.note.content"] = str(run.results["notes"])[:5000]  # MLflow's run description
    tags = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, len(tags), 100):
        client.log_batch(run_id, tags=tags[i:i + 100])
    if run.results.get("error"):
        client.set_tag(run_id, "dnn_train.error", str(run.results["error"])[:5000])
    for name in ("results.json", "config.yaml", "metrics.csv", "curves.png", "dnn_train.log", "diagnostics.csv",
                 "gradients.png", "reconstructions.png", "source.patch", "data.sha256"):
        if (run.dir / name).is_file():
            client.log_artifact(run_id, str(run.dir / name))
    model_file = run.dir / "model.keras"
    if status == "completed" and run.cfg.logger.get("log_model", True) and model_file.is_file():
        _log_model(run_id, model_file)
    client.set_terminated(run_id, MLFLOW_STATUS.get(status, "FAILED"))
    log.info("MLflow: run %s (%s) in %s", run_id, status, mlflow.get_tracking_uri())


def _log_model(run_id: str, model_file: Path) -> None:
    """model.keras as an MLflow model (mlflow.keras: `mlflow.keras.load_model(...)` loads it back)."""
    import keras
    import mlflow

    from dnn_train import saving

    model = saving.load(model_file)
    while mlflow.active_run() is not None:  # a run an earlier job in this process left open
        mlflow.end_run()
    with mlflow.start_run(run_id=run_id):
        # explicit requirements: inferring them loads the model again in a subprocess
        mlflow.keras.log_model(model, name="model", pip_requirements=[f"keras=={keras.__version__}"])

