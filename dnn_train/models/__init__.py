"""Model families, chosen by the `model` group's `_target_` (conf/model/*.yaml):

    model=mlp       dnn_train/models/mlp.py       Dense blocks (the chapter's nets)
    model=cnn       dnn_train/models/cnn.py       convolutional blocks, pooling, a dense head
    model=resnet    dnn_train/models/resnet.py    a small residual net
    model=backbone  dnn_train/models/backbone.py  a keras.applications CNN with a new head

A family is one function `build(inputs, knobs, **its keys)` returning the last hidden tensor;
this module adds the output layer (softmax, or one sigmoid unit for data.binary). Adding a family
is one module plus one YAML file. All families name their hidden layers in numbered blocks
(`block{i}_...`, see parts.py), read back by `blocks()`: what diagnostics, transfer learning
and the log call a hidden block.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import keras
from hydra.utils import get_method

from dnn_train.config.make import make
from dnn_train.models.parts import DROPOUT_LAYERS, Knobs  # noqa: F401  (DROPOUT_LAYERS: for evaluate.py)

# Keys of the model group read by the runner, not passed to the family's builder.
RUNNER_KEYS = ("_target_", "name", "init_from")
_BLOCK = re.compile(r"^block(\d+)_")
INPUT_STACK = ("standardize", "bn_input")  # layers with weights below block 1 (reused with block 1)


def is_binary(cfg) -> bool:
    return cfg.data.get("binary") is not None


def loss_name(cfg) -> str:
    return "binary_crossentropy" if is_binary(cfg) else "sparse_categorical_crossentropy"


def family_kwargs(model_cfg) -> dict:
    from omegaconf import OmegaConf

    kwargs = OmegaConf.to_container(model_cfg, resolve=True)
    return {k: v for k, v in kwargs.items() if k not in RUNNER_KEYS}


def hidden_stack(cfg, inputs, feature_stats=None):
    """The family's layers from the uint8 input to the last hidden representation."""
    return get_method(cfg.model._target_)(inputs, Knobs(cfg, feature_stats), **family_kwargs(cfg.model))


def float32_output() -> dict:
    """Under a mixed-precision policy the output layer (softmax, sigmoid) and so the loss stay
    float32, as Keras' mixed-precision guide prescribes; nothing changes under float32."""
    return {"dtype": "float32"} if keras.config.dtype_policy().name != "float32" else {}


def build_model(cfg, image_shape: tuple, num_classes: int, feature_stats=None) -> keras.Model:
    """Build (not compile) the configured classifier for uint8 images of `image_shape`."""
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = Knobs(cfg).before_output(hidden_stack(cfg, inputs, feature_stats))
    if is_binary(cfg):
        outputs = keras.layers.Dense(1, activation="sigmoid", name="output", **float32_output())(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name="output", **float32_output())(x)
    return keras.Model(inputs, outputs, name=cfg.model.name)


def build_autoencoder(cfg, image_shape: tuple, feature_stats=None) -> keras.Model:
    """task=pretrain_autoencoder: the family's hidden stack as encoder (the same layer names, so
    model.init_from reuses it), a Dense decoder (the encoder's Dense widths mirrored; 256 units
    after a convolutional encoder), pixels in [0, 1] out."""
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="image")
    x = hidden_stack(cfg, inputs, feature_stats)
    dense = [layer.units for layer in keras.Model(inputs, x).layers
             if isinstance(layer, keras.layers.Dense) and _BLOCK.match(layer.name)]
    for i, units in enumerate(reversed(dense[:-1] if dense else [256]), start=1):
        x = keras.layers.Dense(units, kernel_initializer=make(cfg.initializer), name=f"decoder{i}_dense")(x)
        x = make(cfg.activation, name=f"decoder{i}_act")(x)
    x = keras.layers.Dense(math.prod(image_shape), activation="sigmoid", name="reconstruction", **float32_output())(x)
    outputs = keras.layers.Reshape(image_shape, name="image_out")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


# ---------------------------------------------------------------- hidden blocks
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
        return [layer for layer in self.layers if getattr(layer, "kernel", None) is not None
                or isinstance(layer, keras.Model)]

    @property
    def activation(self):
        """The block's (last) activation layer, or None (a backbone)."""
        acts = [layer for layer in self.layers if layer.name.split("_", 1)[1].startswith("act")]
        return acts[-1] if acts else None

    def kernels(self) -> list:
        """The trainable kernels of the block (a backbone: all of its kernels)."""
        out = []
        for layer in self.kernel_layers:
            if isinstance(layer, keras.Model):
                out += [v for v in layer.trainable_weights if v.path.endswith("kernel")]
            else:
                out.append(layer.kernel)
        return out

    @property
    def name(self) -> str:
        kinds = [layer.name.split("_", 1)[1] for layer in self.kernel_layers]
        return f"block{self.index}_{kinds[0]}" if kinds else f"block{self.index}"


def blocks(model: keras.Model) -> list[Block]:
    """The model's hidden blocks, bottom up."""
    found: dict[int, Block] = {}
    for layer in model.layers:
        m = _BLOCK.match(layer.name)
        if m:
            found.setdefault(int(m.group(1)), Block(int(m.group(1)))).layers.append(layer)
    return [found[i] for i in sorted(found)]


def block_layer_names(model: keras.Model, k: int) -> list[str]:
    """Names of the layers with weights in the input stack and blocks 1..k (what transfer reuses)."""
    names = [layer.name for layer in model.layers if layer.name in INPUT_STACK and layer.weights]
    for block in blocks(model)[:k]:
        names += [layer.name for layer in block.layers if layer.weights]
    return names


def pretrained_layers(cfg, model: keras.Model) -> list[str]:
    """Layers that arrive trained (a backbone with weights): frozen first, like reused layers."""
    from dnn_train.models.backbone import BACKBONE_LAYER

    if cfg.model.get("weights") and any(layer.name == BACKBONE_LAYER for layer in model.layers):
        return [BACKBONE_LAYER]
    return []


def describe(model: keras.Model) -> str:
    """A short shape of the model for the log: the width of each hidden block."""
    parts = []
    for block in blocks(model):
        layer = block.kernel_layers[0] if block.kernel_layers else block.output
        if isinstance(layer, keras.Model):
            parts.append(layer.name.removeprefix("block1_") + f"({layer.count_params():,})")
        else:
            parts.append(str(getattr(layer, "units", None) or getattr(layer, "filters", "?")))
    return f"{model.name} " + "-".join(parts)
