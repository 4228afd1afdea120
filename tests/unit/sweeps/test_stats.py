"""dnn_train/sweeps/stats.py against computations done by hand on fixed numbers (t quantiles from a table)."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from dnn_train.sweeps import stats


def test_mean_std_and_t_interval_of_five_values():
    # mean = 4.20 / 5 = 0.84; squared deviations 0.0016 + 0.0004 + 0 + 0.0004 + 0.0016 = 0.0040,
    # / (5 - 1) = 0.001, std = sqrt(0.001) = 0.0316228; std / sqrt(5) = 0.0141421;
    # t(0.975, 4 df) = 2.7764 -> half-width 0.039264 -> [0.800736, 0.879264]
    est = stats.mean_ci([0.80, 0.82, 0.84, 0.86, 0.88])
    assert est.n == 5
    assert est.mean == pytest.approx(0.84)
    assert est.std == pytest.approx(0.0316228, abs=1e-7)
    assert est.low == pytest.approx(0.800736, abs=1e-5) and est.high == pytest.approx(0.879264, abs=1e-5)
    assert est.half_width == pytest.approx(0.039264, abs=1e-5)


def test_one_value_has_no_spread_and_none_has_no_mean():
    one = stats.mean_ci([0.7, math.nan])  # NaNs are dropped
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.low) and math.isnan(one.high)
    none = stats.mean_ci([])
    assert none.n == 0 and math.isnan(none.mean)


def test_single_seed_statistics_do_without_scipy(monkeypatch):
    """A sweep's summary of single-seed jobs is rebuilt after every job: SciPy (a second to import) is
    needed only for an interval, a t test or Benjamini-Hochberg."""
    monkeypatch.setitem(sys.modules, "scipy", None)  # any import of SciPy fails
    assert stats.mean_ci([0.7]).mean == 0.7 and stats.mean_ci([]).n == 0
    assert stats.paired([0.8], [0.7]).verdict == stats.NOT_ENOUGH_SEEDS
    np.testing.assert_allclose(stats.adjust([0.01, 0.04, math.nan]), [0.02, 0.04, math.nan])  # Holm: by hand
    np.testing.assert_array_equal(stats.adjust([0.01, math.nan], stats.NONE), [0.01, math.nan])
    with pytest.raises(ImportError):  # two values: the t quantile is SciPy's
        stats.mean_ci([0.7, 0.8])


def test_paired_difference_that_excludes_zero():
    # differences 0.03, 0.02, 0.03, 0.02: mean 0.025; squared deviations 4 x 0.000025 = 0.0001,
    # / 3 = 3.3333e-5, std 0.0057735, / sqrt(4) = 0.0028868; t(0.975, 3 df) = 3.1824
    # -> half-width 0.0091868 -> [0.015813, 0.034187]: excludes 0, higher is better
    config, baseline = [0.83, 0.84, 0.84, 0.85], [0.80, 0.82, 0.81, 0.83]
    diff = stats.paired(config, baseline)
    assert diff.pairs == 4 and diff.mean == pytest.approx(0.025)
    assert diff.low == pytest.approx(0.015813, abs=1e-5) and diff.high == pytest.approx(0.034187, abs=1e-5)
    assert diff.verdict == "better"
    assert stats.paired(config, baseline, lower_is_better=True).verdict == "worse"  # e.g. a loss went up
    assert stats.paired(baseline, config).verdict == "worse"
    assert stats.paired(baseline, config, lower_is_better=True).verdict == "better"


def test_paired_difference_whose_interval_holds_zero():
    # differences 0.02, -0.01, 0.01: mean 0.0066667; squared deviations 0.00017778 + 0.00027778
    # + 0.00001111 = 0.00046667, / 2 = 0.00023333, std 0.0152753, / sqrt(3) = 0.0088192;
    # t(0.975, 2 df) = 4.3027 -> half-width 0.037946 -> [-0.031279, 0.044613]
    diff = stats.paired([0.82, 0.80, 0.83], [0.80, 0.81, 0.82])
    assert diff.mean == pytest.approx(0.0066667, abs=1e-7)
    assert diff.low == pytest.approx(-0.031279, abs=1e-5) and diff.high == pytest.approx(0.044613, abs=1e-5)
    assert diff.verdict == "no detectable difference"


def test_fewer_than_two_pairs_is_not_enough_seeds():
    one = stats.paired([0.9], [0.1])
    assert one.pairs == 1 and one.mean == pytest.approx(0.8) and one.verdict == "not enough seeds"
    assert stats.paired([0.9, math.nan], [0.1, 0.2]).verdict == "not enough seeds"  # a pair with a NaN drops
    assert stats.verdict(0, math.nan, math.nan) == "not enough seeds"


def test_paired_p_value_is_the_paired_t_tests_and_agrees_with_the_interval():
    # differences 0.03, 0.02, 0.03, 0.02 (above): t = 0.025 / 0.0028868 = 8.6603 on 3 df; the table's
    # t(0.995, 3) = 5.8409 < 8.6603 < t(0.9995, 3) = 12.924, so 0.001 < p < 0.01 (two-sided): 0.003239
    diff = stats.paired([0.83, 0.84, 0.84, 0.85], [0.80, 0.82, 0.81, 0.83])
    assert 0.001 < diff.p < 0.01 and diff.p == pytest.approx(0.003239, abs=1e-6)
    # the same test as the interval: at confidence 1 - p the interval's end touches 0
    edge = stats.mean_ci([0.03, 0.02, 0.03, 0.02], confidence=1 - diff.p)
    assert edge.low == pytest.approx(0.0, abs=1e-9)
    # differences 0.02, -0.01, 0.01: t = 0.0066667 / 0.0088192 = 0.7559 on 2 df < t(0.75, 2) = 0.8165: p > 0.5
    assert stats.paired([0.82, 0.80, 0.83], [0.80, 0.81, 0.82]).p == pytest.approx(0.5286, abs=1e-4)
    assert math.isnan(stats.paired([0.9], [0.1]).p)  # one pair: no test
    same = stats.paired([0.5, 0.75], [0.5, 0.75])  # every difference 0: nothing against "no difference"
    assert same.p == 1.0 and same.verdict == "no detectable difference"
    assert stats.paired([0.75, 0.5], [0.5, 0.25]).p == 0.0  # every difference 0.25 exactly: no spread, p = 0
    # p < 0.05 exactly when the 95% interval excludes 0: a comparison's verdict is the interval's
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 8))
        base = rng.normal(0.8, 0.02, n)
        diff = stats.paired(base + rng.normal(rng.normal(0, 0.01), 0.01, n), base)
        by_interval = "better" if diff.low > 0 else "worse" if diff.high < 0 else "no detectable difference"
        assert diff.verdict == by_interval


# p-values of five comparisons with one baseline, in the order the sweep ran them
FAMILY = [0.04, 0.01, 0.03, 0.045, 0.2]


def test_holm_adjusted_p_values_match_a_hand_computation():
    # sorted: 0.01, 0.03, 0.04, 0.045, 0.2; times m - i + 1 = 5, 4, 3, 2, 1: 0.05, 0.12, 0.12, 0.09, 0.2;
    # kept non-decreasing (step-down): 0.05, 0.12, 0.12, 0.12, 0.2; back in the sweep's order:
    assert stats.adjust(FAMILY).tolist() == pytest.approx([0.12, 0.05, 0.12, 0.12, 0.2])
    assert stats.adjust(FAMILY, "holm").tolist() == pytest.approx([0.12, 0.05, 0.12, 0.12, 0.2])
    # capped at 1: 0.4 x 3 = 1.2 -> 1; 0.7 x 2 = 1.4 -> 1; 0.9 x 1, raised to 1.4 -> 1
    assert stats.adjust([0.9, 0.4, 0.7]).tolist() == [1.0, 1.0, 1.0]
    # a comparison without a p-value (fewer than 2 pairs) is not one of the family: m = 2
    adjusted = stats.adjust([math.nan, 0.02, 0.9])
    assert math.isnan(adjusted[0]) and adjusted[1:].tolist() == pytest.approx([0.04, 0.9])
    assert stats.adjust([0.03]).tolist() == [0.03]  # a family of one: nothing to correct


def test_benjamini_hochberg_adjusted_p_values_match_a_hand_computation():
    # sorted: 0.01, 0.03, 0.04, 0.045, 0.2; times m / i = 5, 5/2, 5/3, 5/4, 1: 0.05, 0.075, 0.0667,
    # 0.05625, 0.2; the smallest from here to the largest (step-up): 0.05, 0.05625, 0.05625, 0.05625, 0.2
    assert stats.adjust(FAMILY, "bh").tolist() == pytest.approx([0.05625, 0.05, 0.05625, 0.05625, 0.2])
    assert stats.adjust(FAMILY, "none").tolist() == FAMILY
    with pytest.raises(ValueError, match="correction 'bonferroni': expected holm, bh"):
        stats.adjust(FAMILY, "bonferroni")


def test_a_verdict_is_decided_by_the_p_value_it_is_given():
    assert stats.verdict(4, 0.02, 0.049) == "better" and stats.verdict(4, 0.02, 0.05) == "no detectable difference"
    assert stats.verdict(4, -0.02, 0.01) == "worse" and stats.verdict(4, -0.02, 0.01, lower_is_better=True) == "better"
    assert stats.verdict(4, 0.02, math.nan) == "no detectable difference"

