"""The datasets dnn_train knows: one `Dataset` entry each in DATASETS, with its files, reader and own data.* keys.

Adding a dataset is its entry here (files, hashes, download, the reader "MODULE.FUNCTION" of
dnn_train/data/formats/, its official `size`, which bounds every file read: SIZE_FACTOR, and the
dataclass of its own keys with their defaults and value rules), one YAML file conf/data/NAME.yaml
(its first comment line is what --help shows; a dataset with keys of its own names its schema in
its defaults list: /data_schema/NAME@_here_), and a reader module if its format is new.
The keys every dataset takes are DataConf's; a dataset's own keys (its subclass of DataConf) are
refused with another dataset, as Hydra refuses any key a schema lacks.
Imports no numpy and no reader: the config reads it before TensorFlow is loaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Callable, List, Mapping, Optional, Union

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from dnn_train.config.rule_builders import COUNT_OR_FRACTION, check_value, choice, int_list, number
from dnn_train.errors import DataError

# No file of a dataset may hold or claim more than this many times its official images' bytes, plus
# SLACK_BYTES (room for the formats' own bytes: headers, labels, a pickle's names): the readers refuse
# a file claiming more before they allocate anything (docs/guides/data.md).
SIZE_FACTOR = 2
SLACK_BYTES = 1 << 20


@dataclass
class DataConf:
    """The keys of every dataset (the `data` group's schema; a dataset's own keys: a subclass)."""

    name: str = "fashion_mnist"  # a dataset of dnn_train/data/catalog.py (conf/data/NAME.yaml)
    root: Optional[str] = None  # folder with the files (or its parent); searched before the Keras cache
    download: bool = True  # fetch with keras.utils.get_file when no local copy is found
    url: Optional[str] = None  # base URL to download from (a mirror, a proxy); null: the official one
    sha256: Any = None  # {FILE: SHA-256} expected of downloads, replacing the official hashes; null: the official ones
    valid_split: Any = 5000  # held out of the training set for validation: a count, or a fraction (< 1)
    train_size: Optional[int] = None  # class-balanced slice sizes (null: everything)
    valid_size: Optional[int] = None
    test_size: Optional[int] = None
    split_seed: int = 42  # fixes the held-out splits and the slices
    standardize: bool = False  # per-feature standardization from the training split
    classes: Optional[List[Any]] = None  # keep these classes (names or indices), relabelled 0..k-1
    binary: Optional[List[Any]] = None  # [NEG, POS]: a two-class task (sigmoid output)


# ---------------------------------------------------------------- value rules of a dataset's own keys
def key(default, rule):
    """A dataset's own key: its default and its value rule (test, words: config/rule_builders.py)."""
    kind = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(**kind, metadata={"rule": rule})


@dataclass
class Cifar100Keys(DataConf):
    label_mode: str = key("fine", choice("fine", "coarse"))  # fine (100 classes) | coarse (20 superclasses)


@dataclass
class ImagesKeys(DataConf):
    test_split: Any = key(0.2, COUNT_OR_FRACTION)  # without train/ and test/: held out for testing
    image_size: Optional[List[int]] = key(None, (lambda v: v is None or (int_list()[0](v) and len(v) == 2),
                                                 "[HEIGHT,WIDTH] (two integers >= 1) or null"))  # null: their own size
    color_mode: str = key("rgb", choice("rgb", "grayscale"))  # rgb (H x W x 3) | grayscale (H x W)


@dataclass
class SvhnKeys(DataConf):
    extra: bool = False  # add the 531,131 extra images (extra_32x32.mat, 1.3 GB) to the training set


@dataclass
class SyntheticConf:
    num_classes: int = key(4, number(2, 255, integer=True))
    image_shape: List[int] = key([8, 8], int_list(1, 512))
    train_examples: int = key(2000, number(2, 2_000_000, integer=True))  # before the valid split
    test_examples: int = key(400, number(1, 2_000_000, integer=True))
    noise: float = key(3.0, number(0))  # in units of the prototypes' spread (3: ~85% reachable)


@dataclass
class SyntheticKeys(DataConf):
    synthetic: SyntheticConf = field(default_factory=SyntheticConf)


