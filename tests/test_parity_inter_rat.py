"""Inter_RAT parity: ratbench's ``inter_rat`` replays a run of the reference code step by step.

The fixture ``golden/parity/inter_rat.pt`` was written by ``benchmarks/parity/record_inter_rat.py``
from yuelinan/Codes-of-Inter-RAT (its commit and torch version are in the file): the reference's
own model and data code trained a tiny InterRAT for 2 epochs of 2 steps and evaluated it after
each epoch as its ``train.py`` does (dev accuracy at the training batch size, the annotated test
set at batch size 1), with every random draw recorded. Here ratbench's real method, built from
the registry with the fixture's config and weights, trains on the same batches (built by
``collate``, each padded to its longest example) through ``train_epoch`` and is evaluated by
ratbench's evaluator, with the draws replayed; every step's selector logits, masks, predictor
logits, loss terms, gradients and weights, the learning rate and the evaluation outputs are
compared. No reference code and no network are needed.

The data covers a text over the 300-token limit, a selected one-token text in a padded batch
(the continuity term divides by 1e-8), a row that selects nothing, a selected last token
before padding, an annotation example with no span and a span cut by the truncation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from parity_tape import DrawTape

from ratbench._plugins.methods import inter_rat as inter_rat_module
from ratbench.data.batching import collate, eval_batches
from ratbench.evaluation.evaluator import accuracy, rationalize_split, score_rationales
from ratbench.registry import METHODS
from ratbench.types import Batch, DataInfo, EncodedExample

FIXTURE = Path(__file__).parent / "golden" / "parity" / "inter_rat.pt"

# The reference's parameter names -> ratbench's (its unused extract_encoder / Transformation_first
# and its frozen embedding are not in the fixture's parameters).
RENAME = {
    "encoder.gru_module.": "selector_encoder.encoder.gru.",
    "re_encoder.gru_module.": "predictor_encoder.encoder.gru.",
    "x_2_prob_z.": "selector_head.",
    "label2label.": "key.",
    "ChargeClassifier.": "predictor_head.",
    "lab_embed_layer.weight": "label_embedding",
}

# Tolerances. The forward pass is the reference's op for op (the same GRU, Linear and softmax
# calls, the per-token attention scores by bmm, the adjustment summed class by class as the
# reference adds its two terms), so the first step's forward values (logits, masks, loss terms)
# agree exactly. The gradients do not: autograd sums the contributions to a tensor used several
# times in another order (the reference looks each label embedding up four times per step and
# slices the sampled mask three times), so gradients differ in their last bits and, through Adam,
# so do the weights after the first step and every later value, by a few float32 ulps. The
# masks, predictions and counts are discrete and compared exactly.
RTOL, ATOL = 1e-5, 1e-6
# The keys' bias (the reference's label2label.bias) has a zero gradient in exact arithmetic: it
# adds the same h . b to every class score, which the softmax ignores. Both codes compute it as
# rounding noise, which Adam's normalisation turns into steps of up to lr, so its gradient is
# only checked to be negligible and its value to stay within lr per step of the reference's.
NOISE_ONLY = "key.bias"
NEGLIGIBLE = 1e-5  # of the largest gradient entry of the keys' weight


def ratbench_name(reference_name: str) -> str:
    """The ratbench parameter holding a reference parameter."""
    for old, new in RENAME.items():
        if reference_name.startswith(old):
            return new + reference_name[len(old) :]
    raise KeyError(reference_name)


def unflatten(flat: torch.Tensor, parameters: list[list[Any]]) -> dict[str, torch.Tensor]:
    """The fixture's concatenated tensors, by ratbench parameter name."""
    out, start = {}, 0
    for name, shape in parameters:
        size = int(np.prod(shape))
        out[ratbench_name(name)] = flat[start : start + size].reshape(shape)
        start += size
    assert start == flat.numel()
    return out


def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """``actual`` equals ``expected`` within RTOL / ATOL (shapes must agree)."""
    torch.testing.assert_close(actual.float(), expected.float(), rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}")


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    return torch.load(FIXTURE, weights_only=True)


def ratbench_config(recorded: dict[str, Any]) -> dict[str, Any]:
    """The recorded config in ratbench's keys: the fixture names the reference's hard-coded beer
    priors ``"reference"``; ratbench's ``paper`` preset gives them for beer."""
    beer_priors = METHODS.get("inter_rat").presets["paper"]["beer"]["priors"]
    return {**recorded, "priors": beer_priors} if recorded.get("priors") == "reference" else recorded


def build_method(fx: dict[str, Any], **changes: Any) -> Any:
    """ratbench's inter_rat with the fixture's config, embeddings and initial weights."""
    cls = METHODS.get("inter_rat")
    config = cls.Config(**{**ratbench_config(fx["config"]), **changes})
    info = DataInfo(num_classes=2, embeddings=fx["embeddings"].numpy())
    method = cls(config, info, torch.device("cpu"))
    weights = unflatten(fx["initial_weights"], fx["parameters"])
    params = dict(method.model.named_parameters())
    assert set(weights) == {name for name, p in params.items() if p.requires_grad}
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    return method


