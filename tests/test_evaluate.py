"""The evaluator (METHODS.md 3) against a plain-python oracle of the micro/macro rationale metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ratbench.evaluation.evaluator import RationaleCounts, evaluate_rationales, f1_score, safe_div, top_k_mask
from ratbench.method import Method
from ratbench.types import Batch, RationaleOutput

METRIC_KEYS = {"S", "Acc", "P", "R", "F1", "macro_P", "macro_R", "macro_F1", "acc_full_text", "acc_gold_rationale"}


# -- oracle ----------------------------------------------------------------------------------


def _div(num: float, den: float) -> float:
    return num / den if den != 0 else 0.0


def oracle_metrics(preds: list[list[int]], golds: list[list[int]], masks: list[list[int]]) -> dict[str, float]:
    """Micro P/R/F1/S over the whole set (divided once) and macro means of per-example P/R/F1, in %."""
    tp = n_pred = n_gold = n_tok = 0
    macro = []
    for pred, gold, mask in zip(preds, golds, masks, strict=True):
        t = sum(p * g for p, g in zip(pred, gold, strict=True))
        p_count, g_count = sum(pred), sum(gold)
        tp, n_pred, n_gold, n_tok = tp + t, n_pred + p_count, n_gold + g_count, n_tok + sum(mask)
        prec, rec = _div(t, p_count), _div(t, g_count)
        macro.append((prec, rec, _div(2 * prec * rec, prec + rec)))
    precision, recall = _div(tp, n_pred), _div(tp, n_gold)
    n = len(macro)
    return {
        "S": 100 * _div(n_pred, n_tok),
        "P": 100 * precision,
        "R": 100 * recall,
        "F1": 100 * _div(2 * precision * recall, precision + recall),
        "macro_P": 100 * sum(m[0] for m in macro) / n if n else 0.0,
        "macro_R": 100 * sum(m[1] for m in macro) / n if n else 0.0,
        "macro_F1": 100 * sum(m[2] for m in macro) / n if n else 0.0,
    }


def oracle_top_k(scores: list[float], length: int, sparsity: float) -> list[int]:
    """Top ``max(1, round(sparsity*length))`` of the real positions, ties to the earlier one."""
    k = max(1, round(sparsity * length))
    order = sorted(range(length), key=lambda t: (-scores[t], t))
    keep = set(order[:k])
    return [1 if t in keep else 0 for t in range(len(scores))]


def assert_metrics_close(got: dict, want: dict) -> None:
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


# -- fixtures --------------------------------------------------------------------------------


def make_examples(rng: np.random.Generator, n: int, max_len: int = 12) -> list[dict]:
    """Random examples (ids with OOV zeros, gold, label) plus a raw selection that may touch padding."""
    examples = []
    for i in range(n):
        length = int(rng.integers(1, max_len + 1))
        ids = rng.integers(1, 50, size=length)
        ids[rng.random(length) < 0.2] = 0  # OOV: id 0 but a real token
        gold = (rng.random(length) < 0.3).astype(int)
        examples.append({"id": f"ex{i}", "ids": ids, "gold": gold, "label": int(rng.integers(0, 2))})
    return examples


def collate(examples: list[dict]) -> Batch:
    width = max(len(ex["ids"]) for ex in examples)
    ids = np.zeros((len(examples), width), dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=np.float32)
    gold = np.zeros((len(examples), width), dtype=np.float32)
    for row, ex in enumerate(examples):
        n = len(ex["ids"])
        ids[row, :n], mask[row, :n], gold[row, :n] = ex["ids"], 1, ex["gold"]
    return Batch(
        ids=torch.from_numpy(ids),
        mask=torch.from_numpy(mask),
        labels=torch.tensor([ex["label"] for ex in examples]),
        gold=torch.from_numpy(gold),
        example_ids=[ex["id"] for ex in examples],
    )


def make_batches(examples: list[dict], sizes: list[int]) -> list[Batch]:
    batches, start = [], 0
    for size in sizes:
        batches.append(collate(examples[start : start + size]))
        start += size
    assert start == len(examples)
    return batches


def one_hot_logits(classes: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), 2).float() * 3 - 1


class FakeMethod(Method):
    """Returns fixed per-example rationales (mask or scores) and fixed predictions."""

    name = "fake"

    def __init__(
        self,
        selections: dict[str, np.ndarray] | None = None,
        scores: dict[str, np.ndarray] | None = None,
        pipeline_pred: dict[str, int] | None = None,
        full_pred: dict[str, int] | None = None,
        gold_pred: dict[str, int] | None = None,
    ) -> None:
        self.selections, self.scores = selections, scores
        self.pipeline_pred, self.full_pred, self.gold_pred = pipeline_pred, full_pred, gold_pred
        self.modes: list[str] = []

    def train_epoch(self, batches):  # pragma: no cover - never trained
        return {}

    @staticmethod
    def _rows(table: dict[str, np.ndarray], batch: Batch) -> torch.Tensor:
        """Row per example, cut/padded to the batch width (selections may extend into padding)."""
        out = torch.zeros(batch.mask.shape)
        for row, ex_id in enumerate(batch.example_ids):
            values = torch.as_tensor(table[ex_id], dtype=torch.float32)[: out.shape[1]]
            out[row, : len(values)] = values
        return out

    def rationalize(self, batch: Batch, mode) -> RationaleOutput:
        self.modes.append(mode)
        logits = None
        if self.pipeline_pred is not None:
            logits = one_hot_logits([self.pipeline_pred[i] for i in batch.example_ids])
        if self.selections is not None:
            return RationaleOutput(logits=logits, mask=self._rows(self.selections, batch))
        scores = self._rows(self.scores, batch)
        return RationaleOutput(logits=logits, scores=scores)

    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor | None:
        if self.full_pred is None:
            return None
        # The gold rationale gets its own predictions; the full text and the comprehensiveness and
        # sufficiency probes (text without / with only the rationale) those of the full text.
        table = self.gold_pred if torch.equal(rationale, batch.gold) else self.full_pred
        return one_hot_logits([table[i] for i in batch.example_ids])


def random_selections(rng: np.random.Generator, examples: list[dict], width: int, p: float = 0.35) -> dict:
    """Raw 0/1 selections of ``width`` positions, i.e. also over (possible) padding."""
    return {ex["id"]: (rng.random(width) < p).astype(np.float32) for ex in examples}


def batch_widths(batches: list[Batch]) -> dict[str, int]:
    return {i: b.mask.shape[1] for b in batches for i in b.example_ids}


# -- safe_div / f1 ---------------------------------------------------------------------------


def test_safe_div_zero_denominator_is_zero_not_nan():
    """A zero denominator gives 0.0 (empty selection), otherwise plain division."""
    assert safe_div(3.0, 0.0) == 0.0
    assert safe_div(0.0, 0) == 0.0
    assert safe_div(3.0, 4.0) == 0.75
    assert f1_score(0.0, 0.0) == 0.0
    assert f1_score(0.5, 1.0) == pytest.approx(2 / 3)


# -- RationaleCounts -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_counts_match_oracle_over_random_batches(seed):
    """Micro counts summed over batches then divided once, macro per example, match the oracle."""
    rng = np.random.default_rng(seed)
    counts = RationaleCounts()
    preds, golds, masks, correct, total = [], [], [], 0, 0
    for _ in range(4):
        b, t = int(rng.integers(1, 6)), int(rng.integers(1, 15))
        lengths = rng.integers(0, t + 1, size=b)
        mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
        gold = ((rng.random((b, t)) < 0.3) * mask).astype(np.float32)
        pred = (rng.random((b, t)) < 0.4).astype(np.float32)  # may select padding
        labels = rng.integers(0, 2, size=b)
        predicted = rng.integers(0, 2, size=b)
        counts.update(pred, gold, mask, predicted, labels)
        preds += pred.astype(int).tolist()
        golds += gold.astype(int).tolist()
        masks += mask.astype(int).tolist()
        correct += int((predicted == labels).sum())
        total += b
    got = counts.metrics()
    assert_metrics_close(got, oracle_metrics(preds, golds, masks))
    assert got["Acc"] == pytest.approx(100 * correct / total)
    assert got["n_examples"] == total
    assert not any(isinstance(v, float) and math.isnan(v) for v in got.values())


def test_counts_micro_differs_from_per_batch_average():
    """Micro metrics pool counts over batches instead of averaging per-batch ratios."""
    counts = RationaleCounts()
    one = np.ones((1, 4), dtype=np.float32)
    # batch 1: 1 of 1 predicted correct; batch 2: 1 of 4 predicted correct
    counts.update(np.array([[1, 0, 0, 0]], np.float32), np.array([[1, 0, 0, 0]], np.float32), one, None, np.zeros(1))
    counts.update(one, np.array([[1, 0, 0, 0]], np.float32), one, None, np.zeros(1))
    got = counts.metrics()
    assert got["P"] == pytest.approx(100 * 2 / 5)  # not (1 + 1/4) / 2
    assert got["macro_P"] == pytest.approx(100 * (1 + 0.25) / 2)
    assert got["S"] == pytest.approx(100 * 5 / 8)
    assert got["Acc"] is None  # a batch without predicted labels makes accuracy N/A


def test_counts_empty_selection_scores_zero_not_nan():
    """No predicted tokens: P = F1 = 0 (micro and macro), S = 0, R = 0, never NaN."""
    counts = RationaleCounts()
    mask = np.ones((2, 5), np.float32)
    gold = np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], np.float32)
    counts.update(np.zeros((2, 5), np.float32), gold, mask, np.array([1, 0]), np.array([1, 1]))
    got = counts.metrics()
    for key in ("S", "P", "R", "F1", "macro_P", "macro_R", "macro_F1"):
        assert got[key] == 0.0, key
    assert got["Acc"] == 50.0


def test_counts_oov_tokens_are_real_tokens():
    """OOV tokens (id 0, mask 1) count in the sparsity denominator and in recall when gold."""
    counts = RationaleCounts()
    # token 2 is OOV (its id would be 0), but the mask says it is real and it is gold
    mask = np.array([[1, 1, 1, 0]], np.float32)
    gold = np.array([[0, 0, 1, 0]], np.float32)
    pred = np.array([[0, 0, 1, 0]], np.float32)
    counts.update(pred, gold, mask, None, np.zeros(1))
    got = counts.metrics()
    assert got["S"] == pytest.approx(100 / 3)
    assert got["R"] == pytest.approx(100.0)
    assert got["P"] == pytest.approx(100.0)


# -- top_k_mask ------------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.1, 0.125, 0.2, 0.25, 0.5])
def test_top_k_matches_oracle_with_ties_and_padding(sparsity):
    """Keep max(1, round(s*len)) best real tokens, ties to the earlier position, never padding."""
    rng = np.random.default_rng(int(sparsity * 1000))
    for _ in range(20):
        b, t = int(rng.integers(1, 6)), int(rng.integers(1, 41))
        lengths = rng.integers(0, t + 1, size=b)
        lengths[0] = t
        mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
        scores = rng.integers(-3, 4, size=(b, t)).astype(np.float32)  # many ties
        scores[mask == 0] = 100.0  # padding scores highest: must still never be kept
        got = top_k_mask(torch.from_numpy(scores), torch.from_numpy(mask), sparsity)
        assert got.dtype == torch.float32
        want = [
            oracle_top_k(scores[r].tolist(), int(lengths[r]), sparsity) if lengths[r] else [0] * t for r in range(b)
        ]
        assert got.numpy().astype(int).tolist() == want


def test_top_k_rounds_half_to_even_and_keeps_at_least_one():
    """k = max(1, round(s*len)) with Python's round: 0.5 -> 1 (clamped), 1.5 -> 2, 2.5 -> 2."""
    for length, k in [(4, 1), (12, 2), (20, 2), (28, 4), (1, 1)]:
        scores = torch.arange(length, 0, -1, dtype=torch.float32)[None]
        got = top_k_mask(scores, torch.ones(1, length), 0.125)
        assert got.sum().item() == k, length
        assert got[0, :k].sum().item() == k  # the k highest are the first k here


