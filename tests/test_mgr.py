"""MGR beyond its parity fixture (``tests/test_parity_mgr.py``): the clean-mode rationales of both
``test_rationale`` values (the reference has no deterministic mode), ``lr_lambda`` 0 (the
reference's ``--dis_lr 0``), a single selector, and the refused options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ratbench.data.batching import collate
from ratbench.errors import RatbenchError
from ratbench.registry import METHODS
from ratbench.types import DataInfo, EncodedExample


def tiny_mgr(**config: object):
    """``mgr`` on 12 random 8-d word vectors, hidden size 8."""
    cls = METHODS.get("mgr")
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(12, 8)).astype(np.float32)
    embeddings[0] = 0
    info = DataInfo(num_classes=2, embeddings=embeddings)
    torch.manual_seed(0)
    return cls(cls.Config(**{"hidden_dim": 8, "lr": 1e-2, **config}), info, torch.device("cpu"))


def tiny_batch():
    """Four rows of 3..9 tokens padded to 10."""
    rng = np.random.default_rng(1)
    rows = [EncodedExample(f"r{i}", rng.integers(1, 12, size=n), i % 2, None) for i, n in enumerate((9, 3, 6, 5))]
    return collate(rows, pad_to=10)


def test_clean_rationale_of_the_average_is_the_argmax_of_the_mean_probabilities() -> None:
    method, batch = tiny_mgr(), tiny_batch()
    method.model.eval()
    with torch.no_grad():
        embedded = method.embed(batch)
        probabilities = [torch.softmax(selector(embedded), dim=-1) for selector in method.model.selectors]
        mean = (probabilities[0] + probabilities[1] + probabilities[2]) / 3
    expected = (mean[..., 1] > mean[..., 0]).float() * batch.selectable
    assert torch.equal(method.select(batch, "clean"), expected)
    out = method.rationalize(batch, "clean")
    assert torch.equal(out.mask, expected) and out.logits.shape == (4, 2)
    first = tiny_mgr(test_rationale="first")
    first.load_state_dict(method.state_dict())
    first.model.eval()
    with torch.no_grad():
        logits = first.model.selectors[0](first.embed(batch))
    assert torch.equal(first.select(batch, "clean"), (logits[..., 1] > logits[..., 0]).float() * batch.selectable)


def test_reference_rationale_of_the_average_keeps_padding_and_is_binary() -> None:
    method, batch = tiny_mgr(), tiny_batch()
    torch.manual_seed(3)
    z = method.select(batch, "reference")
    assert z.shape == batch.mask.shape and set(z.unique().tolist()) <= {0.0, 1.0}


def test_lr_lambda_0_puts_every_selector_at_lr_and_the_predictor_at_lr_over_num_gen() -> None:
    method = tiny_mgr(lr_lambda=0.0, num_gen=4)
    assert [group["lr"] for group in method.optimizers[0].param_groups] == [1e-2] * 4 + [1e-2 / 4]


def test_one_selector_trains() -> None:
    method = tiny_mgr(num_gen=1)
    figures = method.train_epoch([tiny_batch()])
    assert {"loss", "cls_loss", "sparsity_loss", "continuity_loss", "train_acc", "train_sparsity"} <= set(figures)
    assert np.isfinite(figures["loss"])


@pytest.mark.parametrize(("key", "value"), [("share_encoder", True), ("dis_lr", 1.0), ("num_gen", 0)])
def test_options_that_do_not_apply_are_refused(key: str, value: object) -> None:
    with pytest.raises(RatbenchError, match=key):
        METHODS.get("mgr").Config(**{key: value})