def example(name: str, ids: torch.Tensor, length: int, label: int, gold: torch.Tensor | None = None) -> EncodedExample:
    """One row of the reference's input as ratbench encodes it: the text positions are those with
    a non-zero id (the reference's mask is sign(id); no word of the fixture has id 0), ``length``
    the untruncated length."""
    n = int((ids > 0).sum())
    return EncodedExample(
        name,
        ids[:n].long().numpy(),
        label,
        None if gold is None else gold[:n].numpy().astype(np.float32),
        length=length,
    )


def rows(batch: dict[str, torch.Tensor], prefix: str) -> list[EncodedExample]:
    """The examples of a recorded batch, in its row order."""
    return [
        example(f"{prefix}{row}", batch["ids"][row], int(batch["lengths"][row]), int(batch["labels"][row]))
        for row in range(len(batch["labels"]))
    ]


def check_batch(batch: Batch, recorded: dict[str, torch.Tensor]) -> None:
    """``collate`` built the reference's tensors: its ids (same width), mask and lengths."""
    assert torch.equal(batch.ids, recorded["ids"].long())
    assert torch.equal(batch.mask, recorded["ids"].sign().float())
    assert torch.equal(batch.lengths, recorded["lengths"])
    assert torch.equal(batch.labels, recorded["labels"])


@dataclass
class Recorder:
    """What ratbench computed in each training step, captured by hooks."""

    selector_logits: list[torch.Tensor] = field(default_factory=list)
    predictor_logits: list[torch.Tensor] = field(default_factory=list)
    regularizers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    grads: list[dict[str, torch.Tensor]] = field(default_factory=list)
    weights: list[dict[str, torch.Tensor]] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    eval_logits: list[torch.Tensor] = field(default_factory=list)


def attach(method: Any, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Hooks on the selector and predictor heads, the regularizers and the optimizer step."""
    recorder, model = Recorder(), method.model
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]

    def head_hook(train_list: list[torch.Tensor], eval_list: list[torch.Tensor] | None) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if module.training:
                train_list.append(output.detach().clone())
            elif eval_list is not None:
                eval_list.append(output.detach().clone())

        return hook

    model.selector_head.register_forward_hook(head_hook(recorder.selector_logits, None))
    model.predictor_head.register_forward_hook(head_hook(recorder.predictor_logits, recorder.eval_logits))
    real = inter_rat_module.per_example_regularizers

    def regularizers(z: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        sparsity, continuity = real(z, *args, **kwargs)
        recorder.regularizers.append((z.detach().clone(), sparsity.detach(), continuity.detach()))
        return sparsity, continuity

    monkeypatch.setattr(inter_rat_module, "per_example_regularizers", regularizers)
    optimizer = method.optimizers[0]

    def before_step(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        recorder.grads.append({name: p.grad.detach().clone() for name, p in named})
        recorder.lrs.append(opt.param_groups[0]["lr"])

    def after_step(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        recorder.weights.append({name: p.detach().clone() for name, p in named})

    optimizer.register_step_pre_hook(before_step)
    optimizer.register_step_post_hook(after_step)
    return recorder


def check_step(fx: dict[str, Any], recorder: Recorder, step: int, batch: Batch) -> None:
    """Step ``step``'s values against the reference's; the first step's forward values exactly."""
    ref, cfg = fx["steps"][step], fx["config"]
    rtol, atol = (0.0, 0.0) if step == 0 else (RTOL, ATOL)
    assert recorder.lrs[step] == ref["lr"]
    for name, actual in (("selector", recorder.selector_logits[step]), ("predictor", recorder.predictor_logits[step])):
        expected = ref[f"{name}_logits"]
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=f"step {step}: {name} logits differ")
    z, sparsity, continuity = recorder.regularizers[step]
    assert torch.equal(z, ref["z"]), f"step {step}: the sampled masks differ"
    cls = F.cross_entropy(recorder.predictor_logits[step], batch.labels)
    loss = cls + cfg["sparsity_lambda"] * sparsity + cfg["continuity_lambda"] * continuity
    terms = {"cls_loss": cls, "sparsity_loss": sparsity, "continuity_loss": continuity, "loss": loss}
    for name, value in terms.items():
        assert value.item() == pytest.approx(ref[name], rel=rtol, abs=atol), f"step {step} {name}"

    grads, weights = recorder.grads[step], recorder.weights[step]
    expected_grads = unflatten(ref["grads"], fx["parameters"])
    expected_weights = unflatten(ref["weights"], fx["parameters"])
    for name in expected_grads:
        if name != NOISE_ONLY:
            close(grads[name], expected_grads[name], f"step {step} gradient of {name}")
            close(weights[name], expected_weights[name], f"step {step} {name} after the step")
    for g in (grads, expected_grads):
        assert g[NOISE_ONLY].abs().max() <= NEGLIGIBLE * g["key.weight"].abs().max()
    # Adam moves a weight by at most lr (1 - beta1) / sqrt(1 - beta2) = 3.16 lr per step (Kingma & Ba, 2.1)
    adam_bound = 2 * 3.17 * sum(s["lr"] for s in fx["steps"][: step + 1])
    assert (weights[NOISE_ONLY] - expected_weights[NOISE_ONLY]).abs().max() <= adam_bound