def test_top_k_all_equal_scores_pick_the_first_tokens():
    """All-equal moderate scores: the first k real tokens are kept."""
    scores = torch.full((3, 40), 0.5)
    mask = torch.ones(3, 40)
    mask[2, 30:] = 0
    got = top_k_mask(scores, mask, 0.1)
    assert got[0].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert got[2].nonzero().flatten().tolist() == [0, 1, 2]


def test_top_k_ties_go_to_earlier_position_for_large_scores():
    """Ties of large-magnitude scores still go to the earlier position."""
    scores = torch.full((1, 40), 1e6)
    got = top_k_mask(scores, torch.ones(1, 40), 0.1)
    assert got[0].nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_top_k_keeps_highest_of_tiny_scores():
    """Tiny but distinct scores (e.g. gradients) are still ranked by score, not by position."""
    scores = torch.tensor([[1e-13, 2e-13, 3e-13, 4e-13]])
    got = top_k_mask(scores, torch.ones(1, 4), 0.25)
    assert got.tolist() == [[0.0, 0.0, 0.0, 1.0]]


# -- evaluate_rationales ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reference", "clean"])
@pytest.mark.parametrize("seed", range(3))
def test_evaluate_selections_match_oracle(mode, seed):
    """Micro/macro metrics, accuracies and records match the oracle; padding counts only in reference."""
    rng = np.random.default_rng(100 + seed)
    examples = make_examples(rng, 13)
    batches = make_batches(examples, [5, 1, 7])
    widths = batch_widths(batches)
    selections = random_selections(rng, examples, 16)
    pipeline = {ex["id"]: int(rng.integers(0, 2)) for ex in examples}
    full = {ex["id"]: int(rng.integers(0, 2)) for ex in examples}
    gold_p = {ex["id"]: int(rng.integers(0, 2)) for ex in examples}
    method = FakeMethod(selections=selections, pipeline_pred=pipeline, full_pred=full, gold_pred=gold_p)

    result = evaluate_rationales(method, iter(batches), mode, sparsity=0.2)

    preds, golds, masks = [], [], []
    for ex in examples:
        n, width = len(ex["ids"]), widths[ex["id"]]
        raw = selections[ex["id"]][:width].astype(int).tolist()
        pred = raw if mode == "reference" else raw[:n] + [0] * (width - n)
        preds.append(pred)
        golds.append(ex["gold"].tolist() + [0] * (width - n))
        masks.append([1] * n + [0] * (width - n))
    metrics = result.metrics
    assert set(metrics) >= METRIC_KEYS
    assert_metrics_close(metrics, oracle_metrics(preds, golds, masks))
    labels = {ex["id"]: ex["label"] for ex in examples}
    n_ex = len(examples)
    assert metrics["Acc"] == pytest.approx(100 * sum(pipeline[i] == labels[i] for i in labels) / n_ex)
    assert metrics["acc_full_text"] == pytest.approx(100 * sum(full[i] == labels[i] for i in labels) / n_ex)
    assert metrics["acc_gold_rationale"] == pytest.approx(100 * sum(gold_p[i] == labels[i] for i in labels) / n_ex)
    assert set(method.modes) == {mode}

    # records: one per example, in batch order, enough to recompute the same micro metrics
    assert [r["id"] for r in result.records] == [ex["id"] for ex in examples]
    rec_preds, rec_golds, rec_masks = [], [], []
    for rec, ex, pred in zip(result.records, examples, preds, strict=True):
        n = len(ex["ids"])
        assert rec["label"] == ex["label"] and rec["pred"] == pipeline[ex["id"]]
        assert rec["length"] == n
        assert rec["gold"] == ex["gold"].tolist()
        assert rec["mask"] + [0] * (len(pred) - len(rec["mask"])) == pred
        if mode == "clean":
            assert len(rec["mask"]) == n
        width = max(len(rec["mask"]), n)
        rec_preds.append(rec["mask"] + [0] * (width - len(rec["mask"])))
        rec_golds.append(rec["gold"] + [0] * (width - n))
        rec_masks.append([1] * n + [0] * (width - n))
    assert_metrics_close(oracle_metrics(rec_preds, rec_golds, rec_masks), oracle_metrics(preds, golds, masks))


