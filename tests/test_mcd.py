"""MCD specifics that the parity fixtures (``tests/test_parity_mcd.py``) do not cover: the
``predictor_step_regularizers`` flag (no reference runs it), the divergences on fixed logits, the
refused shared options and the presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_batches, tiny_method

from ratbench.errors import RatbenchError
from ratbench.registry import METHODS
from ratbench.types import EncodedExample


def _batch() -> list:
    rng = np.random.default_rng(1)
    examples = [EncodedExample(str(i), rng.integers(1, 21, size=7), i % 2, None) for i in range(4)]
    return tiny_batches(examples)


def _selector_steps(method) -> list[bool]:
    """Train one batch; per step of the selector's Adam, whether any selector parameter had a gradient."""
    seen: list[bool] = []
    selector = list(method.model.selector.parameters())
    method.optimizers[0].register_step_pre_hook(lambda *_: seen.append(any(p.grad is not None for p in selector)))
    method.train_epoch(_batch())
    return seen


@pytest.mark.parametrize(("flag", "expected"), [(True, [True, True]), (False, [False, True])])
def test_the_selector_learns_from_the_predictor_step_only_through_the_regularizers(flag: bool, expected: list) -> None:
    """Reference (True): the predictor step's loss holds the regularizers of its sample, so the
    selector's Adam also steps on them; False (Eq. 16): the predictor step leaves the selector
    without any gradient, cross-entropy never reaching it through the detached mask."""
    method = tiny_method("mcd", predictor_step_regularizers=flag)
    assert _selector_steps(method) == expected


def test_the_selector_step_does_not_move_the_predictor() -> None:
    """With the predictor's Adam disabled, only the selector changes; every flag is back afterwards."""
    method = tiny_method("mcd")
    method.optimizers[1].step = lambda *args, **kwargs: None
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    method.train_epoch(_batch())
    after = method.model.state_dict()
    assert {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])} == {"selector"}
    assert all(p.requires_grad for p in method.model.predictor.parameters())
    assert not any(p.requires_grad for p in method.model.embed.parameters())


def test_the_divergences_on_fixed_logits() -> None:
    """kl: sum_c P(c|X) log(P(c|X) / P(c|X_Z)) averaged over the batch; js: symmetric, 0 for equal
    predictions, at most ln 2."""
    full = torch.tensor([[2.0, -1.0], [0.0, 0.5], [1.0, 1.0]])
    rationale = torch.tensor([[0.0, 1.0], [0.3, 0.1], [1.0, 1.0]])
    p, q = full.softmax(-1), rationale.softmax(-1)
    kl = tiny_method("mcd", div="kl").divergence(full, rationale)
    assert kl.item() == pytest.approx(float((p * (p / q).log()).sum() / 3), rel=1e-6)
    js = tiny_method("mcd", div="js")
    m = (p + q) / 2
    expected = float(((p * (p / m).log()).sum() + (q * (q / m).log()).sum()) / 2 / 3)
    assert js.divergence(full, rationale).item() == pytest.approx(expected, rel=1e-6)
    assert js.divergence(rationale, full).item() == pytest.approx(expected, rel=1e-6)
    assert js.divergence(full, full).item() == pytest.approx(0.0, abs=1e-7)
    assert js.divergence(torch.tensor([[30.0, -30.0]]), torch.tensor([[-30.0, 30.0]])).item() <= math.log(2) + 1e-6


@pytest.mark.parametrize(("field", "value"), [("share_encoder", True), ("dis_lr", 1.0)])
def test_shared_options_the_selector_step_cannot_honour_are_refused(field: str, value: object) -> None:
    """FR's shared encoder would be frozen with the predictor; DR's coupling is unused by the reference."""
    with pytest.raises(RatbenchError, match=field):
        METHODS.get("mcd").Config(**{field: value})


def test_defaults_and_paper_preset_follow_the_reference() -> None:
    """lambda_s = lambda_c = 6 (decouple_bcr.py's defaults, which the README runs); the README's
    correlated Beer-Appearance run in ``paper``; kl by default."""
    cls = METHODS.get("mcd")
    config = cls.Config()
    assert (config.sparsity_lambda, config.continuity_lambda, config.cls_lambda, config.div) == (6.0, 6.0, 0.9, "kl")
    assert config.predictor_step_regularizers is True
    paper = cls.presets["paper"]
    assert paper["*"]["sparsity_lambda"] == paper["*"]["continuity_lambda"] == 6.0
    assert paper["beer.appearance"] == {"lr": 1e-4, "batch_size": 128, "sparsity": 0.175, "epochs": 150}
    assert paper["hotel"]["batch_size"] == 256
