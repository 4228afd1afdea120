"""model=cnn: a convolutional stack. Blocks of `convs_per_block` convolutions (`filters[i]` maps of
`kernel_size`, `padding` same or valid), each followed by the normalization and activation knobs, a
pooling layer ending each block and spatial dropout after it when regularizer=dropout; then global
average pooling (or flatten) and a dense head (`head_units`), whose blocks continue the numbering."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from dnn_train.config.rule_builders import choice, int_list, number
from dnn_train.errors import ConfigError
from dnn_train.models.blocks import layer_name

if TYPE_CHECKING:
    from dnn_train.models.parts import Knobs

RULES = {"filters": int_list(1, 100_000), "convs_per_block": number(1, 50, integer=True),
         "kernel_size": number(1, 31, integer=True), "padding": choice("same", "valid"),
         "pool": choice("max", "avg", "none"), "global_pool": choice("avg", "flatten"),
         "head_units": int_list(1, 100_000, empty=True)}
TINY = ("model.filters=[8,16]",)


def build(inputs, knobs: Knobs, filters: Sequence[int] = (32, 64, 128), convs_per_block: int = 2,
          kernel_size: int = 3, padding: str = "same", pool: str = "max", global_pool: str = "avg",
          head_units: Sequence[int] = ()):
    import keras

    x = knobs.images(inputs)
    for block, width in enumerate(filters, start=1):
        for j in range(1, convs_per_block + 1):
            if padding == "valid" and min(x.shape[1:3]) < kernel_size:
                raise ConfigError(f"model.padding=valid: block {block} gets {x.shape[1]}x{x.shape[2]} maps, smaller "
                                  f"than the {kernel_size}x{kernel_size} kernel (fewer blocks, or model.padding=same)")
            x = knobs.conv(x, width, kernel_size, layer_name(block, f"conv{j}"), padding=padding)
            x = knobs.activate(x, block, suffix=str(j))
        if pool != "none" and min(x.shape[1:3]) >= 2:  # small images: no pooling below 2x2
            pooling = keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D
            x = pooling(2, name=layer_name(block, "pool"))(x)
        x = knobs.block_end(x, block, spatial=True)
    x = (keras.layers.GlobalAveragePooling2D(name="global_pool") if global_pool == "avg"
         else keras.layers.Flatten(name="flatten_maps"))(x)
    for k, units in enumerate(head_units, start=len(filters) + 1):
        x = knobs.dense_block(x, k, units)
    return x
