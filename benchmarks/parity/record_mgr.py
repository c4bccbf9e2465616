"""Record the step-level parity fixture of MGR from the reference code.

Usage (the reference is read, never copied; only the numbers it produces are stored)::

    python benchmarks/parity/record_mgr.py \\
        --reference /work/refs/jugechengzi+Rationalization-MGR --out tests/golden/parity/

Reference: jugechengzi/Rationalization-MGR@3926fbd. The setting, the loaders and the capture
tools are ``record_jugechengzi.py``'s (imported): 30 words of random 8-d vectors, batches of 5
rows of 3..20 tokens padded to 24, 3 training batches, 2 dev and 2 annotated batches; lr 1e-2,
alpha 0.2, lambda_s 6, lambda_c 4, cls_lambda 0.9, hidden 8, dropout 0.2; MGR adds ``num_gen`` 3
and ``lr_lambda`` 0.5 (not the default 1, so that a missing factor shows: the selectors learn at
lr, 1.5 lr and 2 lr, the predictor at lr / 3).

It builds the reference's ``model.Multi_gen`` from an args namespace and its Adam groups as
``norm_beer.py`` does (that script trains on import), runs the reference's own
``train_util.train_multi_gen`` for one epoch of 3 batches, then, in ``norm_beer.py``'s order, its
dev loop (restated: every selector's Gumbel rationale through the training forward in eval mode,
TP/TN/FP/FN pooled over the selectors), ``Multi_gen.test`` on the dev batches (the rule ratbench's
dev accuracy uses, its test-time rationale), ``validate_util.validate_share`` (``--average_test
1``), ``validate_util.validate_rationales`` and ``validate_util.validate_onehead``
(``--average_test 0``). ``tests/parity_tape.DrawTape`` records every Gumbel and dropout draw;
the test-time ``torch.distributions.Binomial`` draws through ``torch.binomial``, which the tape
does not patch: a pass-through wrapper appends each outcome (``[B, T, 2]``, both channels) to the
tape as ``binomial`` (the test replays its select channel as ratbench's ``torch.bernoulli``).

Capture without changing what the reference computes: forward hooks (each selector's logits, the
predictor's logits), pass-through wrappers (the straight-through samples, ``get_sparsity_loss``,
``get_continuity_loss``, ``F.cross_entropy``, ``compute_micro_stats``, ``Multi_gen.test``,
``test_one_head``, ``torch.binomial`` with the probabilities it samples from, and the builtin
``sum`` that ``train_multi_gen`` adds its per-selector losses with), the training function's
locals at ``loss.backward()`` and optimizer step hooks. One shim:
``Multi_gen`` moves each selector to ``cuda:{args.gpu}``; on a CPU the move is skipped (placement
only, no number changes). Re-recording is deterministic on the same torch (one thread).
"""

from __future__ import annotations

import builtins
import contextlib
import sys
import types
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_jugechengzi as base
from parity_tape import DrawTape  # record_jugechengzi put tests/ on the path

REFERENCE = {"repo": "jugechengzi/Rationalization-MGR", "commit": "3926fbd"}
MGR_HYPER: dict[str, Any] = {"num_gen": 3, "lr_lambda": 0.5, "test_rationale": "average"}
STAT_KEYS = ("num_true_pos", "num_predicted_pos", "num_real_pos")  # compute_micro_stats
CASE = base.Case("mgr", "mgr", "mgr", "MGR: 3 selectors (lr, 1.5 lr, 2 lr), one predictor at lr / 3", first_seed=601)


@contextlib.contextmanager
def cuda_moves_skipped() -> Iterator[None]:
    """``Module.to('cuda:...')`` leaves the module where it is (``Multi_gen`` moves its selectors
    to the GPU in ``__init__``)."""
    original = nn.Module.to

    def to(self: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, str) and target.startswith("cuda"):
            return self
        return original(self, *args, **kwargs)

    with base.patched(nn.Module, "to", to):
        yield


