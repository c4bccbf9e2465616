"""Step-level parity of RNP, VER, A2I, FR and DR with the jugechengzi reference code.

The fixtures (``tests/golden/parity/{rnp,ver_*,a2i_*,fr,dr}.pt``) were recorded from the
references (jugechengzi/Rationalization-VER@bc1c435, jugechengzi/Rationalization-A2I@dfb578f,
jugechengzi/FR@971e6da, jugechengzi/Rationalization-DR@f65389f) by
``benchmarks/parity/record_jugechengzi.py``: inputs, the reference's initial weights, every random
draw it made, and what it computed at every optimizer step and in its evaluation. Each test builds
ratbench's real method from the registry with the fixture's hyperparameters, loads the reference's
initial weights, replays the draws through ratbench's real ``train_epoch`` (one batch per call, the
optimizers persist, so that is one epoch) and its real evaluator, and compares, through forward
and optimizer hooks only: selector logits, both straight-through masks, predictor logits, each
loss term, every gradient and the weights after every step; then the dev accuracy, the rationale
of every annotation example, S/P/R/F1 and the predictor's accuracy on the gold rationales.

Exact (``torch.equal`` / ``==``) wherever ratbench runs the reference's operations in the
reference's order; the few tolerances say why next to them. No reference code or network is
needed. Torch runs on one thread here, as in the recording, so that no kernel splits its work
differently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from parity_tape import DrawMismatch, DrawTape

from ratbench.data.batching import collate, eval_batches
from ratbench.evaluation.evaluator import accuracy, predictor_accuracy, rationalize_split, score_rationales
from ratbench.method import Method
from ratbench.registry import METHODS
from ratbench.types import Batch, DataInfo, EncodedExample

FIXTURES = Path(__file__).parent / "golden" / "parity"
# Reference module prefixes -> ratbench's (the reference's ``generator`` Sequential aliases gen,
# layernorm1 and gen_fc; Perturb_model.layernorm2 is never used by the reference's paths; FR's
# GenEncShareModel has one ``enc`` and one ``layernorm``, which ratbench's predictor reads
# through the selector's).
SELECTOR_PARTS = {
    "gen.": "encoder.gru.",
    "layernorm1.": "norm.",
    "gen_fc.": "head.",
    "enc.rnn.": "encoder.gru.",
    "layernorm.": "norm.",
}
PREDICTOR_PARTS = {"cls.": "encoder.gru.", "cls_fc.": "head."}
# Tolerance for the predictor's logits at evaluation, used only where needed: the reference feeds
# the predictor the straight-through sample ``onehot - soft.detach() + soft``, whose 1s can be
# 1 +- 1 ulp, where ratbench feeds the exact 0/1 argmax (in training both use the same values).
EVAL_LOGITS_ATOL = 1e-5
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- fixture loading -----------------------------------------------------------------------------
def load_fixture(case: str) -> dict[str, Any]:
    """The recorded fixture (plain tensors, lists and numbers only)."""
    return torch.load(FIXTURES / f"{case}.pt", weights_only=True)


def unpack(packed: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``{reference name: tensor}`` from the recorder's ``pack``."""
    sizes = [int(np.prod(shape)) for shape in packed["shapes"]]
    parts = torch.split(packed["flat"], sizes)
    return {
        name: part.reshape(shape) for name, part, shape in zip(packed["names"], parts, packed["shapes"], strict=True)
    }


def ratbench_name(reference_name: str) -> str:
    """ratbench's parameter name for a reference parameter (``rnp_model.`` / ``adv_gen.`` for A2I)."""
    owner, name = "selector", reference_name
    if name.startswith("adv_gen."):
        owner, name = "attacker", name.removeprefix("adv_gen.")
    name = name.removeprefix("rnp_model.")
    for parts, module in ((SELECTOR_PARTS, owner), (PREDICTOR_PARTS, "predictor")):
        for old, new in parts.items():
            if name.startswith(old):
                return f"{module}.{new}{name.removeprefix(old)}"
    raise KeyError(reference_name)


def renamed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference-named tensors under ratbench's names."""
    return {ratbench_name(name): value for name, value in tensors.items()}


