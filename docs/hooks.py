"""MkDocs hook (mkdocs.yml, `hooks:`): the pages generated at build time.

- reference/config.md: every config group of conf/, each option with its summary, keys, defaults and
  comments, and the typed schema's keys (dnn_train/config/schema.py), read from the files themselves;
- reference/results-json.md: the keys of a run's results.json (dnn_train/results_keys.py);
- reference/code.md: the code map, every module of the package with its lines and its job (the first
  sentence of its docstring);
- results/<page>.md: the measurements the benchmarks recorded (benchmarks/results/<page>/*.json),
  each with its date, machine and commit; the figures they name are copied in.

MkDocs has no generator of its own for pages from data (plugins such as mkdocs-gen-files do this with
a dependency more); a hook is a plain Python file. The functions below import neither MkDocs nor
TensorFlow, so tests/project/test_docs.py calls them directly.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import sys
import typing
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
RESULTS = REPO / "benchmarks" / "results"
GENERATED = ("This page is generated from the repository when the site is built (`docs/hooks.py`): "
             "edit the sources it names, not the page.")


# ---------------------------------------------------------------- YAML with its comments
def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") or text.endswith(" ...") else text.removesuffix("...").strip()


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def yaml_comments(text: str) -> tuple[list[str], dict[str, str]]:
    """(the comment lines before the first key, {dotted key: its trailing comment and continuation lines})."""
    header, comments, stack, last = [], {}, [], None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if last is None and indent == 0:
                if not body.startswith("@package"):
                    header.append(body)
            elif last is not None and indent > 0 and last in comments:
                comments[last] += " " + body  # a continuation of the key's comment, indented under it
            continue
        match = re.match(r"^(\s*)([\w./@-]+):(?:\s+(.*))?$", line)
        if not match:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [match.group(2)])
        stack.append((indent, match.group(2)))
        rest = match.group(3) or ""
        comment = re.split(r"(?:^|\s)#\s?", rest, maxsplit=1)
        last = key
        if len(comment) == 2:
            comments[key] = comment[1].strip()
        elif rest.startswith("#"):
            comments[key] = rest.lstrip("#").strip()
    return header, comments


def _flatten(node, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(node, dict) and node:
        rows = []
        for key, value in node.items():
            rows += _flatten(value, f"{prefix}{key}.")
        return rows
    return [(prefix[:-1], node)]


def option_rows(path: Path) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str, str]]]:
    """(header comment lines, [(group, option) the option chooses], [(key, value, comment)]) of one YAML file."""
    text = path.read_text()
    header, comments = yaml_comments(text)
    data = yaml.safe_load(text) or {}
    choices = []
    for entry in data.pop("defaults", None) or []:
        if isinstance(entry, dict):
            for group, option in entry.items():
                choices.append((re.sub(r"^(override\s+|optional\s+)*/?", "", group), _fmt(option)))
        elif entry != "_self_":
            choices.append((str(entry), ""))
    rows = [(key, _fmt(value), comments.get(key, "")) for key, value in _flatten(data)]
    return header, choices, rows


def groups(conf: Path = CONF) -> dict[str, list[str]]:
    """{group: [options]} for every folder of conf/ holding YAML files (hydra/sweeper/pruner included)."""
    found = {}
    for folder in sorted(p for p in conf.rglob("*") if p.is_dir()):
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        if names:
            found[folder.relative_to(conf).as_posix()] = names
    return found


def _defaults(conf: Path) -> dict[str, str]:
    data = yaml.safe_load((conf / "config.yaml").read_text())
    chosen = {}
    for entry in data.get("defaults", []):
        if isinstance(entry, dict):
            for group, option in entry.items():
                chosen[re.sub(r"^(override\s+|optional\s+)*/?", "", group)] = option
    return chosen


# ---------------------------------------------------------------- the typed schema (dnn_train/config/schema.py)
def schema_rows() -> list[tuple[str, str, str]]:
    """[(key, default, comment)] of every field of the typed schema's dataclasses, nested ones flattened."""
    sys.path.insert(0, str(REPO))
    from dnn_train.config.schema import RootConf

    def comments_of(cls) -> dict[str, str]:
        found = {}
        for line in inspect.getsource(cls).splitlines():
            m = re.match(r"^\s+(\w+): [^#]*?(?:#\s*(.*))?$", line)
            if m and m.group(2):
                found[m.group(1)] = m.group(2).strip()
        return found

    def walk(cls, prefix: str) -> list[tuple[str, str, str]]:
        rows, notes, hints = [], comments_of(cls), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            hint = hints[f.name]
            kind = next((t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t)), None)
            if kind is not None:
                if default is None:  # an optional section (data.synthetic): its keys when it is set
                    rows.append((f"{prefix}{f.name}", "null", notes.get(f.name, "")))
                rows += walk(kind, f"{prefix}{f.name}.")
            elif prefix == "" and f.name in GROUP_FIELDS:
                continue  # a group chosen by option: its keys are the option's (below)
            else:
                rows.append((f"{prefix}{f.name}", _fmt(default), notes.get(f.name, "")))
        return rows

    return walk(RootConf, "")


