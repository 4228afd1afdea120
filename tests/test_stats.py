"""dnn_train/stats.py against computations done by hand on fixed numbers (t quantiles from a table)."""
from __future__ import annotations

import math

import pytest

from dnn_train import stats


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
