"""The one evaluator: token-level rationale quality, sparsity and accuracy (METHODS.md 3).

Counts are summed over the whole split (micro) and divided once; a zero denominator gives 0,
never NaN. Modes:

* ``reference``: the rationale the method gives in reference mode (a stochastic Gumbel sample
  for the RNP family); selections on padding are NOT removed, so they count as predicted
  tokens (false positives), exactly as the reference ``compute_micro_stats``.
* ``clean``: the deterministic rationale, with padding removed.

Post-hoc methods return scores; every mode binarizes them with the same top-k rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ratbench.method import Method
from ratbench.types import Batch, EvalMode, RationaleOutput


def safe_div(num: float, den: float) -> float:
    """``num / den``, or 0.0 when ``den`` is 0 (an empty selection scores 0, not NaN)."""
    return num / den if den else 0.0


def f1_score(precision: float, recall: float) -> float:
    """Harmonic mean with the same zero rule."""
    return safe_div(2 * precision * recall, precision + recall)


def top_k_mask(scores: torch.Tensor, mask: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``max(1, round(sparsity * len_b))`` highest-scoring real tokens of each row.

    Ties go to the earlier position. Padding is never kept; a NaN score ranks last.
    """
    # float64 so that k matches Python's round() on sparsity * length (half to even).
    k = torch.clamp(torch.round(sparsity * mask.sum(dim=1).double()), min=1)
    # A stable descending sort keeps tied scores in position order; padding and NaN sort last.
    keyed = torch.nan_to_num(scores.double(), nan=-np.inf).masked_fill(mask == 0, -np.inf)
    rank = keyed.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    return ((rank < k.unsqueeze(1)) & (mask > 0)).to(mask.dtype)


@dataclass
class RationaleCounts:
    """Sufficient statistics of the rationale metrics, mergeable across batches."""

    true_positive: float = 0.0
    predicted: float = 0.0
    gold: float = 0.0
    tokens: float = 0.0
    correct: int = 0
    examples: int = 0
    has_predictions: bool = True
    macro: list[tuple[float, float, float]] = field(default_factory=list)

    def update(
        self,
        pred: np.ndarray,
        gold: np.ndarray,
        mask: np.ndarray,
        predicted_labels: np.ndarray | None,
        labels: np.ndarray,
    ) -> None:
        """Add one batch: ``pred``, ``gold``, ``mask`` are ``[B, T]`` 0/1 arrays."""
        pred, gold, mask = (np.asarray(a, dtype=np.float64) for a in (pred, gold, mask))
        tp = (pred * gold).sum(axis=1)
        n_pred = pred.sum(axis=1)
        n_gold = gold.sum(axis=1)
        self.true_positive += float(tp.sum())
        self.predicted += float(n_pred.sum())
        self.gold += float(n_gold.sum())
        self.tokens += float(mask.sum())
        self.examples += len(labels)
        if predicted_labels is None:
            self.has_predictions = False
        else:
            self.correct += int((predicted_labels == labels).sum())
        for t, p, g in zip(tp, n_pred, n_gold, strict=True):
            precision, recall = safe_div(t, p), safe_div(t, g)
            self.macro.append((precision, recall, f1_score(precision, recall)))

    def metrics(self) -> dict[str, float | None]:
        """Percentages: S, Acc (None without predictions), P, R, F1 and macro P/R/F1."""
        precision = safe_div(self.true_positive, self.predicted)
        recall = safe_div(self.true_positive, self.gold)
        macro = np.asarray(self.macro, dtype=np.float64).reshape(-1, 3)
        macro_means = macro.mean(axis=0) if len(macro) else np.zeros(3)
        return {
            "S": 100 * safe_div(self.predicted, self.tokens),
            "Acc": 100 * safe_div(self.correct, self.examples) if self.has_predictions else None,
            "P": 100 * precision,
            "R": 100 * recall,
            "F1": 100 * f1_score(precision, recall),
            "macro_P": 100 * float(macro_means[0]),
            "macro_R": 100 * float(macro_means[1]),
            "macro_F1": 100 * float(macro_means[2]),
            "n_examples": self.examples,
        }


@dataclass
class EvalResult:
    """Metrics of one split in one mode, plus per-example records for ``rationales.jsonl.gz``."""

    metrics: dict[str, Any]
    records: list[dict[str, Any]]


def binarize(
    out: RationaleOutput, batch: Batch, mode: EvalMode, sparsity: float | None, method: str = "method"
) -> torch.Tensor:
    """The evaluated 0/1 rationale of ``batch`` as the mode prescribes, from the method's output:
    its mask, or the shared top-k of its scores at ``sparsity``."""
    if out.mask is not None:
        pred = out.mask.float()
    elif out.scores is not None:
        if sparsity is None:
            raise ValueError(f"{method} returned token scores but its config has no sparsity to keep the top-k at")
        pred = top_k_mask(out.scores, batch.selectable, sparsity)
    else:
        raise ValueError(f"{method} returned neither a mask nor scores")
    if mode == "clean":
        pred = pred * batch.selectable
    elif batch.has_context:  # the query and special tokens are never part of a rationale
        pred = pred * (1 - batch.context)
    return pred


