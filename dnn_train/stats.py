"""Statistics for comparing configurations over seeds: pure functions on numbers.

- `mean_ci`: n, mean, standard deviation (n - 1 in the denominator) and the confidence interval of
  the mean, Student t with n - 1 degrees of freedom: mean ± t(0.975, n - 1) * std / sqrt(n).
- `paired`: values of a configuration and of the baseline paired by seed: the mean of their
  differences, its confidence interval (the paired t interval: `mean_ci` of the differences) and a
  verdict: "better" or "worse" when the interval excludes 0, "no detectable difference" when it
  holds 0, "not enough seeds" with fewer than 2 pairs (no interval can be computed).

Which runs form a configuration and which runs pair up is dnn_train/compare.py's business.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BETTER, WORSE, NO_DIFFERENCE, NOT_ENOUGH_SEEDS = "better", "worse", "no detectable difference", "not enough seeds"
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over n values with its confidence interval [low, high] (NaN where n < 2)."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class Difference:
    """The mean of paired differences (configuration - baseline), its interval and the verdict."""

    pairs: int
    mean: float
    low: float
    high: float
    verdict: str


def mean_ci(values, confidence: float = CONFIDENCE) -> Estimate:
    """n, mean, std and the Student-t confidence interval of the mean of `values` (NaNs dropped)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Estimate(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - half, mean + half)


def verdict(pairs: int, low: float, high: float, lower_is_better: bool = False) -> str:
    """"better" / "worse" when the interval of (configuration - baseline) excludes 0, else
    "no detectable difference"; "not enough seeds" with fewer than 2 pairs."""
    if pairs < 2:
        return NOT_ENOUGH_SEEDS
    if low > 0:
        return WORSE if lower_is_better else BETTER
    if high < 0:
        return BETTER if lower_is_better else WORSE
    return NO_DIFFERENCE


def paired(values, baseline, lower_is_better: bool = False, confidence: float = CONFIDENCE) -> Difference:
    """Compare `values` with `baseline`, element i of one paired with element i of the other (the
    same seed): mean difference, its paired-t interval and the verdict. Pairs with a NaN are dropped."""
    d = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    est = mean_ci(d, confidence)
    return Difference(est.n, est.mean, est.low, est.high, verdict(est.n, est.low, est.high, lower_is_better))
