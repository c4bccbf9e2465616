"""Record the DAR parity fixture from the reference code (jugechengzi/dar).

Usage (the reference is read, never copied; only the numbers it produces are stored)::

    python benchmarks/parity/record_dar.py --reference /work/refs/jugechengzi+dar --out tests/golden/parity/

The tiny setting, the reference import, the capture helpers and the evaluation are those of
``record_jugechengzi.py`` (imported as ``base``): 30 words of random 8-d vectors, hidden size 8,
dropout 0.2, 3 training batches of 5 rows padded to 24, 2 dev and 2 annotated batches, lr 1e-2,
alpha 0.2, lambda_s 6, lambda_c 4, cls_lambda 0.9; DAR adds tea_lambda 0.7 (not 0.9, so that a
swap with cls_lambda shows) and 2 teacher pretraining epochs.

``teacher_beer.py`` trains at import, so its steps are restated here with the reference's own
classes and functions, in its order: ``torch.manual_seed``; ``model.Teacher(args)`` and its own
Adam at ``lr``; ``pre_tea``: per epoch ``train_util.train_teacher`` then
``validate_util.validate_teacher`` on dev and on the annotated set, the teacher kept when its dev
F1 beats the best so far (``torch.save`` of the module, here a deep copy: the same weights);
the kept teacher reloaded with ``.train()``; then ``model.GenEncNoShareModel(args)`` (``--share
0``) and its Adam over ``model.parameters()``; one epoch of ``train_util.train_share(model,
optimizer, train_loader, device, args, writer_epoch, tea_model)``; the script's dev loop,
``validate_share`` and ``validate_rationales`` (``base.evaluate_ver``, the script's evaluation
being the same; DAR's ``validate_share`` takes no writer, and is called without). Every random
draw is recorded by ``tests/parity_tape.DrawTape``: the teacher's dropout in pretraining, and in
``train_share`` the selector's dropout, the Gumbel noise, the predictor's dropout and the
train-mode teacher's dropout. The reference's loaders are not shuffled (``base.loader``).

ratbench keeps the last pretraining pass's teacher (a method sees no dev data), the reference
the best dev F1's; the seed is the first from 601 whose teacher's dev F1 rises every epoch (so
``pre_tea`` keeps each epoch in turn and reloads the last), and the fixture records each
epoch's dev F1. The training loader is unshuffled, so each teacher pass
sees the batches in the same order; the test makes ratbench's per-pass ``torch.randperm``
the identity to replay that order.
"""

from __future__ import annotations

import copy
import itertools
import sys
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_jugechengzi as base
from parity_tape import DrawTape  # base puts tests/ on the path

REFERENCE = {"repo": "jugechengzi/dar", "commit": "2729ed2"}
CASE = base.Case(
    "dar", "dar", "dar", "DAR: teacher_beer.py --share 0 (teacher pretraining, then train_share)", first_seed=601
)
DAR_HYPER: dict[str, Any] = {"tea_lambda": 0.7, "teacher_epochs": 2}
CPU = base.CPU


def reference_args(embeddings: Any) -> types.SimpleNamespace:
    """``base.reference_args`` plus what ``teacher_beer.py``'s models read: the cell type and tea_lambda."""
    args = base.reference_args(CASE, embeddings)
    args.cell_type = "GRU"
    args.tea_lambda = DAR_HYPER["tea_lambda"]
    args.share = 0
    return args


