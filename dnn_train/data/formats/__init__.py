"""The file formats, one module each; a catalog layout names its reader as "MODULE.FUNCTION" of this package.

- common.py: what every reader returns (Arrays), label checks, opening a file within its Limit
- idx.py: IDX files (MNIST, Fashion-MNIST, data=synthetic); npz.py: Keras' mnist.npz
- cifar.py: the CIFAR-10 and CIFAR-100 pickles; svhn.py: SVHN's MATLAB files
- images.py: a folder of images in class subfolders (decoded once, then cached)

Each reader is reader(folder, data_cfg, classes, limit) -> Arrays: uint8 images and checked integer
labels; a malformed file is refused with one line naming it, and every size a file claims is checked
against the dataset's Limit before anything is allocated. Every module a reader needs is imported at
the top of its module: the readers run in the preload thread, which must import nothing (a second
thread importing while the main thread imports TensorFlow can deadlock the process).
"""