def examples(split: list[dict[str, torch.Tensor]], prefix: str) -> list[list[EncodedExample]]:
    """The fixture's padded batches as ratbench's encoded examples (real positions only; OOV id 0 kept)."""
    batches = []
    for b, batch in enumerate(split):
        rows = []
        for row, length in enumerate(batch["masks"].sum(dim=1).tolist()):
            gold = batch["gold"][row, :length].numpy().astype(np.float32) if "gold" in batch else None
            ids = batch["ids"][row, :length].numpy()
            rows.append(EncodedExample(f"{prefix}{b}-{row}", ids, int(batch["labels"][row]), gold))
        batches.append(rows)
    return batches


def check_layout(batches: list[Batch], split: list[dict[str, torch.Tensor]]) -> None:
    """ratbench's batching reproduces the reference's padded layout exactly."""
    assert len(batches) == len(split)
    for batch, recorded in zip(batches, split, strict=True):
        assert torch.equal(batch.ids, recorded["ids"])
        assert torch.equal(batch.mask, recorded["masks"].float())
        assert torch.equal(batch.labels, recorded["labels"])
        if "gold" in recorded:
            assert torch.equal(batch.gold, recorded["gold"].float())


def build_method(fx: dict[str, Any], **overrides: Any) -> Method:
    """ratbench's registered method with the fixture's hyperparameters and the reference's initial weights."""
    cls = METHODS.get(fx["method"])
    config = {**fx["config"], **overrides}
    if fx["method"] == "ver" and "short_rows" in {f.name for f in dataclasses.fields(cls.Config)}:
        config.setdefault("short_rows", "reference")  # the reference's sampler, whatever the default
    info = DataInfo(num_classes=2, embeddings=fx["embeddings"].numpy())
    method = cls(cls.Config(**config), info, torch.device("cpu"))
    initial = renamed(unpack(fx["initial_weights"]))
    params = dict(method.model.named_parameters())
    trainable = {name for name, p in params.items() if p.requires_grad}
    assert set(initial) == trainable, "every trainable parameter maps to one of the reference"
    with torch.no_grad():
        for name, value in initial.items():
            params[name].copy_(value)
    assert torch.equal(method.model.embed.embedding.weight, fx["embeddings"])
    return method


# -- observation -----------------------------------------------------------------------------------
class Probe:
    """What ratbench's real modules compute, seen through hooks (and a pass-through wrapper of
    ``method.regularizers``, which returns the unweighted regularizer terms)."""

    def __init__(self, method: Method) -> None:
        self.log: dict[str, list[Any]] = defaultdict(list)
        model = method.model
        self.params = {name: p for name, p in model.named_parameters() if not name.startswith("embed.")}
        model.selector.register_forward_hook(self._keep("selector"))
        if hasattr(model, "attacker"):
            model.attacker.register_forward_hook(self._keep("attacker"))
        model.predictor.register_forward_pre_hook(self._keep_mask, with_kwargs=True)
        model.predictor.register_forward_hook(self._keep("predictor"))
        self.predictor_lrs: list[float] = []
        method.optimizers[0].register_step_pre_hook(
            lambda optimizer, *_: self.predictor_lrs.append(optimizer.param_groups[-1]["lr"])
        )
        for i, optimizer in enumerate(method.optimizers):
            optimizer.register_step_pre_hook(self._keep_grads(i, optimizer))
            optimizer.register_step_post_hook(lambda *_, i=i: self.log[f"weights{i}"].append(self.weights()))
        regularizers = method.regularizers

        def regularizers_probe(z: torch.Tensor, batch: Any) -> Any:
            terms = regularizers(z, batch)
            self.log["regularizers"].append((z.detach().clone(), [float(t.detach()) for t in terms.values()]))
            return terms

        method.regularizers = regularizers_probe  # type: ignore[method-assign]

    def _keep(self, key: str) -> Any:
        return lambda module, inputs, output: self.log[key].append(output.detach().clone())

    def _keep_mask(self, module: Any, args: tuple, kwargs: dict) -> None:
        self.log["predictor_z"].append((args[1] if len(args) > 1 else kwargs["z"]).detach().clone())

    def _keep_grads(self, i: int, optimizer: torch.optim.Optimizer) -> Any:
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}

        def hook(*_: Any) -> None:
            self.log[f"grads{i}"].append(
                {n: p.grad.clone() for n, p in self.params.items() if id(p) in stepped and p.grad is not None}
            )

        return hook

    def weights(self) -> dict[str, torch.Tensor]:
        """The trainable parameters now (the frozen embedding left out)."""
        return {name: p.detach().clone() for name, p in self.params.items()}

    def take(self, key: str) -> list[Any]:
        """Everything noted under ``key`` since the last take."""
        return self.log.pop(key, [])


