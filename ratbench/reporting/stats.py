"""Two-sided t-tests for comparing results over seeds.

``welch_from_stats`` compares our seeds with a published mean and standard deviation (Welch's
unequal-variance test, as ``scipy.stats.ttest_ind_from_stats(equal_var=False)``);
``paired`` compares two methods on the seeds they share (``scipy.stats.ttest_rel``). The
statistic and degrees of freedom are computed here, where an undefined test (too few values,
no variance) gives None instead of SciPy's NaN and warning; the tail probability is SciPy's
Student t distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TTest:
    """A test result: the mean difference (first minus second), t, degrees of freedom and the
    two-sided p-value (None where the test is undefined: too few values or no variance)."""

    difference: float
    t: float | None
    df: float | None
    p: float | None


def two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    # imported here: SciPy takes about a second to import, and only tables with tests need it
    from scipy.stats import t as student_t

    return float(2.0 * student_t.sf(abs(t), df))


def welch_from_stats(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int) -> TTest:
    """Welch's t-test from two means, sample standard deviations (ddof=1) and sizes."""
    difference = mean1 - mean2
    if n1 < 2 or n2 < 2 or any(math.isnan(v) for v in (std1, std2)):
        return TTest(difference, None, None, None)
    a, b = std1**2 / n1, std2**2 / n2
    if a + b == 0:
        return TTest(difference, None, None, None)
    t = difference / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))
    return TTest(difference, t, df, two_sided_p(t, df))


def paired(first: Sequence[float], second: Sequence[float]) -> TTest:
    """The paired t-test of ``first - second`` (the same seeds, in the same order)."""
    if len(first) != len(second):
        raise ValueError("a paired test needs values for the same seeds")
    differences = [x - y for x, y in zip(first, second, strict=True)]
    n = len(differences)
    mean = sum(differences) / n if n else math.nan
    if n < 2:
        return TTest(mean, None, None, None)
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    if std == 0:
        return TTest(mean, None, None, None)
    t = mean / (std / math.sqrt(n))
    return TTest(mean, t, n - 1, two_sided_p(t, n - 1))