def check_keys(node: DictConfig, schema: type, prefix: str = "data.") -> None:
    """Each of `schema`'s own keys in `node` against its value rule, nested settings included."""
    for f in fields(schema):
        value = node[f.name]
        if isinstance(value, DictConfig) and is_dataclass(OmegaConf.get_type(value)):
            check_keys(value, OmegaConf.get_type(value), f"{prefix}{f.name}.")
        elif "rule" in f.metadata:
            check_value(f"{prefix}{f.name}", value, f.metadata["rule"], DataError)


# ---------------------------------------------------------------- the entries
@dataclass(frozen=True)
class Layout:
    """One way the files lie on disk: a folder holding all of `files`, read by `reader`."""

    folders: tuple[str, ...]  # searched under each root ("." is the root itself); data.root itself is tried too
    files: tuple[str, ...]  # required, all of them, in the order the reader takes them
    reader: str  # "MODULE.FUNCTION" of dnn_train/data/formats/: reader(Found, data_cfg, classes, Limit) -> Arrays


@dataclass(frozen=True)
class Download:
    """Where keras.utils.get_file fetches the official files from, and where it puts them."""

    url: str  # official base URL; data.url replaces it (a mirror, a proxy)
    hashes: Mapping[str, str]  # official file name -> SHA-256 (or MD5, 32 digits); data.sha256 replaces entries
    subdir: str = ""  # plain files go to $KERAS_HOME/datasets/SUBDIR/
    extract_to: Optional[str] = None  # an archive: get_file's fname, the folder Keras' own loader extracts it into


@dataclass(frozen=True)
class Size:
    """A dataset's official size: `examples` uint8 images (train and test together) of `shape`."""

    examples: int
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Dataset:
    name: str  # the value of data.name
    layouts: Union[tuple[Layout, ...], Callable]  # or a function of data_cfg (as are classes, size and download)
    classes: Union[tuple[str, ...], Callable, None]  # names; None: the files name them
    offline: str  # one line: how to provide the files without a network
    keys: type = DataConf  # the schema of its data.* keys: DataConf, or a subclass adding its own
    size: Union[Size, Callable, None] = None  # None: not bounded here (images)
    download: Union[Download, Callable, None] = None
    root_only: bool = False  # only data.root is searched (it must be given)
    generated: bool = False  # written by synthetic.py, never searched or downloaded

    def configured(self, data_cfg) -> Dataset:
        """This entry for `data_cfg`: each field given as a function of data_cfg replaced by its value."""
        return replace(self, **{f: getattr(self, f)(data_cfg) for f in ("layouts", "classes", "size", "download")
                                if callable(getattr(self, f))})

    def class_names(self, data_cfg) -> Optional[list[str]]:
        names = self.classes(data_cfg) if callable(self.classes) else self.classes
        return None if names is None else list(names)

    def max_bytes(self, data_cfg) -> Optional[int]:
        """The most bytes any one file of the dataset (or an archive's whole content) may hold."""
        size = self.size(data_cfg) if callable(self.size) else self.size
        return None if size is None else SIZE_FACTOR * size.examples * math.prod(size.shape) + SLACK_BYTES

    def check(self, data_cfg) -> None:
        """data_cfg's keys are this dataset's (data=NAME composed them), with values its rules accept."""
        schema = OmegaConf.get_type(data_cfg)
        if schema is not self.keys and is_dataclass(schema):
            owner = next((d.name for d in DATASETS.values() if d.keys is schema), schema.__name__)
            raise DataError(f"data.name={self.name}: the data keys are data={owner}'s; choose the dataset with "
                            f"data={self.name}")
        check_keys(data_cfg, self.keys)


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
KERAS_DATASETS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
TORONTO_URL = "https://www.cs.toronto.edu/~kriz/"
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373", "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
            "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7"}  # the official files' MD5s (as torchvision checks them)
IN_KERAS_CACHE = "the Keras cache, $KERAS_HOME/datasets/ (default ~/.keras/datasets/)"



