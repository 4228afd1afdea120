"""The keys a run's results.json may hold, each with what it means: the documentation site's
reference page is generated from this table (docs/hooks.py), and tests/project/test_docs.py checks that a
real run writes no key missing here. Add a key here when a task starts writing it."""
from __future__ import annotations

# (key, the tasks or statuses that write it, what it is)
RESULTS_KEYS: list[tuple[str, str, str]] = [
    ("status", "every run", "`running` until the run ends, then `completed`, `failed` (with `error`), `interrupted`, "
     "`diverged`, or `pruned` by a search; `completed` is the mark of a finished run"),
    ("pid", "while running", "the process that holds the run (removed when it ends)"),
    ("host", "while running", "the machine it runs on (removed when it ends)"),
    ("job", "a run under SLURM or submitit", "the scheduler job that runs it (`slurm:JOB.STEP/RANK`); a requeued "
     "instance of that job continues the run ([Cluster](../cluster.md))"),
    ("started", "every run", "when the run began, local time `YYYY-MM-DD HH:MM:SS`"),
    ("task", "find_lr, pretrain_autoencoder", "the task that ran (a classifier run has no `task` key)"),
    ("dataset", "every run", "`data.name`"),
    ("model", "train", "`model.name`: the family"),
    ("params", "train, pretrain_autoencoder", "the model's parameter count"),
    ("train_examples", "train, pretrain_autoencoder", "training examples after splits and slices"),
    ("valid_examples", "train", "validation examples"),
    ("test_examples", "train", "test examples"),
    ("name", "every run", "`run.name` (a label, not configuration)"),
    ("tags", "every run", "`run.tags`"),
    ("notes", "every run", "`run.notes`"),
    ("provenance", "every run", "where the run came from: command, overrides, code (git commit, `source.patch`), "
     "versions, device, data hashes (see [Reproducibility](../reproducibility.md))"),
    ("init_from", "train with model.init_from", "the model file whose blocks were reused (absolute path)"),
    ("reused_layers", "train with model.init_from", "how many hidden blocks were copied from it"),
    ("test_loss", "train", "loss on the test split (the restored epoch's weights)"),
    ("test_accuracy", "train", "accuracy on the test split"),
    ("best_val_accuracy", "train, pruned", "the best validation accuracy of any epoch"),
    ("best_epoch", "train, pruned", "the epoch (from 1) that reached it"),
    ("restored_epoch", "train", "the epoch whose weights were saved (early stopping restores the best by "
     "its monitor, `val_loss`)"),
    ("restored_val_accuracy", "train", "that epoch's validation accuracy"),
    ("restored_val_loss", "train", "that epoch's validation loss"),
    ("saved_model_max_diff", "train", "the saved model's largest prediction difference from the trained one, "
     "checked <= 1e-6 after loading it back in safe mode"),
    ("epochs", "train, pretrain_autoencoder, pruned, interrupted", "epochs completed"),
    ("grad_ratio_epoch1", "train with trainer.diagnostics", "first hidden block's gradient norm over the last "
     "one's after epoch 1 (<< 1: vanishing, >> 1: exploding)"),
    ("mc_samples", "train with trainer.mc_samples", "MC dropout: stochastic passes over the test set"),
    ("mc_accuracy", "train with trainer.mc_samples", "accuracy of the mean of those passes"),
    ("mc_mean_std", "train with trainer.mc_samples", "mean standard deviation of the predicted probabilities"),
    ("mc_mean_entropy", "train with trainer.mc_samples", "mean entropy of the averaged prediction"),
    ("start_lr", "find_lr", "`lr_find.start_lr`"),
    ("end_lr", "find_lr", "`lr_find.end_lr`"),
    ("suggested_max_lr", "find_lr", "a tenth of the rate at the lowest smoothed loss: a value for "
     "`schedule.max_lr`"),
    ("min_loss_lr", "find_lr", "the rate at the lowest smoothed loss"),
    ("steps", "find_lr", "batches the range test ran"),
    ("loss", "pretrain_autoencoder", "`autoencoder.loss`"),
    ("reconstruction_loss", "pretrain_autoencoder", "the autoencoder's loss on the test images"),
    ("best_val_loss", "pretrain_autoencoder", "its best validation loss"),
    ("error", "failed, diverged, pruned", "one line: why the run did not complete (`dnn_train.log` holds a "
     "failure's traceback)"),
    ("diverged_epoch", "diverged", "the epoch whose training loss became NaN or infinite"),
    ("diverged_step", "diverged", "the step at which it was seen"),
    ("mlflow_run_id", "logger=mlflow", "the MLflow run this run is logged to"),
    ("wall_seconds", "every run that ended", "seconds from the start of the run to its final record"),
    ("rss_mb", "every run that ended", "the process's resident memory at the end, MB"),
]