def accuracy(method: Method, batches: Iterable[Batch], mode: EvalMode) -> float | None:
    """Full-pipeline accuracy (percent) over ``batches``; None for methods without predictions."""
    correct = total = 0
    for batch in batches:
        logits = method.rationalize(batch, mode).logits
        if logits is None:
            return None
        correct += int((logits.argmax(-1) == batch.labels).sum())
        total += len(batch.labels)
    return 100 * safe_div(correct, total)


def predictor_accuracy(method: Method, batches: Iterable[Batch], which: str) -> float | None:
    """Accuracy (percent) of the method's predictor on the full text (``which="full"``) or on
    the gold rationale (``"gold"``); None if the method has no predictor."""
    correct = total = 0
    for batch in batches:
        rationale = batch.mask if which == "full" else batch.gold + batch.context  # the query stays visible
        logits = method.predict(batch, rationale)
        if logits is None:
            return None
        correct += int((logits.argmax(-1) == batch.labels).sum())
        total += len(batch.labels)
    return 100 * safe_div(correct, total)


def rationalize_split(method: Method, batches: Iterable[Batch], mode: EvalMode) -> list[tuple[Batch, RationaleOutput]]:
    """The method's output on every batch of an annotated split (every batch must carry ``gold``)."""
    outputs = []
    for batch in batches:
        if batch.gold is None:
            raise ValueError("evaluate_rationales needs an annotated split (batch.gold is None)")
        outputs.append((batch, method.rationalize(batch, mode)))
    return outputs


def score_rationales(
    method: Method, outputs: list[tuple[Batch, RationaleOutput]], mode: EvalMode, sparsity: float | None
) -> EvalResult:
    """Rationale metrics of the outputs of ``rationalize_split`` in ``mode``.

    ``sparsity`` is the target used to binarize post-hoc scores.
    """
    counts = RationaleCounts()
    records: list[dict[str, Any]] = []
    for batch, out in outputs:
        pred = binarize(out, batch, mode, sparsity, repr(method.name))
        logits = out.logits
        # Counted over the document positions (selectable) only; in reference mode a selection on
        # padding still counts, as in the reference code.
        pred_np, gold_np, mask_np = (t.detach().cpu().numpy() for t in (pred, batch.gold, batch.selectable))
        labels_np = batch.labels.cpu().numpy()
        predicted = None if logits is None else logits.argmax(-1).cpu().numpy()
        probs = None if logits is None else torch.softmax(logits.float(), -1).cpu().numpy()
        scores = None if out.scores is None else out.scores.float().cpu().numpy()
        counts.update(pred_np, gold_np, mask_np, predicted, labels_np)
        lengths = mask_np.sum(axis=1).astype(int)
        context_np = batch.context.cpu().numpy() if batch.has_context else None
        for row, example_id in enumerate(batch.example_ids):
            # Records are in document coordinates: the context positions (query, separators) are
            # left out; selections on padding (they count in reference mode) are kept by storing
            # the row up to the last selected position when that is beyond the text.
            keep = slice(None) if context_np is None else context_np[row] == 0
            row_pred, row_gold = pred_np[row][keep], gold_np[row][keep]
            last = int(np.flatnonzero(row_pred)[-1]) + 1 if row_pred.any() else 0
            records.append(
                {
                    "id": example_id,
                    "label": int(labels_np[row]),
                    "pred": None if predicted is None else int(predicted[row]),
                    "length": int(lengths[row]),
                    "mask": row_pred[: max(lengths[row], last)].astype(int).tolist(),
                    "gold": row_gold[: lengths[row]].astype(int).tolist(),
                    "probs": None if probs is None else [round(float(p), 6) for p in probs[row]],
                }
            )
            if scores is not None:
                records[-1]["token_scores"] = [round(float(v), 6) for v in scores[row][keep][: lengths[row]]]
    metrics = counts.metrics()
    kept = [batch for batch, _ in outputs]
    metrics["acc_full_text"] = predictor_accuracy(method, kept, "full")
    metrics["acc_gold_rationale"] = predictor_accuracy(method, kept, "gold")
    return EvalResult(metrics, records)


def evaluate_rationales(method: Method, batches: Iterable[Batch], mode: EvalMode, sparsity: float | None) -> EvalResult:
    """Rationale metrics on an annotated split: ``rationalize_split`` then ``score_rationales``."""
    return score_rationales(method, rationalize_split(method, batches, mode), mode, sparsity)


def iter_batches(batches: Iterable[Batch], device: torch.device) -> Iterator[Batch]:
    """Move each batch to ``device`` as it is consumed."""
    for batch in batches:
        yield batch.to(device)
