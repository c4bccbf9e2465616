"""Inter_RAT specifics (METHODS.md 9 and 16.9): class priors, the backdoor adjustment, the
sum / #selected pooling, per-example regularizers, padding never selected, and the lr decay.
``test_parity_inter_rat.py`` checks the whole training step against the reference code."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_batches, tiny_examples, tiny_method

from ratbench._plugins.methods.inter_rat import per_example_regularizers
from ratbench.errors import RatbenchError
from ratbench.execution import grid
from ratbench.registry import METHODS
from ratbench.types import EncodedExample


def _labelled(labels: list[int]) -> tuple[EncodedExample, ...]:
    return tuple(EncodedExample(str(i), np.array([1, 2]), label, None) for i, label in enumerate(labels))


def test_priors_from_training_labels_uniform_or_given() -> None:
    train = _labelled([1, 1, 1, 0])
    assert tiny_method("inter_rat", train=train).model.priors.tolist() == [0.25, 0.75]
    assert tiny_method("inter_rat", train=train, priors="uniform").model.priors.tolist() == [0.5, 0.5]
    given = tiny_method("inter_rat", train=train, priors=(0.05, 0.95))
    assert given.model.priors.tolist() == pytest.approx([0.05, 0.95])
    assert given.model.prior_values == (0.05, 0.95)  # the reference's Python constants, exactly
    assert METHODS.get("inter_rat").Config.resolve({"priors": "0.05,0.95"}).priors == (0.05, 0.95)  # --set


def test_the_paper_preset_gives_the_reference_priors_on_beer_and_uniform_elsewhere() -> None:
    """The reference hard-codes (0.05, 0.95) for its beer files and (0.5, 0.5) elsewhere: a preset
    scoped to beer, so that the method never reads the dataset's name."""
    datasets = ["beer.aroma", "synthetic.aroma"]
    specs = grid.expand(["inter_rat"], datasets, [1], preset="paper", on_missing=lambda missing: None)
    assert {spec.dataset: spec.method_config["priors"] for spec in specs} == {
        "beer": [0.05, 0.95],
        "synthetic": "uniform",
    }
    assert "info.dataset" not in inspect.getsource(inspect.getmodule(METHODS.get("inter_rat")))


@pytest.mark.parametrize("priors", ["reference", "0.5", "0.2,0.2", "-0.5,1.5"])
def test_priors_that_are_no_distribution_are_refused(priors: str) -> None:
    with pytest.raises(RatbenchError, match=r"^inter_rat\.priors "):
        METHODS.get("inter_rat").Config.resolve({"priors": priors}, owner="inter_rat")


def test_priors_of_another_class_count_are_refused() -> None:
    with pytest.raises(RatbenchError, match="3 class priors for 2 classes"):
        tiny_method("inter_rat", priors=(0.2, 0.3, 0.5))


def test_adjustment_and_pooling_match_a_restatement() -> None:
    """Predictor: s = sum_t h_t / #selected; r = sum_c pi_c softmax_c(s . c_c) c_c; Linear([s ; r])."""
    method = tiny_method("inter_rat", train=_labelled([1, 1, 1, 0]))
    model = method.model.eval()
    [batch, *_] = tiny_batches(tiny_examples(8))
    z = (torch.rand_like(batch.mask) < 0.5).float() * batch.mask
    embedded = model.embed(batch.ids, batch.mask)
    hidden = model.predictor_encoder(embedded * z.unsqueeze(-1), batch.mask)
    pooled = hidden.sum(1) / (z.sum(1, keepdim=True)).clamp(min=1)  # the same values as the reference's form
    weights = F.softmax(pooled @ model.label_embedding.T, -1) * torch.tensor([0.25, 0.75])
    expected = model.predictor_head(torch.cat([pooled, weights @ model.label_embedding], -1))
    assert torch.allclose(model.predictor_logits(embedded, z, batch.mask), expected, atol=1e-6)


