"""The comparison's files: summary.csv, summary_groups.csv, summary.md and the two plots (from a Comparison).

- summary.md: the configurations first (mean ± CI and verdict), then the per-run table.
- sweep_curves.png: validation accuracy against epochs, one line per configuration (mean over its
  seeds) with a band (min to max over seeds); sweep_metric.png: each configuration's mean with its
  95% CI as an error bar, and its single runs as dots, on one shared axis.

Built from any run or sweep directories: a sweep writes them at its root as each job ends and however
it ends (the plots at most every 30 s until its end: dnn_train/sweeps/summary.py), `python -m
dnn_train.report PATH...` rebuilds them (dnn_train/report.py).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

from dnn_train.rundir import artifacts
from dnn_train.sweeps import stats
from dnn_train.sweeps.table import (BASELINE, COLUMNS, COMPLETED, LOWER_IS_BETTER, PRUNED, Comparison, missing,
                                    sort_table)

SUMMARY_CSV = "summary.csv"
GROUPS_CSV = "summary_groups.csv"
SUMMARY_MD = "summary.md"
CURVES_PLOT = "sweep_curves.png"
METRIC_PLOT = "sweep_metric.png"


def write(comparison: Comparison, out_dir: Path, plots: bool = True) -> None:
    """summary.csv (job order), summary_groups.csv, summary.md and (if `plots`) the two plots, in `out_dir`."""
    out_dir = Path(out_dir)
    artifacts.write_text(out_dir / SUMMARY_CSV, comparison.runs[COLUMNS].to_csv(index=False))
    artifacts.write_text(out_dir / GROUPS_CSV, comparison.groups.to_csv(index=False))
    artifacts.write_text(out_dir / SUMMARY_MD, markdown(comparison))
    if plots:
        plot_curves(comparison, out_dir / CURVES_PLOT)
        plot_metric(comparison, out_dir / METRIC_PLOT)


# ----------------------------------------------------------------------------------- summary.md
FORMATS = {"wall_seconds": "{:.1f}", "grad_ratio_epoch1": "{:.3g}", "epochs": "{:.0f}"}
SIGNED = {"wall_seconds": "{:+.1f}"}


def _cell(value, column: str = "") -> str:
    if missing(value):
        return ""
    if isinstance(value, float):
        return FORMATS.get(column, "{:.4f}").format(value)
    return str(value).replace("|", "\\|")


def _mean_ci(row) -> str:
    if row["n"] == 0:
        return ""
    text = _cell(row["mean"], row["metric"])
    return text if missing(row["ci_low"]) else f"{text} ± {_cell((row['ci_high'] - row['ci_low']) / 2, row['metric'])}"


def difference_text(row) -> str:
    if missing(row["difference"]):
        return ""
    fmt = SIGNED.get(row["metric"], "{:+.4f}")
    text = fmt.format(row["difference"])
    if not missing(row["diff_ci_low"]):
        text += f" [{fmt.format(row['diff_ci_low'])}, {fmt.format(row['diff_ci_high'])}]"
    return text


def _table(header: list, rows: list) -> list[str]:
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(comparison: Comparison) -> str:
    """The configurations (mean ± CI, difference from the baseline, verdict), then the runs."""
    table, metric = comparison.runs, comparison.metric
    n_configs = table["_key"].nunique()
    direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
    lines = [f"# {n_configs} configuration{'s' * (n_configs != 1)}, {len(table)} run{'s' * (len(table) != 1)}: "
             f"{metric} ({direction})", ""]
    lines += _configurations_md(comparison, n_configs)
    lines += [line for note in comparison.notes for line in ("", f"Note: {note}.")]
    shown = [c for c in COLUMNS if c not in ("configuration", "seed", "error", "run_dir")
             and not table[c].isna().all()]
    lines += ["", f"## Runs, sorted by {metric}", ""]
    lines += _table(shown, [[_cell(row[c], c) for c in shown]
                            for _, row in sort_table(table, metric, comparison.ascending).iterrows()])
    pruned = table[table["status"] == PRUNED]
    if len(pruned):  # a search's pruner stopped them: an outcome, not a failure
        lines += ["", f"{len(pruned)} pruned by the search (stopped early; their metrics are of the epochs they ran):",
                  ""]
        lines += [f"- job {r.job} ({r.overrides}): {r.error}" for r in pruned.itertuples()]
    failed = table[~table["status"].isin([COMPLETED, PRUNED])]
    if len(failed):
        lines += ["", f"{len(failed)} not completed:", ""]
        lines += [f"- job {r.job} ({r.overrides}): {r.status}{': ' + r.error if r.error else ''}"
                  for r in failed.itertuples()]
    if comparison.skipped:
        lines += ["", f"{len(comparison.skipped)} skipped (unreadable):", ""]
        lines += [f"- {s}" for s in comparison.skipped]
    return "\n".join(lines) + "\n"


def _configurations_md(comparison: Comparison, n_configs: int) -> list[str]:
    groups, metric = comparison.groups, comparison.metric
    main = sort_table(groups[groups["metric"] == metric], "mean", comparison.ascending)
    if not len(main):
        return []
    lines = ["A configuration is the runs that differ only in `trainer.seed`. n: its completed runs; "
             "mean ± the half-width of the 95% confidence interval (Student t); difference: "
             "configuration − baseline, averaged over the seeds both ran, with its 95% interval "
             f"(paired t); p: that paired t test's p-value. {correction_text(comparison)}", ""]
    if comparison.baseline is not None and n_configs > 1:
        how = "" if comparison.baseline_spec else \
            " (the first run's configuration; choose another with `--baseline KEY=VALUE`, or in a sweep " \
            "`'hydra.callbacks.summary.baseline=\"KEY=VALUE\"'`)"
        lines += [f"Baseline: {comparison.baseline}{how}", ""]
    lines += _table(["configuration", "n", f"{metric} mean ± 95% CI", "std", "difference [95% CI]", "pairs", "verdict",
                     "p", f"p ({stats.CORRECTIONS[comparison.correction]})"],
                    [[_cell(r["configuration"]), str(r["n"]), _mean_ci(r), _cell(r["std"], metric),
                      difference_text(r), _cell(r["pairs"]), r["verdict"], p_text(r["p_value"]),
                      p_text(r["p_adjusted"])] for _, r in main.iterrows()])
    others = [m for m in groups["metric"].unique() if m != metric and groups.loc[groups["metric"] == m, "n"].any()]
    if others and n_configs > 1:
        wide = {m: groups[groups["metric"] == m].set_index("configuration") for m in others}
        lines += ["", "Other metrics (mean ± 95% CI, verdict where there are 2 pairs or more, corrected as above "
                  f"within each metric; lower is better for {', '.join(sorted(LOWER_IS_BETTER))}):", ""]
        lines += _table(["configuration", *others],
                        [[_cell(c)] + [_other(wide[m].loc[c]) for m in others] for c in main["configuration"]])
    if main["n"].max() == 1:
        lines += ["", "At most one completed run per configuration: differences between seeds are unknown. Sweep "
                      "seeds to tell real differences from seed noise, e.g. `trainer.seed=0,1,2,3,4`."]
    return lines


def p_text(p) -> str:
    return "" if missing(p) else f"{p:.3g}"


def correction_text(comparison: Comparison) -> str:
    """How the verdicts were decided: which correction for multiple comparisons, over how many."""
    main = comparison.groups[comparison.groups["metric"] == comparison.metric]
    m = int(main["p_adjusted"].notna().sum())
    if comparison.correction == stats.NONE:
        return ("No correction for multiple comparisons: better or worse when p < 0.05 (when the interval "
                "excludes 0), each comparison at 95% on its own.")
    how = {stats.HOLM: "Holm's method: the familywise error rate, the chance of any false verdict, stays ≤ 5%",
           stats.BH: "Benjamini-Hochberg: the expected share of false verdicts among the better/worse ones "
                     "stays ≤ 5%"}[comparison.correction]
    return (f"p ({stats.CORRECTIONS[comparison.correction]}): p adjusted for the {m} comparison{'s' * (m != 1)} "
            f"with the baseline on {comparison.metric} ({how}); better or worse when the adjusted p < 0.05. "
            "The intervals are not adjusted.")


def _other(row) -> str:
    text = _mean_ci(row)
    shown = row["verdict"] not in ("", BASELINE, stats.NOT_ENOUGH_SEEDS)
    return f"{text} ({row['verdict']})" if text and shown else text


# ----------------------------------------------------------------------------------- plots
def _wrapped(label: str) -> str:
    """A configuration's label on several lines: on one, a sweep's long overrides (a single
    configuration is labelled with all of them) left the axes no room, and the plot came out empty."""
    return textwrap.fill(label, 60, break_on_hyphens=False)


def _not_completed(runs) -> str:
    """ "2 of 3 completed; 1 crashed (process gone)" for a configuration's runs, "" if all completed."""
    bad = runs[runs["status"] != COMPLETED]
    if not len(bad):
        return ""
    counts = ", ".join(f"{n} {status}" for status, n in bad["status"].value_counts().items())
    return f"{len(runs) - len(bad)} of {len(runs)} completed; {counts}"