def pretrain_teacher(
    ref: types.SimpleNamespace, args: types.SimpleNamespace, setting: dict[str, Any], tape: DrawTape
) -> dict[str, Any]:
    """``Teacher`` and its Adam, then ``pre_tea`` restated around the reference's own
    ``train_teacher`` / ``validate_teacher``; returns the reloaded teacher and what each step did."""
    teacher = ref.model.Teacher(args)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=args.lr)
    modules = {"tea_model.": teacher}
    initial = base.weights(modules)
    pending: dict[str, list[Any]] = defaultdict(list)
    backward_log: list[dict[str, torch.Tensor]] = []
    steps: list[dict[str, Any]] = []

    def on_step_post(opt: Any, a: Any, k: Any) -> None:
        local = backward_log.pop()
        steps.append(
            {
                "teacher_logits": base.one(pending["teacher_logits"]),
                "loss": local["__loss__"],
                "grads": base.pack(base.one(pending["grads"])),
                "weights_after": base.pack(base.weights(modules)),
            }
        )
        base.reset(pending)

    hooks = [
        base.forward_log(teacher.fc, pending["teacher_logits"]),
        base.gradient_log(optimizer, modules, pending["grads"]),
        optimizer.register_step_post_hook(on_step_post),
    ]
    train_loader = base.loader(setting["train"], ("ids", "masks", "labels"))
    dev_loader = base.loader(setting["dev"], ("ids", "masks", "labels"))
    annotation_loader = base.loader(setting["annotation"], ("ids", "masks", "labels", "gold"))
    best_dev, best_epoch, kept, epochs = 0, 0, None, []  # pre_tea's best_dev=0, best_e=0
    for epoch in range(DAR_HYPER["teacher_epochs"]):  # pre_tea
        with base.backward_locals(backward_log), tape.record():
            _, _, _, train_accuracy = ref.train_util.train_teacher(teacher, optimizer, train_loader, CPU)
        drawn = len(tape.draws)
        with tape.record():
            _, _, dev_f1, dev_accuracy = ref.validate_util.validate_teacher(teacher, dev_loader, CPU)
            ref.validate_util.validate_teacher(teacher, annotation_loader, CPU, test=True)  # printed only
        assert len(tape.draws) == drawn, "validate_teacher draws nothing (eval mode)"
        base.reset(pending)  # the validation's logits
        epochs.append(
            {"train_accuracy": float(train_accuracy), "dev_f1": float(dev_f1), "dev_accuracy": float(dev_accuracy)}
        )
        if best_dev < dev_f1:
            best_dev, best_epoch = dev_f1, epoch
            kept = copy.deepcopy(teacher)  # torch.save(tea_model, ...): the module as it is now
    for hook in hooks:
        hook.remove()
    return {
        "teacher": kept.train() if kept is not None else None,  # torch.load(...).to(device).train()
        "initial": initial,
        "steps": steps,
        "epochs": epochs,
        "best_epoch": best_epoch,
    }


