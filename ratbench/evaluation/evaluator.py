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

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ratbench.counts import f1_score, safe_div
from ratbench.evaluation.eraser import EraserCounts
from ratbench.method import Method
from ratbench.types import Batch, EvalMode, RationaleOutput


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

    def update_row(
        self, pred: np.ndarray, gold: np.ndarray, mask: np.ndarray, predicted_label: Any, label: Any
    ) -> None:
        """Add one example: ``pred``, ``gold``, ``mask`` are 0/1 vectors of one length;
        ``predicted_label`` is None for methods without predictions."""
        self.update(
            pred[None],
            gold[None],
            mask[None],
            None if predicted_label is None else np.asarray([predicted_label]),
            np.asarray([label]),
        )

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
        return pred * batch.selectable
    return batch.document_part(pred)  # the query and special tokens are never part of a rationale


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


def gold_text(batch: Batch) -> Batch:
    """``batch`` with its human rationale as the text, as the reference's
    ``validate_rationales`` feeds the predictor (it passes the gold as the mask): the gold
    positions and the context are the only real positions, so the predictor pools (and a
    transformer attends) over them only."""
    if batch.gold is None:
        raise ValueError("the gold-rationale accuracy needs an annotated split (batch.gold is None)")
    return dataclasses.replace(batch, mask=batch.gold + batch.context, selectable=batch.gold)


def predictor_accuracy(method: Method, batches: Iterable[Batch], which: Literal["full", "gold"]) -> float | None:
    """Accuracy (percent) of the method's predictor on the full text (``which="full"``) or on
    the gold rationale (``"gold"``: ``gold_text``, the context stays visible); None if the
    method has no predictor."""
    correct = total = 0
    for batch in batches:
        if which == "gold":
            batch = gold_text(batch)
        logits = predictor_logits(method, batch, batch.mask)
        if logits is None:
            return None
        correct += int((logits.argmax(-1) == batch.labels).sum())
        total += len(batch.labels)
    return 100 * safe_div(correct, total)


def predictor_logits(method: Method, batch: Batch, rationale: torch.Tensor) -> torch.Tensor | None:
    """The method's predictor on ``rationale`` with the context visible (``Batch.visible``), so
    that every method reads the query whether or not its own ``predict`` applies the rule."""
    return method.predict(batch, batch.visible(rationale))


def rationalize_split(method: Method, batches: Iterable[Batch], mode: EvalMode) -> list[tuple[Batch, RationaleOutput]]:
    """The method's output on every batch of an annotated split (every batch must carry ``gold``)."""
    outputs = []
    for batch in batches:
        if batch.gold is None:
            raise ValueError("rationalize_split needs an annotated split (batch.gold is None)")
        outputs.append((batch, method.rationalize(batch, mode)))
    return outputs


def words_of(values: np.ndarray, word_index: np.ndarray, document: np.ndarray, rule: str) -> np.ndarray:
    """One row's per-position ``values`` on the document positions, as one value per document
    word: ``any`` (the maximum over the word's pieces: a word is selected when any of its pieces
    is) or ``first`` (the value at its first piece). With one position per word: the values."""
    positions = np.flatnonzero(document)
    words, picked = word_index[positions], values[positions]
    if len(words) == 0:
        return picked
    starts = np.flatnonzero(np.r_[True, words[1:] != words[:-1]])
    return np.maximum.reduceat(picked, starts) if rule == "any" else picked[starts]


@torch.no_grad()
def class_probabilities(method: Method, batch: Batch, rationale: torch.Tensor) -> np.ndarray | None:
    """Softmax of the method's predictor on ``rationale`` (the context stays visible), or None."""
    logits = predictor_logits(method, batch, rationale)
    return None if logits is None else torch.softmax(logits.float(), -1).cpu().numpy()


