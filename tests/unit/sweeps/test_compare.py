"""dnn_train/sweeps/ (read, table, render) and `python -m dnn_train.report` on run directories written by hand: the
per-run table, grouping by everything but the seed, pairing by seed, the baseline, unreadable runs
skipped in one line, and runs whose process is gone."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import warnings
from unittest import mock

import pandas as pd
import pytest
import yaml

from dnn_train import errors
from dnn_train.report import main as report_main
from dnn_train.rundir import record
from dnn_train.sweeps.read import find_runs
from dnn_train.sweeps.render import CURVES_PLOT, GROUPS_CSV, METRIC_PLOT, SUMMARY_MD, markdown, write
from dnn_train.sweeps.summary import PLOT_EVERY, SweepSummary, update_summary, verdict_lines
from dnn_train.sweeps.table import COLUMNS, LOWER_IS_BETTER, build

CONFIG = {"optimizer": {"_target_": "keras.optimizers.SGD", "learning_rate": 0.01},
          "model": {"depth": 1, "units": 16}, "trainer": {"seed": 42, "resume": False, "progress": "auto"}}
OPTIMIZERS = {"sgd": "keras.optimizers.SGD", "adam": "keras.optimizers.Adam", "nadam": "keras.optimizers.Nadam",
              "rmsprop": "keras.optimizers.RMSprop"}


def fake_run(folder, overrides, status="completed", val=(0.5, 0.6), test=0.55, error=None, config=None,
             choices=None):
    """A run directory as a job leaves it: Hydra's record, metrics.csv, results.json (and
    config.yaml if `config`, Hydra's choices if `choices`)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if choices is not None:
        (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    if config is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    pd.DataFrame({"epoch": range(1, len(val) + 1), "val_accuracy": val}).to_csv(folder / "metrics.csv", index=False)
    results = {"status": status, "epochs": len(val), "best_val_accuracy": max(val), "test_accuracy": test,
               "wall_seconds": 1.5}
    if error:
        results["error"] = error
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def seeded_run(folder, optimizer: str, seed: int, val: float, units: int = 16, overrides=(), **config_changes):
    """A completed run of `optimizer` with `seed`, its config.yaml as train.py writes it."""
    config = json.loads(json.dumps(CONFIG))
    config["optimizer"]["_target_"] = OPTIMIZERS[optimizer]
    config["model"]["units"] = units
    config["trainer"].update(seed=seed, **config_changes)
    return fake_run(folder, [f"optimizer={optimizer}", f"trainer.seed={seed}", *overrides], val=(val / 2, val),
                    test=val, config=config)


def report(*args, cwd, env=None) -> subprocess.CompletedProcess:
    """`python -m dnn_train.report ARGS` in `cwd`, in this process: exit code, stdout, stderr (the warnings included)."""
    out, err, argv = io.StringIO(), io.StringIO(), [str(a) for a in args]
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch.dict(os.environ, env or {}), warnings.catch_warnings(record=True) as warned:
        os.environ.pop("DNN_TRAIN_DEBUG", None)
        warnings.simplefilter("default")  # as a fresh interpreter: each shown once, deprecations (ours aside) not
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(?!dnn_train\.)")
        code = report_main(argv)
    err.writelines(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in warned)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def groups_of(comparison, metric="best_val_accuracy"):
    groups = comparison.groups
    return groups[groups["metric"] == metric].set_index("configuration")


# ------------------------------------------------------------------ the per-run table and the report
def test_summary_rows_show_only_the_varying_overrides_and_sort_by_the_metric(tmp_path):
    fake_run(tmp_path / "0", ["optimizer=sgd", "trainer.seed=42"], val=(0.5, 0.7), test=0.69)
    fake_run(tmp_path / "1", ["optimizer=adam", "trainer.seed=42"], val=(0.6, 0.8), test=0.78)
    fake_run(tmp_path / "2", ["optimizer=nadam", "trainer.seed=42"], status="diverged", val=(0.4,), test=None,
             error="loss became nan at epoch 2")
    comparison = build(find_runs([tmp_path]))
    table = comparison.runs
    assert table["job"].tolist() == [0, 1, 2]
    assert table["overrides"].tolist() == ["optimizer=sgd", "optimizer=adam", "optimizer=nadam"]
    write(comparison, tmp_path)
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert list(csv.columns) == COLUMNS and len(csv) == 3
    md = (tmp_path / "summary.md").read_text().splitlines()
    body = [ln for ln in md if ln.startswith("| ") and ln[2].isdigit()]
    assert [ln.split(" | ")[1] for ln in body] == ["optimizer=adam", "optimizer=sgd", "optimizer=nadam"]
    assert "- job 2 (optimizer=nadam): diverged: loss became nan at epoch 2" in md
    # one seed each: n = 1, no interval, and the configurations table says why there is no verdict
    assert "| optimizer=adam | 1 | 0.8000 |  | +0.1000 | 1 | not enough seeds |  |  |" in md  # no test: no p
    assert "| optimizer=nadam | 0 |  |  |  |  | no completed run |  |  |" in md

    assert [ln for ln in verdict_lines(comparison) if not ln.startswith("note:")] == [
        "optimizer=nadam vs optimizer=sgd: no completed run (best_val_accuracy difference unknown, 0 pairs)",
        "1 configuration shares fewer than 2 seeds with the baseline: no verdict (sweep trainer.seed for repeats; "
        "summary.md has the differences)"]
    assert any("trainer.seed=0,1,2,3,4" in ln for ln in md)
    baseline = next(i for i, ln in enumerate(md) if ln.startswith("Baseline: optimizer=sgd (the first run's"))
    assert md.index("## Runs, sorted by best_val_accuracy") > baseline
    for png in (CURVES_PLOT, METRIC_PLOT):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_report_command_compares_runs_from_different_places(tmp_path):
    a = fake_run(tmp_path / "monday" / "run", ["optimizer=sgd"], val=(0.5, 0.7), test=0.69)
    fake_run(tmp_path / "tuesday" / "0", ["optimizer=adam"], val=(0.6, 0.8), test=0.60)
    fake_run(tmp_path / "tuesday" / "1", ["optimizer=nadam"], val=(0.6, 0.75), test=0.80)
    out = tmp_path / "cmp"
    proc = report(a, tmp_path / "tuesday", "--metric", "test_accuracy", "--sort", "asc", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (out / "summary.md").read_text()
    runs = md[md.index("## Runs"):]
    assert runs.index("optimizer=adam") < runs.index("optimizer=sgd") < runs.index("optimizer=nadam")  # ascending
    assert len(pd.read_csv(out / "summary.csv")) == 3 and (out / "sweep_metric.png").exists()
    assert set(pd.read_csv(out / "summary_groups.csv")["configuration"]) == {"optimizer=sgd", "optimizer=adam",
                                                                            "optimizer=nadam"}
    proc = report(tmp_path / "nothing", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "no such run" in proc.stderr
    (tmp_path / "a_file").write_text("")
    proc = report(a, "--out", tmp_path / "a_file", cwd=tmp_path)  # any other failure: one line too
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "a_file" in proc.stderr, proc.stderr


# ------------------------------------------------------------------ configurations: all keys but the seed
def test_runs_are_one_configuration_iff_every_key_but_the_seed_is_equal(tmp_path):
    seeded_run(tmp_path / "0", "sgd", 0, 0.80)
    seeded_run(tmp_path / "1", "sgd", 1, 0.82, resume=True, progress="line")  # how the run was driven: same
    seeded_run(tmp_path / "2", "sgd", 2, 0.81, overrides=["optimizer.learning_rate=0.01"])  # the default, typed
    seeded_run(tmp_path / "3", "adam", 0, 0.83)
    seeded_run(tmp_path / "4", "sgd", 3, 0.70, units=32)  # same overrides as 0-2, another model.units in config
    table = build(find_runs([tmp_path])).runs
    assert table["_key"].nunique() == 3
    labels = table["configuration"].tolist()
    assert labels[0] == labels[1] == labels[2] and len(set(labels)) == 3
    assert labels[3] == "optimizer=adam"
    assert labels[0].endswith("[model.units=16]") and labels[4].endswith("[model.units=32]")  # told apart
    assert table["seed"].tolist() == [0, 1, 2, 0, 3]


def test_runs_without_a_config_group_by_their_overrides_but_the_seed(tmp_path):
    for job, (opt, seed) in enumerate([("sgd", 1), ("sgd", 2), ("adam", 1), ("adam", 2)]):
        fake_run(tmp_path / str(job), [f"optimizer={opt}", f"trainer.seed={seed}", "trainer.epochs=2"])
    comparison = build(find_runs([tmp_path]))
    assert comparison.runs["configuration"].tolist() == ["optimizer=sgd"] * 2 + ["optimizer=adam"] * 2
    assert groups_of(comparison)["n"].to_dict() == {"optimizer=sgd": 2, "optimizer=adam": 2}


def test_pairing_by_seed_with_a_seed_missing_on_each_side(tmp_path):
    # baseline sgd: seeds 0, 1, 2; adam: seeds 0, 1, 3 (no 2). Pairs: seeds 0 and 1, differences
    # 0.83 - 0.80 = 0.03 and 0.84 - 0.82 = 0.02: mean 0.025, std 0.0070711, / sqrt(2) = 0.005,
    # t(0.975, 1 df) = 12.706 -> half-width 0.06353 -> [-0.03853, 0.08853]: no detectable difference.
    # adam alone, n = 3 (0.83, 0.84, 0.90): mean 0.85666667.
    for job, (opt, seed, val) in enumerate([("sgd", 0, 0.80), ("sgd", 1, 0.82), ("sgd", 2, 0.81),
                                            ("adam", 0, 0.83), ("adam", 1, 0.84), ("adam", 3, 0.90)]):
        seeded_run(tmp_path / str(job), opt, seed, val)
    comparison = build(find_runs([tmp_path]))
    adam, sgd = groups_of(comparison).loc["optimizer=adam"], groups_of(comparison).loc["optimizer=sgd"]
    assert (sgd["n"], sgd["verdict"], adam["baseline"]) == (3, "baseline", "optimizer=sgd")
    assert adam["n"] == 3 and adam["mean"] == pytest.approx(0.85666667)
    assert adam["pairs"] == 2 and adam["difference"] == pytest.approx(0.025)
    assert adam["diff_ci_low"] == pytest.approx(-0.03853, abs=1e-4)
    assert adam["diff_ci_high"] == pytest.approx(0.08853, abs=1e-4)
    assert adam["verdict"] == "no detectable difference"
    md = markdown(comparison)
    assert "| optimizer=adam | 3 | 0.8567 ± " in md and "| +0.0250 [-0.0385, +0.0885] | 2 | no detectable difference |" in md


def test_the_baseline_is_job_0s_configuration_or_the_one_named(tmp_path):
    for job, (opt, seed, val) in enumerate([("sgd", 0, 0.80), ("sgd", 1, 0.81), ("adam", 0, 0.90),
                                            ("adam", 1, 0.92)]):
        seeded_run(tmp_path / str(job), opt, seed, val)
    runs = find_runs([tmp_path])
    assert groups_of(build(runs))["verdict"].to_dict() == {"optimizer=sgd": "baseline",
                                                                  "optimizer=adam": "better"}
    flipped = build(runs, baseline="optimizer=adam")
    assert groups_of(flipped)["verdict"].to_dict() == {"optimizer=sgd": "worse", "optimizer=adam": "baseline"}
    # a resolved config value names it too; test_loss-like metrics: lower is better
    assert build(runs, baseline="optimizer._target_=keras.optimizers.Adam").baseline == "optimizer=adam"
    with pytest.raises(errors.BaselineError, match="matches no configuration; the configurations are: "
                                                    "optimizer=sgd; optimizer=adam"):
        build(runs, baseline="optimizer=nadam")
    with pytest.raises(errors.BaselineError, match="matches 2 configurations"):
        build(runs, baseline="model.units=16")
    with pytest.raises(errors.BaselineError, match="trainer.seed cannot choose"):
        build(runs, baseline="trainer.seed=0")
    # in a sweep the baseline's jobs may not have run yet: a note, no verdicts
    pending = build(runs, baseline="optimizer=nadam", strict=False)
    assert set(groups_of(pending)["verdict"]) == {""} and "matches no configuration" in pending.notes[0]
    proc = report(tmp_path, "--baseline", "optimizer=adam", "--out", tmp_path / "cmp", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Baseline: optimizer=adam" in proc.stdout and "| optimizer=sgd | 2 |" in proc.stdout
    proc = report(tmp_path, "--baseline", "optimizer=nadam", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "matches no configuration" in proc.stderr


def test_a_group_option_left_at_its_default_still_names_the_baseline(tmp_path):
    fake_run(tmp_path / "default", [], val=(0.5, 0.6), choices={"optimizer": "sgd"})
    fake_run(tmp_path / "adam", ["optimizer=adam"], val=(0.5, 0.7), choices={"optimizer": "adam"})
    comparison = build([tmp_path / "adam", tmp_path / "default"], baseline="optimizer=sgd")
    assert comparison.baseline == "defaults"


# ------------------------------------------------------------------ many comparisons with one baseline
# Four seeds each; the differences from sgd, seed by seed: adam +0.01 +0.04 +0.02 +0.03: mean 0.025,
# std 0.0129099, / sqrt(4) = 0.0064550, t = 3.8730 on 3 df: t(0.975, 3) = 3.1824 < t < t(0.99, 3) = 4.5407,
# p = 0.030466: "better" on its own. nadam +0.02 -0.01 +0.01 0 and rmsprop -0.01 +0.01 0 -0.02: mean
# ±0.005, the same std, t = ±0.7746, p = 0.49503. Holm over the 3 comparisons: 0.030466 x 3 = 0.091398;
# 0.49503 x 2 = 0.99006; 0.49503 x 1, raised to 0.99006. Benjamini-Hochberg: 0.030466 x 3/1 = 0.091398;
# 0.49503 x 3/2 = 0.74254, lowered to 0.49503 x 3/3 = 0.49503.
BASELINE_VALUES = [0.80, 0.81, 0.82, 0.83]
DIFFERENCES = {"adam": [0.01, 0.04, 0.02, 0.03], "nadam": [0.02, -0.01, 0.01, 0.0], "rmsprop": [-0.01, 0.01, 0.0, -0.02]}


def borderline_sweep(folder):
    """sgd (the baseline) and three optimizers, seeds 0-3: adam's raw p 0.0305, the others' 0.495."""
    runs = [("sgd", [0.0] * 4), *DIFFERENCES.items()]
    for job, (optimizer, seed, value) in enumerate((o, seed, round(base + d, 4)) for o, diffs in runs
                                                   for seed, (base, d) in enumerate(zip(BASELINE_VALUES, diffs))):
        seeded_run(folder / str(job), optimizer, seed, value)
    return find_runs([folder])


def test_holm_turns_a_borderline_better_into_no_detectable_difference(tmp_path):
    runs = borderline_sweep(tmp_path)
    holm = groups_of(build(runs))  # Holm is the default
    adam = holm.loc["optimizer=adam"]
    assert adam["pairs"] == 4 and adam["difference"] == pytest.approx(0.025)
    assert adam["diff_ci_low"] > 0  # the 95% interval of this one comparison excludes 0 ...
    assert adam["p_value"] == pytest.approx(0.030466, abs=1e-6)
    assert adam["p_adjusted"] == pytest.approx(0.091398, abs=1e-6)  # ... but one of three, it is not enough
    assert (adam["correction"], adam["verdict"]) == ("holm", "no detectable difference")
    others = holm.loc[["optimizer=nadam", "optimizer=rmsprop"]]
    assert others["p_value"].tolist() == pytest.approx([0.49503] * 2, abs=1e-5)
    assert others["p_adjusted"].tolist() == pytest.approx([0.99006] * 2, abs=1e-5)
    assert holm.loc["optimizer=sgd", "verdict"] == "baseline" and pd.isna(holm.loc["optimizer=sgd", "p_value"])
    bh = groups_of(build(runs, correction="bh"))
    assert bh["p_adjusted"].dropna().tolist() == pytest.approx([0.091398, 0.49503, 0.49503], abs=1e-5)
    assert bh.loc["optimizer=adam", "verdict"] == "no detectable difference"
    uncorrected = groups_of(build(runs, correction="none")).loc["optimizer=adam"]
    assert uncorrected["verdict"] == "better" and uncorrected["p_adjusted"] == uncorrected["p_value"]
    # summary.md shows both p-values and names the correction; the report and the sweep take the option
    md = markdown(build(runs))
    assert "| optimizer=adam | 4 |" in md and "| 4 | no detectable difference | 0.0305 | 0.0914 |" in md
    assert "| pairs | verdict | p | p (Holm) |" in md and "adjusted for the 3 comparisons" in md
    assert "optimizer=adam vs optimizer=sgd: no detectable difference (best_val_accuracy +0.0250 [+0.0045, +0.0455], " \
           "4 pairs, p 0.0305, Holm 0.0914)" in verdict_lines(build(runs))  # what a sweep prints at its end
    proc = report(tmp_path, "--correction", "none", "--out", tmp_path / "cmp", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "| 4 | better | 0.0305 | 0.0305 |" in proc.stdout and "| p | p (uncorrected) |" in proc.stdout
    assert "No correction for multiple comparisons" in proc.stdout
    update_summary(tmp_path, "best_val_accuracy", correction="bh")
    written = pd.read_csv(tmp_path / GROUPS_CSV)
    assert set(written["correction"].dropna()) == {"bh"} and "p (Benjamini-Hochberg)" in \
        (tmp_path / SUMMARY_MD).read_text()
    with pytest.raises(ValueError, match="hydra.callbacks.summary.correction 'bonferroni': expected holm, bh"):
        SweepSummary(correction="bonferroni")


def test_without_correction_the_verdicts_are_the_intervals_excluding_zero(tmp_path):
    """correction=none: each comparison at 95% on its own, the verdicts the summary gave before."""
    comparison = build(borderline_sweep(tmp_path), correction="none")
    tested = comparison.groups[comparison.groups["pairs"] >= 2]
    assert set(tested["metric"]) == {"best_val_accuracy", "test_accuracy", "wall_seconds"} and len(tested) == 9
    for row in tested.itertuples():
        better = (row.diff_ci_high < 0) if row.metric in LOWER_IS_BETTER else (row.diff_ci_low > 0)
        worse = (row.diff_ci_low > 0) if row.metric in LOWER_IS_BETTER else (row.diff_ci_high < 0)
        assert row.verdict == ("better" if better else "worse" if worse else "no detectable difference"), row
    assert groups_of(comparison)["verdict"].tolist() == ["baseline", "better", "no detectable difference",
                                                         "no detectable difference"]


# ------------------------------------------------------------------ unreadable runs, dead processes
def test_unreadable_runs_are_skipped_in_one_line_each(tmp_path, caplog):
    sweep_dir = tmp_path / "sweep"
    fake_run(sweep_dir / "0", ["optimizer=sgd"])
    (fake_run(sweep_dir / "1", ["optimizer=adam"]) / "results.json").write_text('{"status": "compl')
    (fake_run(sweep_dir / "2", ["optimizer=nadam"]) / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage\n\x01,\x80\n")
    (fake_run(sweep_dir / "3", ["optimizer=adamax"]) / "metrics.csv").write_text("epoch,val_accuracy\n1,0.5\ntwo,x\n")
    (fake_run(sweep_dir / "4", ["optimizer=rmsprop"]) / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")
    fake_run(sweep_dir / "5", ["optimizer=nesterov"])
    proc = report(sweep_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    errors = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr and len(errors) == 4
    assert errors[0].startswith(f"dnn_train.report: skipping {sweep_dir / '1'}: results.json is not valid JSON")
    assert errors[1].startswith(f"dnn_train.report: skipping {sweep_dir / '2'}: metrics.csv cannot be read")
    assert errors[2] == f"dnn_train.report: skipping {sweep_dir / '3'}: metrics.csv: epoch holds values that are " \
                        "not numbers"
    assert errors[3].startswith(f"dnn_train.report: skipping {sweep_dir / '4'}: .hydra/overrides.yaml cannot be read")
    assert pd.read_csv(sweep_dir / "summary.csv")["job"].tolist() == [0, 5]
    assert "4 skipped (unreadable):" in (sweep_dir / "summary.md").read_text()
    # the same inside a sweep: the summary is written, the bad jobs are warned about
    (sweep_dir / "summary.csv").unlink()
    comparison = update_summary(sweep_dir, "best_val_accuracy")
    assert len(comparison.skipped) == 4 and pd.read_csv(sweep_dir / "summary.csv")["job"].tolist() == [0, 5]
    assert sum("sweep summary: skipping" in r.message for r in caplog.records) == 4
    # nothing readable: one line, exit 2
    proc = report(sweep_dir / "1", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1] == \
        "dnn_train.report: error: no readable runs (every one was skipped)"


def test_a_running_run_whose_process_is_gone_shows_as_crashed(tmp_path):
    fake_run(tmp_path / "0", ["optimizer=sgd"])
    dead = fake_run(tmp_path / "1", ["optimizer=adam"], status="running", val=(0.5,), test=None)
    (dead / record.LOCK_FILE).write_text("{}")  # its process ended: nobody holds the lock
    alive = fake_run(tmp_path / "2", ["optimizer=nadam"], status="running", val=(0.5,), test=None)
    lock = record.RunLock(alive)
    lock.acquire()
    try:
        comparison = build(find_runs([tmp_path]))
        write(comparison, tmp_path)
    finally:
        lock.release()
    assert comparison.runs["status"].tolist() == ["completed", "crashed (process gone)", "running"]
    assert groups_of(comparison).loc["optimizer=adam", ["n", "not_completed", "verdict"]].tolist() == \
        [0, 1, "no completed run"]
    assert pd.read_csv(tmp_path / "summary.csv")["status"][1] == "crashed (process gone)"
    assert "- job 1 (optimizer=adam): crashed (process gone)" in (tmp_path / "summary.md").read_text()


def test_sweep_plots_are_redrawn_between_jobs_only_when_stale_and_always_at_the_end(tmp_path):
    """The tables follow every job; the two plots (~0.4 s a job) at most every PLOT_EVERY seconds, and
    the sweep's end always draws them from every job."""
    fake_run(tmp_path / "0", ["optimizer=sgd"])
    update_summary(tmp_path, "best_val_accuracy", final=False)  # no plots yet: drawn
    plots = [tmp_path / CURVES_PLOT, tmp_path / METRIC_PLOT]
    first = [p.read_bytes() for p in plots]
    fake_run(tmp_path / "1", ["optimizer=adam"], val=(0.7, 0.8))
    update_summary(tmp_path, "best_val_accuracy", final=False)  # drawn a moment ago: kept
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 2
    assert [p.read_bytes() for p in plots] == first
    stale = plots[0].stat().st_mtime - PLOT_EVERY - 1
    os.utime(plots[0], (stale, stale))
    update_summary(tmp_path, "best_val_accuracy", final=False)  # stale: redrawn
    redrawn = [p.read_bytes() for p in plots]
    assert all(a != b for a, b in zip(redrawn, first))
    fake_run(tmp_path / "2", ["optimizer=sgd", "trainer.seed=1"], val=(0.4, 0.45))
    update_summary(tmp_path, "best_val_accuracy")  # the end of the sweep: always
    assert all(a != b for a, b in zip((p.read_bytes() for p in plots), redrawn))
