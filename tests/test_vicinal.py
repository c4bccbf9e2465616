"""VER's vicinal perturbation as a shared component: off (and drawing nothing) at rate 0, the
perturbed mask to the predictor only, and the same code path in ``ver``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_batches, tiny_method

from ratbench._plugins.methods import _family, _vicinal
from ratbench._plugins.methods._blocks import gumbel_sample
from ratbench.types import EncodedExample


def _examples() -> list[EncodedExample]:
    rng = np.random.default_rng(1)
    return [EncodedExample(str(i), rng.integers(1, 21, size=12), i % 2, None) for i in range(8)]


def _batches() -> list:
    return tiny_batches(_examples())


def _sample(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    soft, index = gumbel_sample(torch.randn(3, 10, 2), 1.0)
    return soft, index, torch.ones(3, 10)


def test_rate_zero_is_off_and_draws_no_random_numbers() -> None:
    soft, index, selectable = _sample()
    state = torch.get_rng_state()
    z_predictor, z = _vicinal.predictor_and_selection_masks(soft, index, selectable, 0.0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(z_predictor, z) and torch.equal(z, index.float())


def test_a_positive_rate_is_vers_perturbation() -> None:
    soft, index, selectable = _sample()
    method = tiny_method("ver", perturb_rate=0.3)
    torch.manual_seed(5)
    shared = _vicinal.predictor_and_selection_masks(soft, index, selectable, 0.3)
    torch.manual_seed(5)
    ver = method.training_masks(soft, index, SimpleNamespace(selectable=selectable))
    assert all(torch.equal(a, b) for a, b in zip(shared, ver, strict=True))
    assert not torch.equal(shared[0], shared[1]) and torch.equal(shared[1], index.float())
    soft.requires_grad_(True)
    perturbed, _ = _vicinal.vicinal_masks(soft, index, selectable, 0.3)
    perturbed.sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0  # the selector learns through it


class _Spy:
    """Records what ``predictor_and_selection_masks`` returns."""

    def __init__(self) -> None:
        self.masks: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, soft, index, selectable, rate, *rest):
        z_predictor, z = _vicinal.predictor_and_selection_masks(soft, index, selectable, rate, *rest)
        self.masks.append((z_predictor.detach().clone(), z.detach().clone()))
        return z_predictor, z


def test_a2i_feeds_the_perturbed_mask_to_its_predictor_only(monkeypatch: pytest.MonkeyPatch) -> None:
    method = tiny_method("a2i", perturb_rate=0.3)
    spy = _Spy()
    monkeypatch.setattr(_family, "predictor_and_selection_masks", spy)
    predictor_inputs, regularized = [], []
    forward = method.model.predictor.forward
    monkeypatch.setattr(
        method.model.predictor,
        "forward",
        lambda e, z, m: predictor_inputs.append(z.detach().clone()) or forward(e, z, m),
    )
    regularize = method.regularizers
    monkeypatch.setattr(
        method, "regularizers", lambda z, batch: regularized.append(z.detach().clone()) or regularize(z, batch)
    )
    method.train_epoch(_batches())
    assert len(spy.masks) == 2  # two batches
    for batch, (z_predictor, z) in enumerate(spy.masks):
        step_inputs = predictor_inputs[3 * batch : 3 * batch + 3]  # main, attack term, attacker step
        assert torch.equal(step_inputs[0], z_predictor)  # the predictor's own loss: the perturbed mask
        assert torch.equal(regularized[2 * batch], z)  # the selector's regularizers: the unperturbed one
        assert not torch.equal(step_inputs[1], z_predictor)  # the attacker's masks are its own
    assert any(not torch.equal(z_predictor, z) for z_predictor, z in spy.masks)


@pytest.mark.parametrize("name", ["dmr", "nir_rnp", "inter_rat"])
def test_other_methods_opt_in_with_their_config(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy()  # every method's training_masks is the template's (Inter_RAT's extends it)
    monkeypatch.setattr(_family, "predictor_and_selection_masks", spy)
    extra = {"teacher_epochs": 1} if name == "dmr" else {}
    method = tiny_method(name, perturb_rate=0.3, train=tuple(_examples()), **extra)
    stats = method.train_epoch(_batches())
    assert np.isfinite(stats["loss"]) and spy.masks
    assert any(not torch.equal(z_predictor, z) for z_predictor, z in spy.masks)
    assert type(method).Config().perturb_rate == 0.0  # off unless asked for
