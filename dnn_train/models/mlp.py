"""model=mlp: the chapter's multilayer perceptron, `depth` hidden Dense layers of `units` neurons
(or explicit `widths`), each followed by the normalization, activation and regularizer knobs."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from dnn_train.config.rule_builders import int_list, number

if TYPE_CHECKING:
    from dnn_train.models.parts import Knobs

RULES = {"depth": number(1, 500, integer=True), "units": number(1, 100_000, integer=True),
         "widths": int_list(1, 100_000, nullable=True)}
TINY = ("model.depth=2", "model.units=16")


def build(inputs, knobs: Knobs, depth: int = 3, units: int = 100, widths: Optional[Sequence[int]] = None):
    """Flattened, scaled pixels -> hidden blocks 1..depth -> the last hidden activation."""
    x = knobs.features(inputs)
    for block, width in enumerate(widths if widths else [units] * depth, start=1):
        x = knobs.dense_block(x, block, width)
    return x
