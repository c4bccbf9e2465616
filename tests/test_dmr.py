"""DMR specifics (METHODS.md 10 and 16.13): the teacher is trained once and frozen, the
distillation and feature-matching terms, and no gold label at test."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_batches, tiny_examples, tiny_method

from ratbench._plugins.methods._distill import distillation_loss, feature_matching


def test_teacher_is_trained_before_the_first_epoch_then_frozen() -> None:
    method = tiny_method("dmr", teacher_epochs=3)
    teacher_before = {k: v.clone() for k, v in method.model.teacher.state_dict().items()}
    first = method.train_epoch(tiny_batches(tiny_examples(16)))
    assert "teacher_train_acc" in first and bool(method.model.teacher_trained)
    trained = {k: v.clone() for k, v in method.model.teacher.state_dict().items()}
    assert any(not torch.equal(teacher_before[k], trained[k]) for k in trained)
    selector_before = [p.clone() for p in method.model.selector.parameters()]
    second = method.train_epoch(tiny_batches(tiny_examples(16)))
    assert "teacher_train_acc" not in second
    assert all(torch.equal(trained[k], v) for k, v in method.model.teacher.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(selector_before, method.model.selector.parameters(), strict=True))


def test_teacher_state_round_trips() -> None:
    """A restored model knows its teacher is trained and does not train it again."""
    method = tiny_method("dmr", teacher_epochs=1)
    method.train_epoch(tiny_batches(tiny_examples(8)))
    clone = tiny_method("dmr", teacher_epochs=1)
    clone.load_state_dict(method.state_dict())
    assert "teacher_train_acc" not in clone.train_epoch(tiny_batches(tiny_examples(8)))


def test_distillation_targets_the_tempered_teacher() -> None:
    """CE(student, softmax(teacher / T)) = KL(target || student) + H(target)."""
    student = torch.tensor([[1.0, -1.0], [0.5, 0.2]])
    teacher = torch.tensor([[3.0, 0.0], [-1.0, 2.0]])
    target = F.softmax(teacher / 3.0, -1)
    kl = F.kl_div(F.log_softmax(student, -1), target, reduction="batchmean")
    entropy = -(target * target.log()).sum(-1).mean()
    assert distillation_loss(student, teacher, 3.0).item() == pytest.approx((kl + entropy).item())


def test_feature_matching_first_moment_and_true_cmd() -> None:
    """moments=1 is the distance of the means (the reference's effective CMD); higher moments see spread."""
    a = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    b = torch.tensor([[3.0, 0.0], [-3.0, 0.0]])
    assert feature_matching(a, b, 1).item() == 0.0  # same mean
    assert feature_matching(a, b, 2).item() == pytest.approx(8.0)  # variances 1 and 9
    shifted = a + torch.tensor([3.0, 4.0])
    assert feature_matching(a, shifted, 1).item() == pytest.approx(5.0)


def test_distillation_and_matching_reach_the_selector() -> None:
    """With classification and regularizers off, the KD and FM terms alone still move the selector."""
    method = tiny_method(
        "dmr", teacher_epochs=1, cls_lambda=0.0, sparsity_lambda=0.0, continuity_lambda=0.0, fm_lambda=1.0
    )
    before = [p.clone() for p in method.model.selector.parameters()]
    method.train_epoch(tiny_batches(tiny_examples(8)))
    assert any(not torch.equal(a, b) for a, b in zip(before, method.model.selector.parameters(), strict=True))


def test_no_gold_label_at_test() -> None:
    """The rationale and prediction do not depend on the labels of the evaluated batch."""
    method = tiny_method("dmr", teacher_epochs=1)
    method.train_epoch(tiny_batches(tiny_examples(8)))
    [batch, *_] = tiny_batches(tiny_examples(8))
    out = method.rationalize(batch, "clean")
    batch.labels = 1 - batch.labels
    flipped = method.rationalize(batch, "clean")
    assert torch.equal(out.mask, flipped.mask) and torch.equal(out.logits, flipped.logits)


def test_deterministic_sampling_has_no_gumbel_noise() -> None:
    """sampling=deterministic: the reference mode gives the argmax too, repeatably."""
    method = tiny_method("dmr", sampling="deterministic")
    [batch, *_] = tiny_batches(tiny_examples(8))
    reference = method.rationalize(batch, "reference").mask
    assert torch.equal(reference, method.rationalize(batch, "reference").mask)
    assert torch.equal(reference, method.rationalize(batch, "clean").mask)


def test_reference_variant_uses_the_gold_label_at_test() -> None:
    """dmr_ref: the rationale comes from the true class's generator, so flipping labels changes it."""
    method = tiny_method("dmr_ref", teacher_epochs=1)
    method.train_epoch(tiny_batches(tiny_examples(8)))
    [batch, *_] = tiny_batches(tiny_examples(8))
    out = method.rationalize(batch, "reference")
    assert not (out.mask * (1 - batch.mask)).any()
    for cls in (0, 1):
        own = torch.full_like(batch.labels, cls)
        rows = batch.labels == cls
        expected = method._select(batch.ids, batch.mask, cls, own)
        assert torch.equal(out.mask[rows], (expected >= 0.5).float()[rows])
    batch.labels = 1 - batch.labels
    assert not torch.equal(out.logits, method.rationalize(batch, "reference").logits)


def test_reference_variant_alternates_generators_and_separates_updates() -> None:
    """Per batch only the path generator moves; the teacher stays frozen after pretraining."""
    method = tiny_method("dmr_ref", teacher_epochs=1)
    batches = tiny_batches(tiny_examples(8))
    method.train_epoch(batches[:1])  # pretrains the teacher, then path 0
    snapshot = {k: v.clone() for k, v in method.model.state_dict().items()}
    method.train_epoch(batches[:1])  # path 1
    state = method.model.state_dict()
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k in state if not torch.equal(state[k], snapshot[k])}
    assert {"generators.1", "generator_embeds.1"} <= changed
    assert not {"generators.0", "generator_embeds.0"} & changed
    assert not any(k.startswith("teacher") and not torch.equal(state[k], snapshot[k]) for k in state)


def test_reference_variant_flags_restore_the_adapted_setting() -> None:
    """dmr_ref with trainable_embeddings=False, embedding_init=pretrained, init=torch: one frozen
    table holding the vectors as given, shared by every module and left out of the optimizers;
    training runs and leaves it unchanged."""
    method = tiny_method(
        "dmr_ref", teacher_epochs=1, trainable_embeddings=False, embedding_init="pretrained", init="torch"
    )
    model = method.model
    tables = {id(m) for m in (*model.generator_embeds, model.student_embed, model.teacher_embed)}
    assert len(tables) == 1
    weight = model.student_embed.embedding.weight
    assert not weight.requires_grad and torch.equal(weight, torch.as_tensor(method.info.embeddings))
    assert all(p is not weight for o in method.optimizers for g in o.param_groups for p in g["params"])
    assert any(b.any() for n, b in model.generators.named_parameters() if "bias" in n)  # torch's init
    before = weight.clone()
    terms = method.train_epoch(tiny_batches(tiny_examples(8)))
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    assert torch.equal(before, weight)
