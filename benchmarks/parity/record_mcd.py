"""Record step-level parity fixtures of MCD from jugechengzi/Rationalization-MCD.

Usage (the reference is read, never copied; only the numbers it produces are stored)::

    python benchmarks/parity/record_mcd.py \\
        --reference /work/refs/jugechengzi+Rationalization-MCD \\
        --out tests/golden/parity/

Reuses ``record_jugechengzi.py`` (the tiny setting, the reference import, the capture helpers,
the evaluation record and the fixture layout). For each case it builds the reference's
``model.Sp_norm_model`` from an ``args`` namespace and its two Adams as ``decouple_bcr.py`` does
(the generator's trainable parameters at ``lr``; the predictor's, ``cls`` and ``cls_fc``, at
``lr``), runs the reference's own ``train_util.train_decouple_causal2`` for one epoch of 3
batches, then the evaluation ``decouple_bcr.py`` runs after each epoch: its dev loop (restated:
the script trains at import), ``validate_util.validate_dev_sentence``, ``validate_share``,
``validate_annotation_sentence`` and ``validate_rationales``, with ``tests/parity_tape.DrawTape``
recording every random draw. Capture without changing what the reference computes: forward hooks
on ``gen_fc`` and ``cls_fc``, pass-through wrappers of the straight-through sampler,
``get_sparsity_loss``, ``get_continuity_loss``, ``F.cross_entropy`` and ``compute_micro_stats``,
the training function's locals at each ``backward()``, and optimizer step hooks (gradients
before, weights after).

Per training batch ``train_decouple_causal2`` makes, in this order: the predictor step (a sample,
the regularizers on it, the predictor on the detached sample and on the full text, one backward,
``opt_pred`` then ``opt_gen`` step: the generator on the regularizers' gradient alone) and the
selector step (``cls`` and ``cls_fc`` frozen: a new sample, the predictor on it and on the full
text, ``div`` plus the regularizers, ``opt_gen`` steps). Nothing is left out: the MCD loop has no
``get_grad`` diagnostic. See ``benchmarks/parity/README.md`` and ``tests/test_parity_mcd.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_jugechengzi as base
from parity_tape import DrawTape  # on sys.path through record_jugechengzi

REFERENCE = {"repo": "jugechengzi/Rationalization-MCD", "commit": "f96ea28"}


@dataclasses.dataclass(frozen=True)
class MCDCase(base.Case):
    """An MCD fixture: the reference's ``--div`` besides the shared hyperparameters (lr 1e-2,
    alpha 0.2, lambda_s 6, lambda_c 4, cls_lambda 0.9, hidden 8, dropout 0.2)."""

    div: str = "kl"


CASES = (
    MCDCase("mcd", "mcd", "mcd", "MCD as its README runs it: --div kl (KL(P(Y|X) || P(Y|X_Z)))", first_seed=801),
    MCDCase("mcd_js", "mcd", "mcd", "MCD with --div js (the Jensen-Shannon divergence)", div="js", first_seed=901),
)


def reference_args(case: MCDCase, embeddings: Any) -> types.SimpleNamespace:
    """decouple_bcr.py's argparse namespace for the case."""
    args = base.reference_args(case, embeddings)
    args.div = case.div
    args.model_type = "sp"  # decouple_bcr.py's default: no layernorm2 to freeze
    return args


def ratbench_config(case: MCDCase) -> dict[str, Any]:
    """The ratbench ``Config(...)`` keyword arguments of the case."""
    return {**base.HYPER, "div": case.div, "predictor_step_regularizers": True}


