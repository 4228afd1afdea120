"""The Python API (`from dnn_train import compose, run, load_run`): the command line's configs,
checks and runs, in a notebook's process."""
from __future__ import annotations

import errno
import signal

import keras
import numpy as np
import pytest

from dnn_train import DnnTrainError, compose, load_run, run
from tests.conftest import SMALL
from tests.unit.rundir.test_rundir import UNCARRIED


def test_compose_is_the_command_lines_config_validated():
    cfg = compose("optimizer=nadam", "schedule=1cycle", "optimizer.learning_rate=0.002")
    assert cfg.optimizer._target_ == "keras.optimizers.Nadam" and cfg.schedule.max_lr == 0.002
    with pytest.raises(DnnTrainError) as refused:
        compose("optimizer.lr=0.01")
    assert refused.value.exit_code == 2
    assert str(refused.value) == "optimizer.lr: unknown key (did you mean optimizer.learning_rate?) (see the " \
                                 "group's keys with --cfg job)"


def test_run_twice_in_one_process_gives_identical_numbers(tmp_path):
    args = [*SMALL, f"data.root={tmp_path / 'data'}", "regularizer=dropout", "trainer.epochs=2"]
    first = run(*args, run_dir=tmp_path / "a")
    second = run(*args, run_dir=tmp_path / "b")
    assert first["status"] == second["status"] == "completed"
    assert first["run_dir"] == str(tmp_path / "a")
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "restored_epoch"):
        assert first[key] == second[key], key
    a, b = load_run(tmp_path / "a"), load_run(tmp_path / "b")
    cols = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    np.testing.assert_array_equal(a.metrics[cols].to_numpy(), b.metrics[cols].to_numpy())
    assert a.results["test_accuracy"] == first["test_accuracy"] and a.config.trainer.epochs == 2
    assert a.diagnostics is not None and set(a.diagnostics["epoch"]) == {0, 1, 2}
    x = np.zeros((3, 8, 8), dtype=np.uint8)
    np.testing.assert_array_equal(a.model().predict(x, verbose=0), b.model().predict(x, verbose=0))


def test_errors_are_one_exception_type_with_the_command_lines_message(tmp_path):
    with pytest.raises(DnnTrainError) as bad:
        run(*SMALL, "trainer.epochs=0", run_dir=tmp_path / "run")
    assert bad.value.exit_code == 2 and str(bad.value).startswith("trainer.epochs=0: expected an integer >= 1")
    assert not (tmp_path / "run").exists()
    with pytest.raises(DnnTrainError) as diverged:
        run(*SMALL, f"data.root={tmp_path / 'data'}", "optimizer.learning_rate=1e12", "trainer.steps_per_execution=1",
            run_dir=tmp_path / "nan")
    assert diverged.value.exit_code == 1 and str(diverged.value).startswith("loss became nan")
    assert load_run(tmp_path / "nan").results["status"] == "diverged"
    with pytest.raises(DnnTrainError, match="not a dnn_train run directory"):
        load_run(tmp_path)


def test_extra_callbacks_see_the_fit(tmp_path):
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, round(float(logs["val_accuracy"]), 6)))

    results = run(*SMALL, f"data.root={tmp_path / 'data'}", run_dir=tmp_path / "run", callbacks=[Watch()])
    metrics = load_run(results["run_dir"]).metrics
    assert seen == [(e - 1, round(v, 6)) for e, v in zip(metrics["epoch"], metrics["val_accuracy"])]


