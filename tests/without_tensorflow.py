"""Run Python as if TensorFlow were not installed, as on the GPU machines (JAX, no TensorFlow):
`python tests/without_tensorflow.py -m dnn_train ARGS` or `python tests/without_tensorflow.py -c CODE`.
Any import of tensorflow fails as a missing package's would; set KERAS_BACKEND=jax."""
from __future__ import annotations

import importlib.abc
import runpy
import sys


class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, NoTensorFlow())
    flag, target, *rest = sys.argv[1:]
    if flag == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
