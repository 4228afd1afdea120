"""The vanishing-gradients sweep of the README: run it (or read a finished one) and draw the four
nets' gradient norms per layer side by side, with the first/last-layer ratio at epoch 1.

    python benchmarks/vanishing_gradients.py                    # runs the 4-job sweep (~2 min on 2 cores)
    python benchmarks/vanishing_gradients.py outputs/multirun/DATE/TIME   # draws an existing one

It writes benchmarks/results/chapter/vanishing-gradients.json (the docs' results page) unless --no-record.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
PRESETS = ["vanishing_gradients", "vanishing_gradients_selu", "vanishing_gradients_batchnorm",
           "vanishing_gradients_relu"]


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--no-record"]
    if args:
        sweep = Path(args[0])
    else:
        sweep = Path("outputs/multirun/vanishing_gradients")
        subprocess.run([sys.executable, "-m", "dnn_train", "-m", "experiment=" + ",".join(PRESETS),
                        "trainer.progress=none", f"hydra.sweep.dir={sweep}"], check=True, cwd=HERE.parent)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), constrained_layout=True, sharey=True)
    for job, (ax, name) in enumerate(zip(axes, PRESETS)):
        table = pd.read_csv(sweep / str(job) / "diagnostics.csv")
        epochs = sorted(table["epoch"].unique())
        for epoch, color in zip(epochs, plt.cm.viridis(np.linspace(0, 0.9, len(epochs)))):
            rows = table[table["epoch"] == epoch].sort_values("layer")
            ax.plot(rows["layer"], rows["grad_norm"], marker="o", markersize=2, color=color,
                    label="init" if epoch == 0 else f"epoch {epoch}")
        first = table[table["epoch"] == 1].sort_values("layer")["grad_norm"].to_numpy()
        label = name.replace("vanishing_gradients", "naive sigmoid").replace("naive sigmoid_", "+ ")
        ax.set(yscale="log", title=f"{label}: layer 1 / layer 20 = {first[0] / first[-1]:.3g}",
               xlabel="hidden layer (1 = input side)")
        ax.grid(alpha=0.3, which="both")
        print(f"{name}: gradient-norm ratio first/last hidden layer at epoch 1 = {first[0] / first[-1]:.3g}")
        results = json.loads((sweep / str(job) / "results.json").read_text())
        rows.append([f"`{name}`", f"{first[0] / first[-1]:.3g}", results.get("test_accuracy")])
    axes[0].set_ylabel("gradient norm of the kernel (log)")
    axes[0].legend(fontsize=8)
    fig.savefig(HERE / "vanishing_gradients.png", dpi=80)
    print(f"-> {HERE / 'vanishing_gradients.png'}")
    if "--no-record" not in sys.argv:  # the record the documentation's results page is generated from
        import record

        record.write("chapter", "vanishing-gradients", "Vanishing gradients: four 20x100 nets",
                     columns=["preset", "`grad_ratio_epoch1`", "test accuracy"], rows=rows,
                     figure="benchmarks/vanishing_gradients.png")


if __name__ == "__main__":
    main()
