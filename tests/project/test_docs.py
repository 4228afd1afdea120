"""The documentation: the generated reference against conf/ and the schema, results.json's keys against a
real run, the results pages against their records (docs/hooks.py, called directly: no MkDocs needed), and
the README: one screen, and every command in it run here, shrunk."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shlex
import typing

import pytest
import yaml

from tests.conftest import REPO, run_cli

CONF = REPO / "conf"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(node, prefix=""):
    if isinstance(node, dict) and node:
        return [k for key, value in node.items() for k in _keys(value, f"{prefix}{key}.")]
    return [prefix[:-1]]


def _option_files():
    """Every option of every group of conf/, read here from the files (not from the generator)."""
    return sorted(p for p in CONF.rglob("*.yaml") if p.parent != CONF)


def test_the_reference_lists_every_option_of_every_group_with_its_keys():
    reference = _hooks().config_reference()
    sections = re.split(r"^### ", reference, flags=re.M)
    files = _option_files()
    assert len(files) > 80  # every group's options, hydra/sweeper/pruner included
    for path in files:
        group, name = path.parent.relative_to(CONF).as_posix(), path.stem
        section = next((s for s in sections if s.startswith(f"`{group}={name}`")), None)
        assert section is not None, f"conf/{group}/{name}.yaml is not in the reference"
        data = yaml.safe_load(path.read_text()) or {}
        data.pop("defaults", None)
        package = re.search(r"^# @package (\S+)", path.read_text(), re.M)
        package = package.group(1) if package else group.replace("/", ".")
        prefix = "" if package == "_global_" else package + "."
        for key in _keys(data):
            assert f"| `{prefix}{key}` |" in section, (group, name, key)
        summary = next((ln.lstrip("# ").strip() for ln in path.read_text().splitlines()
                        if ln.startswith("#") and not ln.startswith("# @package")), None)
        assert summary and summary in section, f"conf/{group}/{name}.yaml needs a summary as its first comment"


def test_the_reference_lists_every_key_of_the_typed_schema_with_its_default():
    from dnn_train.config.schema import RootConf

    reference = _hooks().config_reference()

    def fields(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            kind = next((t for t in (hints[f.name], *typing.get_args(hints[f.name])) if dataclasses.is_dataclass(t)),
                        None)
            if kind is not None:
                yield from fields(kind, f"{prefix}{f.name}.")
            elif hints[f.name] is not typing.Any or default is not None:  # Any and None: a group chosen by option
                shown = default if isinstance(default, str) else \
                    yaml.safe_dump(default, default_flow_style=True).removesuffix("\n").removesuffix("\n...")
                yield f"{prefix}{f.name}", shown

    found = list(fields(RootConf))
    assert len(found) > 40
    for key, default in found:
        assert f"| `{key}` | `{default}` |" in reference, (key, default)


def test_every_key_a_run_writes_to_results_json_is_documented(tmp_path):
    """A real run of each kind (a classifier with MC dropout, the learning-rate finder) writes only keys
    that dnn_train/results_keys.py documents, and the generated page lists them all."""
    from dnn_train import run
    from dnn_train.results_keys import RESULTS_KEYS

    documented = [key for key, _, _ in RESULTS_KEYS]
    small = ["data=synthetic", f"data.root={tmp_path / 'data'}", "trainer.epochs=1", "model.depth=1",
             "model.units=8", "trainer.progress=none"]
    written = set()
    for i, extra in enumerate([["regularizer=dropout", "trainer.mc_samples=2"], ["task=find_lr"]]):
        results = run(*small, *extra, run_dir=tmp_path / f"run{i}")
        written |= set(json.loads((tmp_path / f"run{i}" / "results.json").read_text()))
        assert results["status"] == "completed"
    assert written - set(documented) == set()
    assert len(written) > 30
    page = _hooks().results_json_reference()
    for key in documented:
        assert f"| `{key}` |" in page


def test_every_results_page_shows_each_record_with_its_date_machine_and_commit():
    hooks = _hooks()
    pages = hooks.result_pages()
    assert {"chapter", "cnn-targets", "optimizer-study", "search-pruning", "performance"} <= set(pages)
    for name, (markdown, figures) in pages.items():
        records = list((REPO / "benchmarks" / "results" / name).glob("*.json"))
        for path in records:
            if path.name == "_page.json":
                continue
            record = json.loads(path.read_text())
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", record["date"]) and record["machine"] and record["commit"], path
            assert f"*Measured {record['date']} on {record['machine']}, commit `{record['commit']}`.*" in markdown
            for row in record.get("rows", []):
                assert len(row) == len(record["columns"]), (path, row)
        for figure in figures:
            assert (REPO / figure).is_file(), figure


# ---------------------------------------------------------------- the README: one screen, every command run
README = REPO / "README.md"


def readme_commands() -> list[list[str]]:
    """Every command of the README's bash blocks, as words (comments dropped, `a && b` as two commands)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            commands += [words for part in line.split("&&") if (words := shlex.split(part, comments=True))]
    return commands