def test_evaluate_reference_counts_padding_as_false_positives():
    """Selections on padding inflate S and lower P in reference mode; clean mode drops them."""
    ex = [
        {"id": "a", "ids": np.array([5, 0, 7, 9]), "gold": np.array([0, 1, 1, 0]), "label": 1},
        {"id": "b", "ids": np.array([3, 4]), "gold": np.array([1, 0]), "label": 0},
    ]
    sel = {"a": np.array([0, 1, 1, 0], np.float32), "b": np.array([1, 0, 1, 1], np.float32)}
    batches = [collate(ex)]
    ref = evaluate_rationales(FakeMethod(selections=sel), batches, "reference", 0.2)
    clean = evaluate_rationales(FakeMethod(selections=sel), batches, "clean", 0.2)
    # real tokens 6, gold 3 (one of them OOV), selected real 3 (all gold), selected padding 2
    assert clean.metrics["S"] == pytest.approx(100 * 3 / 6)
    assert clean.metrics["P"] == pytest.approx(100.0)
    assert clean.metrics["R"] == pytest.approx(100.0)
    assert ref.metrics["S"] == pytest.approx(100 * 5 / 6)
    assert ref.metrics["P"] == pytest.approx(100 * 3 / 5)
    assert ref.metrics["R"] == pytest.approx(100.0)
    assert ref.metrics["macro_P"] == pytest.approx(100 * (1 + 1 / 3) / 2)
    assert ref.records[1]["mask"] == [1, 0, 1, 1]
    assert clean.records[1]["mask"] == [1, 0]
    # no predictions from the fake -> accuracies are N/A, not 0
    assert ref.metrics["Acc"] is None and ref.metrics["acc_full_text"] is None
    assert ref.records[0]["pred"] is None


