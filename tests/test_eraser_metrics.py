"""ERASER's metrics: against a plain restatement of ``rationale_benchmark/metrics.py``, on
hand-computed cases, and end to end (the gold rationale scores 100 on real FEVER documents)."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch

from ratbench.evaluation.eraser import EraserCounts, auprc, spans, top_sentences
from ratbench.evaluation.evaluator import rationalize_split, score_rationales
from ratbench.method import Method
from ratbench.types import Batch, RationaleOutput

FEVER = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "eraser"


class Rationale(NamedTuple):
    ann_id: str
    docid: str
    start_token: int
    end_token: int


def eraser_partial_match(truth: list[Rationale], pred: list[Rationale], threshold: float) -> dict[str, float]:
    """ERASER's ``partial_match_score`` for one threshold, restated from its definition."""
    ann_to_rat, pred_to_rat = defaultdict(list), defaultdict(list)
    for r in truth:
        ann_to_rat[r.ann_id, r.docid].append(r)
    for r in pred:
        pred_to_rat[r.ann_id, r.docid].append(r)
    num_classifications = {k: len(v) for k, v in pred_to_rat.items()}
    num_truth = {k: len(v) for k, v in ann_to_rat.items()}
    ious: dict = defaultdict(dict)
    for k in set(ann_to_rat) | set(pred_to_rat):
        for p in pred_to_rat.get(k, []):
            best = 0.0
            for t in ann_to_rat.get(k, []):
                num = len(set(range(p.start_token, p.end_token)) & set(range(t.start_token, t.end_token)))
                denom = len(set(range(p.start_token, p.end_token)) | set(range(t.start_token, t.end_token)))
                iou = 0 if denom == 0 else num / denom
                best = max(best, iou)
            ious[k][p] = best
    tps = {k: sum(int(x >= threshold) for x in vs.values()) for k, vs in ious.items()}
    micro_r = sum(tps.values()) / sum(num_truth.values()) if sum(num_truth.values()) else 0
    micro_p = sum(tps.values()) / sum(num_classifications.values()) if sum(num_classifications.values()) else 0
    macro_rs = [tps.get(k, 0.0) / n if n else 0 for k, n in num_truth.items()]
    macro_ps = [tps.get(k, 0.0) / n if n else 0 for k, n in num_classifications.items()]
    macro_r = sum(macro_rs) / len(macro_rs) if macro_rs else 0
    macro_p = sum(macro_ps) / len(macro_ps) if macro_ps else 0

    def f1(p: float, r: float) -> float:
        return 0 if p + r == 0 else 2 * p * r / (p + r)

    return {"micro_f1": f1(micro_p, micro_r), "macro_p": macro_p, "macro_r": macro_r, "macro_f1": f1(macro_p, macro_r)}


def _as_rationales(ann_id: str, mask: np.ndarray) -> list[Rationale]:
    return [Rationale(ann_id, "doc", start, end) for start, end in spans(mask)]


def test_spans_are_maximal_runs() -> None:
    assert spans(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1])) == [(0, 2), (4, 5), (6, 9)]
    assert spans(np.zeros(4)) == []


def test_iou_matches_erasers_partial_match_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    counts, truth, pred = EraserCounts(), [], []
    for i in range(200):
        length = int(rng.integers(1, 40))
        gold = (rng.random(length) < rng.uniform(0, 0.5)).astype(int)
        guess = (rng.random(length) < rng.uniform(0, 0.5)).astype(int)
        if i % 7 == 0:
            guess = gold.copy()  # some exact matches
        counts.add_spans(guess, gold)
        truth += _as_rationales(f"a{i}", gold)
        pred += _as_rationales(f"a{i}", guess)
    expected = eraser_partial_match(truth, pred, 0.5)
    got = counts.metrics()
    assert got["iou_F1"] == pytest.approx(100 * expected["macro_f1"])
    assert got["iou_P"] == pytest.approx(100 * expected["macro_p"])
    assert got["iou_R"] == pytest.approx(100 * expected["macro_r"])
    assert got["iou_micro_F1"] == pytest.approx(100 * expected["micro_f1"])


def test_auprc_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(1)
    for _ in range(50):
        length = rng.randint(2, 30)
        gold = np.array([rng.random() < 0.3 for _ in range(length)], dtype=int)
        gold[rng.randrange(length)] = 1
        scores = np.array([round(rng.random(), 1) for _ in range(length)])  # rounding makes ties
        precision, recall, _ = metrics.precision_recall_curve(gold, scores)
        assert auprc(gold, scores) == pytest.approx(metrics.auc(recall, precision))


