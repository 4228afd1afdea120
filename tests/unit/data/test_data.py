"""Loaders on files written in the official formats, the search order, splits, and real data."""
from __future__ import annotations

import functools
import gzip
import io
import os
import pickle
import re
import subprocess
import sys
import tarfile
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from omegaconf import OmegaConf
from PIL import Image

from dnn_train import data
from dnn_train.api import compose
from dnn_train.config.help import options
from dnn_train.data import sources
from dnn_train.data.formats import cifar, idx, images, svhn
from dnn_train.errors import DataError, DnnTrainError
from dnn_train.data.errors import Limit
from dnn_train.data.catalog import DATASETS, IDX_FILES
from tests.conftest import REPO, make_cfg, real_data_root
from tests.datafiles import (LAYOUTS, WRITERS, gzip_bomb, idx_header, layouts, mat_bomb, npz_bomb, write_cifar, write_cifar100,
                             write_dataset, write_fashion, write_images, write_mnist_npz, write_svhn)


LIMIT = Limit(1 << 20, "a test")


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """No test reads or writes the real Keras cache, system folders or dnn_train cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(sources.SYSTEM_DIRS_ENV, str(tmp_path / "usr-share"))


# ---------------------------------------------------------------- formats
def test_idx_round_trip(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    idx.write_idx(tmp_path / "x.gz", x)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "x.gz", LIMIT), x)


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
        idx.read_idx(path, LIMIT)


def test_cifar10_batches_in_the_official_format(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    x_train, y_train, x_test, y_test, _ = cifar.read_cifar10(sources.Found(folder, DATASETS["cifar10"].layouts[0]), None,
                                                           list(DATASETS["cifar10"].classes), LIMIT)
    assert x_train.shape == (100, 32, 32, 3) and x_train.dtype == np.uint8 and x_test.shape == (20, 32, 32, 3)
    assert y_train.dtype == np.uint8 and y_train[:12].tolist() == list(range(10)) + [0, 1]
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"][0]
    # channel-planar R, G, B rows become height x width x channel images
    np.testing.assert_array_equal(x_train[0, :, :, 0].ravel(), raw[:1024])
    np.testing.assert_array_equal(x_train[0, :, :, 2].ravel(), raw[2048:])


@pytest.mark.parametrize("labels, message", [
    (list(range(256, 266)) * 2, "data_batch_1: label 265 out of range for 10 classes"),  # would wrap to 0-9 as uint8
    ([-1] + [0] * 19, "data_batch_1: label -1 out of range for 10 classes"),
    ([float(i % 10) for i in range(20)], "data_batch_1: labels must be a list of integers (found float64"),
])
def test_cifar_labels_out_of_range_or_not_integers_are_refused(tmp_path, labels, message):
    write_cifar(tmp_path / "cifar-10-batches-py", labels=labels)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        data.load(make_cfg("data=cifar10", f"data.root={tmp_path}").data)


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_malicious_cifar_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        cifar.read_pickle(path, "CIFAR-10 batch", LIMIT)
    assert not (tmp_path / "PWNED").exists()


def test_cifar100_fine_and_coarse_labels_and_names_from_meta(tmp_path):
    write_cifar100(tmp_path / "cifar-100-python")
    fine = data.load(make_cfg("data=cifar100", f"data.root={tmp_path}", "data.valid_split=100").data)
    assert fine.num_classes == 100 and fine.class_names[:2] == ["fine00", "fine01"]
    assert fine.image_shape == (32, 32, 3) and (len(fine.y_train), len(fine.y_valid), len(fine.y_test)) == (100, 100, 100)
    coarse = data.load(make_cfg("data=cifar100", f"data.root={tmp_path}", "data.valid_split=100",
                                "data.label_mode=coarse").data)
    assert coarse.num_classes == 20 and coarse.class_names[-1] == "coarse19"
    fine_label = {x.tobytes(): y for x, y in zip(fine.x_test, fine.y_test)}
    assert [fine_label[x.tobytes()] // 5 for x in coarse.x_test] == coarse.y_test.tolist()  # the same images' superclasses


def test_mnist_from_its_idx_folder_or_from_keras_mnist_npz(tmp_path):
    write_fashion(tmp_path / "mine" / "mnist")
    s = data.load(make_cfg("data=mnist", f"data.root={tmp_path / 'mine'}", "data.valid_split=10").data)
    assert s.source == str(tmp_path / "mine" / "mnist") and s.class_names == [str(d) for d in range(10)]
    write_mnist_npz(tmp_path / "keras" / "datasets" / "mnist.npz", n_train=70)
    s = data.load(make_cfg("data=mnist", "data.valid_split=10").data)
    assert s.source == str(tmp_path / "keras" / "datasets")
    assert (len(s.y_train), len(s.y_test)) == (60, 20) and s.image_shape == (28, 28) and s.y_train.dtype == np.uint8


@pytest.mark.parametrize("y_dtype, offset, message", [
    (np.float32, 0, "mnist.npz (y_train): labels must be a list of integers (found float32"),
    (np.int64, 5, "mnist.npz (y_train): label 14 out of range for 10 classes"),
])
def test_mnist_npz_with_bad_labels_is_refused(tmp_path, y_dtype, offset, message):
    write_mnist_npz(tmp_path / "mnist.npz", y_dtype=y_dtype, y_offset=offset)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load(make_cfg("data=mnist", f"data.root={tmp_path}", "data.valid_split=10").data)


@pytest.mark.parametrize("y_dtype", [np.uint8, np.float64])  # MATLAB's own labels may be doubles
def test_svhn_in_its_official_mat_files(tmp_path, y_dtype):
    folder = write_svhn(tmp_path / "svhn", y_dtype=y_dtype)
    found = sources.Found(folder, layouts("svhn")[0])
    x_train, y_train, x_test, y_test, classes = svhn.read_svhn(found, None, [str(d) for d in range(10)], Limit(8 << 20, "a test"))
    assert x_train.shape == (60, 32, 32, 3) and x_train.dtype == np.uint8 and x_test.shape == (20, 32, 32, 3)
    assert y_train.dtype == np.uint8 and y_train[:11].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]  # 10 is the digit 0
    raw = scipy.io.loadmat(folder / "train_32x32.mat")["X"]
    np.testing.assert_array_equal(x_train[7], raw[:, :, :, 7])  # height x width x channel, image by image


def test_svhn_extra_images_join_the_training_set_only_when_asked(tmp_path):
    write_svhn(tmp_path / "svhn")
    plain = data.load(make_cfg("data=svhn", f"data.root={tmp_path}", "data.valid_split=10").data)
    assert (len(plain.y_train), len(plain.y_valid), len(plain.y_test)) == (50, 10, 20) and plain.image_shape == (32, 32, 3)
    extra = data.load(make_cfg("data=svhn", f"data.root={tmp_path}", "data.valid_split=10", "data.extra=true").data)
    assert (len(extra.y_train), len(extra.y_test)) == (50 + 30, 20)
    assert data.last_read()[1][-1] == tmp_path / "svhn" / "extra_32x32.mat"  # its provenance names the file
    (tmp_path / "svhn" / "extra_32x32.mat").unlink()
    assert len(data.load(make_cfg("data=svhn", f"data.root={tmp_path}", "data.valid_split=10").data).y_train) == 50
    with pytest.raises(DataError, match=r"svhn: missing extra_32x32.mat \(of train_32x32.mat, test_32x32.mat, "):
        data.load(make_cfg("data=svhn", f"data.root={tmp_path}", "data.extra=true").data)


def test_svhn_labels_out_of_range_and_other_mat_files_are_refused(tmp_path):
    folder = write_svhn(tmp_path / "svhn")
    scipy.io.savemat(folder / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])})
    with pytest.raises(DataError, match="test_32x32.mat: label 11 out of range 1-10"):
        data.load(make_cfg("data=svhn", f"data.root={tmp_path}", "data.valid_split=10").data)
    scipy.io.savemat(folder / "test_32x32.mat", {"images": np.zeros((28, 28, 2), np.uint8)})
    with pytest.raises(DataError, match=r"test_32x32.mat: not an SVHN file \(X of 32 x 32 x 3 x N images and y "):
        data.load(make_cfg("data=svhn", f"data.root={tmp_path}", "data.valid_split=10").data)
    (folder / "test_32x32.mat").write_bytes(b"not MATLAB at all" * 10)
    with pytest.raises(DataError, match="test_32x32.mat: not a MATLAB 5 file"):
        data.load(make_cfg("data=svhn", f"data.root={tmp_path}", "data.valid_split=10").data)


# ---------------------------------------------------------------- files claiming more than their dataset holds
MiB = 1 << 20


class _HugeArray:
    """Pickles as numpy's own reduction of an array, claiming `shape` (numpy allocates it at once)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return np.ndarray.__reduce__(np.empty(0, self.dtype))[0], (np.ndarray, self.shape, np.dtype(self.dtype).char.encode())


