"""The torch-free count helpers of the evaluator, viewer, datacheck and export.

Kept apart from :mod:`ratbench.evaluation.evaluator` (which needs torch) so that the commands that only read
counts (``show``, ``datacheck``, ``export``) start without loading torch.
"""

from __future__ import annotations


def safe_div(num: float, den: float) -> float:
    """``num / den``, or 0.0 when ``den`` is 0 (an empty selection scores 0, not NaN)."""
    return num / den if den else 0.0


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean with the same zero rule."""
    return safe_div(2 * precision * recall, precision + recall)
