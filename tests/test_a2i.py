"""A2I specifics (METHODS.md 8 and 16.12): two optimizers, the ln 2 hinge, requires_grad
toggling, and the attacker trained through the frozen predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_batches, tiny_method

from ratbench.types import EncodedExample


def _batches() -> list:
    rng = np.random.default_rng(1)
    examples = [EncodedExample(str(i), rng.integers(1, 21, size=7), i % 2, None) for i in range(8)]
    return tiny_batches(examples)


def test_two_optimizers_with_their_learning_rates() -> None:
    """Selector at lr, predictor at lr / pred_lr_rate; the attacker has its own Adam at lr * adv_lr_rate."""
    method = tiny_method("a2i", pred_lr_rate=4.0, adv_lr_rate=0.5)
    main, attacker = method.optimizers
    assert [g["lr"] for g in main.param_groups] == [1e-2, 2.5e-3]
    assert [g["lr"] for g in attacker.param_groups] == [5e-3]
    attacker_params = {id(p) for p in method.model.attacker.parameters()}
    assert not attacker_params & {id(p) for g in main.param_groups for p in g["params"]}


def test_hinge_stops_once_the_predictor_is_not_fooled() -> None:
    """-adv * 0.9 * mean(min(CE(., 1 - y), ln 2)): no gradient where CE to the flipped label > ln 2."""
    method = tiny_method("a2i", adv_lambda=2.0)
    logits = torch.tensor([[3.0, -3.0], [0.2, 0.0]], requires_grad=True)
    flipped = torch.tensor([1, 0])  # row 0: not fooled (CE >> ln 2); row 1: fooled (CE < ln 2)
    term = method.loss_weights()["attack"] * method.attack_term(logits, flipped)  # as it enters the loss
    ce = torch.nn.functional.cross_entropy(logits.detach(), flipped, reduction="none")
    assert term.item() == pytest.approx(-2.0 * 0.9 * float(ce.clamp(max=math.log(2)).mean()))
    term.backward()
    assert torch.all(logits.grad[0] == 0) and torch.any(logits.grad[1] != 0)


def test_attacker_learns_through_the_frozen_predictor_and_flags_are_restored() -> None:
    """With the main step disabled, only the attacker changes; afterwards every module trains again."""
    method = tiny_method("a2i")
    method.optimizers[0].step = lambda *args, **kwargs: None  # isolate step 2
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    method.train_epoch(_batches())
    after = method.model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"attacker"}
    for name in ("selector", "predictor", "attacker"):
        assert all(p.requires_grad for p in getattr(method.model, name).parameters()), name
    assert not any(p.requires_grad for p in method.model.embed.parameters())


def test_main_step_does_not_move_the_attacker() -> None:
    """With the attacker step disabled, the attacker stays put while selector and predictor learn."""
    method = tiny_method("a2i")
    method.optimizers[1].step = lambda *args, **kwargs: None
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    method.train_epoch(_batches())
    after = method.model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"selector", "predictor"}


def test_each_parameter_gets_its_own_requires_grad_back() -> None:
    """Parameters frozen before a step stay frozen (and unchanged) after it: the toggling restores
    each flag instead of setting whole modules trainable."""
    method = tiny_method("a2i")
    for module in (method.model.selector.norm, method.model.predictor.head, method.model.attacker.head):
        module.requires_grad_(False)
    flags = {name: p.requires_grad for name, p in method.model.named_parameters()}
    frozen = {name: p.detach().clone() for name, p in method.model.named_parameters() if not p.requires_grad}
    method.train_epoch(_batches())
    assert {name: p.requires_grad for name, p in method.model.named_parameters()} == flags
    params = dict(method.model.named_parameters())
    assert frozen and all(torch.equal(params[name], value) for name, value in frozen.items())