def score_rationales(
    method: Method,
    outputs: list[tuple[Batch, RationaleOutput]],
    mode: EvalMode,
    sparsity: float | None,
    word_rule: str = "any",
    sentences: Mapping[str, np.ndarray] | None = None,
) -> EvalResult:
    """Rationale metrics of the outputs of ``rationalize_split`` in ``mode``.

    S, P, R and F1 count the document's *words* (``word_rule``: a word is selected when
    ``any`` of its pieces is, or when its ``first`` piece is); the ``piece_*`` figures count its
    positions (word pieces; the same numbers with the word encoder). The query and special
    tokens never count; in reference mode a selection on padding counts as a predicted token,
    as in the reference code. ``sparsity`` is the target used to binarize post-hoc scores and
    the share of sentences kept for the sentence-level figures. ERASER's IOU F1, AUPRC (methods
    with token scores), sentence P/R/F1 (examples with ``sentences``: example id -> sentence of
    each document word) and comprehensiveness/sufficiency (methods with a predictor) are added
    as ``ratbench.evaluation.eraser`` defines them. Records are per document word.
    """
    scorer = _RationaleScorer(method, sparsity, word_rule, sentences or {})
    for batch, out in outputs:
        scorer.add_batch(batch, binarize(out, batch, mode, sparsity, repr(method.name)), out)
    return scorer.result([batch for batch, _ in outputs])


@dataclass(frozen=True)
class _BatchArrays:
    """One batch's evaluated rationale, gold rationale and outputs as numpy arrays."""

    pred: np.ndarray  # the evaluated 0/1 rationale, [B, T]
    gold: np.ndarray
    document: np.ndarray  # Batch.selectable
    mask: np.ndarray
    word_index: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray | None  # predicted labels; None without predictions
    probs: np.ndarray | None  # class probabilities of the predictions
    scores: np.ndarray | None  # token scores, for methods that give them

    @classmethod
    def of(cls, batch: Batch, pred: torch.Tensor, out: RationaleOutput) -> _BatchArrays:
        """The arrays of ``batch`` (annotated) with the rationale ``pred`` and the method's ``out``."""
        if batch.gold is None:
            raise ValueError("score_rationales needs an annotated split (batch.gold is None)")
        pred_np, gold_np, document_np, mask_np, word_index_np = (
            t.detach().cpu().numpy() for t in (pred, batch.gold, batch.selectable, batch.mask, batch.word_index)
        )
        logits = out.logits
        return cls(
            pred=pred_np,
            gold=gold_np,
            document=document_np,
            mask=mask_np,
            word_index=word_index_np,
            labels=batch.labels.cpu().numpy(),
            predicted=None if logits is None else logits.argmax(-1).cpu().numpy(),
            probs=None if logits is None else torch.softmax(logits.float(), -1).cpu().numpy(),
            scores=None if out.scores is None else out.scores.float().cpu().numpy(),
        )


@dataclass(frozen=True)
class _Faithfulness:
    """The predictor's class probabilities on the full text, on the text without the rationale
    and on the rationale alone (the context stays visible in each)."""

    full: np.ndarray
    without: np.ndarray
    only: np.ndarray

    @classmethod
    def of(cls, method: Method, batch: Batch, document_pred: torch.Tensor) -> _Faithfulness | None:
        """The three passes over ``batch`` with the rationale ``document_pred``; None for a
        method without a predictor."""
        full = class_probabilities(method, batch, batch.mask)
        if full is None:
            return None
        without = class_probabilities(method, batch, batch.mask * (1 - document_pred))
        only = class_probabilities(method, batch, document_pred)
        assert without is not None and only is not None  # the same predictor as for `full`
        return cls(full, without, only)

    def add_row(self, eraser: EraserCounts, row: int) -> None:
        """Comprehensiveness and sufficiency of one example, for its full-text predicted class."""
        predicted_class = int(self.full[row].argmax())
        eraser.add_faithfulness(
            float(self.full[row, predicted_class]),
            float(self.without[row, predicted_class]),
            float(self.only[row, predicted_class]),
        )


