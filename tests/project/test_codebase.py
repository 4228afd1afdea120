"""The codebase's own shape: every module of the package says its job in its docstring's first sentence
(the generated code map, docs/reference/code.md, shows it) and stays under MAX_LINES lines."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 350  # issue 26: a module one reader can hold in mind


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_is_under_the_line_limit_and_says_its_job():
    rows = _hooks().modules()
    assert len(rows) > 20  # the whole package was read
    too_long = [f"{path} ({lines} lines)" for path, lines, _ in rows if lines >= MAX_LINES]
    silent = [path for path, _, job in rows if len(job) < 12]
    assert not too_long, f"split these modules (at most {MAX_LINES - 1} lines each): {', '.join(too_long)}"
    assert not silent, f"give these modules a docstring whose first sentence says their job: {', '.join(silent)}"


def test_the_code_map_lists_every_module_with_its_job(tmp_path):
    hooks = _hooks()
    package = tmp_path / "dnn_train" / "inner"
    package.mkdir(parents=True)
    (tmp_path / "dnn_train" / "__init__.py").write_text("")
    (package / "__init__.py").write_text('"""The inner package: it holds one module."""\n')
    (package / "thing.py").write_text('"""Things: made here. More text that is not the job."""\nX = 1\n')
    page = hooks.code_map(tmp_path)
    assert "## `dnn_train/inner/`" in page
    assert "| `thing.py` | 2 | Things: made here. |" in page
    assert "| `__init__.py` | 1 | The inner package: it holds one module. |" in page
    assert "dnn_train/__init__.py" not in page and "| `__init__.py` | 0 |" not in page  # an empty one is skipped


def test_the_wheel_ships_every_package_of_the_tree():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    in_tree = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "dnn_train").rglob("__init__.py")}
    in_tree |= {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "hydra_plugins").rglob("*.py")}
    missing = sorted(in_tree - listed)
    assert not missing, f"pyproject.toml's [tool.setuptools] packages lacks {missing}: the wheel would not ship them"
