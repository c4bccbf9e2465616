"""ERASER's rationale metrics (DeYoung et al. 2020, ``rationale_benchmark/metrics.py``) on one
split, restated for 0/1 masks over the document words of each example.

* IOU F1: each predicted span (a maximal run of selected words) is a true positive when its best
  intersection-over-union with a gold span of the same example reaches the threshold (0.5).
  Micro P = TP / predicted spans and R = TP / gold spans over the split; macro P (R) is the mean
  per-example P over examples with a predicted (gold) span, and macro F1 the F1 of those means,
  exactly as ERASER's ``partial_match_score``. Gold spans are the maximal runs of the gold mask
  (ERASER keeps adjacent evidence spans apart; they touch in no example of FEVER or MultiRC).
* sentence P/R/F1, micro over (example, sentence): a gold sentence holds a gold word, a
  predicted sentence a selected word (so the gold rationale scores 100). ``nir_sentence_*``:
  NIR's rule instead, the ``max(1, round(rate * #sentences))`` sentences with the highest mean
  token score are predicted (a mask is its own score; ties to the earlier sentence).
* AUPRC: per example, the area under the precision-recall curve of the token scores against
  the gold words (``precision_recall_curve`` + ``auc``), averaged over the examples that have
  gold words (ERASER would average a NaN in for an example without).
* comprehensiveness and sufficiency: the means over examples of ``p(ŷ|x) - p(ŷ|x without r)``
  and ``p(ŷ|x) - p(ŷ|r)``, ŷ the class predicted from the full text ``x``; in percentage points.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IOU_THRESHOLD = 0.5


def spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """The maximal runs of 1 in a 0/1 vector, as ``(start, end)`` with ``end`` exclusive."""
    padded = np.concatenate([[0], (np.asarray(mask) > 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    overlap = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - overlap
    return overlap / union if union else 0.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def auprc(gold: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve of ``scores`` for the 0/1 ``gold`` (trapezoids over
    recall, with the curve's (recall 0, precision 1) end point), as scikit-learn's
    ``auc(recall, precision)`` of ``precision_recall_curve(gold, scores)``."""
    gold = np.asarray(gold, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    ranked_scores, ranked_gold = np.asarray(scores, dtype=np.float64)[order], gold[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(ranked_scores)), len(ranked_scores) - 1]
    true_positives = np.cumsum(ranked_gold)[last_of_each]
    selected = last_of_each + 1.0
    precision = np.r_[1.0, true_positives / selected]  # from the highest threshold down
    recall = np.r_[0.0, true_positives / gold.sum()]
    return float(np.sum((recall[1:] - recall[:-1]) * (precision[1:] + precision[:-1]) / 2))


def top_sentences(scores: np.ndarray, sentences: np.ndarray, rate: float) -> set[int]:
    """The ``max(1, round(rate * n))`` of the ``n`` sentences with the highest mean score."""
    numbers = list(dict.fromkeys(sentences.tolist()))
    means = [float(np.mean(scores[sentences == number])) for number in numbers]
    k = max(1, round(rate * len(numbers)))
    ranked = sorted(range(len(numbers)), key=lambda i: (-means[i], i))
    return {numbers[i] for i in ranked[:k]}


@dataclass
class EraserCounts:
    """Sufficient statistics of the ERASER metrics, one example at a time."""

    threshold: float = IOU_THRESHOLD
    span_hits: int = 0
    predicted_spans: int = 0
    gold_spans: int = 0
    macro_precision: list[float] = field(default_factory=list)
    macro_recall: list[float] = field(default_factory=list)
    sentence_hits: int = 0
    predicted_sentences: int = 0
    gold_sentences: int = 0
    ranked_sentence_hits: int = 0
    ranked_sentences: int = 0
    auprcs: list[float] = field(default_factory=list)
    comprehensiveness: list[float] = field(default_factory=list)
    sufficiency: list[float] = field(default_factory=list)

    def add_spans(self, pred: np.ndarray, gold: np.ndarray) -> None:
        """One example's 0/1 prediction and gold over its document words."""
        predicted, truth = spans(pred), spans(gold)
        hits = sum(any(_iou(p, t) >= self.threshold for t in truth) for p in predicted)
        self.span_hits += hits
        self.predicted_spans += len(predicted)
        self.gold_spans += len(truth)
        if predicted:
            self.macro_precision.append(hits / len(predicted))
        if truth:
            self.macro_recall.append(hits / len(truth))

    def add_sentences(
        self, pred: np.ndarray, scores: np.ndarray, gold: np.ndarray, sentences: np.ndarray, rate: float
    ) -> None:
        """One example's prediction, token scores (or the prediction again), gold and sentence
        number per document word; ``rate`` is the share of sentences NIR's rule keeps."""
        truth = set(sentences[gold > 0].tolist())
        predicted = set(sentences[pred > 0].tolist())
        ranked = top_sentences(scores, sentences, rate)
        self.sentence_hits += len(predicted & truth)
        self.predicted_sentences += len(predicted)
        self.gold_sentences += len(truth)
        self.ranked_sentence_hits += len(ranked & truth)
        self.ranked_sentences += len(ranked)

    def add_scores(self, scores: np.ndarray, gold: np.ndarray) -> None:
        """One example's soft token scores (AUPRC; skipped without gold words)."""
        if gold.sum() > 0:
            self.auprcs.append(auprc(gold, scores))

    def add_faithfulness(self, full: float, without_rationale: float, rationale_only: float) -> None:
        """One example's probabilities of the full-text class: on the full text, on the text
        without the rationale, and on the rationale alone."""
        self.comprehensiveness.append(full - without_rationale)
        self.sufficiency.append(full - rationale_only)

    def metrics(self) -> dict[str, float | None]:
        """The figures in percent (None for those the split gave nothing to compute from)."""
        out: dict[str, float | None] = {}
        micro_p = self.span_hits / self.predicted_spans if self.predicted_spans else 0.0
        micro_r = self.span_hits / self.gold_spans if self.gold_spans else 0.0
        macro_p = float(np.mean(self.macro_precision)) if self.macro_precision else 0.0
        macro_r = float(np.mean(self.macro_recall)) if self.macro_recall else 0.0
        out |= {"iou_P": 100 * macro_p, "iou_R": 100 * macro_r, "iou_F1": 100 * _f1(macro_p, macro_r)}
        out["iou_micro_F1"] = 100 * _f1(micro_p, micro_r)
        if self.ranked_sentences:  # examples with sentence boundaries were seen
            for prefix, hits, predicted in (
                ("sentence", self.sentence_hits, self.predicted_sentences),
                ("nir_sentence", self.ranked_sentence_hits, self.ranked_sentences),
            ):
                p = hits / predicted if predicted else 0.0
                r = hits / self.gold_sentences if self.gold_sentences else 0.0
                out |= {f"{prefix}_P": 100 * p, f"{prefix}_R": 100 * r, f"{prefix}_F1": 100 * _f1(p, r)}
        out["AUPRC"] = 100 * float(np.mean(self.auprcs)) if self.auprcs else None
        if self.comprehensiveness:
            out["comprehensiveness"] = 100 * float(np.mean(self.comprehensiveness))
            out["sufficiency"] = 100 * float(np.mean(self.sufficiency))
        return out
