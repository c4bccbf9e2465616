"""Record step-level parity fixtures of N2R from the reference code (jugechengzi/Rationalization-N2R).

Usage (the reference is read, never copied; only the numbers it produces are stored)::

    python benchmarks/parity/record_n2r.py \\
        --reference /work/refs/jugechengzi+Rationalization-N2R --out tests/golden/parity/

The setting and the capture machinery are ``record_jugechengzi.py``'s (imported: the tiny
setting, the reference import, the pass-through wrappers, the locals at ``loss.backward()``, the
packed weights and gradients, the evaluation record). The reference's ``mochang.py`` and
``mochang_noacc.py`` parse arguments and train at import, so this script builds their
``model.Mochangmodel`` and their Adam (the generator's parameters, then every other parameter,
both at lr; ``--fr 0 --dr 0``) as they do, and calls the reference's own training function for
one epoch of 3 batches (``train_util.train_pred_mochang``; ``train_pred_mochang_withoutacc`` for
``n2r_noacc``), each batch two Adam steps (RNP's, then the norm step with the predictor frozen),
then the evaluation of ``mochang.py``: its dev loop (``forward_predemb``, restated: it is script
code), ``validate_dev_sentence``, ``validate_share_mochang``, ``validate_annotation_sentence``
and ``validate_rationales`` (the two ``*_sentence`` functions only print and draw nothing; the
script checks that they draw nothing).

The cases differ in the torch semantics of the reference's bare ``optimizer.zero_grad()``: the
reference ran under torch 1.13.1, where it zero-filled gradients (``set_to_none=False``); torch
2.0 made it set them to None. In the norm step the frozen predictor then has a zero gradient
(1.13: Adam steps it by its momentum) or none (2.x: Adam skips it). ``n2r`` and ``n2r_noacc``
record the 1.13 semantics (the optimizer's ``zero_grad`` bound to ``set_to_none=False``, nothing
else changed), ``n2r_torch2`` this torch's own default.

The fixture format is ``record_jugechengzi.py``'s, with per step a ``phase`` (``rnp``, ``norm``);
a norm step also holds the predictor's pooled representation ``features`` (the reference's
``last_hid_state``), its L2 norms and the weighted norm term ``mochang_loss``. The evaluation adds
the per-example norms of the representation on the dev and annotation rationales and the
reference's mean norms (``avg_mochang``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import record_jugechengzi as base  # noqa: E402
from parity_tape import DrawTape  # noqa: E402  (record_jugechengzi put tests/ on the path)

REFERENCE = {"repo": "jugechengzi/Rationalization-N2R", "commit": "3576d4a"}
# mochang_lambda is not 1 (a missing factor shows) and not a power of two; the reference's
# (-lambda) * m and ratbench's lambda * (-m) round alike for any lambda.
N2R_HYPER: dict[str, Any] = {"mochang_lambda": 1.5}
CPU = base.CPU


@dataclasses.dataclass(frozen=True)
class Case(base.Case):
    """One fixture: the reference's training function, the zero_grad semantics, ratbench's flags."""

    train_function: str = "train_pred_mochang"
    torch1_zero_grad: bool = True
    rnp_step: bool = True

    def config(self) -> dict[str, Any]:
        """The ratbench ``Config(...)`` keyword arguments of the case."""
        return {
            **base.HYPER,
            **N2R_HYPER,
            "rnp_step": self.rnp_step,
            "norm_step_moves_predictor": self.torch1_zero_grad,
        }


CASES = (
    Case(
        "n2r",
        "n2r",
        "n2r",
        "N2R+RNP (mochang.py, train_pred_mochang) with torch 1.13's zero_grad(): the frozen predictor takes "
        "Adam's zero-gradient step in the norm step",
        train_function="train_pred_mochang",
        torch1_zero_grad=True,
        first_seed=601,
    ),
    Case(
        "n2r_torch2",
        "n2r",
        "n2r",
        "N2R+RNP (mochang.py, train_pred_mochang) with torch 2's zero_grad(): the frozen predictor is skipped",
        train_function="train_pred_mochang",
        torch1_zero_grad=False,
        first_seed=601,  # n2r's: the same initial weights, so the cases differ in the zero_grad semantics only
    ),
    Case(
        "n2r_noacc",
        "n2r",
        "n2r",
        "N2R alone (mochang_noacc.py, train_pred_mochang_withoutacc): the predictor reads a detached mask in the "
        "RNP step; torch 1.13's zero_grad()",
        train_function="train_pred_mochang_withoutacc",
        torch1_zero_grad=True,
        rnp_step=False,
        first_seed=801,
    ),
)


def reference_args(case: Case, embeddings: Any) -> Any:
    """The argparse namespace of mochang.py for the shared tiny setting (README: --add 0 --dis_lr 0)."""
    args = base.reference_args(case, embeddings)  # as the RNP case's: fr 0, dr 0, dis_lr 0, HYPER
    args.mochang_lambda = N2R_HYPER["mochang_lambda"]
    args.mochang_loss = "vanilla"  # the README's value for mochang.py; train_util never reads it
    args.add = 0.0
    return args


def record_case(ref: Any, case: Case, setting: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train with the case's reference training function and evaluate; return the fixture."""
    args = reference_args(case, setting["embeddings"])
    torch.manual_seed(seed)
    model = ref.model.Mochangmodel(args)
    # layernorm2 is built but never used (no gradient, no ratbench counterpart; checked below).
    skip = ("layernorm2.weight", "layernorm2.bias")
    modules = {"": model}
    initial = base.weights(modules, skip)
    # mochang.py with fr 0, dr 0: the generator's parameters, then all the others (the frozen
    # embedding and the unused layernorm2 included, as the script's filter leaves them), both at lr.
    generator_ids = {id(p) for p in model.generator.parameters()}
    optimizer = torch.optim.Adam(
        [
            {"params": model.generator.parameters(), "lr": args.lr},
            {"params": [p for p in model.parameters() if id(p) not in generator_ids], "lr": args.lr},
        ]
    )
    if case.torch1_zero_grad:  # torch < 2.0's default of the reference's bare optimizer.zero_grad()
        optimizer.zero_grad = functools.partial(type(optimizer).zero_grad, optimizer, set_to_none=False)
    tape, pending, steps = DrawTape(), defaultdict(list), []
    backward_log: list[dict[str, torch.Tensor]] = []

    def on_step_post(opt: Any, a: Any, k: Any) -> None:
        local = backward_log.pop()
        z = base.one(pending["z"])
        assert torch.equal(z, local["rationales"]), "the captured mask is the one the training function used"
        step = {
            "phase": "rnp" if len(steps) % 2 == 0 else "norm",
            "selector_logits": base.one(pending["selector_logits"]),
            "predictor_logits": base.one(pending["predictor_logits"]),
            "z": base.selected(z),
            "sparsity_loss": base.one(pending["sparsity_loss"]),
            "continuity_loss": base.one(pending["continuity_loss"]),
            "sparsity_loss_weighted": local["sparsity_loss"],
            "continuity_loss_weighted": local["continuity_loss"],
            "loss": local["__loss__"],
            "grads": base.pack(base.one(pending["grads"])),
            "weights_after": base.pack(base.weights(modules, skip)),
        }
        if step["phase"] == "rnp":
            step["cls_loss"] = base.one(pending["cross_entropy"])
            step["cls_loss_weighted"] = local["cls_loss"]
        else:
            assert not pending["cross_entropy"], "the norm step has no cross-entropy"
            step["features"] = local["last_hid_state"]
            step["norms"] = local["mochang"]
            step["mochang_loss"] = local["mochang_loss"]
        steps.append(step)
        assert model.layernorm2.weight.grad is None and model.layernorm2.bias.grad is None
        base.reset(pending)

    train_loader = base.loader(setting["train"], ("ids", "masks", "labels"))
    hooks = [
        base.forward_log(model.gen_fc, pending["selector_logits"]),
        base.forward_log(model.cls_fc, pending["predictor_logits"]),
        base.gradient_log(optimizer, modules, pending["grads"]),
        optimizer.register_step_post_hook(on_step_post),
    ]
    tu = ref.train_util
    with base.capture(tu, pending, backward_log, tape, sampler_of=model, hooks=hooks):
        model.train()
        getattr(tu, case.train_function)(model, optimizer, train_loader, CPU, args, (base.ScalarLog(), 0), [], [])
    train_end = len(tape.draws)
    evaluation = evaluate(ref, model, setting, tape)
    marks = {"train_end": train_end, **evaluation.pop("marks")}
    return base.fixture(
        case,
        seed,
        setting,
        initial,
        tape,
        steps,
        evaluation,
        marks,
        reference={**REFERENCE, "train_function": case.train_function},
        flags={"torch1_zero_grad": case.torch1_zero_grad},
        config=case.config(),
        notes=NOTES,
    )


