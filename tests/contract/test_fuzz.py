"""Fuzzing the command line: random overrides across every group and key, each case through the
real command, each held to the contract of README's "Bad input" and "Outputs":

- exit 0: results.json says "completed" and model.keras loads in safe mode (find_lr saves none);
- exit 2: one line on stderr ("dnn_train: error: ..."), and no run directory left;
- exit 1: one line ("dnn_train: failed: ..." or "diverged: ..."), results.json "failed" (or "diverged")
  with the reason;
- never a traceback, a hang (a time bound per case), another exit code, or a file under its final
  name that is half-written (every JSON, YAML, CSV, PNG and model.keras under the run directory reads
  back whole; no temporary file or disk reserve left behind).

The cases are drawn from the real config: the groups and options under conf/ and the keys of each
composed option, so a new option or key is fuzzed without editing this file. Values: wrong types,
0, negatives, huge numbers, nan/inf, empty strings, unicode, null, typos of keys and options,
`+newkey=1`, `+group.key=1`, `~group`, `~group.key`, and nearby valid values (so that some cases
train). Each case is 1 to 3 such overrides on top of a small, fast synthetic run.

Each case is a process of its own, as the command is: forked from a server process that has imported what a
job imports (tests/cli.py, as every test's command line), so a case pays no import; its exit code, stdout and
stderr are the forked process's own.

CI runs a fixed, seeded set of CI_CASES cases (test_cli_contract). A larger set is marked `fuzz`
(deselected by default): `python -m pytest tests/contract/test_fuzz.py -m fuzz`, its size and seed from the
environment, `DNN_TRAIN_FUZZ_CASES=500 DNN_TRAIN_FUZZ_SEED=7` (defaults 200 and 1);
`DNN_TRAIN_FUZZ_LOG=FILE` appends each case's exit code and last stderr line to FILE.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import subprocess
import typing
import zipfile
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from dnn_train.config.help import options
from dnn_train.config.schema import CONF_DIR, RootConf
from tests.conftest import make_cfg, run_cli

CI_SEED, CI_CASES = 0, 50
FUZZ_SEED = int(os.environ.get("DNN_TRAIN_FUZZ_SEED", "1"))
FUZZ_CASES = int(os.environ.get("DNN_TRAIN_FUZZ_CASES", "200"))
TIMEOUT = 120  # seconds per case: longer is a hang

# A small, fast run; a case's overrides of the same keys replace these.
BASE = {"data": "synthetic", "data.synthetic.train_examples": "400", "data.valid_split": "100",
        "data.synthetic.test_examples": "100", "data.download": "false", "trainer.epochs": "1",
        "trainer.progress": "none", "model.depth": "1", "model.units": "8"}
MODEL_BASE = ("model.depth", "model.units")  # the MLP's; other families get SMALL_FAMILY's
# What a family or a preset needs to stay small on synthetic data (as tests/contract/test_every_option.py).
SMALL_FAMILY = {
    "mlp": ["model.depth=1", "model.units=8"],
    "cnn": ["model.filters=[8]", "model.convs_per_block=1"],
    "resnet": ["model.width=4", "model.blocks_per_stage=1", "model.stages=1"],
    "backbone": ["model.weights=null", "model.arch=MobileNet", "trainer.jit_compile=false"],
}
SMALL_PRESET = {
    "transfer_a": ["data.classes=[0,1]"], "transfer_b": ["data.binary=[2,3]"],
    "transfer_b_on_a": ["data.binary=[2,3]"], "transfer_cnn_a": ["data.classes=[0,1]", "model.filters=[8]"],
    "transfer_cnn_b": ["data.binary=[2,3]", "model.filters=[8]"],
    "transfer_cnn_b_on_a": ["data.binary=[2,3]", "model.filters=[8]"],
    "backbone_finetune": ["model.weights=null", "model.arch=MobileNet", "trainer.jit_compile=false",
                          "transfer.freeze_epochs=0", "transfer.finetune_lr=null"],
    "cifar10_cnn": ["model.filters=[8]"], "fashion_mnist_cnn": ["model.filters=[8]"],
}
PRESET_GROUPS = ("experiment", "hparams_search")  # options that set other groups' keys (`# @package _global_`)
NEW_NAMES = ("newkey", "zzz", "epochs", "learning_rate", "数", "x_y")
BAD_VALUES = ["abc", "[1,2]", "[]", "{a:1}", "{}", "'1'", "true", "0", "-1", "-0.5", "1e300", "-1e300", str(10 ** 20),
              "1e-300", "nan", "inf", "-inf", "", "''", "ä", "数", "🚀", "null", "'a b'", "0.5", "2"]


# ---------------------------------------------------------------- what there is to fuzz, from conf/
def groups() -> list[str]:
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra" and options(p.name))


@lru_cache(maxsize=None)
def defaults() -> dict:
    chosen = dict(re.findall(r"^  - (?:optional )?(\w+): (\S+)", (CONF_DIR / "config.yaml").read_text(), re.M))
    return {**chosen, "data": BASE["data"]}


def _leaves(node, prefix: str):
    """(full key, value) of every key under `node`, the dict-valued ones included."""
    for key, value in node.items():
        full = f"{prefix}{key}"
        yield full, value
        if isinstance(value, dict) and value:
            yield from _leaves(value, full + ".")


@lru_cache(maxsize=None)
def default_config() -> dict:
    cfg = OmegaConf.to_container(make_cfg(), resolve=False)
    cfg.pop("hydra", None)
    return cfg


@lru_cache(maxsize=None)
def keys_of(group: str, option: str) -> tuple:
    """The keys (with their values) of `group=option`: its YAML file's, and for a typed group (data,
    trainer) the schema's fields too, as the default config composes them; group "": the top-level
    keys that belong to no group (task, transfer.*, lr_find.*, ...)."""
    if not group:
        return tuple(_leaves({k: v for k, v in default_config().items() if k not in groups()}, ""))
    own = OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"), resolve=False) or {}
    own.pop("defaults", None)
    if dataclasses.is_dataclass(typing.get_type_hints(RootConf).get(group)):
        own = {**default_config()[group], **own}
    return tuple(_leaves(own, f"{group}."))


# ---------------------------------------------------------------- drawing a case
def typo(rng: random.Random, word: str) -> str:
    if len(word) < 2:
        return word + "x"
    i = rng.randrange(len(word) - 1)
    out = word[:i] + word[i + 1:] if rng.random() < 0.5 else word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return out if out != word else word + "x"


def value_for(rng: random.Random, value) -> str:
    """A value for a key whose composed value is `value`: a bad one, or (a third of the time) a
    nearby valid-looking one."""
    if rng.random() < 1 / 3:
        if isinstance(value, bool):
            return str(not value).lower()
        if isinstance(value, (int, float)):
            near = rng.choice([value, value * 2, value / 2, value + 1]) if value else rng.choice([0, 1, 0.1])
            return repr(type(value)(near)) if isinstance(value, float) else str(int(near))
        if isinstance(value, list):
            return "[" + ",".join(str(v) for v in value[:1]) + "]"
        if value is None:
            return rng.choice(["null", "1", "0.1"])
    return rng.choice(BAD_VALUES)


def draw_case(rng: random.Random) -> list[str]:
    chosen: dict = {}  # group -> option, in this case
    overrides: list[str] = []
    all_groups = groups()
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        kind = rng.choices(["option", "option_typo", "value", "key_typo", "new_key", "append_existing",
                            "delete_group", "delete_key"], weights=[12, 6, 50, 8, 8, 5, 4, 7])[0]
        group = rng.choice(all_groups)
        if kind in ("option", "option_typo"):
            if group in chosen:
                continue
            option = rng.choice(options(group))
            chosen[group] = option
            overrides.append(f"{group}={option if kind == 'option' else typo(rng, option)}")
            continue
        if kind == "delete_group":
            overrides.append(f"~{group}")
            chosen[group] = None
            continue
        if kind == "new_key":
            name = rng.choice(NEW_NAMES)
            overrides.append(rng.choice([f"+{name}=1", f"+{group}.{name}=1"]))
            continue
        # a key: of the option chosen in this case (else a random one: choose it too), or a top-level key
        if group in PRESET_GROUPS or rng.random() < 0.1:
            group, option = "", None
        elif chosen.get(group, "") is None:
            continue
        else:
            option = chosen.get(group) or rng.choice(options(group))
            if group not in chosen and option != defaults().get(group):
                overrides.append(f"{group}={option}")
            chosen[group] = option
        keys = keys_of(group, option)
        if not keys:
            continue
        key, value = rng.choice(keys)
        if kind == "value":
            overrides.append(f"{key}={value_for(rng, value)}")
        elif kind == "key_typo":
            head, _, leaf = key.rpartition(".")
            overrides.append(f"{head + '.' if head else ''}{typo(rng, leaf)}={value_for(rng, value)}")
        elif kind == "append_existing":
            overrides.append(f"+{key}=1")
        else:
            overrides.append(f"~{key}")
    return overrides or [f"{rng.choice(all_groups)}=nope"]


def cases(seed: int, n: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [draw_case(rng) for _ in range(n)]


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def command(overrides: list[str]) -> list[str]:
    """The base with the case's overrides on top: a key (or group) the case sets, deletes or adds
    is dropped from the base, and a family or preset the case chooses gets its small settings."""
    touched = {_key(o) for o in overrides}
    # a group choice (data=cifar10) replaces the base's choice only; a key set or deleted, its children too
    nested = {_key(o) for o in overrides if o.startswith(("~", "+")) or "." in _key(o) or not (CONF_DIR / _key(o)).is_dir()}
    family = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "mlp")
    preset = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
    extra = SMALL_PRESET.get(preset, []) if preset else SMALL_FAMILY.get(family, [])
    touched |= {_key(o) for o in extra}

    def dropped(key: str) -> bool:
        return key in touched or any(key.startswith(t + ".") for t in nested) or \
            (key in MODEL_BASE and (family != "mlp" or preset is not None or "model" in touched))

    return [f"{k}={v}" for k, v in BASE.items() if not dropped(k)] + \
        [o for o in extra if _key(o) not in {_key(x) for x in overrides}] + overrides


def must_refuse(overrides: list[str]) -> str | None:
    """An override that README says is refused whatever else the case holds: an unknown option
    (optional groups too: Hydra would skip `experiment=typo` silently), a `+` key of no group."""
    top = set(default_config())
    for o in overrides:
        key, _, value = o.partition("=")
        if not o.startswith(("+", "~")) and "." not in key and (CONF_DIR / key).is_dir() \
                and value not in (*options(key), "null"):
            return f"{o}: unknown option"
        if o.startswith("+") and "." not in key and key[1:] not in top:
            return f"{o}: unknown key"
    return None


def case_id(i: int, overrides: list[str]) -> str:
    return f"{i:03d}:" + " ".join(overrides)


# ---------------------------------------------------------------- the contract
def one_line(stderr: str, prefixes: tuple) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr[-3000:]}"
    assert lines[0].startswith(prefixes), lines[0]
    return lines[0]


def check_files(run_dir: Path) -> None:
    """No half-written file under a final name, no temporary file or disk reserve left behind."""
    from PIL import Image

    for path in sorted(run_dir.rglob("*")):
        name = path.name
        assert ".tmp" not in name, f"temporary file left: {path}"
        assert name != ".reserve", f"the disk reserve outlived the run: {path}"
        if not path.is_file():
            continue
        if name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith((".yaml", ".yml")):
            yaml.safe_load(path.read_text())
        elif name.endswith(".csv"):
            rows = [ln.split(",") for ln in path.read_text().splitlines()]
            assert path.read_text().endswith("\n") or not rows, f"{path}: a row without its end"
            assert all(len(r) == len(rows[0]) for r in rows), f"{path}: rows of unequal length"
        elif name.endswith(".png"):
            with Image.open(path) as image:
                image.verify()
        elif name.endswith(".keras"):
            with zipfile.ZipFile(path) as z:
                assert z.testzip() is None, f"{path}: corrupt member"


def check_contract(overrides: list[str], tmp_path: Path, cache_env: dict) -> None:
    run_dir = tmp_path / "run"
    args = [*command(overrides), f"hydra.run.dir={run_dir}"]
    try:
        proc = run_cli(*args, cwd=tmp_path, env={**cache_env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
                       timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: no exit within {TIMEOUT} s: {' '.join(args)}")
    if os.environ.get("DNN_TRAIN_FUZZ_LOG"):  # a record of the outcomes, for counting them
        with open(os.environ["DNN_TRAIN_FUZZ_LOG"], "a") as f:
            f.write(json.dumps({"overrides": overrides, "exit": proc.returncode,
                                "line": (proc.stderr.strip().splitlines() or [""])[-1]}, ensure_ascii=False) + "\n")
    where = f"\n$ python -m dnn_train {' '.join(args)}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr, where
    assert proc.returncode in (0, 1, 2), where
    refuse = must_refuse(overrides)
    assert refuse is None or proc.returncode == 2, f"not refused: {refuse}{where}"
    if proc.returncode == 2:
        try:
            one_line(proc.stderr, ("dnn_train: error: ",))
        except AssertionError as ex:
            raise AssertionError(f"{ex}{where}") from None
        assert not run_dir.exists(), f"bad input left a run directory: {sorted(run_dir.rglob('*'))}{where}"
        return
    assert (run_dir / "results.json").is_file(), f"no results.json{where}"
    results = json.loads((run_dir / "results.json").read_text())
    check_files(run_dir)
    if proc.returncode == 1:
        try:
            one_line(proc.stderr, ("dnn_train: failed: ", "dnn_train: diverged: "))
        except AssertionError as ex:
            raise AssertionError(f"{ex}{where}") from None
        assert results["status"] in ("failed", "diverged") and results.get("error"), (results, where)
        return
    assert results["status"] == "completed", (results, where)
    if (run_dir / "config.yaml").is_file() and OmegaConf.load(run_dir / "config.yaml").get("task") == "find_lr":
        return  # the learning-rate finder saves no model
    from dnn_train import load_run

    model = load_run(run_dir).model()  # safe mode, our classes registered
    assert model.inputs, where


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory) -> dict:
    """Synthetic data once for all the cases, an empty Keras cache (no real dataset is found)."""
    cache = tmp_path_factory.mktemp("fuzz_cache")
    return {"XDG_CACHE_HOME": str(cache), "KERAS_HOME": str(cache / "keras"), "DNN_TRAIN_SYSTEM_DATA_DIRS": ""}


CI = cases(CI_SEED, CI_CASES)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", CI, ids=[case_id(i, c) for i, c in enumerate(CI)])
def test_cli_contract(overrides, tmp_path, cache_env):
    check_contract(overrides, tmp_path, cache_env)


LARGE = cases(FUZZ_SEED, FUZZ_CASES)


@pytest.mark.slow
@pytest.mark.fuzz
@pytest.mark.parametrize("overrides", LARGE, ids=[case_id(i, c) for i, c in enumerate(LARGE)])
def test_cli_contract_large(overrides, tmp_path, cache_env):
    check_contract(overrides, tmp_path, cache_env)


def test_the_cases_cover_the_config():
    """The generator reaches every group and, over a large draw, most keys of the default config."""
    drawn = cases(CI_SEED, 2000)
    text = " ".join(o for c in drawn for o in c)
    for group in groups():
        assert f"{group}=" in text or f"~{group}" in text, group
    default_keys = [k for g in groups() if g not in PRESET_GROUPS for k, _ in keys_of(g, defaults()[g])]
    reached = [k for k in default_keys if k in text]
    assert len(reached) >= 0.8 * len(default_keys), sorted(set(default_keys) - set(reached))