def assert_same(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Bitwise equal, with the largest difference in the message."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}"
    if not torch.equal(actual, expected):
        diff = (actual.double() - expected.double()).abs().max().item()
        raise AssertionError(f"{what}: differs from the reference (max |diff| {diff:.3g})")


def assert_same_tensors(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    """The same names, each bitwise equal."""
    assert set(actual) == set(expected), f"{what}: {sorted(set(actual) ^ set(expected))} on one side only"
    for name, value in expected.items():
        assert_same(actual[name], value, f"{what} {name}")


def assert_eval_logits(actual: torch.Tensor, expected: torch.Tensor, z_reference: torch.Tensor, what: str) -> None:
    """Evaluation logits: exact where the reference's straight-through mask is exactly 0/1 (it
    usually is), else within ``EVAL_LOGITS_ATOL``."""
    if bool(((z_reference == 0) | (z_reference == 1)).all()):
        assert_same(actual, expected, what)
    else:
        torch.testing.assert_close(actual, expected, rtol=0, atol=EVAL_LOGITS_ATOL, msg=what)


# -- the cases -----------------------------------------------------------------------------------------
def compare_rnp_step(step: dict[str, Any], means: dict[str, float], probe: Probe, where: str) -> None:
    """One RNP / VER step: logits, both masks, loss terms, gradients, weights after."""
    [selector] = probe.take("selector")
    assert_same(selector, step["selector_logits"], f"{where} selector logits")
    [z_predictor] = probe.take("predictor_z")
    assert_same(z_predictor, step["z_predictor"], f"{where} mask the predictor read")
    [logits] = probe.take("predictor")
    assert_same(logits, step["predictor_logits"], f"{where} predictor logits")
    [(z_regularizer, (sparsity, continuity))] = probe.take("regularizers")
    assert_same(z_regularizer, step["z_regularizer"], f"{where} mask the regularizers read")
    # Unweighted terms (float(float32) both sides), then the weighted total.
    assert means["cls_loss"] == step["cls_loss"], f"{where} cross-entropy"
    assert sparsity == means["sparsity_loss"] == step["sparsity_loss"], f"{where} sparsity term"
    assert continuity == means["continuity_loss"] == step["continuity_loss"], f"{where} continuity term"
    assert means["loss"] == step["loss"], f"{where} total loss"
    if "predictor_lr" in step:  # DR: the predictor's learning rate this step used
        assert probe.predictor_lrs.pop() == step["predictor_lr"], f"{where} coupled learning rate"
    [grads] = probe.take("grads0")
    assert_same_tensors(grads, renamed(unpack(step["grads"])), f"{where} gradient")
    [weights] = probe.take("weights0")
    assert_same_tensors(weights, renamed(unpack(step["weights_after"])), f"{where} weights after the step")


def compare_a2i_step(
    main: dict[str, Any], attack: dict[str, Any], means: dict[str, float], probe: Probe, weight: float, where: str
):
    """One A2I batch: the selector/predictor step (attacker frozen) in full, then the attacker
    step (selector and predictor frozen). ``weight`` is the attack term's (``loss_weights``)."""
    assert (main["phase"], attack["phase"]) == ("main", "attacker")
    [selector] = probe.take("selector")
    attacker, masks, logits = probe.take("attacker"), probe.take("predictor_z"), probe.take("predictor")
    regularizers = probe.take("regularizers")
    # Per batch: the attacker runs once per step; the predictor reads z, then the attacker's z in
    # each step; the regularizers see z, then (attacker step) the attacker's z.
    assert (len(attacker), len(masks), len(logits), len(regularizers)) == (2, 3, 3, 2), f"{where}: calls per batch"

    here = f"{where} main step"
    assert_same(selector, main["selector_logits"], f"{here} selector logits")
    assert_same(attacker[0], main["attacker_logits"], f"{here} attacker logits")
    assert_same(masks[0], main["z_selector"], f"{here} mask the predictor read")
    assert_same(masks[1], main["z_attacker"], f"{here} attacker mask")
    assert_same(logits[0], main["predictor_logits"], f"{here} predictor logits")
    assert_same(logits[1], main["attack_logits"], f"{here} predictor logits on the attacker's mask")
    z_reg, (sparsity, continuity) = regularizers[0]
    assert_same(z_reg, main["z_selector"], f"{here} mask the regularizers read")
    assert means["cls_loss"] == main["cls_loss"], f"{here} cross-entropy"
    assert (sparsity, continuity) == (main["sparsity_loss"], main["continuity_loss"]), f"{here} regularizer terms"
    weighted = float(weight * torch.tensor(means["attack_loss"], dtype=torch.float32))  # as the method weighs it
    assert weighted == main["attack_term"], f"{here} attack term (weighted, signed)"
    assert means["loss"] == main["loss"], f"{here} total loss"
    [grads] = probe.take("grads0")
    assert_same_tensors(grads, renamed(unpack(main["grads"])), f"{here} gradient")
    [weights] = probe.take("weights0")
    assert_same_tensors(weights, renamed(unpack(main["weights_after"])), f"{here} weights after")

    here = f"{where} attacker step"
    assert_same(attacker[1], attack["attacker_logits"], f"{here} attacker logits")
    assert_same(masks[2], attack["z_attacker"], f"{here} attacker mask")
    assert_same(logits[2], attack["attack_logits"], f"{here} predictor logits on the attacker's mask")
    z_reg, (sparsity, continuity) = regularizers[1]
    assert_same(z_reg, attack["z_attacker"], f"{here} mask the regularizers read")
    assert (sparsity, continuity) == (attack["sparsity_loss"], attack["continuity_loss"]), f"{here} regularizer terms"
    assert means["attacker_loss"] == attack["loss"], f"{here} total loss"
    [grads] = probe.take("grads1")
    assert_same_tensors(grads, renamed(unpack(attack["grads"])), f"{here} gradient")
    [weights] = probe.take("weights1")
    assert_same_tensors(weights, renamed(unpack(attack["weights_after"])), f"{here} weights after")


def compare_evaluation(method: Method, fx: dict[str, Any], probe: Probe) -> None:
    """Dev accuracy, annotation rationales and counts, gold-rationale accuracy (reference mode)."""
    ref, max_len, size = fx["eval"], fx["max_len"], fx["config"]["batch_size"]
    dev_examples = [ex for batch in examples(fx["dev"], "dev") for ex in batch]
    annotation_examples = [ex for batch in examples(fx["annotation"], "test") for ex in batch]
    dev_batches = list(eval_batches(dev_examples, size, pad_to=max_len))
    annotation_batches = list(eval_batches(annotation_examples, size, pad_to=max_len))
    check_layout(dev_batches, fx["dev"])
    check_layout(annotation_batches, fx["annotation"])

    dev_accuracy = accuracy(method, dev_batches, "reference")
    for b, (z, logits) in enumerate(zip(probe.take("predictor_z"), probe.take("predictor"), strict=True)):
        assert_same(z, (ref["dev_rationales"][b] > 0.5).float(), f"dev batch {b} rationale")
        assert_eval_logits(logits, ref["dev_predictor_logits"][b], ref["dev_rationales"][b], f"dev batch {b} logits")
    assert dev_accuracy == exactly(100 * ref["dev_correct"] / ref["dev_total"]), "dev accuracy (correct count)"
    assert dev_accuracy == pytest.approx(100 * ref["dev_accuracy"], rel=1e-6), "dev accuracy (the reference's float32)"

    outputs = rationalize_split(method, annotation_batches, "reference")
    for b, (_, out) in enumerate(outputs):
        assert_same(out.mask, (ref["annotation_rationales"][b] > 0.5).float(), f"annotation batch {b} rationale")
        expected, z_ref = ref["annotation_predictor_logits"][b], ref["annotation_rationales"][b]
        assert_eval_logits(out.logits, expected, z_ref, f"annotation batch {b} logits")
    metrics = score_rationales(method, outputs, "reference", fx["config"]["sparsity"]).metrics
    tp, predicted, real, words = (ref[k] for k in ("num_true_pos", "num_predicted_pos", "num_real_pos", "num_words"))
    # The counts are exact (padding selections count as predicted, padding not as words); the
    # reference divides them in float32, ratbench in float64.
    assert metrics["S"] == exactly(100 * predicted / words), "sparsity counts (padding selections included)"
    assert metrics["P"] == exactly(100 * tp / predicted), "precision counts"
    assert metrics["R"] == exactly(100 * tp / real), "recall counts"
    for key, name in (("S", "sparsity"), ("P", "precision"), ("R", "recall"), ("F1", "f1")):
        assert metrics[key] == pytest.approx(100 * ref[name], rel=1e-6), f"{key} (the reference's float32)"
    n = metrics["n_examples"]
    assert metrics["Acc"] == exactly(100 * ref["annotation_correct"] / n), "annotation accuracy (correct count)"
    assert metrics["acc_gold_rationale"] == exactly(100 * ref["gold_rationale_correct"] / n), "gold accuracy (count)"
    assert metrics["acc_gold_rationale"] == pytest.approx(100 * ref["gold_rationale_accuracy"], rel=1e-6)
    # The predictor on the gold rationale, as validate_rationales feeds it (the gold is the mask:
    # pooled over gold positions only): the same logits, example by example.
    for key in list(probe.log):
        probe.take(key)
    assert predictor_accuracy(method, annotation_batches, "gold") == metrics["acc_gold_rationale"]
    for b, logits in enumerate(probe.take("predictor")):
        assert_same(logits, ref["gold_rationale_logits"][b], f"annotation batch {b} predictor logits on the gold")


def exactly(percent: float) -> Any:
    """A percentage from exact counts; only the order of ``100 *`` and ``/`` may round differently
    (one count more or less moves it by whole percents here)."""
    return pytest.approx(percent, rel=1e-12)


def where_in_tape(position: int, marks: dict[str, int]) -> str:
    """Which phase of the recording a tape position belongs to."""
    for phase, end in (("training", marks["train_end"]), ("dev accuracy", marks["dev_end"])):
        if position < end:
            return phase
    return "annotation evaluation"


@contextlib.contextmanager
def replaying(case: str, tape: DrawTape, marks: dict[str, int]) -> Iterator[DrawTape]:
    """``tape.replay()`` for the block: a draw the recording does not have says where in the
    recording it happened and what the reference drew next; afterwards every recorded draw must
    have been used."""
    with tape.replay():
        try:
            yield tape
        except DrawMismatch as error:
            recorded = ", ".join(f"{kind}{list(value.shape)}" for kind, value in tape.draws[tape.position :][:6])
            raise DrawMismatch(
                f"{case}: {error} (in {where_in_tape(tape.position, marks)}; the reference drew next: {recorded})"
            ) from error
    tape.finish()


# compare_batch(fixture, batch index, batch, the epoch's means, probe, method)
BatchCheck = Callable[[dict[str, Any], int, Batch, dict[str, float], "Probe", Method], None]


def replay(
    case: str,
    compare_batch: BatchCheck,
    probe_type: type[Probe] = Probe,
    evaluate: Callable[[Method, dict[str, Any], Probe], None] = compare_evaluation,
    **overrides: Any,
) -> tuple[dict[str, Any], Method]:
    """Replay the fixture of ``case`` through ratbench's method, one training batch per
    ``train_epoch`` call, checking each with ``compare_batch``, then the evaluation with
    ``evaluate``; ``overrides`` change ratbench's config (to check that a deviation is caught)."""
    fx = load_fixture(case)
    method = build_method(fx, **overrides)
    probe = probe_type(method)
    train = [collate(batch, pad_to=fx["max_len"]) for batch in examples(fx["train"], "train")]
    check_layout(train, fx["train"])
    with replaying(case, DrawTape.from_state(fx["tape"]), fx["tape_marks"]) as tape:
        for b, batch in enumerate(train):
            compare_batch(fx, b, batch, method.train_epoch([batch]), probe, method)
        assert tape.position == fx["tape_marks"]["train_end"], "training drew as many numbers as the reference"
        for key in list(probe.log):
            probe.take(key)
        evaluate(method, fx, probe)
    return fx, method


def compare_jugechengzi_batch(
    fx: dict[str, Any], b: int, batch: Batch, means: dict[str, float], probe: Probe, method: Method
) -> None:
    """One training batch of RNP, VER, FR, DR (one step) or A2I (two steps)."""
    if fx["method"] == "a2i":
        weight = method.loss_weights()["attack"]
        compare_a2i_step(fx["steps"][2 * b], fx["steps"][2 * b + 1], means, probe, weight, f"batch {b}")
    else:
        compare_rnp_step(fx["steps"][b], means, probe, f"step {b}")


def run_case(case: str, **overrides: Any) -> dict[str, Any]:
    """Replay the fixture of ``case`` and compare everything."""
    return replay(case, compare_jugechengzi_batch, **overrides)[0]


def test_rnp_matches_the_reference() -> None:
    """RNP = perturbation.py at perturb_rate 0: one Gumbel sample for the predictor and the
    regularizers, the sparsity normaliser over real tokens while z is summed over padding too."""
    fx = run_case("rnp")
    padding = [
        step["z_regularizer"] * (1 - batch["masks"]) for step, batch in zip(fx["steps"], fx["train"], strict=True)
    ]
    assert any(bool(p.sum() > 0) for p in padding), "the fixture selects padding, so the normaliser is exercised"


def test_ver_at_rate_0_matches_the_reference() -> None:
    """VER at perturb_rate 0 does not perturb (perturb_forward takes the plain Gumbel path)."""
    fx = run_case("ver_p0")
    assert fx["config"]["perturb_rate"] == 0.0
    assert all(step["z_predictor"].equal(step["z_regularizer"]) for step in fx["steps"])


def test_ver_at_rate_03_matches_the_reference() -> None:
    """VER at 0.3: 1 -> 0 flips where u < 0.3, k = int(#flips / B) 0 -> 1 flips per row from
    torch.multinomial over the unselected real tokens; the predictor reads the perturbed mask."""
    fx = run_case("ver_p03")
    assert any(not step["z_predictor"].equal(step["z_regularizer"]) for step in fx["steps"])
    assert max(step["perturbation"]["multinomial_samples"] for step in fx["steps"]) >= 2


def test_ver_short_row_matches_the_reference() -> None:
    """A row with fewer unselected real tokens than k: the reference's multinomial returns
    zero-weight positions too (here padding), and those are flipped on; steps where some row
    has no unselected token skip the 0 -> 1 flips altogether."""
    fx = run_case("ver_short_row")
    assert fx["short_row_steps"], "the fixture has a short row"
    assert any(step["perturbation"]["multinomial_samples"] == 0 for step in fx["steps"])
    [short] = fx["short_row_steps"]
    step, padding = fx["steps"][short], fx["train"][short]["masks"] == 0
    flipped_on = (step["z_predictor"] > 0.5) & ~(step["z_regularizer"] > 0.5)
    assert bool((flipped_on & padding).any()), "the predictor read a padding position the multinomial drew"


def test_a2i_with_hinge_matches_the_reference() -> None:
    """A2I's two steps per batch with the ln 2 hinge, adv_lambda 0.5, the predictor at lr / 2
    and the attacker at lr / 2."""
    fx = run_case("a2i_hinge")
    assert fx["config"]["use_hinge"] is True
    cross_entropy = torch.cat([step["attack_cross_entropy"] for step in fx["steps"] if step["phase"] == "main"])
    assert bool((cross_entropy > math.log(2)).any() & (cross_entropy < math.log(2)).any()), "capped and uncapped rows"


def test_a2i_without_hinge_matches_the_reference() -> None:
    """use_hinge 0: + adv_lambda * 0.9 * CE(P(e z_a), [0.5, 0.5]) in the main loss."""
    fx = run_case("a2i_no_hinge")
    assert fx["config"]["use_hinge"] is False


def test_fr_matches_the_reference() -> None:
    """FR: the predictor reads the rationale through the selector's own GRU and LayerNorm; one
    set of weights gets the gradient of both players."""
    fx = run_case("fr")
    assert fx["config"]["share_encoder"] is True


def test_fr_is_caught_without_the_sharing() -> None:
    """Without ``share_encoder`` ratbench's model has a predictor GRU the reference lacks."""
    with pytest.raises(AssertionError, match="every trainable parameter maps to one of the reference"):
        run_case("fr", share_encoder=False)


def test_dr_matches_the_reference() -> None:
    """DR: before each step the predictor's learning rate is lr x the batch's selected share
    (padding selections counted, at least 0.05: here above 1, the untrained selector selecting
    much of the padding)."""
    fx = run_case("dr")
    rates = [step["predictor_lr"] for step in fx["steps"]]
    assert len(set(rates)) == len(rates) and fx["config"]["lr"] not in rates


def test_dr_is_caught_without_the_coupling() -> None:
    with pytest.raises(AssertionError, match="coupled learning rate"):
        run_case("dr", dis_lr=0.0)
