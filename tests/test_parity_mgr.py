"""Step-level parity of MGR with its reference code (jugechengzi/Rationalization-MGR@3926fbd).

The fixture (``tests/golden/parity/mgr.pt``) was recorded by ``benchmarks/parity/record_mgr.py``
from the reference's own ``Multi_gen``, ``train_multi_gen`` and evaluation, on the tiny setting
of ``record_jugechengzi.py``, with three selectors at lr, 1.5 lr and 2 lr (``lr_lambda`` 0.5)
and the predictor at lr / 3. The test builds ratbench's ``mgr`` from the registry with the
reference's initial weights, replays every random draw through ratbench's real ``train_epoch``
(one batch per call) and evaluator, and compares through hooks and pass-through wrappers only:
per step, each selector's logits, its straight-through mask (the one the predictor and the
regularizers read), the predictor's logits on it, its unweighted loss terms and weighted loss,
the summed loss, every gradient and every weight after the Adam step; then the reference's dev
loop (every selector's Gumbel rationale in eval mode, counts pooled over the selectors: the
reference's model-selection figure) through ``MGR.forwards``; the averaged test-time rationale
(``Multi_gen.test``) on dev through the runner's ``accuracy`` and on the annotations through
``rationalize_split`` / ``score_rationales`` (masks, logits, counts, S/P/R/F1, accuracy, the
predictor on the gold); and the first selector's rationale (``validate_onehead``) from a
``test_rationale=first`` copy restored by ``load_state_dict``, which also shows that the state
holds every selector.

Exact (``torch.equal`` / ``==``) wherever ratbench runs the reference's operations in its order.
Tolerances, with their reasons, are ``test_parity_jugechengzi``'s: the reference's float32
S/P/R/F1 and accuracies (ratbench divides the same counts in float64), and the one-head logits
where the reference's straight-through mask is 1 +- 1 ulp. The reference's ``torch.binomial``
test draws are replayed as ratbench's ``torch.bernoulli`` on the select channel; since a replayed
outcome hides the probability it was drawn from, the selectors' mean probabilities of every
test-time call are compared too (bitwise, with those the reference passed to ``torch.binomial``).

Mutations this test catches (each checked, then undone): the predictor at ``lr`` instead of
``lr / num_gen`` in ``MGR.build_optimizers`` (the predictor's weights after step 0 differ);
training on the first selector's loss only (the summed loss); the first selector's probabilities
in place of the selectors' mean at test (the mean probabilities); padding removed from the
averaged test rationale (the dev rationale).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from parity_tape import DrawMismatch, DrawTape
from test_parity_jugechengzi import (
    PREDICTOR_PARTS,
    Probe,
    assert_eval_logits,
    assert_same,
    assert_same_tensors,
    check_layout,
    compare_evaluation,
    exactly,
    examples,
    load_fixture,
    unpack,
)

from ratbench.data.batching import collate, eval_batches
from ratbench.evaluation.evaluator import rationalize_split, score_rationales
from ratbench.method import Method
from ratbench.registry import METHODS
from ratbench.types import DataInfo

# The reference's selector Sequential: 0 GRU, 1 SelectItem, 2 LayerNorm, 3 dropout, 4 Linear.
SELECTOR_PARTS = {"0.": "encoder.gru.", "2.": "norm.", "4.": "head."}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ratbench_name(reference_name: str) -> str:
    """ratbench's parameter name for a reference one (``gen_list.<i>.`` selectors, ``cls`` / ``cls_fc``)."""
    if reference_name.startswith("gen_list."):
        _, index, rest = reference_name.split(".", 2)
        for old, new in SELECTOR_PARTS.items():
            if rest.startswith(old):
                return f"selectors.{index}.{new}{rest.removeprefix(old)}"
    for old, new in PREDICTOR_PARTS.items():
        if reference_name.startswith(old):
            return f"predictor.{new}{reference_name.removeprefix(old)}"
    raise KeyError(reference_name)


def renamed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference-named tensors under ratbench's names."""
    return {ratbench_name(name): value for name, value in tensors.items()}


