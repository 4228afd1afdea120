"""Loaders on files written in the official formats, the search order, slicing, and real data."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from dnn_train import data
from dnn_train.data import DataError
from tests.conftest import make_cfg, real_data_root


def write_fashion(folder: Path, n_train=60, n_test=20, classes=10, shape=(28, 28), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
              "y_train": (np.arange(n_train) % classes).astype(np.uint8),
              "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
              "y_test": (np.arange(n_test) % classes).astype(np.uint8)}
    for key, fname in data.FASHION_FILES.items():
        data.write_idx(folder / fname, arrays[key])
    return folder


def write_cifar(folder: Path, per_batch=20, seed=0) -> Path:
    """Batches as the official ones: protocol-2 pickles, bytes keys, channel-planar uint8 rows."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in data.CIFAR_TRAIN + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(i % 10) for i in range(per_batch)], b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in data.CIFAR_CLASSES]}, 2))
    return folder


def test_idx_round_trip(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data.write_idx(tmp_path / "x.gz", x)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x.gz"), x)


@pytest.mark.parametrize("payload, message", [
    (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"\x01" * 5,
     "truncated or corrupt"),
    (b"\x12\x34\x56\x78" + b"\x00" * 20, "bad magic number"),
    (b"", "bad magic number empty"),
])
def test_bad_idx_files_are_refused(tmp_path, payload, message):
    path = tmp_path / "bad-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(payload)
    with pytest.raises(DataError, match=message):
        data.read_idx(path)


def test_cifar_batches_in_the_official_format(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    x_train, y_train, x_test, y_test = data.read_cifar_dir(folder)
    assert x_train.shape == (100, 32, 32, 3) and x_train.dtype == np.uint8 and x_test.shape == (20, 32, 32, 3)
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"][0]
    # channel-planar R, G, B rows become height x width x channel images
    np.testing.assert_array_equal(x_train[0, :, :, 0].ravel(), raw[:1024])
    np.testing.assert_array_equal(x_train[0, :, :, 2].ravel(), raw[2048:])


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_malicious_cifar_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        data.read_cifar_batch(path)
    assert not (tmp_path / "PWNED").exists()


def test_search_order_root_then_keras_cache_then_system(tmp_path, monkeypatch):
    keras_home, system = tmp_path / "keras", tmp_path / "usr-share"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(data, "SYSTEM_DIRS", [system])
    write_fashion(system / "fashion-mnist")
    assert data.locate("fashion_mnist", None) == system / "fashion-mnist"
    write_fashion(keras_home / "datasets" / "fashion-mnist")
    assert data.locate("fashion_mnist", None) == keras_home / "datasets" / "fashion-mnist"
    write_fashion(tmp_path / "mine")  # data.root may hold the files directly
    assert data.locate("fashion_mnist", str(tmp_path / "mine")) == tmp_path / "mine"
    write_cifar(keras_home / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py")  # Keras' own cache
    assert data.locate("cifar10", None).parts[-2:] == ("cifar-10-batches-py-target", "cifar-10-batches-py")


def test_offline_and_nothing_found_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data, "SYSTEM_DIRS", [tmp_path / "usr-share"])
    (tmp_path / "mine").mkdir()  # exists, but holds no CIFAR-10 (a missing data.root is its own error)
    cfg = make_cfg("data=cifar10", f"data.root={tmp_path / 'mine'}", "data.download=false")
    with pytest.raises(DataError) as err:
        data.load(cfg.data)
    msg = str(err.value)
    for place in (tmp_path / "mine", tmp_path / "keras" / "datasets", tmp_path / "usr-share"):
        assert str(place) in msg
    assert "data.root=DIR" in msg and "\n" not in msg


def test_splits_are_class_balanced_disjoint_and_deterministic(tmp_path):
    write_fashion(tmp_path / "f", n_train=1000, n_test=300)
    cfg = make_cfg(f"data.root={tmp_path / 'f'}", "data.valid_split=200", "data.train_size=100",
                   "data.valid_size=50", "data.test_size=30")
    a, b = data.load(cfg.data), data.load(cfg.data)
    assert (len(a.y_train), len(a.y_valid), len(a.y_test)) == (100, 50, 30)
    assert np.bincount(a.y_train, minlength=10).tolist() == [10] * 10
    assert np.bincount(a.y_test, minlength=10).tolist() == [3] * 10
    np.testing.assert_array_equal(a.x_train, b.x_train)
    train_rows = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in train_rows for r in a.x_valid)
    assert a.x_train.dtype == np.uint8
    other = data.load(make_cfg(f"data.root={tmp_path / 'f'}", "data.valid_split=200", "data.train_size=100",
                               "data.split_seed=7").data)
    assert not np.array_equal(other.x_train, a.x_train)


def test_preloaded_data_is_what_load_returns_and_its_errors_surface_in_load(tmp_path, monkeypatch):
    """Start-up reads the files in a thread while TensorFlow is imported: `load` must return that
    result (not read again), and raise that thread's error as its own."""
    write_fashion(tmp_path / "f", n_train=200, n_test=50)
    cfg = make_cfg(f"data.root={tmp_path / 'f'}", "data.valid_split=20").data
    direct = data.load(cfg)
    data.preload(cfg)
    monkeypatch.setattr(data, "_load", lambda _: pytest.fail("read again instead of using the preloaded result"))
    preloaded = data.load(cfg)
    np.testing.assert_array_equal(preloaded.x_train, direct.x_train)
    np.testing.assert_array_equal(preloaded.y_test, direct.y_test)
    monkeypatch.undo()
    (tmp_path / "f" / data.FASHION_FILES["x_test"]).write_bytes(b"not gzip")
    data.preload(cfg)
    with pytest.raises(DataError, match="cannot read IDX file"):
        data.load(cfg)


def test_synthetic_data_goes_through_the_idx_loader(tmp_path):
    cfg = make_cfg("data=synthetic", f"data.root={tmp_path}")
    splits = data.load(cfg.data)
    written = list((tmp_path / "synthetic").rglob("*-ubyte.gz"))
    assert len(written) == 4
    assert splits.num_classes == 4 and splits.image_shape == (8, 8)
    assert len(splits.y_train) + len(splits.y_valid) == 2000 and len(splits.y_valid) == 200


def test_feature_stats_match_numpy(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (500, 4, 4), dtype=np.uint8)
    mean, var = data.feature_stats(x, chunk=64)
    flat = x.reshape(500, -1) / 255.0
    np.testing.assert_allclose(mean, flat.mean(0))
    np.testing.assert_allclose(var, flat.var(0), atol=1e-12)


@pytest.mark.realdata
def test_real_fashion_mnist():
    cfg = make_cfg(f"data.root={real_data_root('fashion_mnist')}")
    s = data.load(cfg.data)
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (55000, 5000, 10000)
    assert s.image_shape == (28, 28) and s.x_train.dtype == np.uint8
    assert np.bincount(s.y_valid).tolist() == [500] * 10 and np.bincount(s.y_test).tolist() == [1000] * 10


@pytest.mark.realdata
def test_real_cifar10():
    cfg = make_cfg("data=cifar10", f"data.root={real_data_root('cifar10')}")
    s = data.load(cfg.data)
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (45000, 5000, 10000)
    assert s.image_shape == (32, 32, 3) and s.x_train.dtype == np.uint8
    assert s.class_names[0] == "airplane"
