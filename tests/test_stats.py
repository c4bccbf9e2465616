"""The t-tests of ratbench.reporting.stats against closed forms and SciPy's tests."""

from __future__ import annotations

import math

import pytest

from ratbench.reporting import stats

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (1.0, 1.0, 0.5),  # Cauchy: P(|T| >= 1) = 1/2
        (-1.0, 1.0, 0.5),  # two-sided: the sign does not matter
        (2.0, 2.0, 1 - 2 / math.sqrt(6)),  # df = 2: P(|T| >= t) = 1 - t / sqrt(2 + t^2)
        (2.7764451051977987, 4.0, 0.05),  # the 97.5% quantile of t(4), as printed in tables
        (0.0, 7.5, 1.0),
    ],
)
def test_two_sided_p_matches_closed_forms(t: float, df: float, p: float) -> None:
    assert stats.two_sided_p(t, df) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ((72.0, 1.5, 5), (66.5, 2.1, 5)),
        ((40.4, 1.7, 3), (39.5, 2.5, 5)),
        ((10.0, 0.1, 5), (10.0, 4.0, 5)),
        ((55.0, 9.0, 2), (47.2, 7.9, 5)),
        ((1.0, 0.01, 20), (0.0, 0.01, 5)),
    ],
)
def test_welch_matches_scipy(ours: tuple[float, float, int], theirs: tuple[float, float, int]) -> None:
    result = stats.welch_from_stats(*ours, *theirs)
    expected = scipy_stats.ttest_ind_from_stats(*ours, *theirs, equal_var=False)
    assert result.t == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p == pytest.approx(expected.pvalue, rel=1e-7, abs=1e-300)
    assert result.difference == pytest.approx(ours[0] - theirs[0])


def test_paired_matches_scipy() -> None:
    first, second = [72.0, 70.5, 73.1, 69.9, 71.2], [66.1, 67.0, 65.2, 68.8, 66.0]
    result = stats.paired(first, second)
    expected = scipy_stats.ttest_rel(first, second)
    assert result.t == pytest.approx(expected.statistic) and result.p == pytest.approx(expected.pvalue)
    assert result.df == 4


def test_undefined_tests_give_no_p_value() -> None:
    assert stats.welch_from_stats(70.0, math.nan, 1, 66.5, 2.1, 5).p is None  # one seed
    assert stats.welch_from_stats(70.0, 0.0, 5, 66.5, 0.0, 5).p is None  # no variance at all
    assert stats.paired([1.0, 2.0], [0.0, 1.0]).p is None  # identical differences
    with pytest.raises(ValueError):
        stats.paired([1.0], [1.0, 2.0])