def test_the_readme_is_one_screen_with_no_path_outside_the_repository():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "../" not in text and "/work/" not in text
    ci = (REPO / ".ci" / "run").read_text()  # the two install commands: .ci/run runs them verbatim
    assert "pip install -e . -c constraints.txt && python -m dnn_train" in text
    assert "'pip install -q -e . -c constraints.txt && python -m dnn_train'" in ci
    assert "pip install -e '.[test]' -c constraints.txt && python -m pytest" in text
    assert "pip install -q -e '.[test]' -c constraints.txt" in ci and "\npython -m pytest" in ci


def test_the_readme_groups_table_names_every_group_its_default_and_only_real_options():
    """The README's table is the front door, not the list: every group with its default, and each option
    it names exists (a new option or dataset is its YAML file; the generated reference lists them all)."""
    text = README.read_text()
    defaults = yaml.safe_load((CONF / "config.yaml").read_text())["defaults"]
    chosen = {re.sub(r"^(optional |override )", "", k): v for d in defaults if isinstance(d, dict) for k, v in d.items()}
    for group in [g for g in chosen if "/" not in g]:
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{group}` |")), None)
        assert row is not None, group
        options = row.split("|")[2]
        if chosen[group] is not None:
            assert f"**`{chosen[group]}`**" in options, (group, chosen[group])
        named = re.findall(r"`([\w-]+)`", options)
        assert named and all((CONF / group / f"{name}.yaml").is_file() for name in named), (group, named)


def _shrunk(args: list[str], tmp_path) -> list[str]:
    """A README command's overrides on a small synthetic set (400 images), one epoch (two seeds where it sweeps five)."""
    kept = [a.replace("range(5)", "range(2)") for a in args
            if not a.startswith(("data=", "trainer.epochs=", "hydra.run.dir="))]
    return kept + ["data=synthetic", f"data.root={tmp_path / 'data'}", "data.synthetic.train_examples=400",
                   "data.valid_split=100", "data.synthetic.test_examples=100", "trainer.epochs=1", "trainer.progress=none"]


@pytest.mark.slow
def test_every_readme_command_runs_shrunk(tmp_path):
    """Each command in the README, as typed, on synthetic data for one epoch: the single runs in this
    process through the API (the command line's own path, without another TensorFlow import each), the
    sweep, the report, --help and --cfg through the command line."""
    import subprocess
    import sys

    from dnn_train import run

    commands = readme_commands()
    assert len(commands) >= 14
    sweep_dir, ran = tmp_path / "sweep", []
    for words in commands:
        if words[0] == "pip" or words == ["python", "-m", "pytest"]:
            continue  # the installs and the tests: .ci/run runs them verbatim (the test above)
        assert words[:3] in (["python", "-m", "dnn_train"], ["python", "-m", "dnn_train.report"]), words
        args = words[3:]
        if words[2] == "dnn_train.report":
            args = [str(sweep_dir) if a == "outputs/multirun/DATE/TIME" else a for a in args]
            proc = subprocess.run([sys.executable, "-m", "dnn_train.report", *args, "--out", str(tmp_path / "report")],
                                  capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO),
                                                                                     "PATH": "/usr/bin:/bin"})
            assert proc.returncode == 0 and (tmp_path / "report" / "summary.md").is_file(), proc.stderr
        elif "--help" in args or "--cfg" in args:
            proc = run_cli(*args, cwd=tmp_path)
            assert proc.returncode == 0 and proc.stdout, proc.stderr
        elif "-m" in args:
            proc = run_cli("-m", *_shrunk([a for a in args if a != "-m"], tmp_path), f"hydra.sweep.dir={sweep_dir}",
                           cwd=tmp_path, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert (sweep_dir / "summary.md").is_file() and len(list(sweep_dir.glob("*/results.json"))) == 6
        else:
            named = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
            run_dir = tmp_path / (named or f"run{len(ran)}")
            results = run(*_shrunk(args, tmp_path), run_dir=run_dir)
            assert results["status"] == "completed", (words, results)
        ran.append(words)
    assert len(ran) >= 12
