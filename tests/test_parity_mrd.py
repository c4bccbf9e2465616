"""Step-level parity of MRD with its reference, jugechengzi/Rationalization-MRD@b50f36e.

The fixtures (``tests/golden/parity/mrd_{kl,js}.pt``) were recorded by
``benchmarks/parity/record_mrd.py`` from the reference's own ``train_adv_causal``,
``dev_adv_causal``, ``validate_share`` and ``validate_rationales`` on the tiny setting of
``record_jugechengzi.py`` (3 training batches of 5 rows padded to 24). The test builds ratbench's
registered ``mrd`` with the fixture's hyperparameters and the reference's initial weights,
replays every random draw through the real ``train_epoch`` (one batch per call) and evaluator,
and compares through hooks, per batch: the predictor step (selector logits, the remainder mask
the predictor read, its logits on the remainder and on the full text, the four loss terms and
the total, the predictor's gradients and weights after its Adam step and, with ``gen_sparse``,
the selector's step on the regularizers alone), the selector step with the predictor frozen
(logits, masks, regularizers, the divergence, the total, gradients, weights after) and the
no-grad pass on its rationale (the training accuracy); then the evaluation (dev rationales
and accuracy, the annotation counts, S/P/R/F1, the gold-rationale accuracy) with
``test_parity_jugechengzi.compare_evaluation``, and the predictor on the dev remainders and
full texts.

Bit-exact everywhere (``torch.equal`` / ``==``) except what ``compare_evaluation`` already allows
(the reference's float32 percentages; evaluation logits where its straight-through mask is
not exactly 0/1). The divergence term is compared with its sign flipped: ratbench logs the
divergence (>= 0) and weighs it by ``-div_lambda``; the reference's local is ``-divergence``.

Mutation caught (checked): ``forward(batch)`` instead of ``forward(batch, detach_remainder=True)``
in the predictor step (the remainder's cross-entropy then reaches the selector, whose Adam steps
on it in ``mrd_kl``): the predictor step's selector gradients differ. Also caught: the KL's
direction swapped (``KL(P_{-Z} || P_X)``): the selector step's loss differs.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_parity_jugechengzi import (
    Probe,
    assert_same,
    assert_same_tensors,
    examples,
    renamed,
    replay,
    unpack,
)

from ratbench.data.batching import eval_batches
from ratbench.method import Method
from ratbench.registry import METHODS
from ratbench.types import Batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def compare_batch(fx: dict[str, Any], b: int, batch: Batch, means: dict[str, float], probe: Probe) -> None:
    """One training batch: the predictor step, the selector step and the no-grad pass."""
    step, gen_sparse, where = fx["steps"][b], fx["config"]["gen_sparse"], f"batch {b}"
    first, second = step["predictor_step"], step["selector_step"]
    selector, masks, logits = probe.take("selector"), probe.take("predictor_z"), probe.take("predictor")
    regularizers = probe.take("regularizers")
    # The predictor runs on the remainder and the full text in each step, then on the rationale.
    assert (len(selector), len(masks), len(logits)) == (2, 5, 5), f"{where}: calls per batch"
    assert len(regularizers) == (2 if gen_sparse else 1), f"{where}: regularizer calls"

    here = f"{where} predictor step"
    assert_same(selector[0], first["selector_logits"], f"{here} selector logits")
    assert_same(masks[0], first["z_remainder"], f"{here} remainder mask the predictor read")
    assert_same(logits[0], first["remainder_logits"], f"{here} predictor logits on the remainder")
    assert_same(masks[1], batch.mask, f"{here} full text (every real position)")
    assert_same(logits[1], first["full_logits"], f"{here} predictor logits on the full text")
    if gen_sparse:
        z, (sparsity, continuity) = regularizers[0]
        assert_same(z, first["z_select"], f"{here} mask the regularizers read")
        assert (sparsity, continuity) == (first["sparsity_loss"], first["continuity_loss"]), f"{here} regularizers"
    assert means["remainder_loss"] == first["remainder_cls_loss"], f"{here} remainder cross-entropy"
    assert means["full_text_loss"] == first["full_text_cls_loss"], f"{here} full-text cross-entropy"
    assert means["loss"] == first["loss"], f"{here} total loss"
    [grads] = probe.take("grads1")
    assert_same_tensors(grads, renamed(unpack(first["predictor_grads"])), f"{here} predictor gradient")
    [weights, *_] = probe.take("weights1")
    assert_same_tensors(weights, renamed(unpack(first["predictor_weights_after"])), f"{here} weights after")
    selector_grads, selector_weights = probe.take("grads0"), probe.take("weights0")
    assert len(selector_grads) == (2 if gen_sparse else 1), f"{where}: selector steps"
    if gen_sparse:
        here = f"{where} predictor step, the selector's Adam on the regularizers"
        assert_same_tensors(selector_grads[0], renamed(unpack(first["selector_grads"])), f"{here}: gradient")
        assert_same_tensors(selector_weights[0], renamed(unpack(first["selector_weights_after"])), f"{here}: weights")

    here = f"{where} selector step"
    assert_same(selector[1], second["selector_logits"], f"{here} selector logits")
    assert_same(masks[2], second["z_remainder"], f"{here} remainder mask the predictor read")
    assert_same(logits[2], second["remainder_logits"], f"{here} predictor logits on the remainder")
    assert_same(masks[3], batch.mask, f"{here} full text")
    assert_same(logits[3], second["full_logits"], f"{here} predictor logits on the full text")
    z, (sparsity, continuity) = regularizers[-1]
    assert_same(z, second["z_select"], f"{here} mask the regularizers read")
    assert (sparsity, continuity) == (second["sparsity_loss"], second["continuity_loss"]), f"{here} regularizers"
    assert sparsity == means["sparsity_loss"] and continuity == means["continuity_loss"], f"{here} logged terms"
    assert means["divergence_loss"] == -second["divergence_term"], f"{here} divergence"
    assert means["selector_loss"] == second["loss"], f"{here} total loss"
    assert_same_tensors(selector_grads[-1], renamed(unpack(second["grads"])), f"{here} gradient")
    assert_same_tensors(selector_weights[-1], renamed(unpack(second["weights_after"])), f"{here} weights after")

    here = f"{where} no-grad pass"
    assert_same(masks[4], second["z_select"], f"{here}: the selector step's rationale")
    assert_same(logits[4], step["rationale_logits"], f"{here} predictor logits")
    correct = (step["rationale_logits"].argmax(-1) == batch.labels).float().mean()
    assert means["train_acc"] == float(correct), f"{here}: train_acc is the reference's training accuracy"


def compare_dev_views(method: Method, fx: dict[str, Any]) -> None:
    """The predictor (eval mode) on the dev remainders and full texts, as dev_adv_causal ran it."""
    ref = fx["eval"]
    dev_examples = [ex for batch in examples(fx["dev"], "dev") for ex in batch]
    method.model.eval()
    with torch.no_grad():
        for b, batch in enumerate(eval_batches(dev_examples, fx["config"]["batch_size"], pad_to=fx["max_len"])):
            embedded = method.embed(batch)
            remainder = method.classify(batch, embedded, ref["dev_remainders"][b])
            assert_same(remainder, ref["dev_remainder_logits"][b], f"dev batch {b} predictor on the remainder")
            full = method.full_text_logits(batch, embedded)
            assert_same(full, ref["dev_full_logits"][b], f"dev batch {b} predictor on the full text")
    # dev_adv_causal's counts sit outside its batch loop: its accuracy is the last batch's.
    last = (ref["dev_predictor_logits"][-1].argmax(-1) == fx["dev"][-1]["labels"]).float().mean()
    assert ref["dev_adv_causal"]["rationale"][3] == float(last)


def run_case(case: str, **overrides: Any) -> dict[str, Any]:
    """Replay the fixture of ``case`` through ratbench and compare everything."""

    def check(fx: dict[str, Any], b: int, batch: Batch, means: dict[str, float], probe: Probe, method: Method) -> None:
        compare_batch(fx, b, batch, means, probe)

    fx, method = replay(case, check, **overrides)
    compare_dev_views(method, fx)
    return fx


def test_mrd_kl_matches_the_reference() -> None:
    """The README's setting (--div kl --gen_sparse 1): per batch the predictor's Adam and the
    selector's (on the regularizers only: the remainder is detached), then the selector's again
    on the regularizers minus div_lambda KL(P(Y|X) || P(Y|X_{-Z})), predictor frozen."""
    fx = run_case("mrd_kl")
    assert (fx["config"]["div"], fx["config"]["gen_sparse"]) == ("kl", True)
    assert all(step["selector_step"]["divergence_term"] < 0 for step in fx["steps"]), "a divergence to maximise"


def test_mrd_js_without_gen_sparse_matches_the_reference() -> None:
    """--div js --gen_sparse 0: the predictor step has no regularizers and the selector steps
    once per batch, on the regularizers minus div_lambda JS."""
    fx = run_case("mrd_js")
    assert (fx["config"]["div"], fx["config"]["gen_sparse"]) == ("js", False)


def test_a_detached_remainder_in_the_selector_step_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is sharp: with the selector step's remainder detached too (no gradient
    from the divergence), the selector step's gradients no longer match."""
    original = METHODS.get("mrd").forward

    def forward(self: Any, batch: Batch, selector: Any = None, detach_remainder: bool = False) -> Any:
        return original(self, batch, selector, detach_remainder=True)

    monkeypatch.setattr(METHODS.get("mrd"), "forward", forward)
    with pytest.raises(AssertionError, match="selector step gradient"):
        run_case("mrd_kl")