def _npz_header_lie(tmp):  # 80 KB of data under a header claiming 10^11 bytes
    return ["data=mnist", f"data.root={tmp}"], npz_bomb(tmp / "mnist.npz", (127551021, 28, 28), [(os.urandom(80_000), 1)])


def _npz_deflate_bomb(tmp):  # 1 MB on disk, 1 GiB decompressed, and an honest header
    return ["data=mnist", f"data.root={tmp}"], npz_bomb(tmp / "mnist.npz", (1024 * MiB // 784, 28, 28), [(bytes(MiB), 1024)])


def _idx_gzip_bomb(tmp):  # the same as train-images-idx3-ubyte.gz
    write_fashion(tmp / "mnist")
    return ["data=mnist", f"data.root={tmp}"], gzip_bomb(tmp / "mnist" / IDX_FILES[0], idx_header((1024 * MiB // 784, 28, 28)),
                                                         1024 * MiB)


def _idx_gzip_longer_than_its_header(tmp):  # an honest-looking header, then 1 GiB more than it says
    write_fashion(tmp / "fashion-mnist")
    return ["data=fashion_mnist", f"data.root={tmp}"], gzip_bomb(tmp / "fashion-mnist" / IDX_FILES[0],
                                                                 idx_header((60, 28, 28)), 1024 * MiB)


def _cifar_pickled_array_claim(tmp):  # a 200-byte pickle whose array claims 10^11 bytes
    folder = write_cifar(tmp / "cifar-10-batches-py")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _HugeArray((10**11 // 3072, 3072), np.uint8),
                                                        b"labels": [0]}, protocol=2))
    return ["data=cifar10", f"data.root={tmp}"], folder / "data_batch_1"


def _mat_header_lie(tmp):  # a 1 KB MATLAB file whose compressed X claims 3 * 10^9 bytes
    write_svhn(tmp / "svhn")
    return ["data=svhn", f"data.root={tmp}"], mat_bomb(tmp / "svhn" / "train_32x32.mat", (32, 32, 3, 10**6))


def _sparse(tmp, name, layout):  # an honest dataset whose first file is made larger than it may be
    path = write_dataset(name, tmp, layout) / layouts(name)[layout].files[0]
    os.truncate(path, 1 << 30)  # sparse: no disk used; more than any limit here (README: at most 369 MB)
    return [f"data={name}", f"data.root={tmp}"], path


BOMBS = {f.__name__.lstrip("_"): f for f in (_npz_header_lie, _npz_deflate_bomb, _idx_gzip_bomb,
                                              _idx_gzip_longer_than_its_header, _cifar_pickled_array_claim,
                                              _mat_header_lie)}
BOMBS.update({f"{name} ({layouts(name)[layout].files[0]}) too large on disk":
              functools.partial(_sparse, name=name, layout=layout)
              for name, layout in LAYOUTS if DATASETS[name].size is not None})


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_file_claiming_more_than_its_dataset_is_refused_before_anything_is_allocated(tmp_path, bomb):
    """Each format's bomb (a header that lies, a compressed stream of a gigabyte, a pickled array's shape,
    a file larger than its dataset may be): one line naming the file and both sizes, and the reading
    allocates a few MB at most (numpy's and Python's allocations, traced), never what the file claims."""
    overrides, path = BOMBS[bomb](tmp_path)
    cfg = make_cfg(*overrides, "data.valid_split=10")
    name = cfg.data.name
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            data.load(cfg.data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"{peak / MiB:.0f} MiB"
    line = str(err.value)
    assert "\n" not in line and line.startswith(str(path)), line
    if bomb == "idx_gzip_longer_than_its_header":
        assert line.endswith("IDX header says (60, 28, 28) (47040 bytes of data) but the file holds more: truncated or corrupt")
    else:
        sizes = re.search(rf": (claims|holds|claims an array of) ([\d,]+) bytes, more than the ([\d,]+) bytes a file "
                          rf"of {name} may hold", line)
        assert sizes and int(sizes[3].replace(",", "")) == DATASETS[name].max_bytes(cfg.data), line


def test_a_pickled_array_of_objects_is_refused(tmp_path):
    """numpy unpickles an array of objects from a list (and crashes the process on a list of the wrong
    length); the official batches hold uint8 arrays only."""
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.array([None] * 3, dtype=object), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 batch \\(refusing an array of object\\)"):
        data.load(make_cfg("data=cifar10", f"data.root={tmp_path}", "data.valid_split=10").data)


def _tar_gz(path, members: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


@pytest.mark.parametrize("members, message", [
    ({f"d/{i}": os.urandom(400_000) for i in range(3)}, "extracts to at least 1,200,000 bytes, more than the 1,048,576"),
    ({"d/a": b"x", "../escaped": b"x"}, "cannot extract"),
    ({f"d/{i}": b"" for i in range(sources.MAX_MEMBERS + 1)}, f"more than {sources.MAX_MEMBERS} members"),
    ({"d/a": b"x" * 10}, None),
])
def test_an_archive_is_extracted_whole_within_its_limit_or_not_at_all(tmp_path, members, message):
    """Into a temporary folder beside the destination, moved into place when complete; a refusal
    leaves nothing, the archive included (a Keras-style partial folder from before is replaced)."""
    cache = tmp_path / "datasets"
    (cache / "dest" / "d").mkdir(parents=True)
    (cache / "dest" / "d" / "stale").write_bytes(b"from an interrupted extraction")
    archive = _tar_gz(cache / "dest_archive", members)
    if message is None:
        sources.extract(archive, cache / "dest", LIMIT, "dest.tar.gz")
        assert sorted(p.name for p in cache.iterdir()) == ["dest", "dest_archive"]
        assert sorted(p.name for p in (cache / "dest" / "d").iterdir()) == ["a"]
        return
    with pytest.raises(DataError, match=re.escape(f"dest.tar.gz: {message}")):
        sources.extract(archive, cache / "dest", LIMIT, "dest.tar.gz")
    assert sorted(p.name for p in cache.iterdir()) == ["dest"] and not (tmp_path / "escaped").exists()
    assert [p.name for p in (cache / "dest" / "d").iterdir()] == ["stale"]  # untouched: only a success replaces it


# ---------------------------------------------------------------- a folder of images
def images_cfg(root, *overrides):
    return make_cfg("data=images", f"data.root={root}", "data.valid_split=3", "data.test_split=3", *overrides).data


def test_images_folder_png_and_jpeg_classes_sorted_and_held_out_splits(tmp_path):
    root = write_images(tmp_path / "pets", classes=("emu", "cat", "dog"), per_class=8)
    write_images(tmp_path / "pets", classes=("emu", "cat", "dog", "yak"), per_class=2, fmt="jpg", seed=1)
    s = data.load(images_cfg(root))
    assert s.class_names == ["cat", "dog", "emu", "yak"] and s.image_shape == (12, 10, 3) and s.x_train.dtype == np.uint8
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (32 - 6, 3, 3)
    # each image's colour says its class: the writer put class index c's colour in channel c % 3
    written_index = {"emu": 0, "cat": 1, "dog": 2, "yak": 3}
    for x, y in zip(s.x_train, s.y_train):
        assert x.mean(axis=(0, 1)).argmax() == written_index[s.class_names[y]] % 3
    again = data.load(images_cfg(root))
    np.testing.assert_array_equal(again.x_test, s.x_test)  # held out by data.split_seed: the same each time
    other = data.load(images_cfg(root, "data.split_seed=1"))
    assert not np.array_equal(other.x_test, s.x_test)


def test_images_class_filter_grayscale_and_resize(tmp_path):
    root = write_images(tmp_path / "pets", per_class=10)
    s = data.load(images_cfg(root, "data.classes=[emu,cat]", "data.color_mode=grayscale", "data.image_size=[6,5]"))
    assert s.class_names == ["emu", "cat"] and s.image_shape == (6, 5)
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (20 - 3 - 2, 3, 2)  # the test split came first
    b = data.load(images_cfg(root, "data.binary=[dog,cat]", "data.test_split=0.5"))
    assert b.class_names == ["dog", "cat"] and len(b.y_test) == 10 and sorted(set(b.y_train)) == [0, 1]


def test_images_train_and_test_subfolders_are_the_official_split(tmp_path):
    write_images(tmp_path / "set" / "train", per_class=7, fmt="jpg")
    write_images(tmp_path / "set" / "test", per_class=2, fmt="jpg", seed=1)
    s = data.load(images_cfg(tmp_path / "set"))
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (21 - 3, 3, 6)
    assert np.bincount(s.y_test).tolist() == [2, 2, 2]
    (tmp_path / "set" / "test" / "emu").rename(tmp_path / "set" / "test" / "ostrich")
    with pytest.raises(DataError, match="train/ and test/ have different class folders"):
        data.load(images_cfg(tmp_path / "set"))


def test_images_corrupt_jpeg_names_the_file(tmp_path):
    root = write_images(tmp_path / "pets", fmt="jpg")
    bad = root / "dog" / "003.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # a JPEG cut short
    with pytest.raises(DataError) as err:
        data.load(images_cfg(root))
    assert str(err.value).startswith(f"{bad}: not a readable image") and "\n" not in str(err.value)


def test_images_of_mixed_sizes_need_image_size(tmp_path):
    root = write_images(tmp_path / "pets", size=(12, 10))
    write_images(tmp_path / "pets", classes=("dog",), per_class=1, size=(9, 9), fmt="bmp")
    with pytest.raises(DataError, match=r"images of different sizes: .* is 12x10, .*000\.bmp is 9x9; set "
                                        r"data.image_size=\[HEIGHT,WIDTH\]"):
        data.load(images_cfg(root))
    assert data.load(images_cfg(root, "data.image_size=[8,8]")).image_shape == (8, 8, 3)
    with pytest.raises(DataError, match=r"data.image_size=\[8\]: expected \[HEIGHT,WIDTH\]"):
        data.load(images_cfg(root, "data.image_size=[8]"))


def test_images_broken_link_names_the_file(tmp_path):
    root = write_images(tmp_path / "pets")
    os.symlink(tmp_path / "gone.png", root / "cat" / "999.png")
    with pytest.raises(DataError, match=r"cat/999.png: cannot read \(No such file or directory\)"):
        data.load(images_cfg(root))


def test_images_empty_folder_class_without_images_and_no_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no class subfolders"):
        data.load(images_cfg(tmp_path / "empty"))
    root = write_images(tmp_path / "pets")
    (root / "gnu").mkdir()
    (root / "gnu" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="gnu: a class folder without images"):
        data.load(images_cfg(root))
    with pytest.raises(DataError, match="data=images needs data.root: pass data.root=DIR"):
        data.load(make_cfg("data=images").data)


def test_images_are_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    root = write_images(tmp_path / "pets", per_class=5)
    cached = lambda: sorted((tmp_path / "cache" / "dnn_train" / "images").rglob("*.npy"))  # noqa: E731
    first = data.load(images_cfg(root))
    assert len(cached()) == 1
    decoded = []
    real_decode = images.decode_images
    monkeypatch.setattr(images, "decode_images", lambda *a: decoded.append(a) or real_decode(*a))
    again = data.load(images_cfg(root))
    assert decoded == []  # the same files and settings: read from the cache
    for key in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(again, key), getattr(first, key))
    data.load(images_cfg(root, "data.color_mode=grayscale"))
    assert len(decoded) == 1 and len(cached()) == 2  # other settings: decoded, and cached beside
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(root / "cat" / "000.png")
    os.utime(root / "cat" / "000.png", ns=(1, 1))  # a changed file, whatever the clock's resolution
    changed = data.load(images_cfg(root))
    assert len(decoded) == 2 and len(cached()) == 2  # decoded again, replacing the stale entry
    assert any((x == 0).all() for x in np.concatenate([changed.x_train, changed.x_valid, changed.x_test]))


# ---------------------------------------------------------------- where the files are
def test_search_order_root_then_keras_cache_then_system_folders(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    fashion = DATASETS["fashion_mnist"]
    cfg = make_cfg().data
    assert sources.find_local(fashion, cfg) is None
    write_fashion(system / "fashion-mnist")
    assert sources.find_local(fashion, cfg).folder == system / "fashion-mnist"
    monkeypatch.setenv(sources.SYSTEM_DIRS_ENV, f"{tmp_path / 'elsewhere'}:{system}")  # colon-separated
    assert sources.find_local(fashion, cfg).folder == system / "fashion-mnist"
    monkeypatch.setenv(sources.SYSTEM_DIRS_ENV, "")  # search none
    assert sources.find_local(fashion, cfg) is None
    write_fashion(tmp_path / "keras" / "datasets" / "fashion-mnist")
    assert sources.find_local(fashion, cfg).folder == tmp_path / "keras" / "datasets" / "fashion-mnist"
    write_fashion(tmp_path / "mine")  # data.root may hold the files directly...
    assert sources.find_local(fashion, make_cfg(f"data.root={tmp_path / 'mine'}").data).folder == tmp_path / "mine"
    write_fashion(tmp_path / "parent" / "fashion-mnist")  # ...or be their parent
    found = sources.find_local(fashion, make_cfg(f"data.root={tmp_path / 'parent'}").data)
    assert found.folder == tmp_path / "parent" / "fashion-mnist"
    write_cifar(tmp_path / "keras" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py")  # Keras' own
    found = sources.find_local(DATASETS["cifar10"], make_cfg("data=cifar10").data)
    assert found.folder.parts[-2:] == ("cifar-10-batches-py-target", "cifar-10-batches-py")


def test_a_data_root_missing_files_is_an_error_naming_them_with_no_fallback(tmp_path):
    write_fashion(tmp_path / "keras" / "datasets" / "fashion-mnist")  # a complete copy it must not fall back to
    folder = write_fashion(tmp_path / "mine" / "fashion-mnist")
    (folder / IDX_FILES[1]).unlink()
    (folder / IDX_FILES[3]).unlink()
    with pytest.raises(DataError) as err:
        data.load(make_cfg(f"data.root={tmp_path / 'mine'}").data)
    assert str(err.value) == (f"{folder}: missing {IDX_FILES[1]}, {IDX_FILES[3]} (of {', '.join(IDX_FILES)}); "
                              "complete the folder or leave data.root unset")
    (tmp_path / "flat").mkdir()  # data.root holding some of the files itself
    (tmp_path / "flat" / IDX_FILES[0]).write_bytes(b"")
    with pytest.raises(DataError, match=f"flat: missing {IDX_FILES[1]}, {IDX_FILES[2]}, {IDX_FILES[3]} "):
        data.load(make_cfg(f"data.root={tmp_path / 'flat'}").data)


def test_a_data_root_whose_dataset_folder_is_a_symlink_loop_is_an_error(tmp_path):
    write_fashion(tmp_path / "keras" / "datasets" / "fashion-mnist")
    (tmp_path / "mine").mkdir()
    os.symlink(tmp_path / "mine" / "fashion-mnist", tmp_path / "mine" / "fashion-mnist")
    with pytest.raises(DataError, match="fashion-mnist: not a readable folder .a broken link or a symlink loop"):
        data.load(make_cfg(f"data.root={tmp_path / 'mine'}").data)


def test_offline_and_nothing_found_says_where_it_looked(tmp_path):
    (tmp_path / "mine").mkdir()  # exists, but holds no CIFAR-10 (a missing data.root is its own error)
    cfg = make_cfg("data=cifar10", f"data.root={tmp_path / 'mine'}", "data.download=false")
    with pytest.raises(DataError) as err:
        data.load(cfg.data)
    msg = str(err.value)
    for place in (tmp_path / "mine", tmp_path / "keras" / "datasets" / "cifar-10-batches-py",
                  tmp_path / "usr-share" / "cifar-10-batches-py"):
        assert str(place) in msg
    assert "data.download=false" in msg and "cifar-10-python.tar.gz" in msg and "data.root=DIR" in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="data.download=false"):
        data.preload(cfg.data)  # at once, before TensorFlow is even imported


@pytest.mark.parametrize("override, message", [
    ("data.sha256={mnist.npz:'" + "0" * 64 + "'}",
     "data.sha256: mnist.npz is not a file of fashion_mnist (its files: train-images-idx3-ubyte.gz, "),
    ("data.sha256={train-images-idx3-ubyte.gz:1e5}", "data.sha256={'train-images-idx3-ubyte.gz': 100000.0}: expected "),
    ("data.sha256=abc", "data.sha256=abc: expected {FILE:'SHA-256',...} (64 hexadecimal digits each, quoted) or null"),
])
def test_sha256_must_name_the_datasets_files_with_hashes(override, message):
    with pytest.raises(DataError) as err:
        data.load(make_cfg(override).data)
    assert str(err.value).startswith(message)


# ---------------------------------------------------------------- splits, preloading, synthetic
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
    fraction = data.load(make_cfg(f"data.root={tmp_path / 'f'}", "data.valid_split=0.25").data)
    assert (len(fraction.y_train), len(fraction.y_valid)) == (750, 250)


def test_preloaded_data_is_what_load_returns_and_its_errors_surface_in_load(tmp_path, monkeypatch):
    """Start-up reads the files in a thread while TensorFlow is imported: `load` must return that
    result (not read again), and raise that thread's error as its own."""
    write_fashion(tmp_path / "f", n_train=200, n_test=50)
    cfg = make_cfg(f"data.root={tmp_path / 'f'}", "data.valid_split=20").data
    direct = data.load(cfg)
    data.preload(cfg)
    monkeypatch.setattr(data, "_read", lambda *_: pytest.fail("read again instead of using the preloaded result"))
    preloaded = data.load(cfg)
    np.testing.assert_array_equal(preloaded.x_train, direct.x_train)
    np.testing.assert_array_equal(preloaded.y_test, direct.y_test)
    monkeypatch.undo()
    (tmp_path / "f" / IDX_FILES[2]).write_bytes(b"not gzip")
    data.preload(cfg)
    with pytest.raises(DataError, match="cannot read IDX file"):
        data.load(cfg)


def test_with_nothing_local_preload_starts_no_thread_and_load_downloads(monkeypatch):
    class Reached(Exception):
        pass

    def download(entry, data_cfg):
        raise Reached(entry.name)

    cfg = make_cfg("data=cifar10").data
    data.discard_preloaded()
    data.preload(cfg)
    assert data._preloading == {}  # nothing to read: the download is left to `load`, in the main thread
    monkeypatch.setattr(sources, "download", download)
    with pytest.raises(Reached, match="cifar10"):
        data.load(cfg)


def test_the_preload_thread_imports_nothing(tmp_path):
    """Importing in a second thread while the main thread imports TensorFlow can deadlock: the thread
    that reads the files (and its decoding pool) must find every module it needs already imported."""
    cases = [[f"data={name}", f"data.root={write_dataset(name, tmp_path / f'{name}{i}', i)}"] for name, i in LAYOUTS]
    for fmt in ("png", "jpg", "bmp", "gif"):
        write_images(tmp_path / "i", classes=(f"{fmt}1", f"{fmt}2"), per_class=3, fmt=fmt)
    bad = tmp_path / "bad"
    write_images(bad, per_class=2, fmt="jpg")
    (bad / "cat" / "000.jpg").write_bytes(b"garbage")
    cases += [["data=images", f"data.root={tmp_path}/i", "data.image_size=[7,7]"],
              ["data=images", f"data.root={tmp_path}/i", "data.image_size=[7,7]"],  # now cached
              ["data=images", f"data.root={bad}"], ["data=synthetic", f"data.root={tmp_path}/s"]]
    script = textwrap.dedent(f"""
        import sys, threading
        from dnn_train import data
        from tests.conftest import make_cfg
        imports = []
        sys.addaudithook(lambda event, args: event == "import" and threading.current_thread() is not
                         threading.main_thread() and imports.append((threading.current_thread().name, args[0])))
        for overrides in {cases!r}:
            images = ["data.test_split=2"] if "data=images" in overrides else []
            cfg = make_cfg(*overrides, "data.valid_split=2", *images).data
            data.preload(cfg)
            try:
                data.load(cfg)
            except data.DataError as ex:
                assert "not a readable image" in str(ex), ex
        assert not imports, imports
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_synthetic_data_goes_through_the_idx_loader(tmp_path):
    cfg = make_cfg("data=synthetic", f"data.root={tmp_path}")
    splits = data.load(cfg.data)
    written = list((tmp_path / "synthetic").rglob("*-ubyte.gz"))
    assert len(written) == 4
    assert splits.num_classes == 4 and splits.image_shape == (8, 8)
    assert len(splits.y_train) + len(splits.y_valid) == 2000 and len(splits.y_valid) == 200


def test_feature_stats_match_numpy():
    x = np.random.default_rng(1).integers(0, 256, (500, 4, 4), dtype=np.uint8)
    mean, var = data.feature_stats(x, chunk=64)
    flat = x.reshape(500, -1) / 255.0
    np.testing.assert_allclose(mean, flat.mean(0))
    np.testing.assert_allclose(var, flat.var(0), atol=1e-12)


def test_every_catalog_entry_has_its_conf_file_its_keys_and_a_writer_of_its_files():
    assert sorted(DATASETS) == options("data")
    for name, entry in DATASETS.items():
        composed = make_cfg(f"data={name}").data
        assert composed.name == name and OmegaConf.get_type(composed) is entry.keys  # conf/data/NAME.yaml's schema
        for layout in entry.configured(composed).layouts:
            assert callable(data.reader(layout)) and layout.reader in WRITERS


@pytest.mark.parametrize("overrides, message", [
    (["data.label_mode=coarse"], "data.label_mode: unknown key"),  # cifar100's, not fashion_mnist's
    (["+data.label_mode=coarse"], "data.label_mode: unknown key"),
    (["data=cifar100", "data.test_split=3"], "data.test_split: unknown key"),  # the folder of images'
    (["data.synthetic.noise=1"], "data.synthetic.noise: unknown key"),
    (["data=cifar100", "data.name=cifar10"], "data.name=cifar10: the data keys are data=cifar100's; choose the "
                                             "dataset with data=cifar10"),
    (["data=cifar100", "data.label_mode=all"], "data.label_mode=all: expected one of fine, coarse"),
    (["data=images", "data.test_split=0"], "data.test_split=0: expected an integer >= 1 (a count) or a number > 0"),
    (["data=images", "data.color_mode=cmyk"], "data.color_mode=cmyk: expected one of rgb, grayscale"),
    (["data=synthetic", "data.synthetic.image_shape=[]"], "data.synthetic.image_shape=[]: expected a non-empty list"),
    (["data=synthetic", "data.synthetic.noise=-1"], "data.synthetic.noise=-1.0: expected a finite number >= 0"),
])
def test_a_dataset_takes_its_own_keys_only_with_values_its_rules_accept(overrides, message):
    with pytest.raises(DnnTrainError) as err:
        compose(*overrides)
    assert str(err.value).startswith(message) and err.value.exit_code == 2


# ---------------------------------------------------------------- real data (skipped when absent)
@pytest.fixture
def real_caches(monkeypatch):
    monkeypatch.undo()  # the real Keras cache and system folders


@pytest.mark.realdata
def test_real_fashion_mnist(real_caches):
    cfg = make_cfg(f"data.root={real_data_root('fashion_mnist')}")
    s = data.load(cfg.data)
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (55000, 5000, 10000)
    assert s.image_shape == (28, 28) and s.x_train.dtype == np.uint8
    assert np.bincount(s.y_valid).tolist() == [500] * 10 and np.bincount(s.y_test).tolist() == [1000] * 10


@pytest.mark.realdata
def test_real_cifar10(real_caches):
    cfg = make_cfg("data=cifar10", f"data.root={real_data_root('cifar10')}")
    s = data.load(cfg.data)
    assert (len(s.y_train), len(s.y_valid), len(s.y_test)) == (45000, 5000, 10000)
    assert s.image_shape == (32, 32, 3) and s.x_train.dtype == np.uint8
    assert s.class_names[0] == "airplane"


def test_a_sweeps_jobs_read_the_same_data_once_and_see_a_changed_file(tmp_path):
    """Jobs in one process with the same data config share one read (a sweep pays for it once); a
    file changed on disk between them is read again."""
    write_fashion(tmp_path / "fashion-mnist")
    cfg = make_cfg("data=fashion_mnist", f"data.root={tmp_path}", "data.valid_split=10").data
    first = data.load(cfg)
    assert data.load(cfg) is first
    data.preload(cfg)  # nothing to read again: no thread
    assert data.load(cfg) is first
    write_fashion(tmp_path / "fashion-mnist", seed=1)  # new pixels, same names
    again = data.load(cfg)
    assert again is not first and not np.array_equal(again.x_train, first.x_train)