def reference_args(embeddings: Any) -> types.SimpleNamespace:
    """``norm_beer.py``'s namespace: ``record_jugechengzi``'s plus MGR's options."""
    args = base.reference_args(CASE, embeddings)
    args.num_gen, args.lr_lambda, args.share, args.gpu = MGR_HYPER["num_gen"], MGR_HYPER["lr_lambda"], 0, "0"
    args.dis_lr, args.average_test = 1, 1
    return args


def reference_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The predictor (``model``'s own parameters: ``cls``, ``cls_fc``) and each selector, which
    the reference keeps outside ``model.parameters()`` (a Python list)."""
    return {"": model, **{f"gen_list.{i}.": gen for i, gen in enumerate(model.gen_list)}}


def norm_beer_optimizer(model: nn.Module, args: types.SimpleNamespace) -> torch.optim.Adam:
    """The Adam groups of ``norm_beer.py`` (``--share 0 --dis_lr 1``)."""
    para = [{"params": model.gen_list[0].parameters(), "lr": args.lr}]
    for idx in range(args.num_gen - 1):
        multi_lr = (idx + 1) * args.lr_lambda
        para.append({"params": model.gen_list[idx + 1].parameters(), "lr": args.lr + args.lr * multi_lr})
    para.append({"params": model.cls_fc.parameters(), "lr": args.lr / args.num_gen})
    para.append({"params": model.cls.parameters(), "lr": args.lr / args.num_gen})
    return torch.optim.Adam(para)


def floats(values: list[torch.Tensor]) -> list[float]:
    """0-d float32 tensors as Python floats (exact)."""
    return [float(v) for v in values]


def record_mgr(ref: types.SimpleNamespace, case: base.Case, setting: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train MGR with ``train_util.train_multi_gen`` and evaluate as ``norm_beer.py``; return the fixture."""
    args = reference_args(setting["embeddings"])
    torch.manual_seed(seed)
    with cuda_moves_skipped():
        model = ref.model.Multi_gen(args)
    modules = reference_modules(model)
    initial = base.weights(modules)
    optimizer = norm_beer_optimizer(model, args)
    tape, pending, steps = DrawTape(), defaultdict(list), []
    backward_log: list[dict[str, torch.Tensor]] = []

    def on_step_post(opt: Any, a: Any, k: Any) -> None:
        local = backward_log.pop()
        masks = [base.selected(z) for z in pending["z"]]
        assert len(masks) == len(pending["predictor_logits"]) == args.num_gen
        steps.append(
            {
                "selector_logits": pending["selector_logits"][:],
                "z": masks,
                "predictor_logits": pending["predictor_logits"][:],
                "cls_loss": floats(pending["cross_entropy"]),
                "sparsity_loss": floats(pending["sparsity_loss"]),
                "continuity_loss": floats(pending["continuity_loss"]),
                "selector_loss": floats(base.one(pending["loss_list"])),
                "loss": local["__loss__"],
                "lrs": [group["lr"] for group in optimizer.param_groups],
                "grads": base.pack(base.one(pending["grads"])),
                "weights_after": base.pack(base.weights(modules)),
            }
        )
        base.reset(pending)

    def noting_sum(values: Any, *rest: Any) -> Any:  # train_multi_gen's sum(loss_list)
        pending["loss_list"].append(base.detached(list(values)))
        return builtins.sum(values, *rest)

    hooks = [
        *(base.forward_log(gen, pending["selector_logits"]) for gen in model.gen_list),
        base.forward_log(model.cls_fc, pending["predictor_logits"]),
        base.gradient_log(optimizer, modules, pending["grads"]),
        optimizer.register_step_post_hook(on_step_post),
    ]
    tu = ref.train_util
    train_loader = base.loader(setting["train"], ("ids", "masks", "labels"))
    patches = [(tu, "sum", noting_sum)]
    with base.capture(tu, pending, backward_log, tape, sampler_of=model, patches=patches, hooks=hooks):
        model.train()
        tu.train_multi_gen(model, optimizer, train_loader, base.CPU, args, (base.ScalarLog(), 0), [], [])
    assert len(steps) == len(setting["train"])
    train_end = len(tape.draws)
    evaluation, extra = evaluate_mgr(ref, model, setting, tape)
    marks = {"train_end": train_end, **evaluation.pop("marks")}
    config = {**base.HYPER, **MGR_HYPER}
    fixture = base.fixture(
        case, seed, setting, initial, tape, steps, evaluation, marks, reference=REFERENCE, config=config, notes=NOTES
    )
    fixture.update(extra)
    return fixture


NOTES = [
    "steps: per selector (in gen_list order) 'selector_logits', 'z' (the straight-through select channel the "
    "predictor and the regularizers read, padding included), 'predictor_logits', the unweighted 'cls_loss' / "
    "'sparsity_loss' / 'continuity_loss' as F.cross_entropy / get_sparsity_loss / get_continuity_loss returned "
    "them, 'selector_loss' (train_multi_gen's loss_list: the weighted sum per selector); 'loss' is "
    "sum(loss_list); 'lrs' the Adam groups' rates (gen_list 0..2, cls_fc, cls).",
    "eval: norm_beer.py's order. 'reference_dev' is its dev loop (every selector's Gumbel rationale, counts "
    "pooled over the selectors); 'eval' holds Multi_gen.test on the dev batches (ratbench's dev-accuracy "
    "rule), validate_share and validate_rationales; 'one_head' validate_onehead.",
    "tape: 'binomial' draws are Multi_gen.test's torch.binomial outcomes over [B, T, 2] (both channels), "
    "appended by a pass-through wrapper; the rest as parity_tape records them. 'test_probabilities' holds the "
    "probabilities each of those draws sampled from (the selectors' mean softmax), in the same order.",
    "weights and grads use the reference's names: 'gen_list.<i>.<0: GRU, 2: LayerNorm, 4: Linear>', 'cls.', "
    "'cls_fc.'; the frozen embedding is left out.",
]


def evaluate_mgr(
    ref: types.SimpleNamespace, model: nn.Module, setting: dict[str, Any], tape: DrawTape
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``norm_beer.py``'s evaluation (``Multi_gen.test`` also on dev), recorded; returns the
    ``evaluation_record`` and the fixture's extra keys (``reference_dev``, ``one_head``)."""
    dev_loader = base.loader(setting["dev"], ("ids", "masks", "labels"))
    annotation_loader = base.loader(setting["annotation"], ("ids", "masks", "labels", "gold"))
    vu, cpu = ref.validate_util, torch.device("cpu")
    masks, logits = [], []
    tests, stats, one_head, one_head_stats, rationale_logits, probabilities = [], [], [], [], [], []
    writer = base.ScalarLog()

    def binomial(count: torch.Tensor, prob: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        value = original_binomial(count, prob, *args, **kwargs)
        tape.add("binomial", value)
        probabilities.append(prob.detach().clone())  # Multi_gen.test's mean probabilities, [B, T, 2]
        return value

    original_binomial = torch.binomial
    model.eval()
    with contextlib.ExitStack() as stack, torch.no_grad():
        stack.enter_context(tape.record())
        stack.enter_context(base.patched(torch, "binomial", binomial))
        sampling = base.noting(model.independent_straight_through_sampling, masks)
        stack.enter_context(base.patched(model, "independent_straight_through_sampling", sampling))
        handle = base.forward_log(model.cls_fc, logits)
        counts = {"tp": 0, "tn": 0, "fp": 0, "fn": 0}
        for inputs, batch_masks, labels in dev_loader:  # norm_beer.py's dev loop
            _, logits_list = model(inputs, batch_masks)
            for selector_logits in logits_list:
                _, pred = torch.max(torch.softmax(selector_logits, dim=-1), axis=-1)
                counts["tp"] += int(((pred == 1) & (labels == 1)).sum())
                counts["tn"] += int(((pred == 0) & (labels == 0)).sum())
                counts["fn"] += int(((pred == 0) & (labels == 1)).sum())
                counts["fp"] += int(((pred == 1) & (labels == 0)).sum())
        handle.remove()
        num_gen = len(model.gen_list)
        reference_dev = {
            "rationales": [[base.selected(z) for z in masks[b : b + num_gen]] for b in range(0, len(masks), num_gen)],
            "logits": [logits[b : b + num_gen] for b in range(0, len(logits), num_gen)],
            **counts,
            "accuracy": (counts["tp"] + counts["tn"]) / sum(counts.values()),
        }
        reference_dev_end = len(tape.draws)

        stack.enter_context(base.patched(model, "test", base.noting(model.test, tests)))
        correct = total = 0
        for inputs, batch_masks, labels in dev_loader:  # Multi_gen.test on dev: ratbench's dev accuracy
            _, dev_logits = model.test(inputs, batch_masks)
            correct += int((dev_logits.argmax(-1) == labels).sum())
            total += len(labels)
        dev = tests[:]
        tests.clear()
        dev_end = len(tape.draws)
        with base.patched(vu, "compute_micro_stats", base.noting(vu.compute_micro_stats, stats)):
            shares = vu.validate_share(model, annotation_loader, cpu)
        annotation_end = len(tape.draws)
        with base.forward_log(model.cls_fc, rationale_logits):
            vu.validate_rationales(model, annotation_loader, cpu, (writer, 0))
        rationales_end = len(tape.draws)
        with (
            base.patched(model, "test_one_head", base.noting(model.test_one_head, one_head)),
            base.patched(vu, "compute_micro_stats", base.noting(vu.compute_micro_stats, one_head_stats)),
        ):
            one_head_shares = vu.validate_onehead(model, annotation_loader, cpu)
        one_head_end = len(tape.draws)
    evaluation = base.evaluation_record(
        setting,
        dev_rationales=[base.selected(z) for z, _ in dev],
        dev_logits=[x for _, x in dev],
        dev_accuracy=correct / total,
        annotation_rationales=[base.selected(z) for z, _ in tests],
        annotation_logits=[x for _, x in tests],
        stats=stats,
        shares=shares,
        gold_logits=rationale_logits,
        gold_accuracy=writer.scalars["rat_acc"],
        marks={
            "reference_dev_end": reference_dev_end,
            "dev_end": dev_end,
            "annotation_end": annotation_end,
            "rationales_end": rationales_end,
            "one_head_end": one_head_end,
        },
    )
    one_head_record = {
        "annotation_rationales": [base.selected(z) for z, _ in one_head],
        "annotation_predictor_logits": [x for _, x in one_head],
        **{key: int(sum(int(s[i]) for s in one_head_stats)) for i, key in enumerate(STAT_KEYS)},
        **dict(zip(("sparsity", "precision", "recall", "f1"), (float(v) for v in one_head_shares), strict=True)),
    }
    extra = {"reference_dev": reference_dev, "one_head": one_head_record, "test_probabilities": probabilities}
    return evaluation, extra


def accepted(record: dict[str, Any]) -> bool:
    """Whether the run exercises what the fixture is for: the averaged test rationale selects
    padding (counted in S) and skips some real token, on the annotations and on dev; the
    selectors' training masks differ; the pooled dev accuracy differs from the test-rule one."""
    ev = record["eval"]
    padding_selected = [
        bool(((z > 0.5) & (batch["masks"] == 0)).any())
        for z, batch in zip(ev["annotation_rationales"], record["annotation"], strict=True)
    ]
    real_skipped = [
        bool(((z < 0.5) & (batch["masks"] == 1)).any())
        for z, batch in zip(ev["annotation_rationales"], record["annotation"], strict=True)
    ]
    step = record["steps"][0]
    differ = not torch.equal(step["z"][0], step["z"][1]) and not torch.equal(step["z"][1], step["z"][2])
    return (
        any(padding_selected)
        and all(real_skipped)
        and differ
        and record["reference_dev"]["accuracy"] != ev["dev_accuracy"]
    )


def main() -> None:
    """Record the fixture into ``--out``."""

    def describe(result: dict[str, Any], path: Path) -> str:
        return (
            f"{base.summary(result, path)}; dev accuracy pooled {result['reference_dev']['accuracy']:.3f}, "
            f"test rule {result['eval']['dev_accuracy']:.3f}"
        )

    references = {"mgr": ("--reference", "checkout of jugechengzi/Rationalization-MGR")}
    record = base.seed_search(record_mgr, accepted, "mgr: no seed in 200 exercises the fixture")
    base.recorder_main(__doc__, references, (CASE,), record, describe)


if __name__ == "__main__":
    main()