def record_mcd(ref: types.SimpleNamespace, case: MCDCase, setting: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train MCD with ``train_util.train_decouple_causal2`` and evaluate; return the fixture."""
    args = reference_args(case, setting["embeddings"])
    torch.manual_seed(seed)
    model = ref.model.Sp_norm_model(args)
    modules = {"": model}
    initial = base.weights(modules)
    # decouple_bcr.py: the generator's trainable parameters and the predictor's (cls, cls_fc),
    # each in its own Adam, both at lr.
    g_para = [p for p in model.generator.parameters() if p.requires_grad]
    p_para = [p for m in (model.cls, model.cls_fc) for p in m.parameters() if p.requires_grad]
    optimizer_gen = torch.optim.Adam([{"params": g_para, "lr": args.lr}])
    optimizer_pred = torch.optim.Adam([{"params": p_para, "lr": args.lr}])

    tape, log = DrawTape(), defaultdict(list)
    backward_log: list[dict[str, torch.Tensor]] = []
    hooks = [
        base.forward_log(model.gen_fc, log["selector_logits"]),
        base.forward_log(model.cls_fc, log["predictor_logits"]),
        *base.update_log({"selector": optimizer_gen, "predictor": optimizer_pred}, modules, log),
    ]
    tu, writer = ref.train_util, base.ScalarLog()
    train_loader = base.loader(setting["train"], ("ids", "masks", "labels"))
    with base.capture(tu, log, backward_log, tape, sampler_of=model, hooks=hooks):
        model.train()
        tu.train_decouple_causal2(model, optimizer_gen, optimizer_pred, train_loader, base.CPU, args, (writer, 0))
    train_end = len(tape.draws)
    steps = assemble_steps(log, backward_log, len(setting["train"]))
    evaluation = evaluate_mcd(ref, model, setting, tape)
    marks = {"train_end": train_end, **evaluation.pop("marks")}
    config = ratbench_config(case)
    result = base.fixture(
        case, seed, setting, initial, tape, steps, evaluation, marks, reference=REFERENCE, config=config, notes=NOTES
    )
    result["train_log"] = {tag: float(value) for tag, value in writer.scalars.items()}  # the epoch's sums
    return result


NOTES = [
    "per batch: 'predictor_step' (one backward of the rationale's and the full text's cross-entropies plus "
    "the regularizers; opt_pred steps, then opt_gen on the regularizers' gradient alone) and 'selector_step' "
    "(cls and cls_fc frozen, a new sample; opt_gen on the regularizers plus the divergence).",
    "losses: 'cls_loss', 'full_text_cls_loss', 'sparsity_loss', 'continuity_loss' are unweighted, as "
    "F.cross_entropy / get_sparsity_loss / get_continuity_loss returned them; '*_weighted' are the "
    "reference's locals (lambda times the term); 'div' is the local jsd_loss (the KL or JS divergence, "
    "weight 1); 'loss' is the total at backward().",
    "masks: 'z' is the select channel z[:, :, 1] of the straight-through sample, padding included: what the "
    "regularizers read and (detached in the predictor step) what the predictor read.",
    "eval: the dev loop of decouple_bcr.py (model(inputs, masks): a Gumbel sample), the full-text logits of "
    "validate_dev_sentence and validate_annotation_sentence, validate_share's counts and "
    "validate_rationales' gold-rationale logits.",
    "weights and grads use the reference's parameter names (Sp_norm_model's generator Sequential aliases "
    "gen, layernorm1 and gen_fc).",
]


def assemble_steps(
    log: dict[str, list[Any]], backward_log: list[dict[str, torch.Tensor]], batches: int
) -> list[dict[str, Any]]:
    """Cut what the hooks saw into one record per training batch."""
    per_batch = base.per_batch
    selectors = per_batch(log["selector_logits"], 2, batches, "selector logits")
    samples = per_batch(log["z"], 2, batches, "straight-through samples")
    predictors = per_batch(log["predictor_logits"], 4, batches, "predictor logits")  # (z, full text) x 2
    entropies = per_batch(log["cross_entropy"], 2, batches, "cross-entropies")  # the predictor step's only
    sparsities = per_batch(log["sparsity_loss"], 2, batches, "sparsity terms")
    continuities = per_batch(log["continuity_loss"], 2, batches, "continuity terms")
    locals_ = per_batch(backward_log, 2, batches, "backward() calls")
    updates = per_batch(log["updates"], 3, batches, "optimizer steps")
    steps = []
    for b in range(batches):
        z1, z2 = samples[b]
        rationale1, full1, rationale2, full2 = predictors[b]
        at_predictor, at_selector = locals_[b]
        assert torch.equal(at_predictor["rationales"], z1) and torch.equal(at_selector["rationales"], z2)
        assert torch.equal(at_predictor["forward_logit"], rationale1) and torch.equal(
            at_selector["forward_logit"], rationale2
        )
        assert torch.equal(at_predictor["full_text_logits"], full1) and torch.equal(
            at_selector["full_text_logits"], full2
        )
        (pred_name, pred_grads, pred_weights), (gen_name, gen_grads, gen_weights), last = updates[b]
        assert (pred_name, gen_name, last[0]) == ("predictor", "selector", "selector"), "the reference's step order"
        steps.append(
            {
                "predictor_step": {
                    "selector_logits": selectors[b][0],
                    "z": base.selected(z1),
                    "predictor_logits": rationale1,
                    "full_text_logits": full1,
                    "cls_loss": entropies[b][0],
                    "full_text_cls_loss": entropies[b][1],
                    "sparsity_loss": sparsities[b][0],
                    "continuity_loss": continuities[b][0],
                    "cls_loss_weighted": at_predictor["cls_loss"],
                    "full_text_cls_loss_weighted": at_predictor["full_text_cls_loss"],
                    "sparsity_loss_weighted": at_predictor["sparsity_loss"],
                    "continuity_loss_weighted": at_predictor["continuity_loss"],
                    "loss": at_predictor["__loss__"],
                    "predictor_grads": base.pack(pred_grads),
                    "predictor_weights_after": base.pack(pred_weights),
                    "selector_grads": base.pack(gen_grads),
                    "selector_weights_after": base.pack(gen_weights),
                },
                "selector_step": {
                    "selector_logits": selectors[b][1],
                    "z": base.selected(z2),
                    "predictor_logits": rationale2,
                    "full_text_logits": full2,
                    "sparsity_loss": sparsities[b][1],
                    "continuity_loss": continuities[b][1],
                    "sparsity_loss_weighted": at_selector["sparsity_loss"],
                    "continuity_loss_weighted": at_selector["continuity_loss"],
                    "div": at_selector["jsd_loss"],
                    "loss": at_selector["__loss__"],
                    "grads": base.pack(last[1]),
                    "weights_after": base.pack(last[2]),
                },
            }
        )
    return steps


def evaluate_mcd(ref: types.SimpleNamespace, model: nn.Module, setting: dict[str, Any], tape: DrawTape) -> dict:
    """decouple_bcr.py's evaluation after an epoch: its dev loop, validate_dev_sentence,
    validate_share, validate_annotation_sentence and validate_rationales, in that order (its dev
    loop is perturbation.py's: ``base.evaluate_ver`` with the two full-text passes added)."""
    vu, writer, dev_full, annotation_full, dev_full_accuracy = ref.validate_util, base.ScalarLog(), [], [], []

    def dev_sentence(dev_loader: DataLoader) -> None:
        with base.forward_log(model.cls_fc, dev_full):
            dev_full_accuracy.append(vu.validate_dev_sentence(model, dev_loader, base.CPU, (writer, 0))[1])

    def annotation_sentence(annotation_loader: DataLoader) -> None:
        with base.forward_log(model.cls_fc, annotation_full):
            vu.validate_annotation_sentence(model, annotation_loader, base.CPU)

    record = base.evaluate_ver(ref, model, setting, tape, after_dev=dev_sentence, after_share=annotation_sentence)
    assert len(tape.draws) == record["marks"]["annotation_end"], "the full-text and gold-rationale passes draw nothing"
    record["dev_full_text_logits"] = dev_full
    record["dev_full_text_accuracy"] = float(base.one(dev_full_accuracy))
    record["annotation_full_text_logits"] = annotation_full
    return record


def accepted(record: dict[str, Any]) -> bool:
    """Whether the seed's run exercises what the fixture is for: a training sample that selects
    padding (the sparsity term's normaliser) and, in a selector step, a sample that differs from
    its predictor step's (the fresh draw)."""
    padding = any(
        bool((step[phase]["z"] * (1 - batch["masks"])).sum() > 0)
        for step, batch in zip(record["steps"], record["train"], strict=True)
        for phase in ("predictor_step", "selector_step")
    )
    fresh = all(not step["predictor_step"]["z"].equal(step["selector_step"]["z"]) for step in record["steps"])
    return padding and fresh


def main() -> None:
    """Record every case (or those named by ``--case``) into ``--out``."""
    references = {"mcd": ("--reference", "checkout of jugechengzi/Rationalization-MCD")}
    record = base.seed_search(record_mcd, accepted)  # the first seed from case.first_seed that is accepted
    base.recorder_main(__doc__, references, CASES, record, functools.partial(base.summary, unit="batches"))


if __name__ == "__main__":
    main()