def replay(fx: dict[str, Any], method: Any, recorder: Recorder) -> None:
    """Train and evaluate epoch by epoch as the recording did, comparing as it goes."""
    cfg = fx["config"]
    dev = [ex for i, batch in enumerate(fx["dev_batches"]) for ex in rows(batch, f"dev{i}-")]
    test = [
        example(f"test{i}", ex["ids"], ex["length"], ex["label"], ex["gold"])
        for i, ex in enumerate(fx["test_examples"])
    ]
    tape = DrawTape.from_state(fx["tape"])
    step = 0
    with tape.replay():
        for epoch, ref_epoch in enumerate(fx["epochs"], start=1):
            indices = [i for i, s in enumerate(fx["steps"]) if s["epoch"] == epoch]
            batches = []
            for i in indices:
                batch = collate(rows(fx["train_batches"][i], f"train{i}-"))  # each padded to its longest
                check_batch(batch, fx["train_batches"][i])
                batches.append(batch)
            stats = method.train_epoch(batches)
            for batch in batches:
                check_step(fx, recorder, step, batch)
                step += 1
            assert stats["lr"] == ref_epoch["lr"]  # the decay, floored at min_lr
            losses = [fx["steps"][i]["loss"] for i in indices]
            assert stats["loss"] == pytest.approx(sum(losses) / len(losses), rel=RTOL)

            # dev: accuracy at the training batch size, the split's order, each batch padded to its longest
            dev_batches = list(eval_batches(dev, cfg["batch_size"], bucket=False))
            for batch, recorded in zip(dev_batches, fx["dev_batches"], strict=True):
                check_batch(batch, recorded)
            recorder.eval_logits.clear()
            dev_acc = accuracy(method, dev_batches, "reference")
            close(torch.cat(recorder.eval_logits), torch.cat(ref_epoch["dev_logits"]), f"epoch {epoch} dev logits")
            assert dev_acc == pytest.approx(100 * ref_epoch["dev_acc"], rel=1e-9)

            # test: batch size 1 (no padding), the reference's counts
            outputs = rationalize_split(method, eval_batches(test, 1, bucket=False), "reference")
            for i, (batch, out) in enumerate(outputs):
                assert batch.ids.shape[1] == len(ref_epoch["test_masks"][i])
                assert torch.equal(out.mask[0], ref_epoch["test_masks"][i]), f"epoch {epoch} test {i}: masks differ"
                close(out.logits[0], ref_epoch["test_logits"][i], f"epoch {epoch} test {i} logits")
                assert int(out.logits.argmax(-1)) == ref_epoch["test_predictions"][i]
            result = score_rationales(method, outputs, "reference", cfg["sparsity"])
            masks = [np.asarray(r["mask"], dtype=float) for r in result.records]
            golds = [np.asarray(r["gold"], dtype=float) for r in result.records]
            counts = ref_epoch["test_counts"]
            assert sum(float((m * g).sum()) for m, g in zip(masks, golds, strict=True)) == counts["match"]
            assert sum(float(m.sum()) for m in masks) == counts["selected"]
            assert sum(float(g.sum()) for g in golds) == counts["gold"]
            metrics = result.metrics
            assert metrics["P"] == pytest.approx(100 * ref_epoch["test_precision"], rel=1e-6)
            assert metrics["R"] == pytest.approx(100 * ref_epoch["test_recall"], rel=1e-6)
            assert metrics["Acc"] == pytest.approx(100 * ref_epoch["test_acc"])
    tape.finish()
    assert step == len(fx["steps"])


def test_fixture_covers_the_edge_cases(fixture: dict[str, Any]) -> None:
    """The recording exercises what the parity is about (the recording script checks it too)."""
    assert fixture["max_len"] == 300 and fixture["config"]["priors"] == "reference"
    lengths = torch.cat([b["lengths"] for b in fixture["train_batches"]])
    assert lengths.max() > 300 and lengths.min() == 1
    assert any((s["z"].sum(1) == 0).any() for s in fixture["steps"])  # a row selects nothing
    assert max(s["continuity_loss"] for s in fixture["steps"]) > 1e6  # a selected one-token text: / 1e-8
    assert any(not ex["spans"] for ex in fixture["test_examples"])  # an annotation without spans is kept


def test_inter_rat_replays_the_reference_run(
    fixture: dict[str, Any], monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    method = build_method(fixture)
    recorder = attach(method, monkeypatch)
    replay(fixture, method, recorder)