def test_a_hand_computed_example() -> None:
    """Two examples, worked out by hand.

    Example 1: gold spans [2,5) and [8,10); predicted [2,4) (IOU 2/3: a hit) and [6,7) (IOU 0).
    Example 2: gold span [0,2); predicted [1,5) (IOU 1/5: a miss).
    Macro P = mean(1/2, 0/1) = 0.25, macro R = mean(1/2, 0/1) = 0.25, IOU F1 = 0.25;
    micro P = 1/3, R = 1/3. Sentences of example 1: 0 0 0 0 1 1 1 2 2 2 (gold words in all
    three, selected words in 0 and 1): P = 1, R = 2/3, F1 = 0.8. NIR's rule at rate 0.34 keeps
    round(1.02) = 1 sentence, the highest mean score: sentence 0 (2 of 4 selected), a hit:
    P = 1, R = 1/3.
    """
    counts = EraserCounts()
    gold1, pred1 = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 0, 0, 1, 0, 0, 0])
    gold2, pred2 = np.array([1, 1, 0, 0, 0, 0]), np.array([0, 1, 1, 1, 1, 0])
    counts.add_spans(pred1, gold1)
    counts.add_spans(pred2, gold2)
    sentences = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    counts.add_sentences(pred1, pred1.astype(float), gold1, sentences, 0.34)
    counts.add_faithfulness(0.9, 0.6, 0.8)
    counts.add_faithfulness(0.7, 0.7, 0.2)
    got = counts.metrics()
    assert got["iou_P"] == pytest.approx(25.0) and got["iou_R"] == pytest.approx(25.0)
    assert got["iou_F1"] == pytest.approx(25.0) and got["iou_micro_F1"] == pytest.approx(100 / 3)
    assert (got["sentence_P"], got["sentence_R"], got["sentence_F1"]) == pytest.approx((100.0, 200 / 3, 80.0))
    assert (got["nir_sentence_P"], got["nir_sentence_R"]) == pytest.approx((100.0, 100 / 3))
    assert got["comprehensiveness"] == pytest.approx(15.0) and got["sufficiency"] == pytest.approx(30.0)
    assert got["AUPRC"] is None  # no soft scores were given
    assert top_sentences(np.array([0.1, 0.9, 0.5, 0.5]), np.array([0, 0, 1, 1]), 0.5) == {0}  # tie: earlier


class GoldMethod(Method):
    """Returns the gold rationale as its mask and as its scores; its predictor prefers class 1
    in proportion to the visible share of the document."""

    name = "gold"
    kind = "select_predict"

    def __init__(self) -> None:  # no config, data or device needed
        pass

    def train_epoch(self, batches: object) -> dict[str, float]:
        return {}

    def rationalize(self, batch: Batch, mode: str) -> RationaleOutput:
        return RationaleOutput(self.predict(batch, batch.gold + batch.context), mask=batch.gold, scores=batch.gold)

    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        share = (rationale * batch.selectable).sum(1) / batch.selectable.sum(1)
        return torch.stack([torch.zeros_like(share), 4 * share], dim=1)


@pytest.mark.skipif(not (FEVER / "fever" / "val.jsonl").is_file(), reason="needs ../shared/data/eraser")
def test_the_gold_rationale_scores_100_on_real_fever_documents() -> None:
    from ratbench.data.adapter import DataConfig
    from ratbench.data.batching import eval_batches
    from ratbench.execution.cells import CellSpec
    from ratbench.execution.grid import build_adapter
    from ratbench.execution.runner import prepare_data
    from ratbench.versions import EVAL_VERSION, pipeline

    adapter = build_adapter(
        "eraser", "fever", sets={"eraser": {"train_split": "val", "dev_split": "val", "test_split": "val",
                                            "dev_carve_out": "0.2", "test_carve_out": "0.2"}},
        data_dir=FEVER.parent,
    )  # fmt: skip
    assert isinstance(adapter.config, DataConfig)
    config = adapter.config.to_dict()
    spec = CellSpec("rnp", "1", {}, "eraser", "1", "fever", config, {}, EVAL_VERSION, 60, 1, pipeline("fp32"))
    data = prepare_data(spec, FEVER.parent)
    batches = list(eval_batches(data.splits["test"], 16))
    method = GoldMethod()
    result = score_rationales(method, rationalize_split(method, batches, "clean"), "clean", 0.2, "any", data.sentences)
    metrics = result.metrics
    assert len(data.sentences) == metrics["n_examples"] > 0
    for key in ("F1", "iou_F1", "iou_micro_F1", "sentence_F1", "AUPRC"):
        assert metrics[key] == pytest.approx(100.0), key
    # The toy predictor gives class 1 the probability sigmoid(4 * visible document share).
    shares = np.array([ex.gold.sum() / ex.selectable.sum() for ex in data.splits["test"]])
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert metrics["comprehensiveness"] == pytest.approx(100 * np.mean(sigmoid(4) - sigmoid(4 * (1 - shares))))
    assert metrics["sufficiency"] == pytest.approx(100 * np.mean(sigmoid(4) - sigmoid(4 * shares)))