MARKERS = "os^vDP<>X*"  # with the 10 colours of matplotlib's cycle: 70 configurations told apart before one repeats


def plot_curves(comparison: Comparison, path: Path) -> None:
    """Validation accuracy against epochs: per configuration the mean over its completed runs, a
    band from the lowest to the highest of them, and its other runs dotted. Each configuration has
    its own colour and marker and is shifted a few points along the epochs, so that configurations
    with the same values do not hide each other; the legend, below the plot, holds the wrapped labels
    and the figure grows to fit it."""
    import matplotlib
    import matplotlib.transforms
    import pandas as pd

    configurations = list(comparison.runs.groupby("_key", sort=False))
    fig, ax = artifacts.figure(figsize=(12, 5.5), constrained_layout=True)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (_, runs) in enumerate(configurations):
        color, label = colors[i % len(colors)], _wrapped(runs["configuration"].iloc[0])
        shifted = matplotlib.transforms.offset_copy(ax.transData, fig, units="points",
                                                    x=2.5 * (i - (len(configurations) - 1) / 2))
        drawn = []  # shifted once drawn (a line drawn shifted would not count in the axes' limits)
        curves = {r.status: [] for r in runs.itertuples()}
        for r in runs.itertuples():
            curve = comparison.curves.get(r.run_dir)
            if curve is not None and "val_accuracy" in curve:
                curves[r.status].append(curve[["epoch", "val_accuracy"]])
        done = curves.get(COMPLETED, [])
        if done:
            by_epoch = pd.concat(done).groupby("epoch")["val_accuracy"].agg(["mean", "min", "max"])
            drawn += ax.plot(by_epoch.index, by_epoch["mean"], "-", marker=MARKERS[i % len(MARKERS)], markersize=4,
                             color=color, label=f"{label} (n={len(done)})")
            if len(done) > 1:
                drawn.append(ax.fill_between(by_epoch.index, by_epoch["min"], by_epoch["max"], color=color,
                                             alpha=0.2, lw=0))
        others = [c for status, cs in curves.items() if status != COMPLETED for c in cs]
        for j, curve in enumerate(others):
            drawn += ax.plot(curve["epoch"], curve["val_accuracy"], ":", color=color, lw=1,
                             label=f"{label}: {_not_completed(runs)}" if j == 0 else None)
        for artist in drawn:
            artist.set_transform(shifted)
    dotted = "; dotted: runs not completed" if (comparison.runs["status"] != COMPLETED).any() else ""
    ax.set(xlabel="epoch", ylabel="validation accuracy",
           title=f"validation accuracy per configuration: mean over seeds, band: lowest to highest seed{dotted}")
    ax.title.set_fontsize(10)
    artifacts.integer_epochs(ax)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        columns = 1 if len(labels) < 4 else 2
        rows = [labels[k:k + columns] for k in range(0, len(labels), columns)]
        text_lines = sum(max(label.count("\n") + 1 for label in row) for row in rows)
        fig.set_figheight(4.5 + 0.17 * text_lines + 0.05 * len(rows))  # room for the legend below the plot
        fig.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=8)
    artifacts.save_figure(fig, path)


