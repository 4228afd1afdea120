"""Two runs side by side, and a run made again (`python -m dnn_train.report --diff A B`, `--rerun RUN_DIR`).

- diff: the config keys that differ, the environment that differs (results.json's provenance:
  commit, versions, device, data hashes; dnn_train/provenance.py), the final numbers side by side,
  and one plot of both runs' curves.
- rerun: the run's saved config (config.yaml, resolved: what ran, whatever conf/ says today) run
  again in a new directory; its numbers (results.json and every epoch of metrics.csv, timings left
  out) must be equal to the last bit when the environment is the same, and within a stated
  tolerance when it is not, which is then named.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from dnn_train.errors import BadRun, NotARun
from dnn_train.provenance import environment
from dnn_train.rundir import artifacts
from dnn_train.rundir import read as rundir_read
from dnn_train.sweeps.read import RunView, read_run

NOT_NUMBERS = {"pid", "wall_seconds", "rss_mb", "saved_model_max_diff"}  # timings and this process's, not results
NOT_CURVES = {"epoch_seconds"}
DEFAULT_TOLERANCE = 0.01
MISSING = "(not recorded)"


def read(path) -> RunView:
    path = Path(path)
    if not (path / artifacts.RESULTS_FILE).is_file():
        raise NotARun(f"{path}: not a dnn_train run directory (no results.json)")
    try:
        return read_run(path)
    except BadRun as ex:
        raise NotARun(f"{path}: {ex}") from None


def label(run: RunView) -> str:
    return str(run.results.get("name") or run.dir)


def _differences(a: dict, b: dict) -> list[tuple]:
    return [(k, a.get(k, MISSING), b.get(k, MISSING)) for k in sorted(a.keys() | b.keys(), key=str)
            if a.get(k, MISSING) != b.get(k, MISSING)]


def config_differences(a: RunView, b: RunView) -> list[tuple]:
    return _differences(a.config or {}, b.config or {})


def environment_differences(a: RunView, b: RunView) -> list[tuple]:
    return _differences(environment(a.results.get("provenance")), environment(b.results.get("provenance")))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numbers(run: RunView) -> dict:
    """What a run computed: results.json's numbers and every epoch's metrics (timings left out)."""
    out = {k: v for k, v in run.results.items() if _number(v) and k not in NOT_NUMBERS}
    if run.curve is not None:
        for row in run.curve.to_dict("records"):
            for column, value in row.items():
                if column not in NOT_CURVES and column != "epoch" and _number(value):
                    out[f"metrics.csv epoch {row['epoch']} {column}"] = value
    return out


def cell(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table(header: list, rows: list) -> list[str]:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def diff_text(a: RunView, b: RunView) -> str:
    out = [f"A: {a.dir}" + (f" ({a.results['name']})" if a.results.get("name") else ""),
           f"B: {b.dir}" + (f" ({b.results['name']})" if b.results.get("name") else ""), ""]
    for title, rows in (("config", config_differences(a, b)), ("environment", environment_differences(a, b))):
        out.append(f"{title}: " + (f"{len(rows)} differ" if rows else "the same"))
        if rows:
            out += ["  " + line for line in table(["key", "A", "B"], [(k, cell(x), cell(y)) for k, x, y in rows])]
        out.append("")
    keys = [k for k in dict.fromkeys([*a.results, *b.results])
            if k not in NOT_NUMBERS - {"wall_seconds"} and (_number(a.results.get(k)) or _number(b.results.get(k)))]
    rows = [(k, cell(a.results.get(k, "-")), cell(b.results.get(k, "-")),
             f"{b.results[k] - a.results[k]:+.4g}" if _number(a.results.get(k)) and _number(b.results.get(k)) else "")
            for k in keys]
    out.append("metrics:")
    out += ["  " + line for line in table(["metric", "A", "B", "B-A"], rows)]
    return "\n".join(out) + "\n"


def plot(a: RunView, b: RunView, path: Path) -> None:
    """Loss and accuracy against epochs, both runs: training dashed, validation solid."""
    fig, axes = artifacts.row_of_panels(2, (12, 4.5), f"A: {label(a)}   B: {label(b)}")
    for ax, name in zip(axes, ("loss", "accuracy")):
        for run, which, color in ((a, "A", "tab:blue"), (b, "B", "tab:orange")):
            curve = run.curve
            if curve is None:
                continue
            for prefix, style, what in (("val_", "-", "validation"), ("", "--", "train")):
                if prefix + name in curve:
                    ax.plot(curve["epoch"], curve[prefix + name], style, marker="o", markersize=3, color=color,
                            label=f"{which} {what}")
        ax.set(xlabel="epoch", ylabel=name, title=name)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    artifacts.save_figure(fig, Path(path))


# ---------------------------------------------------------------- rerun
def saved_config(run: RunView):
    """The config that ran (config.yaml, resolved), typed by the schema, to be run again from scratch."""
    from omegaconf import OmegaConf

    from dnn_train.config.schema import RootConf
    from dnn_train.data.catalog import DATASETS

    if not (run.dir / artifacts.CONFIG_FILE).is_file():
        raise NotARun(f"{run.dir}: no config.yaml to run again")
    saved = rundir_read.saved_config(run.dir)
    entry = DATASETS.get(OmegaConf.select(saved, "data.name", default=None))
    own_keys = {"data": OmegaConf.structured(entry.keys)} if entry is not None else {}  # the dataset's own keys
    cfg = OmegaConf.merge(OmegaConf.structured(RootConf), own_keys, saved)
    cfg.trainer.resume = False
    return cfg


def match(a: dict, b: dict, tolerance: Optional[float]) -> list[tuple]:
    """The numbers that differ: exactly (tolerance None), or beyond math.isclose(rel_tol=abs_tol=tolerance)."""
    out = []
    for key in dict.fromkeys([*a, *b]):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            if x is not y:
                out.append((key, x, y))
            continue
        same = x == y or (math.isnan(x) and math.isnan(y))
        if not same and (tolerance is None or not math.isclose(x, y, rel_tol=tolerance, abs_tol=tolerance)):
            out.append((key, x, y))
    return out


def verdict(original: RunView, rerun: RunView, tolerance: float = DEFAULT_TOLERANCE) -> tuple[bool, str]:
    """(numbers match, the report): exact when the environment is the same, else within `tolerance`."""
    env = environment_differences(original, rerun)
    a, b = numbers(original), numbers(rerun)
    lines = [f"rerun of {original.dir}", f"     in {rerun.dir}"]
    if env:
        lines.append(f"environment: {len(env)} differ:")
        lines += ["  " + line for line in table(["key", "original", "rerun"], [(k, cell(x), cell(y)) for k, x, y in env])]
    else:
        lines.append("environment: the same (code, versions, device, data)")
    exact = match(a, b, None)
    if not exact:
        lines.append(f"numbers: identical ({len(a)} values: results.json and every epoch of metrics.csv)")
        return True, "\n".join(lines) + "\n"
    beyond = exact if not env else match(a, b, tolerance)
    shown = beyond or exact
    lines += [f"  {k}: {cell(x)} -> {cell(y)}" for k, x, y in shown[:12]]
    if len(shown) > 12:
        lines.append(f"  ... and {len(shown) - 12} more")
    if not env:
        lines.append(f"numbers: NOT reproduced: {len(exact)} of {len(a)} values differ on the same environment "
                     "(nondeterministic ops, or a thread count the record does not see)")
        return False, "\n".join(lines) + "\n"
    if not beyond:
        lines.append(f"numbers: within tolerance {tolerance:g} ({len(exact)} of {len(a)} values differ, as the "
                     f"environment does: {', '.join(k for k, _, _ in env[:6])})")
        return True, "\n".join(lines) + "\n"
    lines.append(f"numbers: NOT reproduced: {len(beyond)} of {len(a)} values differ beyond tolerance {tolerance:g}; "
                 f"the environment differs in: {', '.join(k for k, _, _ in env[:6])}")
    return False, "\n".join(lines) + "\n"
