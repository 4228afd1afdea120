"""model=resnet: a small residual net for 32x32 images (He et al. 2016, the CIFAR variant).
A 3x3 stem (block 1), then `stages` stages of `blocks_per_stage` residual blocks; stage s has
`width * 2**s` maps and halves the resolution at its first block (a strided 1x1 projection on the
shortcut). A block: conv -> [BN] -> act -> conv -> [BN] -> + shortcut -> act, with the
normalization and activation knobs; global average pooling at the end."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dnn_train.config.rule_builders import number
from dnn_train.models.blocks import layer_name

if TYPE_CHECKING:
    from dnn_train.models.parts import Knobs

RULES = {"stages": number(1, 8, integer=True), "blocks_per_stage": number(1, 100, integer=True),
         "width": number(1, 4096, integer=True), "kernel_size": number(1, 31, integer=True)}
TINY = ("model.width=4", "model.blocks_per_stage=1")


def build(inputs, knobs: Knobs, stages: int = 3, blocks_per_stage: int = 2, width: int = 16, kernel_size: int = 3):
    import keras

    x = knobs.images(inputs)
    x = knobs.activate(knobs.conv(x, width, kernel_size, layer_name(1, "conv1")), 1, suffix="1")
    block = 1
    for stage in range(stages):
        maps = width * 2 ** stage
        for b in range(blocks_per_stage):
            block += 1
            strides = 2 if stage > 0 and b == 0 else 1
            shortcut = x
            if strides != 1 or x.shape[-1] != maps:
                shortcut = knobs.conv(x, maps, 1, layer_name(block, "shortcut"), strides=strides)
                shortcut = knobs.normalize(shortcut, layer_name(block, "bn_shortcut"))
            h = knobs.activate(knobs.conv(x, maps, kernel_size, layer_name(block, "conv1"), strides=strides), block, "1")
            h = knobs.conv(h, maps, kernel_size, layer_name(block, "conv2"))
            x = knobs.block_end(knobs.activate(h, block, "2", skip=shortcut), block, spatial=True)
    return keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