def evaluate(ref: Any, model: nn.Module, setting: dict[str, Any], tape: DrawTape) -> dict[str, Any]:
    """mochang.py's evaluation after an epoch, in its order: the dev loop, validate_dev_sentence,
    validate_share_mochang, validate_annotation_sentence, validate_rationales."""
    dev_loader = base.loader(setting["dev"], ("ids", "masks", "labels"))
    annotation_loader = base.loader(setting["annotation"], ("ids", "masks", "labels", "gold"))
    writer, forwards, stats, rationale_logits = base.ScalarLog(), [], [], []
    vu = ref.validate_util
    model.eval()
    with contextlib.ExitStack() as stack, torch.no_grad():
        stack.enter_context(tape.record())
        stack.enter_context(base.patched(model, "forward_predemb", base.noting(model.forward_predemb, forwards)))
        correct = total = 0
        total_norm = 0.0
        for inputs, masks, labels in dev_loader:  # the dev loop of mochang.py
            _, logits, cls_outputs = model.forward_predemb(inputs, masks)
            _, pred = torch.max(torch.softmax(logits, dim=-1), axis=-1)
            correct += int(((pred == 1) & (labels == 1)).sum() + ((pred == 0) & (labels == 0)).sum())
            total += len(labels)
            total_norm += torch.sum(torch.norm(cls_outputs, p=2, dim=1)).item()
        dev_end = len(tape.draws)
        vu.validate_dev_sentence(model, dev_loader, CPU, (writer, 0))
        assert len(tape.draws) == dev_end, "validate_dev_sentence draws nothing in eval mode"
        dev = forwards[:]
        forwards.clear()
        with base.patched(vu, "compute_micro_stats", base.noting(vu.compute_micro_stats, stats)):
            *shares, annotation_mean_norm = vu.validate_share_mochang(model, annotation_loader, CPU, (writer, 0))
        annotation_end = len(tape.draws)
        vu.validate_annotation_sentence(model, annotation_loader, CPU)
        assert len(tape.draws) == annotation_end, "validate_annotation_sentence draws nothing in eval mode"
        with base.forward_log(model.cls_fc, rationale_logits):
            vu.validate_rationales(model, annotation_loader, CPU, (writer, 0))
    record = base.evaluation_record(
        setting,
        dev_rationales=[base.selected(z) for z, _, _ in dev],
        dev_logits=[logits for _, logits, _ in dev],
        dev_accuracy=correct / total,
        annotation_rationales=[base.selected(z) for z, _, _ in forwards],
        annotation_logits=[logits for _, logits, _ in forwards],
        stats=stats,
        shares=shares,
        gold_logits=rationale_logits,
        gold_accuracy=writer.scalars["rat_acc"],
        marks={"dev_end": dev_end, "annotation_end": annotation_end},
    )
    return {
        **record,
        "dev_norms": [torch.norm(h, p=2, dim=1) for _, _, h in dev],
        "dev_mean_norm": total_norm / total,
        "annotation_norms": [torch.norm(h, p=2, dim=1) for _, _, h in forwards],
        "annotation_mean_norm": float(annotation_mean_norm),
    }


