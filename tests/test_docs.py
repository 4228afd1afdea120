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
    from dnn_train.config import RootConf

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