def plot_metric(comparison: Comparison, path: Path) -> None:
    """Per configuration, on one shared axis: its mean `metric` with the 95% CI as an error bar, and
    each completed run as a dot; the baseline's mean as a dashed line. Configurations with runs not
    completed say so in red."""
    metric, table = comparison.metric, comparison.runs
    groups = comparison.groups[comparison.groups["metric"] == metric]
    groups = sort_table(groups, "mean", not comparison.ascending)  # best at the top
    fig, ax = artifacts.figure(figsize=(10, 4), constrained_layout=True)
    labels = []
    for y, row in enumerate(groups.itertuples()):
        runs = table[table["configuration"] == row.configuration]
        values = runs.loc[runs["status"] == COMPLETED, metric].dropna()
        ax.plot(values, [y] * len(values), "o", color="tab:blue", alpha=0.35, markersize=5)
        if row.n:
            err = [[row.mean - row.ci_low], [row.ci_high - row.mean]] if row.n > 1 else None
            ax.errorbar([row.mean], [y], xerr=err, fmt="D", color="black", capsize=4, markersize=5)
            ax.annotate(f"{row.mean:.4g}", (row.mean, y), xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize=8)
        if row.verdict == BASELINE:
            ax.axvline(row.mean, color="grey", ls="--", lw=1)
        note = _not_completed(runs)
        verdict = f"; {row.verdict}" if row.verdict and row.verdict != BASELINE else \
            ("; baseline" if row.verdict == BASELINE else "")
        labels.append((_wrapped(f"{row.configuration} (n={row.n}{verdict})") + (f"\n{note}" if note else ""),
                       bool(note)))
    ax.set_yticks(range(len(labels)), [t for t, _ in labels], fontsize=8)
    for tick, (_, bad) in zip(ax.get_yticklabels(), labels):
        if bad:
            tick.set_color("tab:red")
    ax.set_ylim(-0.7, len(labels) - 0.3)
    # the figure's height: each configuration's rows of label text (8 points), at least 0.45 in; the title
    # above the whole figure (over the axes alone, pushed right by the labels, it ran off the edge)
    rows = sum(max(2, text.count("\n") + 1) for text, _ in labels)
    fig.set_figheight(1.9 + 0.15 * rows + 0.1 * len(labels))
    fig.suptitle(f"{metric} per configuration: mean over seeds (black) with its 95% confidence interval "
                 "(Student t)\nas error bar; dots: single runs; dashed: the baseline's mean", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    artifacts.save_figure(fig, path)