GROUP_FIELDS = ("model", "augment", "initializer", "activation", "normalization", "optimizer", "schedule",
                "regularizer", "logger")


# ---------------------------------------------------------------- reference/config.md
def config_reference(conf: Path = CONF) -> str:
    found, chosen = groups(conf), _defaults(conf)
    out = ["# Configuration reference", "", GENERATED, "",
           "A run is composed from one option of each group (`GROUP=OPTION` on the command line) and any key "
           "(`GROUP.KEY=VALUE`); `python -m dnn_train --help` lists the same options, `--cfg job` prints the "
           "composed config. Defaults are **bold**. Value ranges are checked by name (`RULES` in "
           "`dnn_train/config/rules.py`) before TensorFlow is imported.", "",
           "## Groups", "", "| group | options |", "| --- | --- |"]
    for group, names in found.items():
        listed = ", ".join(f"**`{n}`**" if chosen.get(group) == n else f"`{n}`" for n in names)
        out.append(f"| [`{group}`](#{_anchor(group)}) | {listed} |")
    header, _, rows = option_rows(conf / "config.yaml")
    out += ["", "## Top level", "", f"`conf/config.yaml`: {' '.join(header)}", "",
            "| key | default | comment |", "| --- | --- | --- |"]
    out += [f"| `{k}` | `{_cell(v)}` | {_cell(c)} |" for k, v, c in rows]
    out += ["", "## The typed schema", "",
            "The keys of `data`, `trainer`, `transfer`, `lr_find`, `autoencoder` and `run` are typed fields "
            "(`RootConf` in `dnn_train/config/schema.py`): every key exists whatever the option, with these defaults "
            "(an option's YAML may set others). The other groups' keys are those of the chosen option's "
            "YAML (below), checked against the class its `_target_` names.", "",
            "| key | default | comment |", "| --- | --- | --- |"]
    out += [f"| `{k}` | `{_cell(v)}` | {_cell(c)} |" for k, v, c in schema_rows()]
    for group, names in found.items():
        out += ["", f"## {group}", ""]
        for name in names:
            header, choices, rows = option_rows(conf / group / f"{name}.yaml")
            mark = " (default)" if chosen.get(group) == name else ""
            out += [f"### `{group}={name}`{mark}", ""]
            if header:
                out += [" ".join(header), ""]
            out += [f"File: `conf/{group}/{name}.yaml`.", ""]
            if choices:
                out += ["Chooses: " + ", ".join(f"`{g}={o}`" if o else f"`{g}`" for g, o in choices) + ".", ""]
            if rows:
                package = re.search(r"^# @package (\S+)", (conf / group / f"{name}.yaml").read_text(), re.M)
                package = package.group(1) if package else group.replace("/", ".")
                prefix = "" if package == "_global_" else package + "."
                out += ["| key | value | comment |", "| --- | --- | --- |"]
                out += [f"| `{prefix}{k}` | `{_cell(v)}` | {_cell(c)} |" for k, v, c in rows]
                out.append("")
    return "\n".join(out) + "\n"


