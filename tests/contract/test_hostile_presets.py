"""Hostile presets: a config that would run code or write outside the run directory is refused by
the gate (dnn_train/config/gate.py, check_callables) before Hydra instantiates anything.

The cases are generated: every payload kind (a callable writing MARKER) in every place a config
names a callable (a config group's `_target_`, hydra.callbacks, a logging `()` factory, a logging
handler `class`, an Optuna sampler from --config-dir), plus the places that name no callable but
would still run or write (a log file outside the run directory, an `ext://` stream, a class's
method `X.from_config`, `safe_mode: false`, a preset that allows its own targets). Every case is
checked in-process through the Python API (which composes through the same gate); three CLI runs
prove the paths: a run, an Optuna search's master config, and a sweep job in a joblib worker.
"""
from __future__ import annotations

import json
import pickle
import shutil

import pytest
import yaml

from dnn_train import DnnTrainError, compose
from tests.hostile import SMALL_RUN, Sandbox


class _Payload:
    """Unpickled (pandas.read_pickle), it copies VICTIM to MARKER."""

    def __init__(self, victim: str, marker: str):
        self.victim, self.marker = victim, marker

    def __reduce__(self):
        return shutil.copyfile, (self.victim, self.marker)


def payloads(box: Sandbox) -> dict[str, tuple[str, dict]]:
    """Payload kind -> (callable, keyword arguments): each would create MARKER if it ran."""
    pickled = box.root / "payload.pkl"
    pickled.write_bytes(pickle.dumps(_Payload(str(box.victim), str(box.marker))))
    return {"copyfile": ("shutil.copyfile", {"src": "${oc.env:VICTIM}", "dst": "${oc.env:MARKER}"}),
            "open": ("builtins.open", {"file": "${oc.env:MARKER}", "mode": "w"}),
            "read_pickle": ("pandas.read_pickle", {"filepath_or_buffer": str(pickled)})}


def _handler(key: str, target: str, kwargs: dict) -> dict:
    return {"hydra": {"job_logging": {"handlers": {"evil": {key: target, **kwargs}}}}}


# Place -> (preset content for a callable and its arguments, where the refusal names it)
CALLABLE_PLACES = {
    "group_target": (lambda t, kw: {"initializer": {"seed": {"_target_": t, **kw}}}, "initializer.seed._target_"),
    "hydra_callback": (lambda t, kw: {"hydra": {"callbacks": {"evil": {"_target_": t, **kw}}}},
                       "hydra.callbacks.evil._target_"),
    "logging_factory": (lambda t, kw: _handler("()", t, kw), "hydra.job_logging.handlers.evil.()"),
    "logging_class": (lambda t, kw: _handler("class", t, kw), "hydra.job_logging.handlers.evil.class"),
    "hydra_logging_class": (lambda t, kw: {"hydra": {"hydra_logging": {"handlers": {"evil": {"class": t, **kw}}}}},
                            "hydra.hydra_logging.handlers.evil.class"),
    "sampler": (None, "hydra.sweeper.sampler._target_"),  # a file of hydra/sweeper/sampler/ in --config-dir
}
# Places that name no foreign callable: (preset content, the start of the refusal)
OTHER_PLACES = {
    "log_file_outside": ({"hydra": {"job_logging": {"handlers": {"evil": {
        "class": "logging.FileHandler", "filename": "${oc.env:MARKER}"}}}}},
        "hydra.job_logging.handlers.evil.filename="),
    "log_file_dotdot": ({"hydra": {"job_logging": {"handlers": {"evil": {
        "class": "logging.FileHandler", "filename": "${hydra.runtime.output_dir}/../../outside/MARKER"}}}}},
        "hydra.job_logging.handlers.evil.filename=${hydra.runtime.output_dir}/../../outside/MARKER: a log file must"),
    "log_stream": ({"hydra": {"job_logging": {"handlers": {"console": {"stream": "ext://os.system"}}}}},
                   "hydra.job_logging.handlers.console.stream=ext://os.system: a logging config may name only"),
    "log_attributes": ({"hydra": {"job_logging": {"handlers": {"console": {".": {"baseFilename": "x"}}}}}},
                       "hydra.job_logging.handlers.console..: a logging config cannot set attributes"),
    "class_method": ({"regularizer": {"_target_": "keras.layers.Lambda.from_config", "config": {}}},
                     "regularizer._target_=keras.layers.Lambda.from_config: not an allowed target (an attribute of "
                     "keras.layers.Lambda"),
    "safe_mode": ({"regularizer": {"safe_mode": False}}, "regularizer.safe_mode=false: Keras' safe mode stays on"),
    "self_allowed": ({"allow_targets": ["shutil.copyfile"], "initializer": {"seed": {"_target_": "shutil.copyfile"}}},
                     "allow_targets=['shutil.copyfile']: set by a config file"),
}


def write_preset(box: Sandbox, place: str, payload=None) -> list[str]:
    """The hostile preset in box.root/presets (a --config-dir) and the overrides that choose it."""
    presets = box.root / "presets"
    if place == "sampler":
        target, kwargs = payload
        (presets / "hydra" / "sweeper" / "sampler").mkdir(parents=True, exist_ok=True)
        (presets / "hydra" / "sweeper" / "sampler" / "evil.yaml").write_text(
            yaml.safe_dump({"_target_": target, **kwargs}))
        return ["hparams_search=fashion_mnist", "hydra/sweeper/sampler=evil"]
    content = CALLABLE_PLACES[place][0](*payload) if place in CALLABLE_PLACES else OTHER_PLACES[place][0]
    (presets / "experiment").mkdir(parents=True, exist_ok=True)
    (presets / "experiment" / f"{place}.yaml").write_text("# @package _global_\n" + yaml.safe_dump(content))
    return [f"experiment={place}"]