def _svhn_files(data_cfg) -> tuple[str, ...]:
    return tuple(f for f in SVHN_MD5 if data_cfg.extra or f != "extra_32x32.mat")


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="fashion_mnist",
        layouts=(Layout(("fashion-mnist",), IDX_FILES, "idx.read_idx_set"),),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        size=Size(70_000, (28, 28)),
        download=Download(KERAS_DATASETS_URL, {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        }, subdir="fashion-mnist"),
        offline=f"copy the four official *-ubyte.gz files into a fashion-mnist/ folder in {IN_KERAS_CACHE}, "
                "or into DIR/fashion-mnist/ and pass data.root=DIR, or `apt-get install dataset-fashion-mnist`"),
    Dataset(
        name="mnist",
        layouts=(Layout(("mnist",), IDX_FILES, "idx.read_idx_set"),
                 Layout((".",), ("mnist.npz",), "npz.read_mnist_npz")),
        classes=tuple(str(d) for d in range(10)),
        size=Size(70_000, (28, 28)),
        download=Download(KERAS_DATASETS_URL, {
            "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"}),
        offline=f"copy Keras' mnist.npz into {IN_KERAS_CACHE}, or the four official *-ubyte.gz files into "
                "DIR/mnist/ and pass data.root=DIR"),
    Dataset(
        name="cifar10",
        layouts=(Layout(("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py"),
                        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",), "cifar.read_cifar10"),),
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        size=Size(60_000, (32, 32, 3)),
        download=Download(TORONTO_URL, {
            "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
            extract_to="cifar-10-batches-py-target"),
        offline=f"extract the official cifar-10-python.tar.gz ({TORONTO_URL}) into {IN_KERAS_CACHE}, or into "
                "DIR and pass data.root=DIR (either gives a cifar-10-batches-py/ folder)"),
    Dataset(
        name="cifar100",
        layouts=(Layout(("cifar-100-python", "cifar-100-python-target/cifar-100-python"),
                        ("train", "test", "meta"), "cifar.read_cifar100"),),
        classes=None,  # in the `meta` file, fine or coarse (data.label_mode)
        keys=Cifar100Keys,
        size=Size(60_000, (32, 32, 3)),
        download=Download(TORONTO_URL, {
            "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"},
            extract_to="cifar-100-python-target"),
        offline=f"extract the official cifar-100-python.tar.gz ({TORONTO_URL}) into {IN_KERAS_CACHE}, or into "
                "DIR and pass data.root=DIR (either gives a cifar-100-python/ folder)"),
    Dataset(
        name="images",
        layouts=(Layout((".",), (), "images.read_images"),),
        classes=None,  # the class subfolders' names, sorted
        keys=ImagesKeys,
        root_only=True,
        offline="pass data.root=DIR, a folder of class subfolders (DIR/<class>/*.jpg, .png, .bmp, .gif), "
                "or of train/ and test/ folders of class subfolders"),
    Dataset(
        name="svhn",
        layouts=lambda data_cfg: (Layout(("svhn",), _svhn_files(data_cfg), "svhn.read_svhn"),),
        classes=tuple(str(d) for d in range(10)),
        keys=SvhnKeys,
        size=lambda data_cfg: Size(73_257 + 26_032 + (531_131 if data_cfg.extra else 0), (32, 32, 3)),
        download=lambda data_cfg: Download(SVHN_URL, {f: SVHN_MD5[f] for f in _svhn_files(data_cfg)}, subdir="svhn"),
        offline=f"copy the official train_32x32.mat and test_32x32.mat (and extra_32x32.mat for data.extra=true) "
                f"from {SVHN_URL} into an svhn/ folder in {IN_KERAS_CACHE}, or into DIR/svhn/ and pass data.root=DIR"),
    Dataset(
        name="synthetic",
        layouts=(Layout((".",), IDX_FILES, "idx.read_idx_set"),),
        classes=lambda data_cfg: [f"class{i}" for i in range(data_cfg.synthetic.num_classes)],
        keys=SyntheticKeys,
        size=lambda data_cfg: Size(data_cfg.synthetic.train_examples + data_cfg.synthetic.test_examples,
                                   tuple(data_cfg.synthetic.image_shape)),
        generated=True,
        offline="nothing to provide: the files are generated"),
)}

for _entry in DATASETS.values():  # what conf/data/NAME.yaml names in its defaults list to type its own keys
    ConfigStore.instance().store(group="data_schema", name=_entry.name, node=_entry.keys)