def _anchor(group: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", group.lower().replace("/", ""))


# ---------------------------------------------------------------- reference/results-json.md
def results_json_reference() -> str:
    sys.path.insert(0, str(REPO))
    from dnn_train.results_keys import RESULTS_KEYS

    out = ["# results.json", "", GENERATED + " The keys are listed in `dnn_train/results_keys.py`; a test "
           "checks that a run writes no other.", "",
           "Every run directory holds `results.json`, written when the run begins and rewritten (to a temporary "
           "name, then renamed) when it ends, so it is always whole. A task writes the keys that apply to it:", "",
           "| key | written by | content |", "| --- | --- | --- |"]
    out += [f"| `{key}` | {_cell(who)} | {_cell(what)} |" for key, who, what in RESULTS_KEYS]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- reference/code.md
CODE_ROOTS = ("dnn_train", "hydra_plugins")


def modules(repo: Path = REPO) -> list[tuple[str, int, str]]:
    """(path, lines, job) of every module of the package and its plugins: the job is the first sentence of
    the module's docstring (read with ast: nothing is imported)."""
    rows = []
    for root in CODE_ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            text = path.read_text()
            if text.strip():  # an empty __init__.py: a namespace, nothing to say
                rows.append((path.relative_to(repo).as_posix(), len(text.splitlines()), job(text)))
    return rows


def job(source: str) -> str:
    """The first sentence of a module's docstring."""
    paragraph = " ".join((ast.get_docstring(ast.parse(source)) or "").strip().split("\n\n")[0].split())
    return re.split(r"(?<=\.)\s+(?=[A-Z`])", paragraph, maxsplit=1)[0] if paragraph else ""


def code_map(repo: Path = REPO) -> str:
    out = ["# The code, module by module", "", GENERATED + " Each module's job is the first sentence of its "
           "docstring; `docs/contributing.md` says where each knob is handled and how the layers depend on "
           "each other.", ""]
    rows = modules(repo)
    for package in dict.fromkeys(str(Path(path).parent) for path, _, _ in rows):
        out += [f"## `{package}/`", "", "| module | lines | job |", "| --- | --- | --- |"]
        out += [f"| `{Path(path).name}` | {lines} | {_cell(job)} |" for path, lines, job in rows
                if str(Path(path).parent) == package]
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- results/<page>.md
def result_records(page_dir: Path) -> list[dict]:
    """The records of one results page, in the order its _page.json lists, then by file name."""
    meta = json.loads((page_dir / "_page.json").read_text()) if (page_dir / "_page.json").is_file() else {}
    order = meta.get("order", [])
    records = {p.stem: json.loads(p.read_text()) for p in sorted(page_dir.glob("*.json")) if p.name != "_page.json"}
    return [records[k] for k in order if k in records] + [v for k, v in records.items() if k not in order]


def results_page(page_dir: Path) -> tuple[str, list[str]]:
    """(the page's Markdown, the figures it shows: paths relative to the repository)."""
    meta = json.loads((page_dir / "_page.json").read_text()) if (page_dir / "_page.json").is_file() else {}
    out = [f"# {meta.get('title', page_dir.name)}", "", GENERATED + f" The measurements are the JSON records in "
           f"`benchmarks/results/{page_dir.name}/`, written by the benchmark scripts (`benchmarks/record.py`).", ""]
    if meta.get("intro"):
        out += [meta["intro"], ""]
    figures = []
    for record in result_records(page_dir):
        out += [f"## {record['title']}", "",
                f"*Measured {record['date']} on {record['machine']}, commit `{record['commit']}`.*", ""]
        commands = record.get("command") or []
        if commands:
            out += ["```bash", *([commands] if isinstance(commands, str) else commands), "```", ""]
        if record.get("text"):
            out += [record["text"], ""]
        if record.get("columns"):
            out += ["| " + " | ".join(_cell(c) for c in record["columns"]) + " |",
                    "|" + " --- |" * len(record["columns"])]
            out += ["| " + " | ".join(_cell(_fmt(v)) for v in row) + " |" for row in record["rows"]]
            out.append("")
        if record.get("figure"):
            figures.append(record["figure"])
            out += [f"![{record['title']}](figures/{Path(record['figure']).name})", ""]
        if record.get("notes"):
            out += [record["notes"], ""]
    return "\n".join(out) + "\n", figures


def result_pages(results: Path = RESULTS) -> dict[str, tuple[str, list[str]]]:
    return {p.name: results_page(p) for p in sorted(results.iterdir()) if p.is_dir()} if results.is_dir() else {}


# ---------------------------------------------------------------- MkDocs
def on_files(files, config):
    from mkdocs.structure.files import File

    def add(path: str, content) -> None:
        files.append(File.generated(config, path, content=content))

    add("reference/config.md", config_reference())
    add("reference/results-json.md", results_json_reference())
    add("reference/code.md", code_map())
    figures = set()
    for name, (markdown, shown) in result_pages().items():
        add(f"results/{name}.md", markdown)
        figures.update(shown)
    for figure in sorted(figures):
        add(f"results/figures/{Path(figure).name}", (REPO / figure).read_bytes())
    return files
