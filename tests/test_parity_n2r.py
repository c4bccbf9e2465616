"""Step-level parity of N2R with the reference code (jugechengzi/Rationalization-N2R@3576d4a).

The fixtures (``tests/golden/parity/n2r*.pt``) were recorded by ``benchmarks/parity/record_n2r.py``
from the reference's own ``train_util.train_pred_mochang`` (``mochang.py``, N2R+RNP;
``train_pred_mochang_withoutacc`` for ``n2r_noacc``, ``mochang_noacc.py``) and ``mochang.py``'s
evaluation, in ``record_jugechengzi.py``'s setting and format. Each test builds the registered
``n2r`` with the fixture's config and the reference's initial weights, replays every draw through
``method.train_epoch([batch])`` (one batch per call; two Adam steps each) and the real evaluator,
and compares through hooks and pass-through wrappers, bit for bit: per batch, the RNP step
(selector logits, the mask, predictor logits, the cross-entropy and regularizer terms, the total,
every gradient, the weights after) and the norm step (its own selector logits and fresh mask, the
predictor's logits and pooled representation ``h`` on it, the norms ``||h||_2``, the weighted norm
term, the regularizers, the total, every gradient, with the frozen predictor's zero gradients
under torch 1.13's ``zero_grad()`` semantics or their absence under torch 2's, and the weights
after); then the dev accuracy, the annotation rationales, counts and S/P/R/F1, the gold-rationale
accuracy (``test_parity_jugechengzi.compare_evaluation``) and the representation's norms at
evaluation.

Tolerances: none in training. At evaluation the reference feeds the predictor its
straight-through sample ``onehot - soft.detach() + soft`` (1 +- 1 ulp at times), ratbench the
exact 0/1 argmax: the logits and norms there are exact where the reference's mask is exactly 0/1,
else within ``EVAL_LOGITS_ATOL`` (as in ``test_parity_jugechengzi``).

Mutations of ``methods/n2r.py`` that these tests catch (each checked to fail, then undone): the
norm step reusing step 1's mask instead of drawing a fresh sample (a ``DrawMismatch``), the norm
step zeroing gradients with ``set_to_none=True`` whatever the flag (``n2r``: the frozen predictor's
zero gradients and its momentum step are missing), ``1e-6`` moved out of the log
(``log(||h||) + 1e-6``: the norm term differs), and the norm taken after the predictor's dropout.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_parity_jugechengzi import (
    EVAL_LOGITS_ATOL,
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
from ratbench.types import Batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class N2RProbe(Probe):
    """``Probe`` plus the norm step's view: the predictor head's logits (both steps), the
    representation ``h`` and its norms (pass-through wrappers of ``representation`` and ``norms``)."""

    def __init__(self, method: Method) -> None:
        super().__init__(method)
        method.model.predictor.head.register_forward_hook(self._keep("head"))
        representation, norms = method.representation, method.norms

        def representation_probe(*args: Any) -> torch.Tensor:
            features = representation(*args)
            self.log["features"].append(features.detach().clone())
            return features

        def norms_probe(features: torch.Tensor) -> torch.Tensor:
            values = norms(features)
            self.log["norms"].append(values.detach().clone())
            return values

        method.representation = representation_probe  # type: ignore[method-assign]
        method.norms = norms_probe  # type: ignore[method-assign]


def f32(value: float) -> torch.Tensor:
    """A logged mean (the float of a float32 scalar, one batch) as the float32 it was."""
    return torch.tensor(value, dtype=torch.float32)


def compare_batch(
    rnp: dict[str, Any], norm: dict[str, Any], means: dict[str, float], probe: N2RProbe, method: Method, where: str
) -> None:
    """One batch: the RNP step, then the norm step (predictor frozen, a fresh sample)."""
    assert (rnp["phase"], norm["phase"]) == ("rnp", "norm")
    selector, regularizers, head = probe.take("selector"), probe.take("regularizers"), probe.take("head")
    [z_predictor], [logits] = probe.take("predictor_z"), probe.take("predictor")
    [features], [norms] = probe.take("features"), probe.take("norms")
    grads, weights = probe.take("grads0"), probe.take("weights0")
    # Per batch: the selector twice, the predictor's forward once (step 1; step 2 pools and
    # classifies through features / classify), its head twice, the regularizers twice, two steps.
    assert (len(selector), len(regularizers), len(head), len(grads), len(weights)) == (2, 2, 2, 2, 2), where

    here = f"{where} RNP step"
    assert_same(selector[0], rnp["selector_logits"], f"{here} selector logits")
    assert_same(z_predictor, rnp["z"], f"{here} mask the predictor read")
    assert_same(logits, rnp["predictor_logits"], f"{here} predictor logits")
    assert_same(head[0], rnp["predictor_logits"], f"{here} predictor head")
    z_reg, (sparsity, continuity) = regularizers[0]
    assert_same(z_reg, rnp["z"], f"{here} mask the regularizers read")
    assert means["cls_loss"] == rnp["cls_loss"], f"{here} cross-entropy"
    assert sparsity == means["sparsity_loss"] == rnp["sparsity_loss"], f"{here} sparsity term"
    assert continuity == means["continuity_loss"] == rnp["continuity_loss"], f"{here} continuity term"
    assert means["loss"] == rnp["loss"], f"{here} total loss"
    assert_same_tensors(grads[0], renamed(unpack(rnp["grads"])), f"{here} gradient")
    assert_same_tensors(weights[0], renamed(unpack(rnp["weights_after"])), f"{here} weights after")

    here = f"{where} norm step"
    assert_same(selector[1], norm["selector_logits"], f"{here} selector logits")
    z_reg, (sparsity, continuity) = regularizers[1]
    assert_same(z_reg, norm["z"], f"{here} fresh mask (regularizers)")
    assert (sparsity, continuity) == (norm["sparsity_loss"], norm["continuity_loss"]), f"{here} regularizer terms"
    assert_same(features, norm["features"], f"{here} predictor representation h (last_hid_state)")
    assert_same(norms, norm["norms"], f"{here} ||h||_2")
    assert_same(head[1], norm["predictor_logits"], f"{here} predictor logits (its dropout drawn, unused)")
    weighted = float(method.loss_weights()["norm"] * f32(means["norm_loss"]))  # as total_loss weighs it
    assert weighted == norm["mochang_loss"], f"{here} weighted norm term"
    assert means["norm_step_loss"] == norm["loss"], f"{here} total loss"
    assert_same_tensors(grads[1], renamed(unpack(norm["grads"])), f"{here} gradient (zero ones included)")
    assert_same_tensors(weights[1], renamed(unpack(norm["weights_after"])), f"{here} weights after")


def compare_evaluation_norms(method: Method, fx: dict[str, Any]) -> None:
    """``||h||_2`` of the predictor on the reference's own dev and annotation rationales, and the
    reference's mean norms (its second model-selection figure)."""
    ref, max_len, size = fx["eval"], fx["max_len"], fx["config"]["batch_size"]
    method.model.eval()
    for split, key in (("dev", "dev"), ("annotation", "annotation")):
        rows = [ex for batch in examples(fx[split], split) for ex in batch]
        total = 0.0
        for b, batch in enumerate(eval_batches(rows, size, pad_to=max_len)):
            z_ref = ref[f"{key}_rationales"][b]
            with torch.no_grad():
                norms = method.norms(method.representation(batch, method.embed(batch), (z_ref > 0.5).float()))
            expected = ref[f"{key}_norms"][b]
            if bool(((z_ref == 0) | (z_ref == 1)).all()):
                assert_same(norms, expected, f"{split} batch {b} norms")
            else:
                torch.testing.assert_close(norms, expected, rtol=0, atol=EVAL_LOGITS_ATOL, msg=f"{split} {b} norms")
            total += float(norms.sum())
        assert total / len(rows) == pytest.approx(ref[f"{key}_mean_norm"], rel=1e-5), f"{split} mean norm"