def record(ref: types.SimpleNamespace, case: base.Case, setting: dict[str, Any], seed: int) -> dict[str, Any] | None:
    """The fixture of one seed, or None unless the teacher's dev F1 rises every pretraining epoch
    (so that ``pre_tea`` keeps each epoch in turn and reloads the last pass's, as ratbench keeps)."""
    args = reference_args(setting["embeddings"])
    torch.manual_seed(seed)
    tape = DrawTape()
    pretraining = pretrain_teacher(ref, args, setting, tape)
    dev_f1 = [epoch["dev_f1"] for epoch in pretraining["epochs"]]
    if not all(b > a for a, b in itertools.pairwise([0.0, *dev_f1])):  # pre_tea's rule from best_dev=0; NaN fails
        return None  # pre_tea must keep every epoch in turn: it reloads the last, as ratbench keeps
    assert pretraining["best_epoch"] == DAR_HYPER["teacher_epochs"] - 1
    teacher_end = len(tape.draws)
    teacher = pretraining["teacher"]
    teacher_weights = base.weights({"tea_model.": teacher})
    model = ref.model.GenEncNoShareModel(args)  # --share 0, built after the teacher's pretraining
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    modules = {"model.": model}
    initial = base.weights(modules)
    pending: dict[str, list[Any]] = defaultdict(list)
    backward_log: list[dict[str, torch.Tensor]] = []
    steps: list[dict[str, Any]] = []

    def on_step_post(opt: Any, a: Any, k: Any) -> None:
        local = backward_log.pop()
        cls_loss, teacher_loss = pending["cross_entropy"]  # train_share: the predictor's CE, then the teacher's
        steps.append(
            {
                "selector_logits": base.one(pending["selector_logits"]),
                "predictor_logits": base.one(pending["predictor_logits"]),
                "teacher_logits": base.one(pending["teacher_logits"]),
                "z": base.selected(local["rationales"]),
                "cls_loss": cls_loss,
                "teacher_loss": teacher_loss,
                "sparsity_loss": base.one(pending["sparsity_loss"]),
                "continuity_loss": base.one(pending["continuity_loss"]),
                "cls_loss_weighted": local["cls_loss"],
                "teacher_loss_weighted": local["teacher_loss"],
                "sparsity_loss_weighted": local["sparsity_loss"],
                "continuity_loss_weighted": local["continuity_loss"],
                "loss": local["__loss__"],
                "grads": base.pack(base.one(pending["grads"])),
                "weights_after": base.pack(base.weights(modules)),
            }
        )
        base.reset(pending)

    hooks = [
        base.forward_log(model.gen_fc, pending["selector_logits"]),
        base.forward_log(model.cls_fc, pending["predictor_logits"]),
        base.forward_log(teacher.fc, pending["teacher_logits"]),
        base.gradient_log(optimizer, modules, pending["grads"]),
        optimizer.register_step_post_hook(on_step_post),
    ]
    tu = ref.train_util
    train_loader = base.loader(setting["train"], ("ids", "masks", "labels"))
    with base.capture(tu, pending, backward_log, tape, hooks=hooks):
        model.train()
        tu.train_share(model, optimizer, train_loader, CPU, args, (base.ScalarLog(), 0), teacher)
    assert teacher.training, "the teacher classifies the rationale in train mode"
    teacher_after = base.weights({"tea_model.": teacher})
    assert all(torch.equal(teacher_after[k], v) for k, v in teacher_weights.items()), "no optimizer moves the teacher"
    train_end = len(tape.draws)
    evaluation = base.evaluate_ver(ref, model, setting, tape)  # DAR's validate_share takes no writer
    marks = {"teacher_end": teacher_end, "train_end": train_end, **evaluation.pop("marks")}
    config = {**base.HYPER, **DAR_HYPER}
    result = base.fixture(
        case, seed, setting, initial, tape, steps, evaluation, marks, reference=REFERENCE, config=config, notes=NOTES
    )
    result["teacher"] = {
        "initial_weights": base.pack(pretraining["initial"]),
        "steps": [base.floats(step) for step in pretraining["steps"]],
        "epochs": pretraining["epochs"],
        "best_epoch": pretraining["best_epoch"],
        "weights": base.pack(teacher_weights),
    }
    return result


NOTES = [
    "teacher: 'steps' are the pretraining steps of train_teacher (2 epochs x 3 batches, the loader unshuffled); "
    "'epochs' the reference's train accuracy and validate_teacher's dev F1 / accuracy per epoch; 'best_epoch' "
    "the epoch pre_tea kept and reloaded (the last, as ratbench keeps); 'weights' the reloaded teacher.",
    "steps: train_share's; 'cls_loss', 'teacher_loss' (CE of the predictor, then of the teacher on the "
    "rationale), 'sparsity_loss', 'continuity_loss' unweighted as the reference's functions returned them; "
    "'*_weighted' its locals; 'loss' the total; 'z' the straight-through select channel (padding included).",
    "weights and grads use the reference's parameter names (model. = GenEncNoShareModel, tea_model. = Teacher); "
    "the main model's initial weights are drawn after the teacher's pretraining, as teacher_beer.py does.",
    "evaluation: the script's dev loop, validate_share and validate_rationales (record_jugechengzi.evaluate_ver).",
]


def main() -> None:
    """Record ``dar.pt`` into ``--out``: the first seed from ``CASE.first_seed`` that ``record`` accepts."""

    def describe(result: dict[str, Any], path: Path) -> str:
        epochs = [round(e["dev_f1"], 4) for e in result["teacher"]["epochs"]]
        return (
            f"{path}: seed {result['seed']}, {len(result['teacher']['steps'])} teacher steps (dev F1 per epoch "
            f"{epochs}), {len(result['steps'])} steps, {len(result['tape']['kinds'])} draws, "
            f"{path.stat().st_size // 1024} KB"
        )

    references = {"dar": ("--reference", "checkout of jugechengzi/dar")}
    first_kept = base.seed_search(record, failure="no seed in 200 keeps the last pretraining pass's teacher")
    base.recorder_main(__doc__, references, (CASE,), first_kept, describe)


if __name__ == "__main__":
    main()
