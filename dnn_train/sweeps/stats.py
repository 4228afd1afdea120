"""Statistics for comparing configurations over seeds: pure functions on numbers.

- `mean_ci`: n, mean, standard deviation (n - 1 in the denominator) and the confidence interval of
  the mean, Student t with n - 1 degrees of freedom: mean ± t(0.975, n - 1) * std / sqrt(n).
- `paired`: values of a configuration and of the baseline paired by seed: the mean of their
  differences, its confidence interval (the paired t interval: `mean_ci` of the differences), the
  two-sided p-value of the same paired t test (SciPy's ttest_rel: p < 0.05 exactly when the 95%
  interval excludes 0) and a verdict (`verdict`).
- `adjust`: the p-values of a family of comparisons (a sweep's configurations against its baseline,
  per metric) corrected for their number: Holm (the default), Benjamini-Hochberg, or none.
- `verdict`: "better" or "worse" when a p-value (raw, or adjusted by `adjust`) is below 0.05, "no
  detectable difference" otherwise, "not enough seeds" with fewer than 2 pairs (no test can be made).

Which runs form a configuration and which runs pair up is dnn_train/sweeps/table.py's business.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BETTER, WORSE, NO_DIFFERENCE, NOT_ENOUGH_SEEDS = "better", "worse", "no detectable difference", "not enough seeds"
CONFIDENCE = 0.95
ALPHA = 0.05  # a verdict's significance level: p < ALPHA iff the CONFIDENCE interval excludes 0
# Corrections for multiple comparisons, by the name an option takes, and as a summary names them.
HOLM, BH, NONE = "holm", "bh", "none"
CORRECTIONS = {HOLM: "Holm", BH: "Benjamini-Hochberg", NONE: "uncorrected"}


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
    """The mean of paired differences (configuration - baseline), its interval, the paired t test's
    p-value (NaN with fewer than 2 pairs; 1 when every difference is 0) and the verdict."""

    pairs: int
    mean: float
    low: float
    high: float
    p: float
    verdict: str


def mean_ci(values, confidence: float = CONFIDENCE) -> Estimate:
    """n, mean, std and the Student-t confidence interval of the mean of `values` (NaNs dropped).
    SciPy is imported only for an interval (n >= 2): a sweep's summary of single-seed jobs, rebuilt
    after each job, never pays its import (about a second of CPU)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Estimate(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    from scipy import stats

    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - half, mean + half)


def verdict(pairs: int, mean: float, p: float, lower_is_better: bool = False, alpha: float = ALPHA) -> str:
    """"better" / "worse" (by the sign of `mean`, configuration - baseline) when `p` < `alpha`, else
    "no detectable difference" (also for a NaN p); "not enough seeds" with fewer than 2 pairs."""
    if pairs < 2:
        return NOT_ENOUGH_SEEDS
    if not p < alpha:
        return NO_DIFFERENCE
    return BETTER if (mean < 0) == lower_is_better else WORSE


def paired(values, baseline, lower_is_better: bool = False, confidence: float = CONFIDENCE) -> Difference:
    """Compare `values` with `baseline`, element i of one paired with element i of the other (the
    same seed): mean difference, its paired-t interval, the paired t test's p-value and the verdict
    of this one comparison. Pairs with a NaN are dropped."""
    import warnings

    x, y = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    both = ~(np.isnan(x) | np.isnan(y))
    est = mean_ci(x[both] - y[both], confidence)
    p = math.nan
    if est.n >= 2:
        from scipy import stats

        with warnings.catch_warnings():  # equal differences: SciPy warns, and gives p = 0 (or NaN if all are 0)
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_rel(x[both], y[both]).pvalue)
        p = 1.0 if math.isnan(p) else p  # every difference 0: nothing against "no difference"
    return Difference(est.n, est.mean, est.low, est.high, p,
                      verdict(est.n, est.mean, p, lower_is_better, round(1 - confidence, 12)))


def check_correction(correction) -> str:
    """`correction` if it names one of CORRECTIONS, else ValueError saying which do."""
    if not isinstance(correction, str) or correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r}: expected holm, bh (Benjamini-Hochberg) or none")
    return correction


def adjust(pvalues, correction: str = HOLM):
    """`pvalues` corrected for being a family of comparisons (NaNs stay NaN and do not count):
    "holm" (Holm's step-down: the i-th smallest of m times m - i + 1, kept non-decreasing, capped at
    1), "bh" (Benjamini-Hochberg: SciPy's false_discovery_control) or "none" (unchanged)."""
    check_correction(correction)
    p = np.asarray(pvalues, dtype=float)
    out = p.copy()
    ok = ~np.isnan(p)
    if correction == NONE or not ok.any():
        return out
    if correction == BH:
        from scipy import stats

        out[ok] = stats.false_discovery_control(p[ok], method="bh")
        return out
    # Holm by hand: SciPy has no Holm (statsmodels' multipletests does; not a dependency)
    order = np.argsort(p[ok], kind="stable")
    m = len(order)
    steps = np.maximum.accumulate((m - np.arange(m)) * p[ok][order])
    held = np.empty(m)
    held[order] = np.minimum(steps, 1.0)
    out[ok] = held
    return out
