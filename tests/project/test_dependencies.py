"""CI tests what the floors promise: every dependency in pyproject.toml (the package's and its extras')
has a floor, the floor is the release constraints.txt pins (the same major.minor, never newer), and the
running venv holds exactly the pinned releases (CI installs with -c constraints.txt). Refreshing the pins:
bash .ci/constraints (docs/install.md)."""
from __future__ import annotations

import importlib.metadata
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

INSTALL = "pip install -e '.[test]' -c constraints.txt"


def pins() -> dict[str, Version]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): Version(version.strip()) for name, version in pairs}


def requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement) for the dependencies and every extra, those whose markers hold here."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = [("dependencies", r) for r in project["dependencies"]]
    listed += [(f"[{extra}]", r) for extra, reqs in project["optional-dependencies"].items() for r in reqs]
    reqs = [(where, Requirement(r)) for where, r in listed]
    return [(where, r) for where, r in reqs if r.marker is None or r.marker.evaluate()]


def test_every_floor_is_the_release_ci_pins():
    pinned = pins()
    wrong = []
    for where, req in requirements():
        name = canonicalize_name(req.name)
        if name == "dnn-train":
            continue  # an extra naming another extra: dnn-train[sweeps]
        floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
        if not floors:
            wrong.append(f"{where} {req}: no floor")
        elif name in pinned:
            floor, pin = floors[0], pinned[name]
            if floor > pin or floor.release[:2] != pin.release[:2] or not req.specifier.contains(pin):
                wrong.append(f"{where} {req}: constraints.txt pins {pin}")
    assert not wrong, "floors that are not what CI tests:\n" + "\n".join(wrong)


def test_what_ci_installs_is_pinned():
    """The package's dependencies and the test extra's (with sweeps, which it names) are in constraints.txt."""
    pinned = pins()
    ci = [req for where, req in requirements() if where in ("dependencies", "[test]", "[sweeps]")]
    missing = [str(r) for r in ci if canonicalize_name(r.name) not in {*pinned, "dnn-train"}]
    assert not missing, f"not in constraints.txt: {missing}"


def test_the_running_venv_holds_the_pinned_releases():
    unlike = []
    for name, pin in pins().items():
        try:
            have = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have != pin:
            unlike.append(f"{name}: constraints.txt pins {pin}, this venv has {have}")
    assert not unlike, f"this venv is not what CI tests ({INSTALL}):\n" + "\n".join(unlike)
