"""Hidden blocks: the one naming of a model's layers in numbered blocks, written and read back here.

Every family names its hidden layers `block{i}_{role}` (`layer_name`: `block2_conv1`, `block2_bn1`,
`block2_act1`, `block2_pool`, `block3_dense`, ...); `blocks()` reads them back, and that is what
diagnostics, transfer learning and the log call a hidden block. Below block 1 sits the input stack
(`rescale`, `augment_*`, `standardize`, `flatten`, `bn_input`, `input_dropout`), above the last
block `output`. Imports no TensorFlow (the families name their layers with it, see families.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

BLOCK = re.compile(r"^block(\d+)_")
INPUT_STACK = ("standardize", "bn_input")  # layers with weights below block 1 (reused with block 1)


def layer_name(block: int, role: str) -> str:
    """The name of `block`'s layer of `role` ('conv1', 'act', 'dropout', ...)."""
    return f"block{block}_{role}"


def _nested(layer) -> bool:
    """Whether `layer` is a whole model inside this one (a backbone)."""
    import keras

    return isinstance(layer, keras.Model)


def role(layer) -> str:
    """What a block's layer is for: 'conv1' of `block2_conv1`."""
    return BLOCK.sub("", layer.name)


@dataclass
class Block:
    """Hidden block `index` of a model: its layers (in order), the ones with kernels, and the
    layer whose output is the block's output."""

    index: int
    layers: list = field(default_factory=list)

    @property
    def output(self):
        """The block's last layer."""
        return self.layers[-1]

    @property
    def output_tensor(self):
        """The symbolic output of the block's last layer in this model's graph (for a nested model,
        its call here, not its own internal output)."""
        return self.output._inbound_nodes[-1].output_tensors[0]

    @property
    def kernel_layers(self) -> list:
        return [layer for layer in self.layers if getattr(layer, "kernel", None) is not None or _nested(layer)]

    @property
    def activation(self):
        """The block's (last) activation layer, or None (a backbone)."""
        acts = [layer for layer in self.layers if role(layer).startswith("act")]
        return acts[-1] if acts else None

    def kernels(self) -> list:
        """The trainable kernels of the block (a backbone: all of its kernels)."""
        out = []
        for layer in self.kernel_layers:
            if _nested(layer):
                out += [v for v in layer.trainable_weights if v.path.endswith("kernel")]
            else:
                out.append(layer.kernel)
        return out

    @property
    def name(self) -> str:
        kinds = [role(layer) for layer in self.kernel_layers]
        return layer_name(self.index, kinds[0]) if kinds else f"block{self.index}"

    def describe(self) -> str:
        """The block's width for the log: units or filters, or a nested model's name and size."""
        layer = self.kernel_layers[0] if self.kernel_layers else self.output
        if _nested(layer):
            return f"{role(layer)}({layer.count_params():,})"
        return str(getattr(layer, "units", None) or getattr(layer, "filters", "?"))


def blocks(model) -> list[Block]:
    """The model's hidden blocks, bottom up."""
    found: dict[int, Block] = {}
    for layer in model.layers:
        m = BLOCK.match(layer.name)
        if m:
            found.setdefault(int(m.group(1)), Block(int(m.group(1)))).layers.append(layer)
    return [found[i] for i in sorted(found)]


def block_layer_names(model, k: int) -> list[str]:
    """Names of the layers with weights in the input stack and blocks 1..k (what transfer reuses)."""
    names = [layer.name for layer in model.layers if layer.name in INPUT_STACK and layer.weights]
    for block in blocks(model)[:k]:
        names += [layer.name for layer in block.layers if layer.weights]
    return names

