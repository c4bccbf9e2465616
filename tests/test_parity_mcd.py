"""Step-level parity of MCD with its reference, jugechengzi/Rationalization-MCD@f96ea28.

The fixtures (``tests/golden/parity/mcd.pt``: ``--div kl``, ``mcd_js.pt``: ``--div js``) were
recorded by ``benchmarks/parity/record_mcd.py`` from the reference's own
``train_util.train_decouple_causal2`` (3 batches, two steps each) and the evaluation
``decouple_bcr.py`` runs after an epoch. Each test builds ratbench's registered ``mcd`` with the
fixture's hyperparameters and the reference's initial weights, replays every recorded draw through
the real ``train_epoch`` (one batch per call; the optimizers persist) and the real evaluator, and
compares through hooks (the helpers of ``test_parity_jugechengzi.py``), per batch:
  * the predictor step: the selector's logits, the sample, the mask the predictor read (the
    sample, detached) and the full text's, the predictor's logits on both, the unweighted and
    weighted cross-entropies and regularizers, the total, the predictor's gradients and weights
    after its Adam step, then the selector's gradients (the regularizers' alone) and weights
    after its Adam step;
  * the selector step (predictor frozen): a fresh sample, both predictor passes, the regularizers,
    the divergence, the total, the selector's gradients (through the frozen predictor) and weights;
then the dev accuracy, the annotation rationales and counts, the full-text accuracy on dev and on
the annotations and the gold-rationale accuracy.

Everything is bit-exact (``torch.equal`` / ``==``): ratbench runs the reference's operations in
its order (the KL as ``F.kl_div`` of the log of a softmax, the loss terms added in the reference's
order). The evaluation logits go through the shared ``assert_eval_logits``, whose tolerance applies
only where the reference's straight-through mask is not exactly 0/1; in both fixtures it is (the
tests check), so they are compared exactly too. Torch runs on one thread, as in the recording.

Mutations this test catches (each checked by hand, then undone): the mask not detached in the
predictor step (cross-entropy reaches the selector: "batch 0 predictor step selector gradient"
differs); the KL's arguments swapped, KL(P(Y|X_Z) || P(Y|X)) ("batch 0 selector step
divergence"); ``log_softmax`` instead of the reference's log of the softmax (the same
divergence, in its last bits); the full-text pass read through the rationale ("batch 0 predictor
step predictor logits on the full text"); the predictor not frozen in the selector step (the same
numbers, but gradients land on the predictor: "batch 0 selector step: the predictor was
frozen"). ``predictor_step_regularizers=False`` (the paper's Eq. 16, a deviation flag) departs
from the fixture at batch 0's predictor step, as a test below checks.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_parity_jugechengzi import (
    Probe,
    assert_same,
    assert_same_tensors,
    check_layout,
    compare_evaluation,
    examples,
    renamed,
    replay,
    unpack,
)

from ratbench.data.batching import eval_batches
from ratbench.evaluation.evaluator import predictor_accuracy
from ratbench.method import Method
from ratbench.types import Batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def weighted(method: Method, name: str, term: float) -> float:
    """``term`` (a float32 value) times its weight, rounded as the method weighs it."""
    return float(method.loss_weights()[name] * torch.tensor(term, dtype=torch.float32))


def compare_batch(
    method: Method, step: dict[str, Any], means: dict[str, float], probe: Probe, batch: Batch, where: str
) -> None:
    """Both steps of one batch (see the module docstring)."""
    selector, masks, logits = probe.take("selector"), probe.take("predictor_z"), probe.take("predictor")
    regularizers = probe.take("regularizers")
    # Per batch: the selector runs once per step; the predictor reads the sample, then the full
    # text, in each step; the regularizers see each step's sample.
    assert (len(selector), len(masks), len(logits)) == (2, 4, 4), f"{where}: calls per batch"

    here, ref = f"{where} predictor step", step["predictor_step"]
    assert len(regularizers) == 2, f"{here}: the regularizers of both samples"
    assert_same(selector[0], ref["selector_logits"], f"{here} selector logits")
    assert_same(masks[0], ref["z"], f"{here} mask the predictor read")
    assert not masks[0].requires_grad, f"{here}: the predictor's mask is detached"
    assert_same(logits[0], ref["predictor_logits"], f"{here} predictor logits on the rationale")
    assert_same(logits[1], ref["full_text_logits"], f"{here} predictor logits on the full text")
    z_reg, (sparsity, continuity) = regularizers[0]
    assert_same(z_reg, ref["z"], f"{here} mask the regularizers read")
    assert means["cls_loss"] == ref["cls_loss"], f"{here} cross-entropy on the rationale"
    assert means["full_text_loss"] == ref["full_text_cls_loss"], f"{here} cross-entropy on the full text"
    assert (sparsity, continuity) == (ref["sparsity_loss"], ref["continuity_loss"]), f"{here} regularizer terms"
    assert means.get("sparsity_loss") == sparsity and means.get("continuity_loss") == continuity, f"{here} logged"
    for name, key in (("cls", "cls_loss"), ("full_text", "full_text_cls_loss")):
        assert weighted(method, name, ref[key]) == ref[f"{key}_weighted"], f"{here} weighted {name}"
    for name in ("sparsity", "continuity"):
        assert weighted(method, name, ref[f"{name}_loss"]) == ref[f"{name}_loss_weighted"], f"{here} weighted {name}"
    assert means["loss"] == ref["loss"], f"{here} total loss"
    [grads] = probe.take("grads1")
    assert_same_tensors(grads, renamed(unpack(ref["predictor_grads"])), f"{here} predictor gradient")
    [weights] = probe.take("weights1")
    assert_same_tensors(weights, renamed(unpack(ref["predictor_weights_after"])), f"{here} weights after opt_pred")
    selector_grads, selector_weights = probe.take("grads0"), probe.take("weights0")
    assert (len(selector_grads), len(selector_weights)) == (2, 2), f"{where}: the selector's Adam steps twice"
    assert_same_tensors(selector_grads[0], renamed(unpack(ref["selector_grads"])), f"{here} selector gradient")
    assert_same_tensors(selector_weights[0], renamed(unpack(ref["selector_weights_after"])), f"{here} weights after")

    here, ref = f"{where} selector step", step["selector_step"]
    assert_same(selector[1], ref["selector_logits"], f"{here} selector logits")
    assert_same(masks[2], ref["z"], f"{here} mask the predictor read")
    assert_same(logits[2], ref["predictor_logits"], f"{here} predictor logits on the rationale")
    assert_same(logits[3], ref["full_text_logits"], f"{here} predictor logits on the full text")
    for mask in (masks[1], masks[3]):
        assert_same(mask, batch.mask, f"{where}: the full text is read through the padding mask")
    z_reg, (sparsity, continuity) = regularizers[1]
    assert_same(z_reg, ref["z"], f"{here} mask the regularizers read")
    assert (sparsity, continuity) == (ref["sparsity_loss"], ref["continuity_loss"]), f"{here} regularizer terms"
    assert (means["selector_sparsity_loss"], means["selector_continuity_loss"]) == (sparsity, continuity)
    assert means["div_loss"] == ref["div"], f"{here} divergence"
    assert means["selector_loss"] == ref["loss"], f"{here} total loss"
    assert_same_tensors(selector_grads[1], renamed(unpack(ref["grads"])), f"{here} gradient")
    assert_same_tensors(selector_weights[1], renamed(unpack(ref["weights_after"])), f"{here} weights after")
    assert not probe.take("grads1"), f"{here}: the predictor's Adam does not step"
    # As the reference (opt_pred.zero_grad() after its step, then requires_grad off): the selector
    # step leaves no gradient on the predictor, and its flags are back on afterwards.
    predictor = list(method.model.predictor.parameters())
    assert all(p.grad is None for p in predictor), f"{here}: the predictor was frozen (no gradient on it)"
    assert all(p.requires_grad for p in predictor), f"{where}: the predictor trains again"


def compare_full_text(method: Method, fx: dict[str, Any], probe: Probe) -> None:
    """The predictor on the full text at evaluation, dev (validate_dev_sentence) and annotations
    (validate_annotation_sentence): the same logits, batch by batch."""
    ref, size, max_len = fx["eval"], fx["config"]["batch_size"], fx["max_len"]
    for split, key in (("dev", "dev_full_text_logits"), ("annotation", "annotation_full_text_logits")):
        batches = list(eval_batches([ex for batch in examples(fx[split], split) for ex in batch], size, pad_to=max_len))
        check_layout(batches, fx[split])
        for name in list(probe.log):
            probe.take(name)
        accuracy = predictor_accuracy(method, batches, "full")
        for b, logits in enumerate(probe.take("predictor")):
            assert_same(logits, ref[key][b], f"{split} batch {b} predictor logits on the full text")
        correct = sum(int((x.argmax(-1) == batch.labels).sum()) for x, batch in zip(ref[key], batches, strict=True))
        assert accuracy == pytest.approx(100 * correct / sum(len(b.labels) for b in batches), rel=1e-12)
    dev_correct = sum(
        int((x.argmax(-1) == batch["labels"]).sum())
        for x, batch in zip(ref["dev_full_text_logits"], fx["dev"], strict=True)
    )
    assert dev_correct / ref["dev_total"] == pytest.approx(ref["dev_full_text_accuracy"], rel=1e-6)


def assert_exact_evaluation_masks(fx: dict[str, Any]) -> None:
    """The reference's evaluation masks are exactly 0/1, so ``assert_eval_logits`` compared exactly."""
    masks = fx["eval"]["dev_rationales"] + fx["eval"]["annotation_rationales"]
    assert all(bool(((z == 0) | (z == 1)).all()) for z in masks)


