"""Step-level parity of DAR with its reference, jugechengzi/dar@2729ed2 (``teacher_beer.py``, ``--share 0``).

The fixture (``tests/golden/parity/dar.pt``) was recorded by ``benchmarks/parity/record_dar.py``
from the reference's own ``Teacher`` and ``train_util.train_teacher`` (2 pretraining epochs of 3
batches: 6 Adam steps of the teacher's own optimizer, the last epoch being the one ``pre_tea``
reloads), then its ``GenEncNoShareModel`` and ``train_util.train_share`` (3 steps, the reloaded
teacher in train mode classifying each rationale) and the script's evaluation. The test builds
ratbench's registered ``dar`` with the fixture's settings and the reference's initial weights
(the teacher's and the model's), replays every random draw through one real ``train_epoch`` (its
``before_epoch`` pretrains the teacher, then the 3 steps) and the real evaluator, and compares,
through hooks (``test_parity_jugechengzi.Probe`` and a hook on the teacher): per teacher step
its logits, every gradient and its weights after the step, and its last-pass accuracy; per main
step the selector logits, the mask, the predictor's and the teacher's logits on it, each
unweighted loss term in the reference's order (cls, sparsity, continuity, teacher), the total,
every gradient and the weights after (the teacher unchanged); then the evaluation as for RNP
(``test_parity_jugechengzi.compare_evaluation``). All bit-exact, except the reference's float32
accuracies (ratbench divides the same counts in float64).

The reference's training loader is not shuffled, so every teacher pass sees the batches in the
same order; ratbench's teacher reorders the batches of each pass with ``torch.randperm``, made the
identity here (the order is the data stream's, a documented difference; no number is drawn).

Mutation that the test catches: putting the frozen teacher in eval mode for the main steps
(``self.model.teacher.eval()`` at the end of ``DAR.before_epoch``, as DMR does): the teacher's
dropout draw of each step is missing and the replay stops with ``DrawMismatch``; so does the
``teacher_dropout=False`` flag (``test_teacher_in_eval_mode_is_not_the_reference``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from parity_tape import DrawMismatch, DrawTape
from test_parity_jugechengzi import (
    Probe,
    assert_same,
    assert_same_tensors,
    check_layout,
    compare_evaluation,
    examples,
    load_fixture,
    replaying,
    unpack,
)

from ratbench.data.batching import collate
from ratbench.method import Method
from ratbench.registry import METHODS
from ratbench.types import DataInfo

# Reference parameter prefixes (model. = GenEncNoShareModel, tea_model. = Teacher) -> ratbench's.
PARTS = {
    "model.gen.rnn.": "selector.encoder.gru.",
    "model.layernorm1.": "selector.norm.",
    "model.gen_fc.": "selector.head.",
    "model.cls.rnn.": "predictor.encoder.encoder.gru.",
    "model.layernorm2.": "predictor.encoder.norm.",
    "model.cls_fc.": "predictor.head.",
    "tea_model.tea.rnn.": "teacher.encoder.encoder.gru.",
    "tea_model.layernorm.": "teacher.encoder.norm.",
    "tea_model.fc.": "teacher.head.",
}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def renamed(packed: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A packed reference-named set of tensors under ratbench's names."""
    out = {}
    for name, value in unpack(packed).items():
        [prefix] = [p for p in PARTS if name.startswith(p)]
        out[PARTS[prefix] + name.removeprefix(prefix)] = value
    return out


def build_method(fx: dict[str, Any], **overrides: Any) -> Method:
    """ratbench's ``dar`` with the fixture's settings and the reference's initial weights."""
    cls = METHODS.get("dar")
    info = DataInfo(num_classes=2, embeddings=fx["embeddings"].numpy())
    method = cls(cls.Config(**{**fx["config"], **overrides}), info, torch.device("cpu"))
    initial = {**renamed(fx["teacher"]["initial_weights"]), **renamed(fx["initial_weights"])}
    params = dict(method.model.named_parameters())
    assert set(initial) == {n for n, p in params.items() if p.requires_grad}, "every trainable parameter maps"
    with torch.no_grad():
        for name, value in initial.items():
            params[name].copy_(value)
    return method


def probe(method: Method, tape: DrawTape) -> Probe:
    """``Probe`` plus the teacher's logits, each step's loss terms and total, and the tape's
    position when the selector first runs (where the teacher's pretraining ended)."""
    seen = Probe(method)
    method.model.teacher.register_forward_hook(seen._keep("teacher"))
    method.model.selector.register_forward_pre_hook(lambda *_: seen.log["selector_at"].append(tape.position))
    losses, total_loss = method.losses, method.total_loss

    def losses_probe(batch: Any, forward: Any) -> dict[str, torch.Tensor]:
        terms = losses(batch, forward)
        seen.log["terms"].append({name: float(term.detach()) for name, term in terms.items()})
        return terms

    def total_probe(terms: dict[str, torch.Tensor]) -> torch.Tensor:
        total = total_loss(terms)
        seen.log["total"].append(total.detach().clone())
        return total

    method.losses = losses_probe  # type: ignore[method-assign]
    method.total_loss = total_probe  # type: ignore[method-assign]
    return seen


