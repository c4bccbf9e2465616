"""DAR specifics beyond the parity fixture's one epoch: the teacher is pretrained once, stays frozen
(in train mode unless ``teacher_dropout`` is off) and its term alone moves the selector; the
``paper`` preset holds the reference README's Beer-Appearance command."""

from __future__ import annotations

import torch
from conftest import tiny_batches, tiny_examples, tiny_method

from ratbench.execution.grid import preset_layers, preset_scopes
from ratbench.registry import METHODS


def test_teacher_is_pretrained_once_then_frozen_in_train_mode() -> None:
    method = tiny_method("dar", teacher_epochs=2)
    first = method.train_epoch(tiny_batches(tiny_examples(8)))
    assert "teacher_train_acc" in first and "teacher_loss" in first and bool(method.model.teacher_trained)
    teacher = method.model.teacher
    assert teacher.training, "the reference's reloaded teacher is in train mode"
    trained = {k: v.clone() for k, v in teacher.state_dict().items()}
    second = method.train_epoch(tiny_batches(tiny_examples(8)))
    assert "teacher_train_acc" not in second
    assert all(torch.equal(trained[k], v) for k, v in teacher.state_dict().items())
    clone = tiny_method("dar", teacher_epochs=2)
    clone.load_state_dict(method.state_dict())
    assert "teacher_train_acc" not in clone.train_epoch(tiny_batches(tiny_examples(8)))


def test_teacher_dropout_off_is_eval_mode() -> None:
    method = tiny_method("dar", teacher_epochs=1, teacher_dropout=False)
    method.train_epoch(tiny_batches(tiny_examples(8)))
    assert not method.model.teacher.training and method.model.selector.training


def test_the_teacher_term_alone_moves_the_selector_not_the_teacher_or_predictor() -> None:
    """With every other weight 0, the teacher's CE reaches the selector through the mask only."""
    method = tiny_method("dar", teacher_epochs=1, cls_lambda=0.0, sparsity_lambda=0.0, continuity_lambda=0.0)
    method.train_epoch(tiny_batches(tiny_examples(8)))  # pretrains the teacher
    selector = [p.clone() for p in method.model.selector.parameters()]
    predictor = [p.clone() for p in method.model.predictor.parameters()]
    teacher = [p.clone() for p in method.model.teacher.parameters()]
    method.train_epoch(tiny_batches(tiny_examples(8)))
    assert any(not torch.equal(a, b) for a, b in zip(selector, method.model.selector.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(predictor, method.model.predictor.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(teacher, method.model.teacher.parameters(), strict=True))


def test_predictor_norm_off_is_the_rnp_predictor() -> None:
    names = {n for n, _ in tiny_method("dar", predictor_norm=False).model.named_parameters()}
    assert not any(".norm." in n for n in names if n.startswith(("predictor.", "teacher.")))
    assert "predictor.encoder.norm.weight" in {n for n, _ in tiny_method("dar").model.named_parameters()}


def test_paper_preset_is_the_readme_command() -> None:
    """teacher_beer.py --pre_epoch 100 --dropout 0.2 --lr 0.0001 --batch_size 128
    --sparsity_percentage 0.167 --sparsity_lambda 11 --continuity_lambda 12 --epochs 200."""
    cls = METHODS.get("dar")
    config = cls.Config.resolve(*preset_layers(cls.presets, "paper", preset_scopes("beer", "appearance"), "dar"))
    expected = {"teacher_epochs": 100, "dropout": 0.2, "lr": 1e-4, "batch_size": 128, "sparsity": 0.167}
    assert {k: getattr(config, k) for k in expected} == expected
    assert (config.sparsity_lambda, config.continuity_lambda, config.epochs) == (11.0, 12.0, 200)
    assert (config.cls_lambda, config.tea_lambda, config.teacher_dropout) == (0.9, 0.9, True)
    aroma = cls.Config.resolve(*preset_layers(cls.presets, "paper", preset_scopes("beer", "aroma"), "dar"))
    assert (aroma.teacher_epochs, aroma.sparsity) == (20, 0.125), "no reference setting: the defaults, RNP's paper"


def test_many_masks_path_keeps_the_norm() -> None:
    """``over_keep_masks`` (LIME's batched path) gives ``forward``'s logits, LayerNorm included."""
    predictor = tiny_method("dar").model.predictor.eval()
    text = torch.randn(7, 8)
    keep = (torch.rand(3, 7) > 0.5).float()
    expected = predictor(text.expand(3, 7, 8), keep, torch.ones_like(keep))
    torch.testing.assert_close(predictor.over_keep_masks([(text, keep)]), expected)
