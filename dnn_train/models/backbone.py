"""model=backbone: a `keras.applications` CNN (model.arch) with a new head, for transfer from a
pretrained network (the chapter's "reusing pretrained layers", on CNNs).

Inside the model: grey images become RGB, images are resized to `input_size` (at least 32x32),
and the pixels get the preprocessing the architecture expects (its own `preprocess_input`, in a
layer of ours, models/layers.py: Keras has it only as a function). The backbone is one layer,
`block1_backbone`, called with training=False, so its batch-norm layers stay in inference mode even
when it is unfrozen for fine-tuning (Keras' transfer-learning guide); with pretrained weights it is frozen
for `transfer.freeze_epochs` epochs, then trained at `transfer.finetune_lr`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from dnn_train.config.help import did_you_mean
from dnn_train.config.rule_builders import int_list
from dnn_train.errors import ConfigError
from dnn_train.models.blocks import layer_name

if TYPE_CHECKING:
    from dnn_train.models.parts import Knobs

BACKBONE_LAYER = layer_name(1, "backbone")
RULES = {"arch": ((lambda v: isinstance(v, str) and v.isidentifier()), "a keras.applications model name"),
         "weights": ((lambda v: v is None or (isinstance(v, str) and v != "")), "imagenet, null or a file path"),
         "input_size": int_list(1, 2048, nullable=True), "head_units": int_list(1, 100_000, empty=True)}
TINY = ("model.weights=null", "model.arch=MobileNet", "trainer.jit_compile=false")


def architectures() -> list[str]:
    """Every model constructor of keras.applications (MobileNetV2, ResNet50, EfficientNetB0, ...)."""
    import keras

    return sorted(n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n)))


def pretrained_layers(model_cfg, model) -> list[str]:
    """With weights, the backbone arrives trained: frozen first, like reused layers."""
    has_backbone = any(layer.name == BACKBONE_LAYER for layer in model.layers)
    return [BACKBONE_LAYER] if model_cfg.get("weights") and has_backbone else []


def build(inputs, knobs: Knobs, arch: str = "MobileNetV2", weights: Optional[str] = "imagenet",
          input_size: Optional[Sequence[int]] = None, head_units: Sequence[int] = ()):
    import keras

    from dnn_train.models.layers import ArchPreprocess

    if arch not in architectures():
        raise ConfigError(f"model.arch={arch}: not a keras.applications model{did_you_mean(arch, architectures())}; "
                          f"valid: {', '.join(architectures())}")
    x = keras.layers.Rescaling(1.0, name="rescale")(inputs)  # uint8 -> float, 0..255 as the architectures expect
    if len(inputs.shape) == 3:
        x = keras.layers.Reshape((*inputs.shape[1:], 1), name="channels")(x)
    if x.shape[-1] == 1:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = knobs._augmented(x)
    size = tuple(input_size) if input_size else tuple(max(32, s) for s in x.shape[1:3])
    if size != tuple(x.shape[1:3]):
        x = keras.layers.Resizing(*size, name="resize")(x)
    x = ArchPreprocess(arch, name="arch_preprocess")(x)
    net = _application(arch, weights, (*size, 3))
    x = net(x, training=False)  # batch norm in inference mode, frozen or not
    for k, units in enumerate(head_units, start=2):
        x = knobs.dense_block(x, k, units)
    return x


def _application(arch: str, weights: Optional[str], shape: tuple):
    import keras

    file_weights = weights not in (None, "imagenet")
    try:
        net = getattr(keras.applications, arch)(include_top=False, pooling="avg", input_shape=shape,
                                                 weights=None if file_weights and _is_run(weights) else weights)
    except ValueError as ex:  # e.g. "Input size must be at least 75x75"
        raise ConfigError(f"model.arch={arch}: {str(ex).splitlines()[0]} (set model.input_size=[H,W])") from None
    except Exception as ex:  # noqa: BLE001 - the ImageNet weights could not be fetched
        if weights != "imagenet":
            raise ConfigError(f"model.weights={weights}: cannot load it into {arch} ({type(ex).__name__}: "
                              f"{str(ex).splitlines()[0]})") from None
        url = re.search(r"https?://\S+?\.h5", str(ex))
        name = url.group(0).rsplit("/", 1)[1] if url else f"{arch}'s no-top weights file"
        home = Path(keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras")
        raise ConfigError(f"model.weights=imagenet: {name} is not in {home / 'models'} and could not be "
                          f"downloaded ({str(ex).splitlines()[0]}); put that file there"
                          f"{' (from ' + url.group(0) + ')' if url else ''}, or use model.weights=null") from None
    net.name = BACKBONE_LAYER
    if file_weights and _is_run(weights):
        try:
            net.set_weights(_weights_of_run(weights))
        except ValueError as ex:
            raise ConfigError(f"model.weights={weights}: its backbone does not fit {arch} at {shape} "
                              f"({str(ex).splitlines()[0][:200]})") from None
    return net


def _is_run(path: str) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() or p.suffix == ".keras"


def _weights_of_run(path: str) -> list:
    """The backbone weights of an earlier backbone run (its directory or model.keras)."""
    from dnn_train.saving import load_source

    source = load_source(path, key="model.weights")
    try:
        layer = source.get_layer(BACKBONE_LAYER)
    except ValueError:
        raise ConfigError(f"model.weights={path}: that model has no {BACKBONE_LAYER} (not a model=backbone run)") from None
    return layer.get_weights()