class _RationaleScorer:
    """The counts and per-example records of ``score_rationales``, batch by batch."""

    def __init__(self, method: Method, sparsity: float | None, word_rule: str, sentences: Mapping[str, np.ndarray]):
        self.method, self.sparsity, self.word_rule, self.sentences = method, sparsity, word_rule, sentences
        self.counts, self.piece_counts, self.eraser = RationaleCounts(), RationaleCounts(), EraserCounts()
        self.full_text_correct = 0  # full-text accuracy, from the pass comprehensiveness needs
        self.has_predictor = False
        self.records: list[dict[str, Any]] = []

    def add_batch(self, batch: Batch, pred: torch.Tensor, out: RationaleOutput) -> None:
        """Count one batch whose evaluated rationale is ``pred`` (from the method's ``out``)."""
        faithfulness = _Faithfulness.of(self.method, batch, pred * batch.selectable)
        self.has_predictor = faithfulness is not None
        if faithfulness is not None:
            self.full_text_correct += int((faithfulness.full.argmax(-1) == batch.labels.cpu().numpy()).sum())
        arrays = _BatchArrays.of(batch, pred, out)
        self.piece_counts.update(arrays.pred, arrays.gold, arrays.document, arrays.predicted, arrays.labels)
        for row, example_id in enumerate(batch.example_ids):
            self._add_row(arrays, row, example_id)
            if faithfulness is not None:
                faithfulness.add_row(self.eraser, row)

    def _add_row(self, arrays: _BatchArrays, row: int, example_id: str) -> None:
        """Count one example on its document words (and its selections on padding), and record it."""
        word_index, document = arrays.word_index[row], arrays.document[row]
        word_pred = words_of(arrays.pred[row], word_index, document, self.word_rule)
        word_gold = words_of(arrays.gold[row], word_index, document, "first")
        padding = arrays.pred[row][arrays.mask[row] == 0]  # selections there count in reference mode
        n_words = len(word_pred)
        self.counts.update_row(
            np.concatenate([word_pred, padding]),
            np.concatenate([word_gold, np.zeros_like(padding)]),
            np.concatenate([np.ones(n_words), np.zeros_like(padding)]),
            None if arrays.predicted is None else arrays.predicted[row],
            arrays.labels[row],
        )
        record = _row_record(arrays, row, example_id, word_pred, word_gold, padding)
        self.records.append(record)
        word_scores = None
        if arrays.scores is not None:
            word_scores = words_of(arrays.scores[row], word_index, document, "any")
            record["token_scores"] = [round(float(v), 6) for v in word_scores]
            self.eraser.add_scores(word_scores, word_gold)
        self.eraser.add_spans(word_pred, word_gold)
        if example_id in self.sentences and n_words:
            rate = self.sparsity if self.sparsity is not None else float(word_pred.mean())
            ranked = word_scores if word_scores is not None else word_pred
            self.eraser.add_sentences(word_pred, ranked, word_gold, self.sentences[example_id][:n_words], rate)

    def result(self, batches: list[Batch]) -> EvalResult:
        """The metrics and records of everything added; ``batches`` (the same) give the
        predictor's accuracy on the gold rationales."""
        metrics = self.counts.metrics() | self.eraser.metrics()
        metrics |= {
            f"piece_{key}": value
            for key, value in self.piece_counts.metrics().items()
            if key not in ("Acc", "n_examples")
        }
        examples = self.counts.examples
        metrics["acc_full_text"] = 100 * safe_div(self.full_text_correct, examples) if self.has_predictor else None
        metrics["acc_gold_rationale"] = predictor_accuracy(self.method, batches, "gold")
        return EvalResult(metrics, self.records)


def _row_record(
    arrays: _BatchArrays, row: int, example_id: str, word_pred: np.ndarray, word_gold: np.ndarray, padding: np.ndarray
) -> dict[str, Any]:
    """The ``rationales.jsonl.gz`` record of one example: its mask per document word, followed,
    when the row's last selection is on padding (beyond the text), by the padding up to it."""
    selected_padding = np.flatnonzero(padding)
    shown = padding[: selected_padding[-1] + 1] if len(selected_padding) else padding[:0]
    return {
        "id": example_id,
        "label": int(arrays.labels[row]),
        "pred": None if arrays.predicted is None else int(arrays.predicted[row]),
        "length": len(word_pred),
        "mask": np.concatenate([word_pred, shown]).astype(int).tolist(),
        "gold": word_gold.astype(int).tolist(),
        "probs": None if arrays.probs is None else [round(float(p), 6) for p in arrays.probs[row]],
    }


def evaluate_rationales(method: Method, batches: Iterable[Batch], mode: EvalMode, sparsity: float | None) -> EvalResult:
    """Rationale metrics on an annotated split: ``rationalize_split`` then ``score_rationales``."""
    return score_rationales(method, rationalize_split(method, batches, mode), mode, sparsity)


def iter_batches(batches: Iterable[Batch], device: torch.device) -> Iterator[Batch]:
    """Move each batch to ``device`` as it is consumed."""
    for batch in batches:
        yield batch.to(device)
