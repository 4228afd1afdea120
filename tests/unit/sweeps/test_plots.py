"""The sweep plots (dnn_train/sweeps/render.py) and a run's curves (dnn_train/rundir/artifacts.py) with long
labels: every text inside the figure, no layout warning, integer epoch ticks, and every
configuration visible where their points coincide."""
from __future__ import annotations

import warnings

import matplotlib.text
import numpy as np
import pandas as pd
import pytest

from dnn_train.rundir import artifacts
from dnn_train.sweeps.render import plot_curves, plot_metric
from dnn_train.sweeps.table import build
from tests.unit.sweeps.test_compare import fake_run

N_CONFIGS = 12


def long_label_sweep(tmp_path, epochs: int):
    """12 configurations whose labels are long (five overrides vary, one a long path), 2 seeds
    each, every curve the same (their points coincide)."""
    dirs = []
    for i in range(N_CONFIGS):
        for seed in (1, 2):
            overrides = [f"data.root=/datasets/a_rather_long_folder_name_for_dataset_variant_{i:02d}/images",
                         f"optimizer.learning_rate={0.001 * (i + 1):.4f}", f"model.units={100 + i}",
                         f"trainer.batch_size={32 + i}", f"experiment=transfer_learning_with_frozen_layers_{i}",
                         f"trainer.seed={seed}"]
            val = tuple(0.5 + 0.01 * e for e in range(epochs))
            dirs.append(fake_run(tmp_path / f"{i}_{seed}", overrides, val=val, test=0.5))
    return build(dirs)


def drawn(monkeypatch, draw):
    """The figure `draw` saves, drawn as save_figure draws it, with warnings as errors."""
    figures = []
    save = artifacts.save_figure

    def keep(fig, path):
        fig.canvas.draw()
        fig.renderer = fig.canvas.get_renderer()  # (closing the figure, save_figure drops its canvas)
        figures.append(fig)
        save(fig, path)

    monkeypatch.setattr(artifacts, "save_figure", keep)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draw()
    (fig,) = figures
    return fig


def assert_no_text_clipped(fig):
    renderer = fig.renderer
    box = fig.bbox
    hidden = set()  # the labels of ticks outside the view, which matplotlib keeps but does not draw
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - 1e-9 * (high - low) <= tick.get_loc() <= high + 1e-9 * (high - low):
                    hidden.update({id(tick.label1), id(tick.label2)})
    texts = [t for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
    assert texts
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert extent.x0 >= box.x0 - 0.5 and extent.y0 >= box.y0 - 0.5 and extent.x1 <= box.x1 + 0.5 \
            and extent.y1 <= box.y1 + 0.5, f"clipped: {text.get_text()[:80]!r} at {extent} in {box}"


@pytest.mark.parametrize("epochs", [1, 3])
def test_sweep_curves_with_long_labels_fit_show_every_configuration_and_integer_epochs(tmp_path, monkeypatch, epochs):
    comparison = long_label_sweep(tmp_path, epochs)
    fig = drawn(monkeypatch, lambda: plot_curves(comparison, tmp_path / "sweep_curves.png"))
    assert_no_text_clipped(fig)
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    # every configuration's mean curve is drawn where no other one hides it
    lines = [line for line in ax.get_lines() if (line.get_label() or "").endswith("(n=2)")]
    assert len(lines) == N_CONFIGS
    points = [tuple(map(tuple, line.get_transform().transform(np.column_stack(line.get_data())))) for line in lines]
    styles = [(line.get_color(), line.get_marker()) for line in lines]
    assert len(set(points)) == N_CONFIGS or len(set(styles)) == N_CONFIGS
    assert len(set(points)) == N_CONFIGS, "configurations drawn on top of each other"
    assert all(ax.bbox.contains(x, y) for line in points for x, y in line), "points outside the axes"


def test_sweep_metric_with_long_labels_fits(tmp_path, monkeypatch):
    comparison = long_label_sweep(tmp_path, 2)
    fig = drawn(monkeypatch, lambda: plot_metric(comparison, tmp_path / "sweep_metric.png"))
    assert_no_text_clipped(fig)


def test_run_curves_with_a_long_title_fit_and_show_integer_epochs(tmp_path, monkeypatch):
    metrics = pd.DataFrame({"epoch": [1], "phase": ["train"], "loss": [1.0], "accuracy": [0.5], "val_loss": [1.1],
                            "val_accuracy": [0.45], "learning_rate": [0.01]})
    title = " ".join(f"model.layer_{i}.units={100 + i}" for i in range(20))
    fig = drawn(monkeypatch, lambda: artifacts.plot_curves(metrics, tmp_path / "curves.png", title=title))
    assert_no_text_clipped(fig)
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