def compare_teacher(fx: dict[str, Any], seen: Probe, means: dict[str, float]) -> None:
    """The teacher's pretraining steps: logits, gradients, weights after; its last-pass accuracy."""
    recorded = fx["teacher"]["steps"]
    logits, grads, weights = seen.log["teacher"][: len(recorded)], seen.take("grads1"), seen.take("weights1")
    assert (len(logits), len(grads), len(weights)) == (6, 6, 6), "2 passes x 3 batches, one Adam step each"
    for i, step in enumerate(recorded):
        where = f"teacher step {i}"
        assert_same(logits[i], step["teacher_logits"], f"{where} logits")
        assert_same_tensors(grads[i], renamed(step["grads"]), f"{where} gradient")
        expected = renamed(step["weights_after"])
        assert_same_tensors({k: v for k, v in weights[i].items() if k in expected}, expected, f"{where} weights")
    # train_teacher's float32 accuracy of the last pass; ratbench's percent of the same count.
    assert means["teacher_train_acc"] == pytest.approx(100 * fx["teacher"]["epochs"][-1]["train_accuracy"], rel=1e-6)


def compare_steps(fx: dict[str, Any], seen: Probe, means: dict[str, float]) -> None:
    """The main steps of ``train_share``: everything the loss is made of, gradients, weights."""
    teacher_weights = renamed(fx["teacher"]["weights"])
    teacher_logits = seen.take("teacher")[len(fx["teacher"]["steps"]) :]
    selector, masks, logits = seen.take("selector"), seen.take("predictor_z"), seen.take("predictor")
    regularizers, terms, totals = seen.take("regularizers"), seen.take("terms"), seen.take("total")
    grads, weights = seen.take("grads0"), seen.take("weights0")
    assert len(selector) == len(teacher_logits) == len(terms) == len(grads) == 3
    for b, step in enumerate(fx["steps"]):
        where = f"step {b}"
        assert_same(selector[b], step["selector_logits"], f"{where} selector logits")
        assert_same(masks[b], step["z"], f"{where} mask the predictor read")
        assert_same(logits[b], step["predictor_logits"], f"{where} predictor logits")
        assert_same(teacher_logits[b], step["teacher_logits"], f"{where} teacher logits on the rationale")
        z_regularizer, _ = regularizers[b]
        assert_same(z_regularizer, step["z"], f"{where} mask the regularizers read")
        # train_share's loss = cls + sparsity + continuity + teacher: the same terms, added in that order.
        assert list(terms[b]) == ["cls", "sparsity", "continuity", "teacher"], f"{where} order of the terms"
        for name in terms[b]:
            assert terms[b][name] == step[f"{name}_loss"], f"{where} {name} term"
        assert float(totals[b]) == step["loss"], f"{where} total loss"
        assert_same_tensors(grads[b], renamed(step["grads"]), f"{where} gradient")
        expected = renamed(step["weights_after"])
        assert_same_tensors({k: v for k, v in weights[b].items() if k in expected}, expected, f"{where} weights")
        after = {k: v for k, v in weights[b].items() if k in teacher_weights}
        assert_same_tensors(after, teacher_weights, f"{where} teacher (frozen)")
    # The epoch's means: float32 sums of the per-step values (EpochMeans), divided in Python.
    for key in ("loss", "cls_loss", "teacher_loss", "sparsity_loss", "continuity_loss"):
        total = torch.zeros((), dtype=torch.float32)
        for step in fx["steps"]:
            total = total + torch.tensor(step[key], dtype=torch.float32)
        assert means[key] == float(total) / len(fx["steps"]), f"epoch mean of {key}"


def where_in_tape(position: int, marks: dict[str, int]) -> str:
    """Which phase of the recording a tape position belongs to."""
    phases = ("teacher pretraining", "teacher_end"), ("training", "train_end"), ("dev accuracy", "dev_end")
    for phase, mark in phases:
        if position < marks[mark]:
            return phase
    return "annotation evaluation"


def replay(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> tuple[dict[str, Any], Method]:
    """Replay the fixture through ratbench and compare everything; ``overrides`` change the config."""
    fx = load_fixture("dar")
    method = build_method(fx, **overrides)
    train = [collate(batch, pad_to=fx["max_len"]) for batch in examples(fx["train"], "train")]
    check_layout(train, fx["train"])
    # The reference's loader is unshuffled: each teacher pass takes the batches in order.
    monkeypatch.setattr(torch, "randperm", lambda n, **_: torch.arange(n))
    tape = DrawTape.from_state(fx["tape"])
    seen = probe(method, tape)
    marks = fx["tape_marks"]
    with replaying("dar", tape, marks):
        means = method.train_epoch(train)
        assert seen.take("selector_at")[0] == marks["teacher_end"], "pretraining drew as the reference's"
        assert tape.position == marks["train_end"], "training drew as many numbers as the reference"
        teacher = method.model.teacher
        assert teacher.training and not any(p.requires_grad for p in teacher.parameters())
        compare_teacher(fx, seen, means)
        compare_steps(fx, seen, means)
        for key in list(seen.log):
            seen.take(key)
        compare_evaluation(method, fx, seen)
    return fx, method


def test_dar_matches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Teacher pretraining, train_share with the train-mode teacher, and the evaluation: bit-exact."""
    fx, _ = replay(monkeypatch)
    assert fx["teacher"]["best_epoch"] == len(fx["teacher"]["epochs"]) - 1, "the reference reloads the last pass"
    assert fx["config"]["tea_lambda"] != fx["config"]["cls_lambda"], "a swap of the two weights would show"
    padding = [step["z"] * (1 - batch["masks"]) for step, batch in zip(fx["steps"], fx["train"], strict=True)]
    assert any(bool(p.sum() > 0) for p in padding), "the fixture selects padding (which the teacher then reads)"


def test_teacher_in_eval_mode_is_not_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """teacher_dropout=False (eval-mode teacher) draws no dropout for the teacher: not the reference."""
    with pytest.raises(DrawMismatch, match="in training"):
        replay(monkeypatch, teacher_dropout=False)