def refusal(place: str, target: str | None = None) -> str:
    if place in CALLABLE_PLACES:
        return f"{CALLABLE_PLACES[place][1]}={target}: not an allowed target ("
    return OTHER_PLACES[place][1]


CASES = [(place, kind) for place in CALLABLE_PLACES for kind in ("copyfile", "open", "read_pickle")] + \
    [(place, None) for place in OTHER_PLACES]


@pytest.mark.parametrize("place,kind", CASES, ids=[f"{p}-{k}" if k else p for p, k in CASES])
def test_a_hostile_preset_is_refused_by_the_gate(tmp_path, monkeypatch, place, kind):
    """Composed as the command line composes (the Python API; --config-dir as hydra.searchpath):
    refused as bad input, one line naming the place, and nothing ran."""
    box = Sandbox(tmp_path)
    for key, value in box.env.items():
        monkeypatch.setenv(key, value)
    payload = payloads(box)[kind] if kind else None
    chosen = write_preset(box, place, payload)
    box.freeze()
    with pytest.raises(DnnTrainError) as info:
        compose(*SMALL_RUN, f"hydra.searchpath=[file://{box.root / 'presets'}]", *chosen)
    assert info.value.exit_code == 2 and "\n" not in info.value.message
    assert info.value.message.startswith(refusal(place, payload and payload[0])), info.value.message
    box.check(None)


def _lambda_config(box: Sandbox) -> dict:
    """A keras.layers.Lambda's config whose function (marshalled bytecode) copies VICTIM to MARKER."""
    import keras

    victim, marker = str(box.victim), str(box.marker)
    layer = keras.layers.Lambda(lambda x: __import__("shutil").copyfile(victim, marker) and x)
    return json.loads(json.dumps(layer.get_config()))


def test_a_run_with_a_hostile_preset_is_refused_before_hydra_calls_anything(tmp_path):
    """The CLI run: one preset with a payload in hydra.callbacks (which Hydra instantiated before
    our job code), in a logging factory, and a Lambda.from_config regularizer with safe_mode off."""
    box = Sandbox(tmp_path)
    copy = payloads(box)["copyfile"]
    preset = {**CALLABLE_PLACES["hydra_callback"][0](*copy)}
    preset["hydra"]["job_logging"] = _handler("()", *payloads(box)["open"])["hydra"]["job_logging"]
    preset["regularizer"] = {"_target_": "keras.layers.Lambda.from_config", "config": _lambda_config(box),
                             "safe_mode": False, "attach": "kernel_regularizer"}
    (box.root / "presets" / "experiment").mkdir(parents=True)
    (box.root / "presets" / "experiment" / "evil.yaml").write_text("# @package _global_\n" + yaml.safe_dump(preset))
    proc = box.cli("--config-dir", str(box.root / "presets"), "experiment=evil", *SMALL_RUN,
                   f"hydra.run.dir={box.run}")
    line = box.check(proc, 2, "dnn_train: error: hydra.")
    assert "not an allowed target" in line
    assert not box.run.exists()


def test_a_search_with_a_hostile_sampler_is_refused(tmp_path):
    """Our Optuna sweeper's sampler from --config-dir (hydra/sweeper/sampler=evil): refused with the
    master config, before the sweeper instantiates it; no sweep directory."""
    box = Sandbox(tmp_path)
    chosen = write_preset(box, "sampler", payloads(box)["copyfile"])
    proc = box.cli("-m", "--config-dir", str(box.root / "presets"), *chosen, *SMALL_RUN,
                   f"hydra.sweep.dir={box.run}")
    box.check(proc, 2, "dnn_train: error: " + refusal("sampler", "shutil.copyfile"))
    assert not box.run.exists()


def test_a_sweep_job_in_a_joblib_worker_passes_the_gate(tmp_path):
    """A swept preset is composed per job, in the launcher's worker process (joblib): its log file
    outside the run directory is refused there, the sweep ends as bad input and leaves no sweep
    directory."""
    box = Sandbox(tmp_path)
    write_preset(box, "log_file_outside")
    proc = box.cli("-m", "--config-dir", str(box.root / "presets"), "experiment=log_file_outside",
                   "hydra/launcher=parallel", "hydra.launcher.n_jobs=1", *SMALL_RUN, f"hydra.sweep.dir={box.run}")
    box.check(proc, 2, "dnn_train: error: " + refusal("log_file_outside"))
    assert not box.run.exists()


def test_a_non_ascii_typo_gets_the_did_you_mean_line():
    """optimizer=ädam: Hydra's lexer refuses the character; the message is the typo's."""
    with pytest.raises(DnnTrainError) as info:
        compose("optimizer=ädam")
    assert info.value.exit_code == 2
    assert info.value.message.startswith("optimizer=ädam: unknown option (did you mean adam?); valid optimizer "
                                         "options: adagrad, adam,")
    with pytest.raises(DnnTrainError, match=r"^trainer\.epöchs: unknown key \(did you mean trainer\.epochs\?\)"):
        compose("trainer.epöchs=3")


def test_a_logging_config_that_logging_refuses_is_bad_input(tmp_path):
    """A logging config that passes the gate but not logging.config (an unknown level): exit 2,
    one line, and the run directory Hydra made is gone."""
    box = Sandbox(tmp_path)
    proc = box.cli(*SMALL_RUN, "hydra.job_logging.root.level=LOUD", f"hydra.run.dir={box.run}")
    box.check(proc, 2, "dnn_train: error: hydra.job_logging: Unable to configure root logger (Unknown level")
    assert not box.run.exists()
