"""The datasets dnn_train knows: one `Dataset` entry each, in DATASETS below.

Adding a dataset stored in a format formats.py already reads (IDX, mnist.npz, CIFAR pickles, a
folder of images) is one entry here (its official `size` bounds every file read: SIZE_FACTOR) plus
one YAML file conf/data/NAME.yaml (its first comment line is what --help shows). `data.name` is checked against these names (dnn_train/config/rules.py).
Imports nothing but the standard library: the config module reads it before TensorFlow is loaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Union

# No file of a dataset may hold or claim more than this many times its official images' bytes, plus
# SLACK_BYTES (room for the formats' own bytes: headers, labels, a pickle's names): the readers refuse
# a file claiming more before they allocate anything (docs/guides/data.md).
SIZE_FACTOR = 2
SLACK_BYTES = 1 << 20


@dataclass(frozen=True)
class Layout:
    """One way the files lie on disk: a folder holding all of `files`, read by `reader`."""

    folders: tuple[str, ...]  # searched under each root ("." is the root itself); data.root itself is tried too
    files: tuple[str, ...]  # required, all of them
    reader: str  # a key of formats.READERS


@dataclass(frozen=True)
class Download:
    """Where keras.utils.get_file fetches the official files from, and where it puts them."""

    url: str  # official base URL; data.url replaces it (a mirror, a proxy)
    sha256: Mapping[str, str]  # official file name -> SHA-256; data.sha256 replaces entries
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
    layouts: tuple[Layout, ...]
    classes: Union[tuple[str, ...], Callable, None]  # names; a function of data_cfg; None: the files name them
    offline: str  # one line: how to provide the files without a network
    size: Union[Size, Callable, None] = None  # a function of data_cfg; None: not bounded here (images)
    download: Optional[Download] = None
    root_only: bool = False  # only data.root is searched (it must be given)
    generated: bool = False  # written by synthetic.py, never searched or downloaded

    def class_names(self, data_cfg) -> Optional[list[str]]:
        names = self.classes(data_cfg) if callable(self.classes) else self.classes
        return None if names is None else list(names)

    def max_bytes(self, data_cfg) -> Optional[int]:
        """The most bytes any one file of the dataset (or an archive's whole content) may hold."""
        size = self.size(data_cfg) if callable(self.size) else self.size
        return None if size is None else SIZE_FACTOR * size.examples * math.prod(size.shape) + SLACK_BYTES


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
KERAS_DATASETS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
TORONTO_URL = "https://www.cs.toronto.edu/~kriz/"
IN_KERAS_CACHE = "the Keras cache, $KERAS_HOME/datasets/ (default ~/.keras/datasets/)"

DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="fashion_mnist",
        layouts=(Layout(("fashion-mnist",), IDX_FILES, "idx"),),
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
        layouts=(Layout(("mnist",), IDX_FILES, "idx"), Layout((".",), ("mnist.npz",), "mnist_npz")),
        classes=tuple(str(d) for d in range(10)),
        size=Size(70_000, (28, 28)),
        download=Download(KERAS_DATASETS_URL, {
            "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"}),
        offline=f"copy Keras' mnist.npz into {IN_KERAS_CACHE}, or the four official *-ubyte.gz files into "
                "DIR/mnist/ and pass data.root=DIR"),
    Dataset(
        name="cifar10",
        layouts=(Layout(("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py"),
                        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",), "cifar10"),),
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
                        ("train", "test", "meta"), "cifar100"),),
        classes=None,  # in the `meta` file, fine or coarse (data.label_mode)
        size=Size(60_000, (32, 32, 3)),
        download=Download(TORONTO_URL, {
            "cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"},
            extract_to="cifar-100-python-target"),
        offline=f"extract the official cifar-100-python.tar.gz ({TORONTO_URL}) into {IN_KERAS_CACHE}, or into "
                "DIR and pass data.root=DIR (either gives a cifar-100-python/ folder)"),
    Dataset(
        name="images",
        layouts=(Layout((".",), (), "images"),),
        classes=None,  # the class subfolders' names, sorted
        root_only=True,
        offline="pass data.root=DIR, a folder of class subfolders (DIR/<class>/*.jpg, .png, .bmp, .gif), "
                "or of train/ and test/ folders of class subfolders"),
    Dataset(
        name="synthetic",
        layouts=(Layout((".",), IDX_FILES, "idx"),),
        classes=lambda data_cfg: [f"class{i}" for i in range(data_cfg.synthetic.num_classes)],
        size=lambda data_cfg: Size(data_cfg.synthetic.train_examples + data_cfg.synthetic.test_examples,
                                   tuple(data_cfg.synthetic.image_shape)),
        generated=True,
        offline="nothing to provide: the files are generated"),
)}