def run_case(case: str, **overrides: Any) -> dict[str, Any]:
    """Replay the fixture of ``case`` through ratbench and compare everything (the full-text
    evaluation too)."""

    def check(fx: dict[str, Any], b: int, batch: Batch, means: dict[str, float], probe: Probe, method: Method) -> None:
        compare_batch(method, fx["steps"][b], means, probe, batch, f"batch {b}")

    def evaluate(method: Method, fx: dict[str, Any], probe: Probe) -> None:
        compare_evaluation(method, fx, probe)
        compare_full_text(method, fx, probe)

    return replay(case, check, evaluate=evaluate, **overrides)[0]


def test_mcd_with_kl_matches_the_reference() -> None:
    """--div kl, the README's run: KL(P(Y|X) || P(Y|X_Z)) in the selector step."""
    fx = run_case("mcd")
    assert fx["config"]["div"] == "kl" and fx["reference"] == {
        "repo": "jugechengzi/Rationalization-MCD",
        "commit": "f96ea28",
    }
    padding = [
        step[phase]["z"] * (1 - batch["masks"])
        for step, batch in zip(fx["steps"], fx["train"], strict=True)
        for phase in ("predictor_step", "selector_step")
    ]
    assert any(bool(p.sum() > 0) for p in padding), "the fixture selects padding, so the normaliser is exercised"
    assert_exact_evaluation_masks(fx)


def test_mcd_with_js_matches_the_reference() -> None:
    """--div js: the Jensen-Shannon divergence of the two predictions."""
    fx = run_case("mcd_js")
    assert fx["config"]["div"] == "js"
    assert_exact_evaluation_masks(fx)


def test_leaving_the_regularizers_out_of_the_predictor_step_departs_from_the_reference() -> None:
    """predictor_step_regularizers=False (the paper's Eq. 16) is a deviation: the replay fails at
    batch 0's predictor step (its loss lacks the regularizers, the selector gets no gradient)."""
    with pytest.raises(AssertionError, match="batch 0 predictor step"):
        run_case("mcd", predictor_step_regularizers=False)