def test_evaluate_empty_selection_is_zero_not_nan():
    """A method that never selects anything gets P = R = F1 = S = 0."""
    rng = np.random.default_rng(7)
    examples = make_examples(rng, 6)
    sel = {ex["id"]: np.zeros(12, np.float32) for ex in examples}
    result = evaluate_rationales(FakeMethod(selections=sel), make_batches(examples, [6]), "clean", 0.2)
    for key in ("S", "P", "R", "F1", "macro_P", "macro_R", "macro_F1"):
        assert result.metrics[key] == 0.0, key


@pytest.mark.parametrize("mode", ["reference", "clean"])
def test_evaluate_post_hoc_scores_binarized_with_top_k(mode):
    """Post-hoc scores are binarized with the top-k rule in both modes (padding never kept)."""
    rng = np.random.default_rng(11)
    examples = make_examples(rng, 9, max_len=20)
    batches = make_batches(examples, [4, 5])
    widths = batch_widths(batches)
    scores = {ex["id"]: rng.integers(0, 5, size=20).astype(np.float32) for ex in examples}
    for ex in examples:
        scores[ex["id"]][len(ex["ids"]) :] = 50.0  # padding looks best
    method = FakeMethod(scores=scores)
    result = evaluate_rationales(method, batches, mode, sparsity=0.25)
    preds, golds, masks = [], [], []
    for ex in examples:
        n, width = len(ex["ids"]), widths[ex["id"]]
        preds.append(oracle_top_k(scores[ex["id"]][:width].tolist(), n, 0.25))
        golds.append(ex["gold"].tolist() + [0] * (width - n))
        masks.append([1] * n + [0] * (width - n))
    assert_metrics_close(result.metrics, oracle_metrics(preds, golds, masks))
    for rec, pred, ex in zip(result.records, preds, examples, strict=True):
        assert rec["mask"] == pred[: len(ex["ids"])]
        assert sum(rec["mask"]) == max(1, round(0.25 * len(ex["ids"])))
    assert result.metrics["Acc"] is None


def test_evaluate_requires_gold():
    """An unannotated split is refused, not scored against nothing."""
    rng = np.random.default_rng(3)
    examples = make_examples(rng, 2)
    batch = collate(examples)
    batch.gold = None
    sel = {ex["id"]: np.ones(12, np.float32) for ex in examples}
    with pytest.raises(ValueError, match="annotated"):
        evaluate_rationales(FakeMethod(selections=sel), [batch], "clean", 0.2)


def test_words_of_maps_pieces_to_words_by_the_any_and_first_rules() -> None:
    """Word pieces of one word count once: selected when any piece is (or its first piece is)."""
    from ratbench.evaluation.evaluator import words_of

    # [CLS] un ##believ ##able beer [SEP]: three words' pieces, context at both ends
    word_index = np.array([-1, 0, 0, 0, 1, -1])
    document = np.array([0, 1, 1, 1, 1, 0])
    pred = np.array([1, 0, 1, 0, 1, 1])
    assert words_of(pred, word_index, document, "any").tolist() == [1, 1]
    assert words_of(pred, word_index, document, "first").tolist() == [0, 1]
    assert words_of(np.arange(6.0), np.arange(6), np.ones(6), "any").tolist() == list(range(6))