NOTES = [
    "steps alternate phase 'rnp' (RNP's step; rnp_step false: the predictor on a detached mask) and 'norm' "
    "(a fresh forward_predemb, predictor frozen, regularizers and -mochang_lambda * mean log(1e-6 + ||h||)).",
    "losses: 'cls_loss', 'sparsity_loss', 'continuity_loss' are unweighted, as F.cross_entropy / "
    "get_sparsity_loss / get_continuity_loss returned them; '*_weighted' and 'mochang_loss' are the "
    "reference's locals; 'loss' is the total; 'features' / 'norms' are last_hid_state and mochang.",
    "'z' is the straight-through select channel the step used (predictor and regularizers), padding included.",
    "torch1_zero_grad: optimizer.zero_grad bound to set_to_none=False (torch < 2.0's default, the "
    "reference's torch 1.13.1): the frozen predictor has zero gradients in the norm step and Adam steps it.",
    "weights and grads use the reference's parameter names; Mochangmodel.layernorm2 is unused and left out.",
]


def accepted(record: dict[str, Any]) -> bool:
    """Whether the run exercises what every case is for: each norm step draws a mask other than
    its RNP step's (a fresh sample), and some step selects padding (the regularizers count it)."""
    steps, masks = record["steps"], [batch["masks"] for batch in record["train"]]
    fresh = all(not torch.equal(steps[2 * b]["z"], steps[2 * b + 1]["z"]) for b in range(len(masks)))
    padding = any(bool((step["z"] * (1 - masks[i // 2])).sum() > 0) for i, step in enumerate(steps))
    return fresh and padding


def main() -> None:
    """Record every case (or those named by ``--case``) into ``--out``."""
    references = {"n2r": ("--reference", "checkout of jugechengzi/Rationalization-N2R")}
    record = base.seed_search(record_case, accepted)  # the first seed from case.first_seed that is accepted
    base.recorder_main(__doc__, references, CASES, record)


if __name__ == "__main__":
    main()