def run_case(case: str, **overrides: Any) -> dict[str, Any]:
    """Replay the fixture of ``case`` through ratbench and compare everything."""

    def check(fx: dict[str, Any], b: int, batch: Batch, means: dict[str, float], probe: Probe, method: Method) -> None:
        compare_batch(fx["steps"][2 * b], fx["steps"][2 * b + 1], means, probe, method, f"batch {b}")

    fx, method = replay(case, check, probe_type=N2RProbe, **overrides)
    compare_evaluation_norms(method, fx)
    return fx


def predictor_moved_in_norm_steps(fx: dict[str, Any]) -> list[bool]:
    """Per batch: whether the reference's predictor weights changed in the norm step."""
    moved = []
    for rnp, norm in zip(fx["steps"][0::2], fx["steps"][1::2], strict=True):
        before, after = unpack(rnp["weights_after"]), unpack(norm["weights_after"])
        moved.append(any(not torch.equal(before[k], after[k]) for k in before if k.startswith(("cls.", "cls_fc."))))
    return moved


def test_n2r_matches_the_reference() -> None:
    """mochang.py (N2R+RNP) as run under its torch 1.13.1: Adam steps the frozen predictor by its
    momentum in every norm step (its zero gradients are in the recorded gradients)."""
    fx = run_case("n2r")
    assert fx["config"]["norm_step_moves_predictor"] and fx["config"]["rnp_step"]
    assert predictor_moved_in_norm_steps(fx) == [True, True, True]
    norm_grads = [unpack(s["grads"]) for s in fx["steps"][1::2]]
    assert all(not g["cls_fc.weight"].any() for g in norm_grads), "the predictor's gradients are zero tensors"


def test_n2r_torch2_semantics_match_the_reference() -> None:
    """The same code under torch >= 2.0 (``norm_step_moves_predictor=False``): the frozen
    predictor has no gradient in the norm step and does not move."""
    fx = run_case("n2r_torch2")
    assert fx["config"]["norm_step_moves_predictor"] is False
    assert predictor_moved_in_norm_steps(fx) == [False, False, False]
    assert not any(k.startswith("cls") for s in fx["steps"][1::2] for k in unpack(s["grads"]))


def test_n2r_alone_matches_the_reference() -> None:
    """mochang_noacc.py (``rnp_step=False``): the predictor reads a detached mask in the first
    step, so the selector's gradient there comes from the regularizers only."""
    fx = run_case("n2r_noacc")
    assert fx["config"]["rnp_step"] is False


@pytest.mark.parametrize(
    ("case", "overrides", "caught"),
    [
        ("n2r", {"norm_step_moves_predictor": False}, "batch 0 norm step gradient"),
        ("n2r_torch2", {"norm_step_moves_predictor": True}, "batch 0 norm step gradient"),
        ("n2r", {"rnp_step": False}, "batch 0 RNP step gradient"),
        ("n2r_noacc", {"rnp_step": True}, "batch 0 RNP step gradient"),
        ("n2r", {"mochang_lambda": 1.0}, "batch 0 norm step weighted norm term"),
    ],
)
def test_each_flag_is_told_apart(case: str, overrides: dict[str, Any], caught: str) -> None:
    """The fixtures pin each flag: its other value fails the comparison where it should."""
    with pytest.raises(AssertionError, match=caught):
        run_case(case, **overrides)