def build_mgr(fx: dict[str, Any], **overrides: Any) -> Method:
    """ratbench's registered ``mgr`` with the fixture's hyperparameters and the reference's initial weights."""
    cls = METHODS.get(fx["method"])
    info = DataInfo(num_classes=2, embeddings=fx["embeddings"].numpy())
    method = cls(cls.Config(**{**fx["config"], **overrides}), info, torch.device("cpu"))
    initial = renamed(unpack(fx["initial_weights"]))
    params = dict(method.model.named_parameters())
    assert set(initial) == {name for name, p in params.items() if p.requires_grad}, "every parameter maps"
    with torch.no_grad():
        for name, value in initial.items():
            params[name].copy_(value)
    return method


class MGRProbe(Probe):
    """``Probe`` (the first selector, the predictor, the regularizers, the optimizer) plus the
    other selectors' logits, ``losses`` / ``total_loss`` per selector and the test-time
    ``mean_probabilities`` (pass-through)."""

    def __init__(self, method: Method) -> None:
        super().__init__(method)
        for selector in list(method.model.selectors)[1:]:
            selector.register_forward_hook(self._keep("selector"))
        losses, total_loss, mean_probabilities = method.losses, method.total_loss, method.mean_probabilities
        self.means: list[torch.Tensor] = []

        def losses_probe(batch: Any, forward: Any) -> Any:
            terms = losses(batch, forward)
            self.log["terms"].append({name: float(term.detach()) for name, term in terms.items()})
            return terms

        def total_probe(terms: Any) -> Any:
            total = total_loss(terms)
            self.log["totals"].append(float(total.detach()))
            return total

        def mean_probe(batch: Any, embedded: Any) -> Any:
            mean = mean_probabilities(batch, embedded)
            self.means.append(mean.clone())  # not in ``log``: compare_evaluation empties it midway
            return mean

        method.losses = losses_probe  # type: ignore[method-assign]
        method.mean_probabilities = mean_probe  # type: ignore[method-assign]
        method.total_loss = total_probe  # type: ignore[method-assign]


def replay_tape(fx: dict[str, Any]) -> DrawTape:
    """The recorded draws, the reference's ``torch.binomial`` outcomes (``[B, T, 2]``) as the
    ``torch.bernoulli`` draws of their select channel, which ratbench makes."""
    state = fx["tape"]
    draws = [
        ("bernoulli", value[..., 1].bool()) if kind == "binomial" else (kind, value)
        for kind, value in zip(state["kinds"], state["values"], strict=True)
    ]
    return DrawTape(draws)


def compare_step(step: dict[str, Any], means: dict[str, float], probe: MGRProbe, where: str) -> None:
    """One batch: per selector its logits, mask, predictor logits, loss terms and loss; the sum,
    the gradients and the weights after the step."""
    selectors, masks, logits = probe.take("selector"), probe.take("predictor_z"), probe.take("predictor")
    regularizers, terms, totals = probe.take("regularizers"), probe.take("terms"), probe.take("totals")
    num_gen = len(step["z"])
    assert [len(x) for x in (selectors, masks, logits, regularizers, terms, totals)] == [num_gen] * 6
    for i in range(num_gen):
        here = f"{where} selector {i}"
        assert_same(selectors[i], step["selector_logits"][i], f"{here} logits")
        assert_same(masks[i], step["z"][i], f"{here} mask the predictor read")
        assert_same(logits[i], step["predictor_logits"][i], f"{here} predictor logits")
        z_regularizer, (sparsity, continuity) = regularizers[i]
        assert_same(z_regularizer, step["z"][i], f"{here} mask the regularizers read")
        assert terms[i]["cls"] == step["cls_loss"][i], f"{here} cross-entropy"
        assert (sparsity, continuity) == (step["sparsity_loss"][i], step["continuity_loss"][i]), f"{here} regularizers"
        assert terms[i]["sparsity"] == sparsity and terms[i]["continuity"] == continuity
        assert totals[i] == step["selector_loss"][i], f"{here} weighted loss"
    assert means["loss"] == step["loss"], f"{where} summed loss"
    for name in ("cls", "sparsity", "continuity"):  # logged: each term summed over the selectors, in order
        expected = torch.tensor(step[f"{name}_loss"], dtype=torch.float32)
        assert means[f"{name}_loss"] == float(expected[0] + expected[1] + expected[2]), f"{where} {name} sum"
    [grads] = probe.take("grads0")
    assert_same_tensors(grads, renamed(unpack(step["grads"])), f"{where} gradient")
    [weights] = probe.take("weights0")
    assert_same_tensors(weights, renamed(unpack(step["weights_after"])), f"{where} weights after the step")


