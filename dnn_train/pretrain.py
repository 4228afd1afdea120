"""task=pretrain_autoencoder: unsupervised pretraining (chapter 11). Train an autoencoder whose
encoder is the configured hidden stack on the training images alone (labels are never read), and
save it as a run whose encoder a later run reuses with `model.init_from=RUN_DIR`.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dnn_train import data, fused
from dnn_train.callbacks import showing
from dnn_train.rundir import artifacts
from dnn_train.rundir.record import Run
from dnn_train.train import _callbacks, save_model, setup

log = logging.getLogger("dnn_train")
RECONSTRUCTIONS_FILE = "reconstructions.png"


def image_pairs(x: np.ndarray, batch_size: int, shuffle: bool, seed: int):
    """(uint8 image, the same image scaled to [0, 1]) batches: input and reconstruction target."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return data.make_dataset(x, x.astype(np.float32) / 255.0, batch_size, shuffle=shuffle, seed=seed)
    import tensorflow as tf

    no_labels = np.zeros(len(x), dtype=np.uint8)  # make_dataset's label slot, dropped below
    ds = data.make_dataset(x, no_labels, batch_size, shuffle=shuffle, seed=seed)
    return ds.map(lambda images, _: (images, tf.cast(images, tf.float32) / 255.0))


def pretrain_autoencoder(cfg, run: Run, extra_callbacks=()) -> dict:
    run_dir, t = run.dir, cfg.trainer
    s = setup(cfg, autoencoder=True)
    model, splits = s.model, s.splits
    model.compile(optimizer=s.optimizer, loss=cfg.autoencoder.loss,
                  steps_per_execution=t.steps_per_execution, jit_compile=t.jit_compile)
    run.begin(task="pretrain_autoencoder", dataset=cfg.data.name, params=model.count_params(),
              train_examples=len(splits.x_train), loss=cfg.autoencoder.loss)
    callbacks = [*s.schedule_callbacks, *_callbacks(cfg, run_dir, "pretrain", run, s.steps_per_epoch),
                 *extra_callbacks]
    train = image_pairs(splits.x_train, t.batch_size, True, t.seed)
    fused.build_state(model, train)
    with showing(callbacks):
        history = model.fit(train,
                            validation_data=image_pairs(splits.x_valid, data.eval_batch(t.batch_size), False, t.seed),
                            epochs=t.epochs, callbacks=callbacks, verbose=0, shuffle=False)
    log.info("testing on %d images", len(splits.x_test))
    test_loss = model.evaluate(image_pairs(splits.x_test, data.eval_batch(t.batch_size), False, t.seed), verbose=0)
    log.info("saving the model (%s) and checking it loads back", artifacts.MODEL_FILE)
    save_model(model, run_dir / artifacts.MODEL_FILE, splits.x_test[:64])
    log.info("plotting %s and %s", artifacts.CURVES_FILE, RECONSTRUCTIONS_FILE)
    metrics = artifacts.read_metrics(run_dir / artifacts.METRICS_FILE)
    artifacts.plot_curves(metrics, run_dir / artifacts.CURVES_FILE, title="autoencoder pretraining")
    shown = splits.x_test[: cfg.autoencoder.examples_plot]
    plot_reconstructions(shown, model.predict(shown, verbose=0), run_dir / RECONSTRUCTIONS_FILE)
    results = run.finish("completed", reconstruction_loss=test_loss, best_val_loss=float(metrics["val_loss"].min()),
                         epochs=len(history.epoch))
    log.info("test reconstruction loss (%s) %.5f; %d epochs in %.1fs -> %s (reuse it with model.init_from=%s)",
             cfg.autoencoder.loss, test_loss, results["epochs"], results["wall_seconds"], run_dir, run_dir)
    return results


def plot_reconstructions(images: np.ndarray, reconstructions: np.ndarray, path: Path) -> None:
    """Test images (top row) above their reconstructions (bottom row)."""
    n = len(images)
    fig, axes = artifacts.figure(2, n, figsize=(1.2 * n, 2.8), squeeze=False, constrained_layout=True)
    for i in range(n):
        for row, img in ((0, images[i] / 255.0), (1, np.clip(reconstructions[i], 0, 1))):
            ax = axes[row][i]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].set_ylabel("test image")
    axes[1][0].set_ylabel("reconstructed")
    artifacts.save_figure(fig, path)
