"""No import cycles in dnn_train and hydra_plugins, counting imports inside functions and TYPE_CHECKING blocks.

The rule (issue 26): an edge A -> B for every `import B` / `from B import x` anywhere in A, to B.x where that is a
module; relative imports resolved; no implicit edge to parent packages. The modules are parsed, not imported.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("dnn_train", "hydra_plugins")


def modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Every module under the packages: dotted name -> file (a package is its __init__.py)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def edges(found: dict[str, Path]) -> dict[str, dict[str, list[str]]]:
    """module -> {imported module -> ["line N: names", ...]}, within `found` only."""
    graph: dict[str, dict[str, list[str]]] = {name: {} for name in found}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [(alias.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in found else base, alias.name)
                           for alias in node.names]
            else:
                continue
            for target, shown in targets:
                while target and target not in found:  # `import a.b.c` where only a.b is ours
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].setdefault(target, []).append(f"line {node.lineno}: {shown}")
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def describe(root: Path, found: dict[str, Path], graph, component: list[str]) -> str:
    """One cycle: every file -> file edge inside it, with the line and the imported name."""
    lines = [f"cycle of {len(component)} modules:"]
    for source in component:
        for target, where in sorted(graph[source].items()):
            if target in component:
                lines.append(f"  {found[source].relative_to(root)} -> {found[target].relative_to(root)}"
                             f" ({'; '.join(where)})")
    return "\n".join(lines)


def check(root: Path, packages=PACKAGES) -> list[str]:
    found = modules(root, packages)
    graph = edges(found)
    return [describe(root, found, graph, component) for component in cycles(graph)]


def test_no_import_cycles():
    problems = check(REPO)
    if problems:
        pytest.fail("import cycles in the package:\n" + "\n".join(problems), pytrace=False)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import helper\n",
        "pkg/b.py": "def helper():\n    from . import c\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
        "pkg/d.py": "import pkg.a\n",
    })
    [problem] = check(tmp_path, ("pkg",))
    assert problem.startswith("cycle of 3 modules:")
    assert "pkg/a.py -> pkg/b.py (line 1: helper)" in problem
    assert "pkg/b.py -> pkg/c.py (line 2: c)" in problem
    assert "pkg/c.py -> pkg/a.py (line 3: pkg.a)" in problem
    assert "pkg/d.py" not in problem


def test_a_face_init_whose_submodules_import_siblings_is_no_cycle(tmp_path):
    face = {
        "pkg/__init__.py": "from pkg.sub import Schema, validate\n",
        "pkg/sub/__init__.py": "from pkg.sub.schema import Schema\nfrom .rules import validate\n",
        "pkg/sub/schema.py": "class Schema: ...\n",
        "pkg/sub/rules.py": "from pkg.sub.schema import Schema\ndef validate():\n    from . import schema\n",
    }
    write(tmp_path, face)
    assert check(tmp_path, ("pkg",)) == []
    # the same submodule importing through the face is a cycle
    write(tmp_path, {"pkg/sub/rules.py": "def validate():\n    from pkg.sub import Schema\n"})
    [problem] = check(tmp_path, ("pkg",))
    assert "pkg/sub/rules.py -> pkg/sub/__init__.py (line 2: Schema)" in problem