def dev_batches(fx: dict[str, Any]) -> list[Any]:
    """The dev split as ratbench batches it (the reference's padded layout, checked)."""
    batches = list(
        eval_batches(
            [ex for b in examples(fx["dev"], "dev") for ex in b], fx["config"]["batch_size"], pad_to=fx["max_len"]
        )
    )
    check_layout(batches, fx["dev"])
    return batches


def compare_reference_dev(method: Method, fx: dict[str, Any]) -> None:
    """``norm_beer.py``'s dev loop as ``MGR.dev_accuracy`` (``dev_rule=pooled``) runs it, through
    ``MGR.forwards`` in eval mode: every selector's Gumbel rationale and prediction, TP/TN/FP/FN
    pooled over the selectors, and the accuracy the runner selects the epoch on."""
    ref, counts = fx["reference_dev"], {"tp": 0, "tn": 0, "fp": 0, "fn": 0}
    batches, seen = dev_batches(fx), []
    forwards = method.forwards

    def recording(batch: Any) -> Any:
        seen.append(forwards(batch))
        return seen[-1]

    method.forwards = recording  # type: ignore[method-assign]  # records what the dev loop computes
    try:
        accuracy = method.dev_accuracy(batches, "reference")
    finally:
        del method.forwards
    assert len(seen) == len(batches)
    for b, (batch, selectors) in enumerate(zip(batches, seen, strict=True)):
        for i, forward in enumerate(selectors):
            assert_same(forward.z, ref["rationales"][b][i], f"dev batch {b} selector {i} rationale")
            assert_same(forward.logits, ref["logits"][b][i], f"dev batch {b} selector {i} logits")
            pred, labels = forward.logits.argmax(-1), batch.labels
            counts["tp"] += int(((pred == 1) & (labels == 1)).sum())
            counts["tn"] += int(((pred == 0) & (labels == 0)).sum())
            counts["fn"] += int(((pred == 0) & (labels == 1)).sum())
            counts["fp"] += int(((pred == 1) & (labels == 0)).sum())
    assert counts == {key: ref[key] for key in counts}, "pooled dev counts"
    assert (counts["tp"] + counts["tn"]) / sum(counts.values()) == ref["accuracy"]
    assert accuracy == pytest.approx(100 * ref["accuracy"], rel=1e-12), "the accuracy the epoch is selected on"


def compare_one_head(method: Method, fx: dict[str, Any]) -> None:
    """``validate_onehead``: a ``test_rationale=first`` copy, restored from ``method``'s state."""
    clone = build_mgr(fx, test_rationale="first")
    for selector in clone.model.selectors:  # other weights than the trained ones, until restored
        for p in selector.parameters():
            torch.nn.init.normal_(p)
    clone.load_state_dict(method.state_dict())
    ref = fx["one_head"]
    batches = list(
        eval_batches(
            [ex for b in examples(fx["annotation"], "test") for ex in b],
            fx["config"]["batch_size"],
            pad_to=fx["max_len"],
        )
    )
    outputs = rationalize_split(clone, batches, "reference")
    for b, (_, out) in enumerate(outputs):
        z_ref = ref["annotation_rationales"][b]
        assert_same(out.mask, (z_ref > 0.5).float(), f"one-head annotation batch {b} rationale")
        assert_eval_logits(out.logits, ref["annotation_predictor_logits"][b], z_ref, f"one-head batch {b} logits")
    metrics = score_rationales(clone, outputs, "reference", fx["config"]["sparsity"]).metrics
    words = fx["eval"]["num_words"]
    tp, predicted, real = (ref[k] for k in ("num_true_pos", "num_predicted_pos", "num_real_pos"))
    assert metrics["S"] == exactly(100 * predicted / words), "one-head sparsity counts (padding included)"
    assert metrics["P"] == exactly(100 * tp / predicted), "one-head precision counts"
    assert metrics["R"] == exactly(100 * tp / real), "one-head recall counts"
    for key, name in (("S", "sparsity"), ("P", "precision"), ("R", "recall"), ("F1", "f1")):
        assert metrics[key] == pytest.approx(100 * ref[name], rel=1e-6), f"one-head {key} (the reference's float32)"


