"""Record step-level parity fixtures of MRD from jugechengzi/Rationalization-MRD.

Usage (the reference is read, never copied; only the numbers it produces are stored)::

    python benchmarks/parity/record_mrd.py \\
        --reference /work/refs/jugechengzi+Rationalization-MRD \\
        --out tests/golden/parity/

Reuses ``record_jugechengzi.py`` (the tiny setting, the reference import, the capture helpers,
the evaluation record and the fixture layout). For each case it builds the reference's
``model.Sp_norm_model_causal`` from an ``args`` namespace and its two Adams as ``adv_causal.py``
does (the generator's at ``lr``, the predictor's ``cls`` + ``cls_fc`` at ``lr / lr_lambda``),
runs the reference's own ``train_util.train_adv_causal`` for one epoch of 3 batches, then its
``dev_adv_causal`` (on the dev batches; ``adv_causal.py`` passes its training loader),
``validate_util.validate_share`` and ``validate_util.validate_rationales``, with
``tests/parity_tape.DrawTape`` recording every random draw. Capture without changing what the
reference computes: forward hooks on ``gen_fc`` and ``cls_fc``, pass-through wrappers of the
straight-through sampler, ``get_sparsity_loss``, ``get_continuity_loss``, ``F.cross_entropy``
and ``compute_micro_stats``, the training function's locals at each ``backward()``, and
optimizer step hooks (gradients before, weights after).

Per training batch ``train_adv_causal`` makes, in this order: the predictor step (a sample,
the predictor on the detached remainder ``z[:, :, 0]`` and on the full text, ``opt_pred`` and,
with ``--gen_sparse 1``, ``opt_gen`` step), the selector step (predictor frozen: a new sample,
both predictor passes, ``-div`` plus the regularizers, ``opt_gen`` steps), then a no-grad pass
of the predictor on that sample's rationale (its training accuracy, a dropout draw).

Left out: ``adv_causal.py`` itself (it trains at import and reads GloVe and the beer files; it
also crashes after the first epoch, formatting ``dev_adv_causal``'s tuple of tuples with
``{:.4f}``); ``post_cls`` / ``post_cls_fc``, built but never used (no gradient, no ratbench
counterpart). See ``benchmarks/parity/README.md`` and ``tests/test_parity_mrd.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_jugechengzi as base
from parity_tape import DrawTape  # on sys.path through record_jugechengzi

REFERENCE = {"repo": "jugechengzi/Rationalization-MRD", "commit": "b50f36e"}


@dataclasses.dataclass(frozen=True)
class MRDCase(base.Case):
    """An MRD fixture: the reference's flags besides the shared hyperparameters.

    div_lambda is not 1 and x_lambda and pred_lr_rate not 1 either, so a missing factor shows;
    x_lambda is a power of two, so that the reference's ``x * (0.9 * CE)`` and ratbench's
    ``(x * 0.9) * CE`` round alike (as A2I's adv_lambda in record_jugechengzi.py)."""

    div: str = "kl"
    gen_sparse: bool = True
    div_lambda: float = 3.0
    x_lambda: float = 0.5
    pred_lr_rate: float = 2.0


CASES = (
    MRDCase(
        "mrd_kl",
        "mrd",
        "mrd",
        "MRD as its README runs it: --div kl --gen_sparse 1 (the selector also steps on the regularizers "
        "in the predictor step)",
        first_seed=601,
    ),
    MRDCase(
        "mrd_js",
        "mrd",
        "mrd",
        "MRD with --div js --gen_sparse 0: no regularizers and no selector step in the predictor step",
        div="js",
        gen_sparse=False,
        first_seed=701,
    ),
)


class Writer(base.ScalarLog):
    """Stands in for tensorboardX's SummaryWriter, ``add_scalars`` included."""

    def add_scalars(self, tag: str, values: dict[str, Any], step: int) -> None:
        """Keep each value under ``tag/key``."""
        for key, value in values.items():
            self.scalars[f"{tag}/{key}"] = float(value)


def reference_args(case: MRDCase, embeddings: Any) -> types.SimpleNamespace:
    """adv_causal.py's argparse namespace for the case."""
    args = base.reference_args(case, embeddings)
    args.lr_lambda = case.pred_lr_rate
    args.gen_sparse = int(case.gen_sparse)
    args.gen_acc = 0
    args.div = case.div
    args.div_lambda = case.div_lambda
    args.x_lambda = case.x_lambda
    args.model_type = "sp"
    return args


def ratbench_config(case: MRDCase) -> dict[str, Any]:
    """The ratbench ``Config(...)`` keyword arguments of the case."""
    return {
        **base.HYPER,
        "div": case.div,
        "gen_sparse": case.gen_sparse,
        "div_lambda": case.div_lambda,
        "x_lambda": case.x_lambda,
        "pred_lr_rate": case.pred_lr_rate,
    }


def record_mrd(ref: types.SimpleNamespace, case: MRDCase, setting: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train MRD with ``train_util.train_adv_causal`` and evaluate; return the fixture."""
    args = reference_args(case, setting["embeddings"])
    torch.manual_seed(seed)
    model = ref.model.Sp_norm_model_causal(args)
    skip = tuple(name for name, _ in model.named_parameters() if name.startswith("post_cls"))
    modules = {"": model}
    initial = base.weights(modules, skip)
    # adv_causal.py: the predictor (cls, cls_fc) at lr / lr_lambda, the generator at lr.
    p_para = [p for m in (model.cls, model.cls_fc) for p in m.parameters() if p.requires_grad]
    g_para = filter(lambda p: p.requires_grad, model.generator.parameters())
    optimizer_gen = torch.optim.Adam([{"params": g_para, "lr": args.lr}])
    optimizer_pred = torch.optim.Adam([{"params": p_para, "lr": args.lr / args.lr_lambda}])

    tape, log = DrawTape(), defaultdict(list)
    backward_log: list[dict[str, torch.Tensor]] = []
    hooks = [
        base.forward_log(model.gen_fc, log["selector_logits"]),
        base.forward_log(model.cls_fc, log["predictor_logits"]),
        *base.update_log({"selector": optimizer_gen, "predictor": optimizer_pred}, modules, log, skip),
    ]
    tu = ref.train_util
    train_loader = base.loader(setting["train"], ("ids", "masks", "labels"))
    with base.capture(tu, log, backward_log, tape, sampler_of=model, hooks=hooks):
        model.train()
        tu.train_adv_causal(model, optimizer_gen, optimizer_pred, train_loader, base.CPU, args, (Writer(), 0))
    train_end = len(tape.draws)
    steps = assemble_steps(case, log, backward_log, len(setting["train"]))
    evaluation = evaluate_mrd(ref, model, args, setting, tape)
    marks = {"train_end": train_end, **evaluation.pop("marks")}
    config = ratbench_config(case)
    return base.fixture(
        case, seed, setting, initial, tape, steps, evaluation, marks, reference=REFERENCE, config=config, notes=NOTES
    )


NOTES = [
    "per batch: 'predictor_step' (opt_pred, and with gen_sparse opt_gen, on the detached remainder's and "
    "the full text's cross-entropies plus the regularizers), 'selector_step' (opt_gen, predictor frozen, on "
    "the regularizers minus div_lambda times the divergence) and 'rationale_logits' (the no-grad pass of the "
    "predictor on the selector step's sample: the reference's training accuracy).",
    "losses: 'remainder_cls_loss', 'full_text_cls_loss', 'sparsity_loss', 'continuity_loss' are unweighted, "
    "as F.cross_entropy / get_sparsity_loss / get_continuity_loss returned them; '*_weighted' are the "
    "reference's locals; 'divergence_term' is the local jsd_loss (minus the KL or JS divergence); 'loss' is "
    "the total at backward().",
    "masks: 'z_select' is the select channel z[:, :, 1] (the regularizers' mask), 'z_remainder' the "
    "channel z[:, :, 0] the predictor read, padding included, as straight-through values.",
    "eval: 'dev_accuracy' is the rationale accuracy over both dev batches, counted from the reference's "
    "logits; 'dev_adv_causal' holds what dev_adv_causal returned (its counts cover the last batch only).",
    "weights and grads use the reference's parameter names; post_cls and post_cls_fc are never used and are left out.",
]


def assemble_steps(
    case: MRDCase, log: dict[str, list[Any]], backward_log: list[dict[str, torch.Tensor]], batches: int
) -> list[dict[str, Any]]:
    """Cut what the hooks saw into one record per training batch."""
    per_batch = base.per_batch
    selectors = per_batch(log["selector_logits"], 2, batches, "selector logits")
    samples = per_batch(log["z"], 2, batches, "straight-through samples")
    predictors = per_batch(log["predictor_logits"], 5, batches, "predictor logits")  # 2 + 2 + the no-grad pass
    entropies = per_batch(log["cross_entropy"], 3, batches, "cross-entropies")
    sparsities = per_batch(log["sparsity_loss"], 2, batches, "sparsity terms")
    continuities = per_batch(log["continuity_loss"], 2, batches, "continuity terms")
    locals_ = per_batch(backward_log, 2, batches, "backward() calls")
    updates = per_batch(log["updates"], 3 if case.gen_sparse else 2, batches, "optimizer steps")
    steps = []
    for b in range(batches):
        z1, z2 = samples[b]
        adv1, full1, adv2, full2, rationale = predictors[b]
        at_predictor, at_selector = locals_[b]
        assert torch.equal(at_predictor["rationales"], z1) and torch.equal(at_selector["rationales"], z2)
        predictor_update, *selector_updates = updates[b]
        assert [name for name, *_ in updates[b]] == ["predictor"] + ["selector"] * len(selector_updates)
        predictor_step = {
            "selector_logits": selectors[b][0],
            "z_select": base.selected(z1),
            "z_remainder": z1[..., 0].clone(),
            "remainder_logits": adv1,
            "full_logits": full1,
            "remainder_cls_loss": entropies[b][0],
            "full_text_cls_loss": entropies[b][1],
            "sparsity_loss": sparsities[b][0],
            "continuity_loss": continuities[b][0],
            "remainder_cls_loss_weighted": at_predictor["adversarial_cls_loss"],
            "full_text_cls_loss_weighted": at_predictor["full_text_cls_loss"],
            "sparsity_loss_weighted": at_predictor["sparsity_loss"],
            "continuity_loss_weighted": at_predictor["continuity_loss"],
            "loss": at_predictor["__loss__"],
            "predictor_grads": base.pack(predictor_update[1]),
            "predictor_weights_after": base.pack(predictor_update[2]),
        }
        if case.gen_sparse:  # the selector's step on the regularizers alone
            predictor_step["selector_grads"] = base.pack(selector_updates[0][1])
            predictor_step["selector_weights_after"] = base.pack(selector_updates[0][2])
        selector_step = {
            "selector_logits": selectors[b][1],
            "z_select": base.selected(z2),
            "z_remainder": z2[..., 0].clone(),
            "remainder_logits": adv2,
            "full_logits": full2,
            "sparsity_loss": sparsities[b][1],
            "continuity_loss": continuities[b][1],
            "sparsity_loss_weighted": at_selector["sparsity_loss"],
            "continuity_loss_weighted": at_selector["continuity_loss"],
            "divergence_term": at_selector["jsd_loss"],
            "loss": at_selector["__loss__"],
            "grads": base.pack(selector_updates[-1][1]),
            "weights_after": base.pack(selector_updates[-1][2]),
        }
        steps.append(
            {
                "predictor_step": predictor_step,
                "selector_step": selector_step,
                "rationale_logits": rationale,
                "rationale_cls_loss": entropies[b][2],
            }
        )
    return steps


def evaluate_mrd(
    ref: types.SimpleNamespace, model: nn.Module, args: Any, setting: dict[str, Any], tape: DrawTape
) -> dict[str, Any]:
    """dev_adv_causal on the dev batches, then validate_share and validate_rationales on the
    annotated batches, as adv_causal.py calls them after each epoch."""
    dev_loader = base.loader(setting["dev"], ("ids", "masks", "labels"))
    dev_samples: list[torch.Tensor] = []
    dev_logits: list[torch.Tensor] = []
    model.eval()
    with contextlib.ExitStack() as stack:
        stack.enter_context(tape.record())
        stack.enter_context(base.patched(model, "get_rationale", base.noting(model.get_rationale, dev_samples)))
        stack.enter_context(base.forward_log(model.cls_fc, dev_logits))
        rationale, remainder, full = ref.train_util.dev_adv_causal(model, dev_loader, base.CPU, args, (Writer(), 0))
    dev_end = len(tape.draws)
    annotations, annotation_end = base.evaluate_annotations(ref.validate_util, model, setting, tape)
    # Per dev batch the predictor ran on the remainder, the full text, then the rationale.
    rationale_dev_logits = dev_logits[2::3]
    correct = sum(
        int((logits.argmax(-1) == batch["labels"]).sum())
        for logits, batch in zip(rationale_dev_logits, setting["dev"], strict=True)
    )
    record = base.evaluation_record(
        setting,
        dev_rationales=[base.selected(z) for z in dev_samples],
        dev_logits=rationale_dev_logits,
        dev_accuracy=correct / sum(len(batch["labels"]) for batch in setting["dev"]),
        **annotations,
        marks={"dev_end": dev_end, "annotation_end": annotation_end},
    )
    record["dev_remainders"] = [z[..., 0].clone() for z in dev_samples]
    record["dev_remainder_logits"] = dev_logits[0::3]
    record["dev_full_logits"] = dev_logits[1::3]
    record["dev_adv_causal"] = {  # (precision, recall, f1, accuracy), from the last dev batch only
        name: [float(v) for v in values]
        for name, values in (("rationale", rationale), ("remainder", remainder), ("full_text", full))
    }
    return record


def main() -> None:
    """Record every case (or those named by ``--case``) into ``--out``."""
    references = {"mrd": ("--reference", "checkout of jugechengzi/Rationalization-MRD")}
    record = base.seed_search(record_mrd)  # no criterion: each case's first_seed
    base.recorder_main(__doc__, references, CASES, record, functools.partial(base.summary, unit="batches"))


if __name__ == "__main__":
    main()