def test_a_full_disk_still_gets_its_final_record(tmp_path, monkeypatch):
    """The run keeps a reserve file while it goes; when the disk fills up, the reserve is given back
    and the final record (status failed, no space left) still fits."""
    from dnn_train import train
    from dnn_train.rundir import artifacts, record

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "model.keras"))

    real_write = artifacts.write_json
    state = {"full": True}

    def write_json(path, obj):  # while the disk is full, no new file fits; a freed reserve makes room
        if state["full"] and path.name == "results.json" and obj.get("status") != "running":
            if (path.parent / record.RESERVE_FILE).exists():
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, obj)

    monkeypatch.setattr(train, "save_model", full)
    monkeypatch.setattr(artifacts, "write_json", write_json)
    with pytest.raises(DnnTrainError) as failed:
        run(*SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=1", run_dir=tmp_path / "run")
    assert failed.value.exit_code == 1 and "no space left writing" in str(failed.value)
    results = load_run(tmp_path / "run").results
    assert results["status"] == "failed" and results["error"].startswith("no space left writing")
    assert not (tmp_path / "run" / record.RESERVE_FILE).exists()


def test_a_mixed_precision_run_leaves_the_processs_dtype_policy_as_it_was(tmp_path):
    """trainer.precision sets Keras' global policy for the job only: the notebook's next model (or
    the next test's, in the same worker) is float32 again; and a failing job restores it too."""
    assert keras.config.dtype_policy().name == "float32"
    args = [*SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=1", "trainer.precision=mixed_bfloat16"]
    assert run(*args, run_dir=tmp_path / "a")["status"] == "completed"
    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Dense(2).compute_dtype == "float32"

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    with pytest.raises(DnnTrainError):
        run(*args, run_dir=tmp_path / "b", callbacks=[Boom()])
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.slow
def test_concurrent_runs_take_turns_and_keep_their_own_numbers_and_logs(tmp_path):
    """Two threads calling run() at once (issue: one failed with "GlobalHydra is already initialized";
    started apart, both trained on each other's Keras state and shared a log): one trains at a time, and
    each gets the numbers the same run gets alone, and a log of its own."""
    import threading

    common = [*SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=2", "trainer.progress=none"]
    seeds = {"a": 1, "b": 2}
    alone = {k: run(*common, f"trainer.seed={s}", run_dir=tmp_path / f"alone_{k}") for k, s in seeds.items()}
    together, errors = {}, []
    start = threading.Barrier(2)

    def one(k):
        try:
            start.wait()
            together[k] = run(*common, f"trainer.seed={seeds[k]}", run_dir=tmp_path / f"together_{k}")
        except BaseException as ex:  # noqa: BLE001 - reported below
            errors.append(ex)

    threads = [threading.Thread(target=one, args=(k,)) for k in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for k in seeds:
        for key in ("test_accuracy", "test_loss", "best_val_accuracy"):
            assert together[k][key] == alone[k][key], (k, key)
        other = "b" if k == "a" else "a"
        log = (tmp_path / f"together_{k}" / "dnn_train.log").read_text()
        assert str(tmp_path / f"together_{k}") in log and f"together_{other}" not in log


def test_a_signal_whose_exception_tensorflow_swallowed_still_interrupts_the_run(tmp_path):
    """A Ctrl-C or SIGTERM landing in TensorFlow's C code can come out as a printed SystemError while
    training goes on (seen in a sweep: the job completed, the signal lost). The handler notes the signal
    (record.SIGNALLED); the next step boundary raises it, and the run is recorded as interrupted."""
    from dnn_train.rundir import record

    class LoseASignal(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if not record.SIGNALLED:
                record.SIGNALLED.append(2)  # as the handler does, its exception then lost

    with pytest.raises(KeyboardInterrupt):
        run(*SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=2", run_dir=tmp_path / "run",
            callbacks=[LoseASignal()])
    assert load_run(tmp_path / "run").results["status"] == "interrupted"
    assert not record.SIGNALLED  # cleared with the record


def test_a_signal_lost_after_the_last_step_still_ends_the_command_and_the_final_record_stands(tmp_path):
    """No step's end follows a signal lost while the run finishes (testing, saving, plotting): the run
    completes its record, then the command ends as interrupted (a sweep stops) instead of carrying on."""
    from dnn_train.rundir import record

    class LoseASignalAtTheEnd(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            UNCARRIED["__del__"](signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(*SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=1", run_dir=tmp_path / "run",
            callbacks=[LoseASignalAtTheEnd()])
    assert load_run(tmp_path / "run").results["status"] == "completed"
    assert (tmp_path / "run" / "model.keras").is_file()
    assert not record.SIGNALLED


def test_a_signal_that_ended_a_runs_start_up_does_not_end_the_next_run(tmp_path, monkeypatch):
    """A Ctrl-C while a run takes its directory (its handlers installed, no record yet) ends that call;
    the next run in the same process (a notebook's next cell) starts with no signal of its own."""
    from dnn_train.rundir import record

    def interrupted_while_judging(self):
        signal.raise_signal(signal.SIGINT)  # the run's handler raises here

    overrides = [*SMALL, f"data.root={tmp_path / 'data'}", "trainer.epochs=1"]
    with monkeypatch.context() as patched:
        patched.setattr(record.Run, "_judge", interrupted_while_judging)
        with pytest.raises(KeyboardInterrupt):
            run(*overrides, run_dir=tmp_path / "first")
    try:
        results = run(*overrides, run_dir=tmp_path / "next")
    except KeyboardInterrupt:
        pytest.fail("the next run was interrupted by the signal that ended the earlier one")
    assert results["status"] == "completed"