def test_per_example_regularizers() -> None:
    """mean_b |#sel_b / len_b - alpha| and mean_b sum_t |dz_t| / (len_b - 1), the steps over the
    padded row: the last row's selected last token steps into padding."""
    z = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    sparsity, continuity = per_example_regularizers(z, mask, 0.2)
    assert sparsity.item() == pytest.approx((abs(2 / 4 - 0.2) + abs(1 / 3 - 0.2) + abs(1 / 2 - 0.2)) / 3)
    assert continuity.item() == pytest.approx((1 / 3 + 2 / 2 + 2 / 1) / 3)
    # "text": the steps between two text positions only, over max(len - 1, 1)
    _, within = per_example_regularizers(z, mask, 0.2, continuity="text")
    assert within.item() == pytest.approx((1 / 3 + 2 / 2 + 1 / 1) / 3)


def test_continuity_uses_the_untruncated_length_and_divides_a_one_token_text_by_1e8() -> None:
    """As the reference: ``len_b - 1 + 1e-8`` with the length before truncation; the sparsity
    term keeps the positions the batch holds."""
    z = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    sparsity, continuity = per_example_regularizers(z, mask, 0.5, lengths=torch.tensor([11, 1]))
    assert sparsity.item() == pytest.approx((abs(2 / 3 - 0.5) + 0.5) / 2)
    assert continuity.item() == pytest.approx((2 / 10 + 1 / 1e-8) / 2)
    _, clean = per_example_regularizers(z, mask, 0.5, lengths=torch.tensor([11, 1]), continuity="text")
    assert clean.item() == pytest.approx((2 / 2 + 0) / 2)


def test_a_row_with_nothing_selected_still_passes_gradient_through_the_count() -> None:
    """The pooled states are divided by ``#selected + [#selected == 0]``: with nothing selected
    the count's gradient ``-sum_t h_t`` still reaches z (a clamp to 1 would block it)."""
    model = tiny_method("inter_rat").model.eval()
    [batch, *_] = tiny_batches(tiny_examples(8))
    embedded = model.embed(batch.ids, batch.mask)

    def grad_of_z(denominator: object) -> torch.Tensor:
        z = torch.zeros_like(batch.mask, requires_grad=True)
        if denominator is None:
            logits = model.predictor_logits(embedded, z, batch.mask)
        else:
            hidden = model.predictor_encoder(embedded * z.unsqueeze(-1), batch.mask)
            pooled = hidden.sum(1) / denominator((z * batch.mask).sum(1, keepdim=True))
            logits = model.predictor_head(torch.cat([pooled, model.adjust(pooled, model.label_embedding)], -1))
        logits.sum().backward()
        return z.grad

    actual = grad_of_z(None)
    assert torch.allclose(actual, grad_of_z(lambda n: 1 + n), atol=1e-6)  # same value, the count's gradient
    assert not torch.allclose(actual, grad_of_z(lambda n: n.clamp(min=1)), atol=1e-4)


def test_training_uses_the_batch_lengths(monkeypatch: pytest.MonkeyPatch) -> None:
    """train_epoch hands ``Batch.lengths`` (before truncation) to the regularizers."""
    from ratbench._plugins.methods import inter_rat

    seen = []
    real = inter_rat.per_example_regularizers

    def spy(*args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(inter_rat, "per_example_regularizers", spy)
    [batch, *_] = tiny_batches(tiny_examples(8))
    batch.lengths = batch.lengths + 300  # as if every text had been cut
    tiny_method("inter_rat").train_epoch([batch])
    assert torch.equal(seen[0], batch.lengths)


def test_padding_is_never_selected_even_in_reference_mode() -> None:
    method = tiny_method("inter_rat")
    with torch.no_grad():
        method.model.selector_head.bias.copy_(torch.tensor([-5.0, 5.0]))  # select almost everything
    [batch, *_] = tiny_batches(tiny_examples(8))
    assert batch.mask.min() == 0
    for mode in ("reference", "clean"):
        mask = method.rationalize(batch, mode).mask
        assert not (mask * (1 - batch.mask)).any() and mask.sum() > 0


def test_learning_rate_decays_per_epoch_down_to_the_floor() -> None:
    method = tiny_method("inter_rat", lr=1e-3, lr_decay=0.5, min_lr=3e-4)
    lrs = [method.train_epoch(tiny_batches(tiny_examples(8)))["lr"] for _ in range(3)]
    assert lrs == pytest.approx([5e-4, 3e-4, 3e-4])