def run_mgr(**overrides: Any) -> dict[str, Any]:
    """Replay the fixture through ratbench's ``mgr`` and compare everything."""
    fx = load_fixture("mgr")
    method = build_mgr(fx, **overrides)
    probe = MGRProbe(method)
    train = [collate(batch, pad_to=fx["max_len"]) for batch in examples(fx["train"], "train")]
    check_layout(train, fx["train"])
    tape, marks = replay_tape(fx), fx["tape_marks"]
    with tape.replay():
        try:
            for b, batch in enumerate(train):
                compare_step(fx["steps"][b], method.train_epoch([batch]), probe, f"step {b}")
            assert tape.position == marks["train_end"], "training drew as many numbers as the reference"
            compare_reference_dev(method, fx)
            assert tape.position == marks["reference_dev_end"]
            for key in list(probe.log):
                probe.take(key)
            compare_evaluation(method, fx, probe)  # Multi_gen.test on dev, validate_share, validate_rationales
            # The probabilities each Bernoulli draw sampled from (the replayed draws hide them).
            means = probe.means
            assert len(means) == len(fx["test_probabilities"]) == len(fx["dev"]) + len(fx["annotation"])
            for i, (mean, expected) in enumerate(zip(means, fx["test_probabilities"], strict=True)):
                assert_same(mean, expected, f"test-time call {i}: the selectors' mean probabilities")
            assert tape.position == marks["rationales_end"]
            compare_one_head(method, fx)
        except DrawMismatch as error:
            recorded = ", ".join(f"{kind}{list(value.shape)}" for kind, value in tape.draws[tape.position :][:6])
            raise DrawMismatch(f"mgr: {error} (marks {marks}; the reference drew next: {recorded})") from error
    tape.finish()
    return fx


def test_mgr_matches_the_reference() -> None:
    """Three selectors, one predictor, the summed loss, the reference's learning rates, its dev
    loop and both test-time rationales."""
    fx = run_mgr()
    assert fx["config"]["num_gen"] == 3 and fx["config"]["lr_lambda"] == 0.5
    assert fx["steps"][0]["lrs"] == [1e-2, 1e-2 + 1e-2 * 0.5, 1e-2 + 1e-2 * 1.0, 1e-2 / 3, 1e-2 / 3]
    padding = [
        (z > 0.5) & (batch["masks"] == 0)
        for z, batch in zip(fx["eval"]["annotation_rationales"], fx["annotation"], strict=True)
    ]
    assert any(bool(p.any()) for p in padding), "the averaged Bernoulli rationale selects padding, which counts"
    assert fx["reference_dev"]["accuracy"] != fx["eval"]["dev_accuracy"], "the two dev rules differ here"


def test_the_optimizer_groups_follow_the_reference() -> None:
    """Selector i at lr + lr * (i * lr_lambda), the predictor at lr / num_gen, every trainable
    parameter in exactly one group (the reference's Python list of selectors is a ModuleList)."""
    fx = load_fixture("mgr")
    method = build_mgr(fx)
    [optimizer] = method.optimizers
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert lrs == [1e-2, 1e-2 + 1e-2 * 0.5, 1e-2 + 1e-2 * 1.0, 1e-2 / 3]
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    trainable = [id(p) for p in method.model.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable)
    assert {key.split(".")[0] for key in method.model.state_dict()} == {"embed", "selectors", "predictor"}
    assert np.unique([key.split(".")[1] for key in method.model.state_dict() if key.startswith("selectors.")]).size == 3
