"""LIME specifics (METHODS.md 14 and 16.15): the same sampling, kernel and ridge surrogate as
the ``lime`` package at the position level, every position weighted, batched evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_batches, tiny_examples, tiny_method
from lime.lime_text import LimeTextExplainer
from sklearn.linear_model import Ridge
from sklearn.metrics.pairwise import pairwise_distances

from ratbench._plugins.methods.lime import explain, lime_kernel, lime_neighbourhood, weighted_ridge

# Repeated words on purpose: position-level features keep each occurrence apart.
TOKENS = ["a", "good", "beer", ",", "a", "great", "head", "but", "a", "thin", "body", "and", "bland", "smell"]
SIGNAL = {1: 1.5, 5: 2.0, 9: -1.0}  # position -> effect on the class-1 logit


def _proba(keep: np.ndarray) -> np.ndarray:
    """A fixed black box: class-1 logit linear in three positions' presence."""
    logit = sum(weight * keep[:, pos] for pos, weight in SIGNAL.items()) - 1.0
    p = 1 / (1 + np.exp(-logit))
    return np.stack([1 - p, p], axis=1)


def test_weights_equal_the_lime_package_at_position_level() -> None:
    """Same RandomState -> the same neighbourhood, kernel and ridge weights as LimeTextExplainer
    driven with bow=False, a whitespace split and feature_selection='none'."""
    n = len(TOKENS)

    def classifier_fn(texts: list[str]) -> np.ndarray:
        return _proba(np.array([[t != "UNKWORDZ" for t in text.split(" ")] for text in texts], dtype=float))

    explainer = LimeTextExplainer(
        kernel_width=25,
        bow=False,
        split_expression=lambda s: s.split(" "),
        feature_selection="none",
        random_state=np.random.RandomState(7),
    )
    package = explainer.explain_instance(" ".join(TOKENS), classifier_fn, labels=(1,), num_features=n, num_samples=400)
    expected = np.zeros(n)
    for feature, weight in package.local_exp[1]:
        expected[feature] = weight  # bow=False: feature i is the i-th token
    ours, label = explain(_proba, n, 1, 400, 25.0, 1.0, np.random.RandomState(7))
    assert label == 1
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)
    assert set(np.argsort(-ours)[:2]) == {1, 5} and np.argmin(ours) == 9


def test_neighbourhood_kernel_and_ridge_pieces() -> None:
    rng = np.random.RandomState(0)
    data = lime_neighbourhood(9, 50, rng)
    assert (data[0] == 1).all() and (data[1:].sum(1) <= 8).all() and data.shape == (50, 9)
    distance = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
    np.testing.assert_allclose(lime_kernel(data, 25.0), np.sqrt(np.exp(-(distance**2) / 25.0**2)), atol=1e-12)
    target, weights = rng.normal(size=50), rng.uniform(0.1, 1.0, size=50)
    reference = Ridge(alpha=1.0, fit_intercept=True).fit(data, target, sample_weight=weights).coef_
    np.testing.assert_allclose(weighted_ridge(data, target, weights, 1.0), reference, rtol=1e-6, atol=1e-9)


def test_predicted_class_is_explained_by_default() -> None:
    _, label = explain(lambda keep: _proba(keep)[:, ::-1], len(TOKENS), None, 50, 25.0, 1.0, np.random.RandomState(0))
    assert label == 0  # the reversed black box predicts class 0 on the full text


def test_method_scores_every_real_position_and_batch_size_does_not_matter() -> None:
    [batch, *_] = tiny_batches(tiny_examples(8))
    scores = []
    for eval_batch_size in (7, 1000):
        method = tiny_method("lime", num_samples=60, eval_batch_size=eval_batch_size)
        out = method.rationalize(batch, "clean")
        assert out.logits is None and out.mask is None
        scores.append(out.scores)
    assert torch.allclose(scores[0], scores[1], atol=1e-5)  # same draws; batched GRU sums differ in the last bits
    assert (scores[0][batch.mask == 0] == 0).all() and (scores[0][batch.mask == 1] != 0).all()


def test_positive_only_keeps_positive_weights() -> None:
    [batch, *_] = tiny_batches(tiny_examples(8))
    out = tiny_method("lime", num_samples=60, positive_only=True, sparsity=0.5).rationalize(batch, "clean")
    assert out.mask is not None and (out.scores[out.mask.bool()] > 0).all()


def test_too_few_samples_is_a_config_error() -> None:
    from ratbench.errors import RatbenchError

    with pytest.raises(RatbenchError, match="num_samples"):
        tiny_method("lime", num_samples=1)


def test_batched_explanations_equal_explaining_each_text_with_the_plain_classifier() -> None:
    """The fast path (input projections once per position, several texts of different lengths
    per pass, neighbourhoods split across passes) gives the weights that LIME computes with the
    classifier's own forward pass, one text at a time, from the same draws."""
    [batch, *_] = tiny_batches(tiny_examples(8))
    method = tiny_method("lime", num_samples=50, eval_batch_size=70)
    reference = tiny_method("lime", num_samples=50)
    reference.model.load_state_dict(method.model.state_dict())
    reference._rng.set_state(method._rng.get_state())
    fast = method.rationalize(batch, "clean").scores

    plain = torch.zeros_like(batch.mask)
    reference.model.eval()
    with torch.no_grad():
        for row, n in enumerate(batch.mask.sum(dim=1).long().tolist()):
            ids = batch.ids[row, :n]

            def proba(keep: np.ndarray, ids: torch.Tensor = ids) -> np.ndarray:
                rows = torch.as_tensor(keep, dtype=torch.float32)
                logits = reference.model(ids.expand(len(rows), -1), torch.ones_like(rows), rows)
                return torch.softmax(logits, -1).numpy().astype(np.float64)

            coef, _ = explain(proba, n, None, 50, 25.0, 1.0, reference._rng)
            plain[row, :n] = torch.as_tensor(coef, dtype=plain.dtype)
    assert torch.allclose(fast, plain, atol=1e-5)
    assert lengths_differ(batch)


def lengths_differ(batch) -> bool:
    return len(set(batch.mask.sum(dim=1).tolist())) > 1


def test_the_cudnn_path_and_the_step_loop_give_the_same_logits() -> None:
    """``pooled_over_keep_masks``: the packed ``nn.GRU`` path (taken on a GPU) and the step loop
    (the CPU default) agree with each other and with the plain forward, texts of different lengths
    in one pass."""
    from ratbench._plugins.methods._blocks import Predictor

    torch.manual_seed(0)
    predictor = Predictor(6, 8, 2, 0.0).eval()
    texts = [(torch.randn(n, 6), (torch.rand(s, n) > 0.4).float()) for n, s in [(5, 3), (9, 4), (2, 2)]]
    with torch.no_grad():
        loop = predictor.classify(predictor.encoder.pooled_over_keep_masks(texts, stepwise=True))
        packed = predictor.classify(predictor.encoder.pooled_over_keep_masks(texts, stepwise=False))
        plain = torch.cat([predictor(x.expand(len(keep), *x.shape), keep, torch.ones_like(keep)) for x, keep in texts])
        assert torch.equal(predictor.over_keep_masks(texts), loop)  # the loop on a CPU
    assert loop.shape == (9, 2)
    assert torch.allclose(packed, loop, atol=1e-5) and torch.allclose(packed, plain, atol=1e-5)
