"""Chapter 11's advice: combinations of techniques that defeat their purpose, warned about, not refused."""
from __future__ import annotations

from omegaconf import DictConfig


def chapter_warnings(cfg: DictConfig) -> list[str]:
    """Combinations that chapter 11 says defeat their purpose: warned about, not refused."""
    selu = cfg.activation.get("activation") == "selu"
    init = cfg.initializer
    lecun = init.get("_target_", "").endswith("VarianceScaling") and init.get("scale") == 1.0 \
        and init.get("mode") == "fan_in"
    alpha_dropout = str(cfg.regularizer.get("_target_", "")).endswith("AlphaDropout")
    out = []
    if selu and cfg.normalization.get("position", "none") != "none":
        out.append("SELU with batch normalization: BN breaks self-normalization (use normalization=none)")
    if selu and not lecun:
        out.append("SELU needs LeCun initialization to self-normalize (initializer=lecun_normal)")
    if selu and not cfg.data.standardize:
        out.append("SELU needs standardized inputs to self-normalize (data.standardize=true)")
    if alpha_dropout and not selu:
        out.append("alpha_dropout is meant for SELU nets; use regularizer=dropout with other activations")
    if cfg.trainer.mc_samples and cfg.regularizer.get("attach") != "dropout_layer":
        out.append("trainer.mc_samples without dropout: every MC pass is the same (regularizer=dropout)")
    return out
