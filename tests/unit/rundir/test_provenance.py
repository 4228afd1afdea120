"""Every run says how to reproduce it (docs/reproducibility.md): provenance in results.json, run.name /
run.tags / run.notes, `report --tag`, `report --diff` and `report --rerun`."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnn_train import provenance, run
from dnn_train.report import main as report
from tests.conftest import REPO, read_results

TINY = ["data=synthetic", "data.synthetic.train_examples=300", "data.valid_split=60",
        "data.synthetic.test_examples=60", "trainer.epochs=2", "trainer.progress=none", "model.depth=1",
        "model.units=8", "trainer.diagnostics=false"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny seeded runs, differing in the learning rate and their tags: A (tags x, y), B (tag y)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        a = run(*TINY, f"data.root={root / 'data'}", "run.tags=[x,y]", "run.name=first",
                "run.notes=the baseline", run_dir=root / "a")
        b = run(*TINY, f"data.root={root / 'data'}", "run.tags=[y]", "optimizer.learning_rate=0.05",
                run_dir=root / "b")
    return root, Path(a["run_dir"]), Path(b["run_dir"])


# ---------------------------------------------------------------- the record
def test_a_run_records_its_command_versions_device_data_and_label(runs):
    import keras
    import numpy
    import tensorflow

    root, a, _ = runs
    results = read_results(a)
    assert results["name"] == "first" and results["tags"] == ["x", "y"] and results["notes"] == "the baseline"
    p = results["provenance"]
    assert p["command"] == sys.argv and "run.tags=[x,y]" in p["overrides"]
    assert p["versions"] == {"python": platform.python_version(), "dnn_train": provenance.installed_version(),
                             "numpy": numpy.__version__, "keras": keras.__version__, "backend": "tensorflow",
                             "backend_version": tensorflow.__version__}
    with open("/proc/cpuinfo") as f:
        model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    assert p["device"]["cpu"] == model and p["device"]["cores"] == len(os.sched_getaffinity(0))
    assert p["code"]["git"] is True and p["code"]["commit"] == _git(REPO, "rev-parse", "HEAD").strip()
    folder = Path(p["data"]["folder"])
    assert folder.parent.parent == root / "data"  # the synthetic data's files, under data.root
    files = sorted(f.name for f in folder.iterdir())
    assert sorted(p["data"]["sha256"]) == files and p["data"]["files"] == 4
    for name, digest in p["data"]["sha256"].items():  # what `sha256sum` says
        assert digest == hashlib.sha256((folder / name).read_bytes()).hexdigest(), name


def test_data_hashes_are_cached_by_path_size_and_mtime(runs, tmp_path, monkeypatch):
    """A second run reads the hashes from the cache file, not the data files (a planted value shows it);
    a file whose size or time changed is hashed again."""
    root, a, _ = runs
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    cache = root / "cache" / "dnn_train" / "sha256.json"
    entries = json.loads(cache.read_text())
    path = next(p for p in entries if p.endswith("t10k-labels-idx1-ubyte.gz"))
    real = entries[path][2]
    entries[path][2] = "0" * 64
    cache.write_text(json.dumps(entries))
    assert provenance.sha256_files([path])[path] == "0" * 64  # from the cache: the file was not read
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1))
    assert provenance.sha256_files([path])[path] == real  # changed mtime: hashed again, and cached
    assert json.loads(cache.read_text())[path][2] == real


def _package_repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the package (and conf/), committed: clean."""
    repo = tmp_path / "repo"
    for name in ("dnn_train", "conf", "hydra_plugins"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".gitignore").write_text("__pycache__/\noutputs/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    return repo


def test_code_clean_dirty_and_outside_git(tmp_path):
    repo = _package_repo(tmp_path)
    head = _git(repo, "rev-parse", "HEAD").strip()
    clean = provenance.code(tmp_path / "clean", where=repo)
    assert clean == {"git": True, "repository": str(repo), "commit": head, "dirty": False}
    assert not (tmp_path / "clean").exists()  # no source.patch for a clean tree

    (repo / "dnn_train" / "sweeps" / "stats.py").write_text((repo / "dnn_train" / "sweeps" / "stats.py").read_text() + "\nCHANGED = 1\n")
    (repo / "dnn_train" / "new_module.py").write_text("NEW = 2\n")  # untracked, not ignored: in the patch
    (repo / ".env").write_text("TOKEN=s3cr3t\n")  # untracked, not code: named, never copied
    (tmp_path / "dirty").mkdir()
    dirty = provenance.code(tmp_path / "dirty", where=repo)
    assert dirty["commit"] == head and dirty["dirty"] is True and dirty["patch"] == "source.patch"
    assert dirty["untracked_not_in_patch"] == [".env"]
    patch = (tmp_path / "dirty" / "source.patch").read_bytes()
    assert b"s3cr3t" not in patch
    assert dirty["patch_sha256"] == hashlib.sha256(patch).hexdigest()
    # the patch on the commit gives the tree that ran
    _git(repo, "worktree", "add", "-q", str(tmp_path / "again"), head)
    _git(tmp_path / "again", "apply", str(tmp_path / "dirty" / "source.patch"))
    for name in ("dnn_train/sweeps/stats.py", "dnn_train/new_module.py"):
        assert (tmp_path / "again" / name).read_text() == (repo / name).read_text()

    outside = tmp_path / "outside"
    shutil.copytree(repo / "dnn_train", outside / "dnn_train")
    assert provenance.code(tmp_path / "x", where=outside) == {"git": False, "version": provenance.installed_version()}


@pytest.mark.slow
def test_a_run_from_a_dirty_git_checkout_records_its_commit_and_patch(tmp_path):
    """The package imported from another checkout (PYTHONPATH): its commit, dirty, source.patch beside the run."""
    repo = _package_repo(tmp_path)
    (repo / "dnn_train" / "sweeps" / "stats.py").write_text((repo / "dnn_train" / "sweeps" / "stats.py").read_text() + "\n# edited\n")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(repo), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "dnn_train", *TINY, "trainer.epochs=1",
                           f"data.root={tmp_path / 'data'}", f"hydra.run.dir={run_dir}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    code = read_results(run_dir)["provenance"]["code"]
    assert code["repository"] == str(repo) and code["commit"] == _git(repo, "rev-parse", "HEAD").strip()
    assert code["dirty"] is True and "+# edited" in (run_dir / "source.patch").read_text()


# ---------------------------------------------------------------- report --tag, --diff, --rerun
def test_report_filters_and_groups_by_tag(runs, tmp_path, capsys):
    root, a, b = runs
    assert report([str(a), str(b), "--tag", "x", "--out", str(tmp_path / "x")]) == 0
    import pandas as pd

    assert pd.read_csv(tmp_path / "x" / "summary.csv")["run_dir"].tolist() == [str(a)]
    assert report([str(a), str(b), "--tag", "y", "--group-by", "tag", "--out", str(tmp_path / "y")]) == 0
    by_tag = pd.read_csv(tmp_path / "y" / "summary_tags.csv").set_index("tag")
    assert by_tag.loc["y", "runs"] == 2 and by_tag.loc["x", "runs"] == 1
    assert by_tag.loc["x", "mean"] == pytest.approx(read_results(a)["best_val_accuracy"])
    capsys.readouterr()
    assert report([str(a), str(b), "--tag", "nope", "--out", str(tmp_path / "z")]) == 2
    assert "no runs tagged nope" in capsys.readouterr().err


def test_diff_names_the_changed_key_version_and_metrics(runs, tmp_path, capsys, monkeypatch):
    root, a, b = runs
    faked = tmp_path / "b"
    shutil.copytree(b, faked)
    results = read_results(faked)
    results["provenance"]["versions"]["keras"] = "0.0.1-faked"
    (faked / "results.json").write_text(json.dumps(results))
    monkeypatch.chdir(tmp_path)
    assert report(["--diff", str(a), str(faked)]) == 0
    out = capsys.readouterr().out
    config = out.split("config:")[1].split("environment:")[0]
    environment = out.split("environment:")[1].split("metrics:")[0]
    assert "optimizer.learning_rate" in config and "0.05" in config and "trainer.epochs" not in config
    assert "versions.keras" in environment and "0.0.1-faked" in environment and "versions.numpy" not in environment
    assert "test_accuracy" in out.split("metrics:")[1]
    assert (tmp_path / "diff.png").stat().st_size > 0


def test_rerun_is_identical_and_names_a_faked_version(runs, tmp_path, capsys):
    root, a, _ = runs
    assert report(["--rerun", str(a), "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert "environment: the same" in out and "numbers: identical" in out
    faked = tmp_path / "a"
    shutil.copytree(a, faked)
    results = read_results(faked)
    results["provenance"]["versions"]["keras"] = "0.0.1-faked"
    (faked / "results.json").write_text(json.dumps(results))
    assert report(["--rerun", str(faked), "--out", str(tmp_path / "again2")]) == 0
    out = capsys.readouterr().out
    assert "versions.keras" in out and "0.0.1-faked" in out and "numbers: identical" in out


def test_rerun_that_does_not_match_says_so(runs, tmp_path, capsys):
    """A recorded number changed by hand: on the same environment, not reproduced (exit 1)."""
    root, a, _ = runs
    from dnn_train.sweeps import rundiff

    original = rundiff.read(a)
    changed = rundiff.read(a)
    changed.results["test_accuracy"] += 0.001
    ok, text = rundiff.verdict(original, changed)
    assert not ok and "NOT reproduced" in text and "test_accuracy" in text
    changed.results["provenance"] = json.loads(json.dumps(changed.results["provenance"]))
    changed.results["provenance"]["versions"]["numpy"] = "0.0.1-faked"
    ok, text = rundiff.verdict(original, changed, tolerance=0.01)
    assert ok and "within tolerance 0.01" in text and "versions.numpy" in text
