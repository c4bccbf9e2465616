"""Record step-level parity fixtures of RNP, VER and A2I from the jugechengzi reference code.

Usage (the references are read, never copied; only the numbers they produce are stored)::

    python benchmarks/parity/record_jugechengzi.py \\
        --reference /work/refs/jugechengzi+Rationalization-VER \\
        --a2i-reference /work/refs/jugechengzi+Rationalization-A2I \\
        --out tests/golden/parity/

For every case it builds a tiny setting (30 words of random 8-d vectors, row 0 zeros; rows of
3..20 tokens with OOV id-0 tokens, padded to 24 as the reference pads every batch), builds the
reference's own model classes from an ``args`` namespace, and runs the reference's own training
function for one epoch of 3 batches (``train_util.train_sp_norm`` for RNP / VER,
``train_util.train_separate_two_head`` for A2I) and its evaluation (the dev loop of
``perturbation.py`` / ``validate_separate_acc_on_valset``, ``validate_util.validate_share``,
``validate_util.validate_rationales``), with ``tests/parity_tape.DrawTape`` recording every random
draw. What the reference computes is captured without changing it: forward hooks (selector and
predictor logits), wrappers that note the return values of the reference's own functions
(straight-through masks, ``get_sparsity_loss``, ``get_continuity_loss``, ``F.cross_entropy``,
``compute_micro_stats``), the local variables of the training function at each
``loss.backward()`` (the weighted loss terms and the total loss), and optimizer step hooks
(gradients, weights after the step).

Two reference calls are left out on purpose, each because it is no part of the objective:
``train_sp_norm`` ends with ``get_grad`` (a Lipschitz diagnostic for tensorboard; it draws and
accumulates gradients after the last step), replaced by a stub; and A2I's dev loop also samples
the attacker's rationale, whose draws are dropped from the tape (ratbench's dev accuracy samples
the main selector only, as the main accuracy of the reference does).

Each fixture is a plain dict (``torch.load(path, weights_only=True)``); see
``benchmarks/parity/README.md`` and ``tests/test_parity_jugechengzi.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import inspect
import math
import sys
import types
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.hooks import RemovableHandle

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from parity_tape import DrawTape  # noqa: E402

REFERENCE_MODULES = ("metric", "model", "train_util", "validate_util")
CPU = torch.device("cpu")
COMMITS = {
    "ver": ("jugechengzi/Rationalization-VER", "bc1c435"),
    "a2i": ("jugechengzi/Rationalization-A2I", "dfb578f"),
    "fr": ("jugechengzi/FR", "971e6da"),
    "dr": ("jugechengzi/Rationalization-DR", "f65389f"),
}
VOCAB, EMBEDDING_DIM, MAX_LEN, BATCH_SIZE = 30, 8, 24, 5
# Row lengths of each batch: 3..20 real tokens, all padded to MAX_LEN (the reference layout).
TRAIN_LENGTHS = ((20, 3, 11, 7, 16), (5, 18, 9, 14, 4), (12, 6, 20, 8, 3))
DEV_LENGTHS = ((9, 20, 4, 13, 6), (15, 3, 10, 7, 18))
ANNOTATION_LENGTHS = ((17, 5, 12, 20, 8), (4, 14, 9, 19, 6))
# ratbench Config values shared by every case (the reference args get the same numbers). lr is
# large so that every step moves the weights visibly; the two lambdas differ so a swap shows.
HYPER: dict[str, Any] = {
    "epochs": 1,
    "batch_size": BATCH_SIZE,
    "lr": 1e-2,
    "sparsity": 0.2,
    "sparsity_lambda": 6.0,
    "continuity_lambda": 4.0,
    "cls_lambda": 0.9,
    "hidden_dim": 8,
    "dropout": 0.2,
    "tau": 1.0,
}
# adv_lambda is a power of two, so that the reference's (adv_lambda * (0.9 * x)) and ratbench's
# ((-adv_lambda * 0.9) * x) round alike; it is not 1, so a missing adv_lambda shows.
A2I_HYPER: dict[str, Any] = {
    "adv_lambda": 0.5,
    "pred_lr_rate": 2.0,
    "adv_lr_rate": 0.5,
    "open_epoch": 0,
    "adv_sparse": True,
    "adv_continue": True,
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One fixture: which reference, which ratbench method, and what it must exercise."""

    name: str
    method: str
    reference: str
    description: str
    perturb_rate: float = 0.0
    use_hinge: bool = True
    select_bias: float = 0.0
    """Added to the select logit's initial bias (and subtracted from the skip one): denser
    selections, so that short rows occur."""
    first_seed: int = 1
    model_class: str = "Perturb_model"
    """The reference's model class (FR: ``GenEncShareModel``; DR: ``Sp_norm_model``)."""


CASES = (
    Case("rnp", "rnp", "ver", "RNP: perturbation.py with --perturb_rate 0"),
    Case("ver_p0", "ver", "ver", "VER at perturb_rate 0: the reference does not perturb", first_seed=101),
    Case(
        "ver_p03", "ver", "ver", "VER at perturb_rate 0.3, every row has enough unselected tokens", 0.3, first_seed=201
    ),
    Case(
        "ver_short_row",
        "ver",
        "ver",
        "VER at 0.3 with dense selections: a row has fewer unselected real tokens than the 0->1 "
        "count k, so torch.multinomial also returns zero-weight positions (padding or selected "
        "tokens), which the reference then flips",
        0.3,
        select_bias=1.0,
        first_seed=301,
    ),
    Case("a2i_hinge", "a2i", "a2i", "A2I with the ln 2 hinge (use_hinge 1)", first_seed=401),
    Case(
        "a2i_no_hinge",
        "a2i",
        "a2i",
        "A2I with the soft [0.5, 0.5] target (use_hinge 0)",
        use_hinge=False,
        first_seed=501,
    ),
    Case(
        "fr",
        "fr",
        "fr",
        "FR: GenEncShareModel (one GRU and LayerNorm for the selector and the predictor), train_share, one Adam",
        first_seed=601,
        model_class="GenEncShareModel",
    ),
    Case(
        "dr",
        "dr",
        "dr",
        "DR: Sp_norm_model, train_sp_norm with dis_lr 1 (the predictor's lr = lr x the batch's selected share)",
        first_seed=701,
        model_class="Sp_norm_model",
    ),
)


# -- setting ---------------------------------------------------------------------------------
def make_split(rng: np.random.Generator, lengths: tuple[tuple[int, ...], ...], gold: bool) -> list[dict[str, Any]]:
    """Batches of random ids (about 15 % OOV id 0, mask 1) padded to MAX_LEN, labels of both
    classes, and (``gold``) one or two gold spans per row, never empty."""
    batches = []
    for row_lengths in lengths:
        ids = torch.zeros(len(row_lengths), MAX_LEN, dtype=torch.int64)
        masks = torch.zeros(len(row_lengths), MAX_LEN, dtype=torch.int64)  # the reference's masks are int64
        golds = torch.zeros(len(row_lengths), MAX_LEN, dtype=torch.int64)
        for row, n in enumerate(row_lengths):
            words = rng.integers(1, VOCAB, size=n)
            words[rng.random(n) < 0.15] = 0
            ids[row, :n] = torch.from_numpy(words)
            masks[row, :n] = 1
            for _ in range(1 if n < 10 else 2):
                start = int(rng.integers(0, n))
                golds[row, start : start + int(rng.integers(1, max(2, n // 4) + 1))] = 1
        ids[0, 1] = 0  # at least one OOV token per batch
        labels = torch.from_numpy(rng.permutation(np.arange(len(row_lengths)) % 2)).to(torch.int64)
        batch = {"ids": ids, "masks": masks, "labels": labels}
        if gold:
            batch["gold"] = golds
        batches.append(batch)
    return batches


def make_setting(seed: int = 0) -> dict[str, Any]:
    """Embeddings and the train, dev and annotation batches (the same for every case)."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(VOCAB, EMBEDDING_DIM)).astype(np.float32)
    embeddings[0] = 0
    return {
        "embeddings": embeddings,
        "train": make_split(rng, TRAIN_LENGTHS, gold=False),
        "dev": make_split(rng, DEV_LENGTHS, gold=False),
        "annotation": make_split(rng, ANNOTATION_LENGTHS, gold=True),
    }


def loader(batches: list[dict[str, Any]], keys: tuple[str, ...]) -> DataLoader:
    """A DataLoader that yields ``batches`` in order (tuples of ``keys``), as the reference's."""
    tensors = [torch.cat([batch[key] for batch in batches]) for key in keys]
    return DataLoader(TensorDataset(*tensors), batch_size=BATCH_SIZE, shuffle=False)


# -- reference import and light patching -----------------------------------------------------------
def load_reference(path: Path) -> types.SimpleNamespace:
    """The reference's ``metric``, ``model``, ``train_util`` and ``validate_util`` modules (both
    repositories use these names, so each import gets its own module objects)."""
    saved = {name: sys.modules.pop(name) for name in REFERENCE_MODULES if name in sys.modules}
    sys.path.insert(0, str(path))
    try:
        modules = {name: importlib.import_module(name) for name in REFERENCE_MODULES}
    finally:
        sys.path.remove(str(path))
        for name in REFERENCE_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return types.SimpleNamespace(**modules)


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``target.name`` to ``value`` for the block."""
    own, old = name in vars(target), vars(target).get(name)
    setattr(target, name, value)
    try:
        yield
    finally:
        if own:
            setattr(target, name, old)
        else:
            delattr(target, name)


def noting(function: Callable[..., Any], sink: list[Any]) -> Callable:
    """``function`` that also appends a detached copy of its result to ``sink``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        sink.append(detached(result))
        return result

    return wrapper


def detached(value: Any) -> Any:
    """Tensors detached and cloned, inside tuples and lists too."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(detached(v) for v in value)
    return value


class ScalarLog:
    """Stands in for tensorboardX's SummaryWriter: keeps the last value of each tag."""

    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}

    def add_scalar(self, tag: str, value: Any, step: int) -> None:
        """Keep ``value`` under ``tag``."""
        self.scalars[tag] = float(value)


@contextlib.contextmanager
def backward_locals(sink: list[dict[str, torch.Tensor]]) -> Iterator[None]:
    """Note, at every ``loss.backward()``, the loss and the tensor locals of the calling function
    (the reference's training function: its weighted loss terms, masks and logits)."""
    original = torch.Tensor.backward

    def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        caller = inspect.currentframe().f_back  # type: ignore[union-attr]
        found = {k: v.detach().clone() for k, v in caller.f_locals.items() if isinstance(v, torch.Tensor)}
        sink.append({**found, "__loss__": self.detach().clone()})
        return original(self, *args, **kwargs)

    torch.Tensor.backward = backward  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.backward = original  # type: ignore[method-assign]


class CrossEntropyLog:
    """``torch.nn.functional`` for the reference's ``train_util``: every ``cross_entropy`` result is noted."""

    def __init__(self, sink: list[torch.Tensor]) -> None:
        self.cross_entropy = noting(F.cross_entropy, sink)

    def __getattr__(self, name: str) -> Any:
        return getattr(F, name)


def weights(modules: dict[str, nn.Module], skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Trainable parameters by reference name (prefix + name), frozen embeddings and ``skip`` left out."""
    return {
        f"{prefix}{name}": p.detach().clone()
        for prefix, module in modules.items()
        for name, p in module.named_parameters()
        if "embedding" not in name and name not in skip
    }


def gradients(modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The gradients the optimizer is about to apply, by reference name."""
    stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return {
        f"{prefix}{name}": p.grad.detach().clone()
        for prefix, module in modules.items()
        for name, p in module.named_parameters()
        if id(p) in stepped and p.grad is not None
    }


# -- capture shared by the recorders (record_mgr.py, record_mcd.py, ... import this module) ---------
def forward_log(module: nn.Module, sink: list[Any]) -> RemovableHandle:
    """A forward hook that notes a detached copy of each output of ``module`` in ``sink``; its
    handle removes it, also as a context manager (``with forward_log(module, sink): ...``)."""
    return module.register_forward_hook(lambda m, i, o: sink.append(detached(o)))


def gradient_log(optimizer: torch.optim.Optimizer, modules: dict[str, nn.Module], sink: list[Any]) -> RemovableHandle:
    """A step pre-hook that notes the gradients ``optimizer`` is about to apply (``gradients``) in ``sink``."""
    return optimizer.register_step_pre_hook(lambda o, a, k: sink.append(gradients(modules, optimizer)))


def update_log(
    optimizers: dict[str, torch.optim.Optimizer],
    modules: dict[str, nn.Module],
    log: dict[str, list[Any]],
    skip: tuple[str, ...] = (),
) -> list[RemovableHandle]:
    """Step hooks that note each step of each named optimizer as ``(name, gradients before,
    weights after)`` in ``log["updates"]``, in the order the steps come (two optimizers whose steps
    interleave: MCD, MRD); ``log["grads"]`` holds a gradient between the two hooks."""
    hooks = []
    for name, optimizer in optimizers.items():

        def post(o: Any, a: Any, k: Any, name: str = name) -> None:
            log["updates"].append((name, log["grads"].pop(), weights(modules, skip)))

        hooks += [gradient_log(optimizer, modules, log["grads"]), optimizer.register_step_post_hook(post)]
    return hooks


@contextlib.contextmanager
def capture(
    train_util: types.ModuleType,
    log: dict[str, list[Any]],
    backward_log: list[dict[str, torch.Tensor]],
    tape: DrawTape,
    *,
    sampler_of: nn.Module | None = None,
    patches: Iterable[tuple[Any, str, Any]] = (),
    hooks: Iterable[RemovableHandle] = (),
) -> Iterator[None]:
    """What every recorder holds around the reference's training function, changing nothing it
    computes: the results of ``train_util.get_sparsity_loss`` / ``get_continuity_loss`` noted in
    ``log["sparsity_loss"]`` / ``log["continuity_loss"]`` and of its ``F.cross_entropy`` in
    ``log["cross_entropy"]`` (``CrossEntropyLog``); with ``sampler_of``, that model's
    straight-through samples (``independent_straight_through_sampling``) in ``log["z"]``;
    ``patches``, further ``(target, name, value)`` set for the block (``patched``); the caller's
    locals at each ``backward()`` in ``backward_log`` (``backward_locals``); every draw on ``tape``.
    ``hooks`` (forward and step hooks) are removed when the block ends."""
    tu = train_util
    with contextlib.ExitStack() as stack:
        for handle in hooks:
            stack.callback(handle.remove)  # the callbacks run last: after the patches are undone
        if sampler_of is not None:
            sampler = noting(sampler_of.independent_straight_through_sampling, log["z"])
            stack.enter_context(patched(sampler_of, "independent_straight_through_sampling", sampler))
        stack.enter_context(patched(tu, "get_sparsity_loss", noting(tu.get_sparsity_loss, log["sparsity_loss"])))
        stack.enter_context(patched(tu, "get_continuity_loss", noting(tu.get_continuity_loss, log["continuity_loss"])))
        stack.enter_context(patched(tu, "F", CrossEntropyLog(log["cross_entropy"])))
        for target, name, value in patches:
            stack.enter_context(patched(target, name, value))
        stack.enter_context(backward_locals(backward_log))
        stack.enter_context(tape.record())
        yield


def reference_args(case: Case, embeddings: np.ndarray) -> types.SimpleNamespace:
    """The argparse namespace the reference scripts would build for this case."""
    args = types.SimpleNamespace(
        vocab_size=VOCAB,
        embedding_dim=EMBEDDING_DIM,
        pretrained_embedding=embeddings.copy(),
        hidden_dim=HYPER["hidden_dim"],
        num_layers=1,
        num_class=2,
        dropout=HYPER["dropout"],
        fr=0,
        sp_norm=0,
        dr=0,
        dis_lr=0,
        lr=HYPER["lr"],
        sparsity_percentage=HYPER["sparsity"],
        sparsity_lambda=HYPER["sparsity_lambda"],
        continuity_lambda=HYPER["continuity_lambda"],
        cls_lambda=HYPER["cls_lambda"],
        batch_size=BATCH_SIZE,
        max_length=MAX_LEN,
        perturb_rate=case.perturb_rate,
        cell_type="GRU",
        tau=[HYPER["tau"]],  # FR's model reads args.tau[0]
    )
    if case.reference == "dr":
        args.dis_lr = 1
    if case.reference == "a2i":
        args.use_hinge = int(case.use_hinge)
        args.open_attack = 1  # separate_two_head_adv.py sets it to 1 once epoch >= open_epoch (0)
        for key in ("adv_lambda", "pred_lr_rate", "adv_lr_rate", "open_epoch"):
            setattr(args, key, A2I_HYPER[key])
        args.adv_sparse, args.adv_continue = int(A2I_HYPER["adv_sparse"]), int(A2I_HYPER["adv_continue"])
    return args


def ratbench_config(case: Case) -> dict[str, Any]:
    """The ratbench ``Config(...)`` keyword arguments of the case."""
    config = dict(HYPER)
    if case.method == "ver":
        config["perturb_rate"] = case.perturb_rate
    if case.method == "a2i":
        config.update(A2I_HYPER, use_hinge=case.use_hinge)
    if case.method == "fr":
        config["share_encoder"] = True
    if case.method == "dr":
        config["dis_lr"] = 1.0
    return config


def bias_selection(selector_head: nn.Linear, bias: float) -> None:
    """Shift the initial select/skip bias by ``+bias`` / ``-bias``."""
    if bias:
        with torch.no_grad():
            selector_head.bias += torch.tensor([-bias, bias])


# -- VER / RNP ---------------------------------------------------------------------------------------
def perturbation_note(tape: DrawTape, start: int, index: torch.Tensor, masks: torch.Tensor) -> dict[str, Any]:
    """What one perturbation drew and met (diagnostics, not compared): per-row unselected real
    tokens, and the number of multinomial samples (0: not called)."""
    kinds = [kind for kind, _ in tape.draws[start:]]
    samples = [value for kind, value in tape.draws[start:] if kind == "multinomial"]
    unselected = ((index == 0) & (masks > 0)).sum(dim=1)
    num_samples = int(samples[0].shape[-1]) if samples else 0
    return {
        "draws": kinds,
        "unselected_per_row": unselected.tolist(),
        "multinomial_samples": num_samples,
        "short_rows": [int(u) < num_samples for u in unselected] if samples else [False] * len(unselected),
    }


def record_ver(ref: types.SimpleNamespace, case: Case, setting: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train RNP / VER / DR with ``train_util.train_sp_norm`` (FR: ``train_share``) and evaluate;
    return the fixture."""
    args = reference_args(case, setting["embeddings"])
    torch.manual_seed(seed)
    model = getattr(ref.model, case.model_class)(args)
    bias_selection(model.gen_fc, case.select_bias)
    # layernorm2 is built but never used by perturb_forward / train_one_step / Sp_norm_model's
    # forward: no gradient, no ratbench counterpart (checked below). FR has none.
    skip = ("layernorm2.weight", "layernorm2.bias") if hasattr(model, "layernorm2") else ()
    modules = {"": model}
    initial = weights(modules, skip)
    if case.reference == "fr":  # run_share_beer.py: one Adam over every parameter
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:  # perturbation.py (fr 0, dr 0) and norm_beer.py: the generator's parameters and the rest, both at lr
        generator_ids = {id(p) for p in model.generator.parameters()}
        optimizer = torch.optim.Adam(
            [
                {"params": model.generator.parameters(), "lr": args.lr},
                {"params": [p for p in model.parameters() if id(p) not in generator_ids], "lr": args.lr},
            ]
        )
    tape, pending, steps = DrawTape(), defaultdict(list), []
    backward_log: list[dict[str, torch.Tensor]] = []

    def on_step_post(opt: Any, a: Any, k: Any) -> None:
        local = backward_log.pop()
        (z, z_predictor), note = one(pending["masks"]), pending["perturbation"]
        assert torch.equal(z, local["rationales"]), "the captured mask is the one train_sp_norm used"
        steps.append(
            {
                "selector_logits": one(pending["selector_logits"]),
                "predictor_logits": one(pending["predictor_logits"]),
                "z_predictor": selected(z_predictor),
                "z_regularizer": selected(z),
                "cls_loss": one(pending["cross_entropy"]),
                "sparsity_loss": one(pending["sparsity_loss"]),
                "continuity_loss": one(pending["continuity_loss"]),
                "cls_loss_weighted": local["cls_loss"],
                "sparsity_loss_weighted": local["sparsity_loss"],
                "continuity_loss_weighted": local["continuity_loss"],
                "loss": local["__loss__"],
                "grads": pack(one(pending["grads"])),
                "weights_after": pack(weights(modules, skip)),
                "perturbation": note[0] if note else {},
            }
        )
        if case.reference == "dr":  # the coupled learning rate this step used
            steps[-1]["predictor_lr"] = optimizer.param_groups[1]["lr"]
        if skip:
            assert model.layernorm2.weight.grad is None and model.layernorm2.bias.grad is None
        reset(pending)

    def perturb_gumbel(masks_: torch.Tensor, logits: torch.Tensor, **kwargs: Any) -> Any:
        start = len(tape.draws)
        z, z_perturb = original_perturb(masks_, logits, **kwargs)
        index = z[..., 1].detach() > 0.5
        pending["perturbation"].append(perturbation_note(tape, start, index.long(), masks_.squeeze(-1)))
        pending["masks"].append(detached((z, z_perturb)))
        return z, z_perturb

    def straight_through(logits: torch.Tensor) -> torch.Tensor:
        z = original_sampling(logits)
        pending["masks"].append(detached((z, z)))  # perturb_rate 0: the predictor sees z itself
        return z

    original_perturb = getattr(model, "perturb_gumbel", None)
    original_sampling = model.independent_straight_through_sampling
    train_loader = loader(setting["train"], ("ids", "masks", "labels"))
    writer = ScalarLog()
    hooks = [
        forward_log(model.gen_fc, pending["selector_logits"]),
        forward_log(model.cls_fc, pending["predictor_logits"]),
        gradient_log(optimizer, modules, pending["grads"]),
        optimizer.register_step_post_hook(on_step_post),
    ]
    tu = ref.train_util
    patches = [(model, "perturb_gumbel", perturb_gumbel)] if hasattr(model, "perturb_gumbel") else []
    patches.append((model, "independent_straight_through_sampling", straight_through))
    # get_grad: tensorboard's Lipschitz diagnostic after the epoch, no part of the objective.
    patches.append((tu, "get_grad", lambda *a, **k: (torch.tensor(0.0), torch.tensor(0.0))))
    with capture(tu, pending, backward_log, tape, patches=patches, hooks=hooks):
        model.train()
        if case.reference == "fr":
            tu.train_share(model, optimizer, train_loader, CPU, args, (writer, 0))
        else:
            tu.train_sp_norm(model, optimizer, train_loader, CPU, args, (writer, 0), [], [])
    train_end = len(tape.draws)
    evaluation = evaluate_ver(ref, model, setting, tape)
    marks = {"train_end": train_end, **evaluation.pop("marks")}
    return fixture(case, seed, setting, initial, tape, steps, evaluation, marks)


def selected(z: torch.Tensor) -> torch.Tensor:
    """The "select" channel of a ``[B, T, 2]`` straight-through sample, in its own storage."""
    return z[..., 1].detach().clone()


def pack(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``{name: tensor}`` as names, shapes and one flat tensor: a fixture of hundreds of small
    tensors would be mostly ``torch.save``'s per-tensor overhead (about 270 bytes each)."""
    return {
        "names": list(tensors),
        "shapes": [list(t.shape) for t in tensors.values()],
        "flat": torch.cat([t.reshape(-1) for t in tensors.values()]),
    }


def reset(pending: dict[str, list[Any]]) -> None:
    """Empty every list of ``pending`` in place (the wrappers hold on to the lists)."""
    for values in pending.values():
        values.clear()


def one(values: list[Any]) -> Any:
    """The single value a step produced."""
    assert len(values) == 1, f"expected one value, got {len(values)}"
    return values[0]


def evaluate_ver(
    ref: types.SimpleNamespace,
    model: nn.Module,
    setting: dict[str, Any],
    tape: DrawTape,
    *,
    after_dev: Callable[[DataLoader], Any] | None = None,
    after_share: Callable[[DataLoader], Any] | None = None,
) -> dict[str, Any]:
    """perturbation.py's dev loop, then validate_share and validate_rationales, as the script runs
    them (``evaluate_annotations``). ``after_dev(dev_loader)`` and ``after_share(annotation_loader)``
    run a script's further calls, under the tape and ``no_grad``, after the dev loop and after
    ``validate_share`` (MCD: ``validate_dev_sentence``, ``validate_annotation_sentence``)."""
    dev_loader = loader(setting["dev"], ("ids", "masks", "labels"))
    dev: list[Any] = []
    model.eval()
    with tape.record(), torch.no_grad():
        with forward_log(model, dev):
            correct = total = 0
            for inputs, masks, labels in dev_loader:  # the dev loop of perturbation.py
                _, logits = model(inputs, masks)
                _, pred = torch.max(torch.softmax(logits, dim=-1), axis=-1)
                correct += int(((pred == 1) & (labels == 1)).sum() + ((pred == 0) & (labels == 0)).sum())
                total += len(labels)
        if after_dev is not None:
            after_dev(dev_loader)
        dev_end = len(tape.draws)
    annotations, annotation_end = evaluate_annotations(ref.validate_util, model, setting, tape, after_share)
    return evaluation_record(
        setting,
        dev_rationales=[selected(z) for z, _ in dev],
        dev_logits=[logits for _, logits in dev],
        dev_accuracy=correct / total,
        **annotations,
        marks={"dev_end": dev_end, "annotation_end": annotation_end},
    )


def evaluate_annotations(
    vu: types.ModuleType,
    model: nn.Module,
    setting: dict[str, Any],
    tape: DrawTape,
    after_share: Callable[[DataLoader], Any] | None = None,
) -> tuple[dict[str, Any], int]:
    """``vu.validate_share`` on the annotated batches (the model's outputs and ``compute_micro_stats``'
    counts noted; a writer passed where its signature takes one), ``after_share(annotation_loader)``
    if given, then ``vu.validate_rationales`` (the predictor's logits on the gold rationales noted),
    under the tape and ``no_grad``. Returns ``evaluation_record``'s annotation keywords and the
    number of draws at the end of ``validate_share`` (the mark ``annotation_end``)."""
    annotation_loader = loader(setting["annotation"], ("ids", "masks", "labels", "gold"))
    writer, forwards, stats, rationale_logits = ScalarLog(), [], [], []
    with tape.record(), torch.no_grad():
        with forward_log(model, forwards), patched(vu, "compute_micro_stats", noting(vu.compute_micro_stats, stats)):
            extra = ((writer, 0),) if "writer_epoch" in inspect.signature(vu.validate_share).parameters else ()
            shares = vu.validate_share(model, annotation_loader, CPU, *extra)
        annotation_end = len(tape.draws)
        if after_share is not None:
            after_share(annotation_loader)
        with forward_log(model.cls_fc, rationale_logits):
            vu.validate_rationales(model, annotation_loader, CPU, (writer, 0))
    return {
        "annotation_rationales": [selected(z) for z, _ in forwards],
        "annotation_logits": [logits for _, logits in forwards],
        "stats": stats,
        "shares": shares,
        "gold_logits": rationale_logits,
        "gold_accuracy": writer.scalars["rat_acc"],
    }, annotation_end


def evaluation_record(setting: dict[str, Any], **found: Any) -> dict[str, Any]:
    """The evaluation part of a fixture, from what the reference's evaluation returned."""
    stats = found["stats"]
    annotation_labels = [batch["labels"] for batch in setting["annotation"]]
    dev_labels = [batch["labels"] for batch in setting["dev"]]

    def correct(logits: list[torch.Tensor], labels: list[torch.Tensor]) -> int:
        return int(sum(int((x.argmax(-1) == y).sum()) for x, y in zip(logits, labels, strict=True)))

    sparsity, precision, recall, f1 = (float(v) for v in found["shares"])
    return {
        "dev_rationales": found["dev_rationales"],
        "dev_predictor_logits": found["dev_logits"],
        "dev_correct": correct(found["dev_logits"], dev_labels),
        "dev_total": int(sum(len(y) for y in dev_labels)),
        "dev_accuracy": float(found["dev_accuracy"]),
        "annotation_rationales": found["annotation_rationales"],
        "annotation_predictor_logits": found["annotation_logits"],
        "annotation_correct": correct(found["annotation_logits"], annotation_labels),
        "num_true_pos": int(sum(int(s[0]) for s in stats)),
        "num_predicted_pos": int(sum(int(s[1]) for s in stats)),
        "num_real_pos": int(sum(int(s[2]) for s in stats)),
        "num_words": int(sum(int(batch["masks"].sum()) for batch in setting["annotation"])),
        "sparsity": sparsity,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "gold_rationale_logits": found["gold_logits"],
        "gold_rationale_correct": correct(found["gold_logits"], annotation_labels),
        "gold_rationale_accuracy": float(found["gold_accuracy"]),
        "marks": found["marks"],
    }


# -- A2I -----------------------------------------------------------------------------------------------
def record_a2i(ref: types.SimpleNamespace, case: Case, setting: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train A2I with ``train_util.train_separate_two_head`` and evaluate; return the fixture."""
    args = reference_args(case, setting["embeddings"])
    torch.manual_seed(seed)
    rnp_model, adv_gen = ref.model.RNP_0908(args), ref.model.Adv_generator(args)
    modules = {"rnp_model.": rnp_model, "adv_gen.": adv_gen}
    initial = weights(modules)
    # separate_two_head_adv.py with fr 0: generator at lr, predictor at lr / pred_lr_rate, and
    # the attacker's own Adam at lr * adv_lr_rate.
    gen_para = [p for m in rnp_model.gen_para for p in m.parameters() if p.requires_grad]
    pred_para = [p for m in rnp_model.pred_para for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        [{"params": gen_para, "lr": args.lr}, {"params": pred_para, "lr": args.lr / args.pred_lr_rate}]
    )
    optimizer_adv = torch.optim.Adam(adv_gen.parameters(), lr=args.lr * args.adv_lr_rate)
    tape, pending, steps = DrawTape(), defaultdict(list), []
    backward_log: list[dict[str, torch.Tensor]] = []

    def on_main_step(opt: Any, a: Any, k: Any) -> None:
        local = backward_log.pop()
        attack = args.open_attack * args.adv_lambda * local["cls_loss_adv"]  # as the loss line reads
        steps.append(
            {
                "phase": "main",
                "selector_logits": one(pending["selector_logits"]),
                "attacker_logits": one(pending["attacker_logits"]),
                "predictor_logits": local["pred_logits"],
                "attack_logits": local["pred_logits_adv"],
                "z_selector": selected(local["rationales"]),
                "z_attacker": selected(local["rationales_adv"]),
                "cls_loss": pending["cross_entropy"][0],
                "attack_cross_entropy": local["cross_entropy_adv"],
                "cls_loss_weighted": local["cls_loss"],
                "attack_term": -attack if case.use_hinge else attack,
                "sparsity_loss": one(pending["sparsity_loss"]),
                "continuity_loss": one(pending["continuity_loss"]),
                "sparsity_loss_weighted": local["sparsity_loss"],
                "continuity_loss_weighted": local["continuity_loss"],
                "loss": local["__loss__"],
                "grads": pack(one(pending["grads"])),
                "weights_after": pack(weights(modules)),
            }
        )
        assert len(pending["predictor_logits"]) == 2  # the predictor on z, then on the attacker's z
        reset(pending)

    def on_attacker_step(opt: Any, a: Any, k: Any) -> None:
        local = backward_log.pop()
        steps.append(
            {
                "phase": "attacker",
                "attacker_logits": one(pending["attacker_logits"]),
                "attack_logits": local["pred_logits_adv"],
                "z_attacker": selected(local["rationales_adv"]),
                "attack_cls_loss": one(pending["cross_entropy"]),
                "attack_cls_loss_weighted": local["cross_entropy_adv"],
                "sparsity_loss": one(pending["sparsity_loss"]),
                "continuity_loss": one(pending["continuity_loss"]),
                "sparsity_loss_weighted": local["sparsity_loss_adv"],
                "continuity_loss_weighted": local["continuity_loss_adv"],
                "loss": local["__loss__"],
                "grads": pack(one(pending["grads"])),
                "weights_after": pack(weights(modules)),
            }
        )
        reset(pending)

    hooks = [
        forward_log(rnp_model.gen_fc, pending["selector_logits"]),
        forward_log(adv_gen.gen_fc, pending["attacker_logits"]),
        forward_log(rnp_model.cls_fc, pending["predictor_logits"]),
        gradient_log(optimizer, modules, pending["grads"]),
        optimizer.register_step_post_hook(on_main_step),
        gradient_log(optimizer_adv, modules, pending["grads"]),
        optimizer_adv.register_step_post_hook(on_attacker_step),
    ]
    tu = ref.train_util
    train_loader = loader(setting["train"], ("ids", "masks", "labels"))
    with capture(tu, pending, backward_log, tape, hooks=hooks):
        rnp_model.train()
        adv_gen.train()
        tu.train_separate_two_head(
            rnp_model, adv_gen, optimizer, optimizer_adv, train_loader, CPU, args, (ScalarLog(), 0)
        )
    train_end = len(tape.draws)
    evaluation = evaluate_a2i(ref, rnp_model, adv_gen, setting, tape)
    marks = {"train_end": train_end, **evaluation.pop("marks")}
    return fixture(case, seed, setting, initial, tape, steps, evaluation, marks)


def evaluate_a2i(
    ref: types.SimpleNamespace, rnp_model: nn.Module, adv_gen: nn.Module, setting: dict[str, Any], tape: DrawTape
) -> dict[str, Any]:
    """validate_separate_acc_on_valset (the attacker's draws dropped), validate_share and
    validate_rationales, as separate_two_head_adv.py runs them."""
    dev_loader = loader(setting["dev"], ("ids", "masks", "labels"))
    dev_rationales: list[torch.Tensor] = []
    dev_logits: list[torch.Tensor] = []

    def attacker_rationale(inputs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        start = len(tape.draws)
        z = original_adv(inputs, masks)
        del tape.draws[start:]  # ratbench's dev accuracy does not sample the attacker
        return z

    original_adv = adv_gen.get_rationale
    with contextlib.ExitStack() as stack:
        stack.enter_context(tape.record())
        stack.enter_context(patched(adv_gen, "get_rationale", attacker_rationale))
        stack.enter_context(patched(rnp_model, "get_rationale", noting(rnp_model.get_rationale, dev_rationales)))
        stack.enter_context(forward_log(rnp_model.cls_fc, dev_logits))
        normal, _ = ref.train_util.validate_separate_acc_on_valset(rnp_model, adv_gen, dev_loader, CPU)
    dev_end = len(tape.draws)
    annotations, annotation_end = evaluate_annotations(ref.validate_util, rnp_model, setting, tape)
    return evaluation_record(
        setting,
        dev_rationales=[selected(z) for z in dev_rationales],
        dev_logits=dev_logits[0::2],  # per batch: the predictor on z, then on the attacker's z
        dev_accuracy=normal[3],
        **annotations,
        marks={"dev_end": dev_end, "annotation_end": annotation_end},
    )


# -- fixture -----------------------------------------------------------------------------------------
NOTES = [
    "losses: 'cls_loss', 'sparsity_loss', 'continuity_loss' (and A2I 'attack_cls_loss') are "
    "unweighted, as the reference's F.cross_entropy / get_sparsity_loss / get_continuity_loss "
    "returned them; '*_weighted' are the reference's locals (lambda times the term); "
    "'attack_term' is the signed weighted term as it enters A2I's loss; 'loss' is the total.",
    "masks: 'z_predictor' is the straight-through mask the predictor read, 'z_regularizer' "
    "(A2I: 'z_selector') the one the regularizers read: select channel, padding included.",
    "train_sp_norm's trailing get_grad (a tensorboard diagnostic) was stubbed; A2I's dev "
    "loop's attacker draws were dropped from the tape.",
    "weights and grads use the reference's parameter names; Perturb_model.layernorm2 is "
    "unused by the reference (never gets a gradient) and is left out.",
]
"""The notes of this script's fixtures (``fixture``'s default)."""


def fixture(
    case: Case,
    seed: int,
    setting: dict[str, Any],
    initial: dict[str, torch.Tensor],
    tape: DrawTape,
    steps: list[dict[str, Any]],
    evaluation: dict[str, Any],
    marks: dict[str, int],
    *,
    reference: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The fixture dict (plain types only; 0-d tensors of ``steps`` as floats). The keywords serve
    the other recorders, their defaults this script's cases: ``reference``, the fixture's
    ``reference`` entry (default: the repo and commit of ``COMMITS[case.reference]``); ``flags``,
    entries stored after ``torch_version`` (default none); ``config``, the ratbench ``Config``
    keyword arguments (default ``ratbench_config(case)``); ``notes`` (default ``NOTES``)."""
    if reference is None:
        repo, commit = COMMITS[case.reference]
        reference = {"repo": repo, "commit": commit}
    return {
        "case": case.name,
        "description": case.description,
        "method": case.method,
        "reference": dict(reference),
        "torch_version": str(torch.__version__),
        **(flags or {}),
        "seed": seed,
        "select_bias": case.select_bias,
        "config": ratbench_config(case) if config is None else config,
        "max_len": MAX_LEN,
        "embeddings": torch.from_numpy(setting["embeddings"]),
        "train": setting["train"],
        "dev": setting["dev"],
        "annotation": setting["annotation"],
        "initial_weights": pack(initial),
        "tape": tape.to_state(),
        "tape_marks": marks,
        # 0-d tensors as Python floats (the exact float32 value): a fixture of small tensors is
        # mostly torch.save's per-tensor overhead.
        "steps": [floats(step) for step in steps],
        "eval": evaluation,
        "notes": NOTES if notes is None else notes,
    }


def floats(value: Any) -> Any:
    """0-d tensors as Python floats (their exact float32 value), inside dicts too."""
    if isinstance(value, dict):
        return {k: floats(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return float(value)
    return value


def per_batch(values: list[Any], count: int, batches: int, what: str) -> list[list[Any]]:
    """``values`` cut into ``batches`` groups of ``count`` (what the hooks saw, per training batch)."""
    assert len(values) == count * batches, f"{what}: {len(values)} values, expected {count} x {batches}"
    return [values[b * count : (b + 1) * count] for b in range(batches)]


def short_row_steps(record: dict[str, Any]) -> list[int]:
    """Steps whose perturbation asked the multinomial for more samples than a row has."""
    return [i for i, step in enumerate(record["steps"]) if any(step.get("perturbation", {}).get("short_rows", []))]


def accepted(case: Case, record: dict[str, Any]) -> bool:
    """Whether the seed's run exercises what the case is for."""
    notes = [step.get("perturbation", {}) for step in record["steps"]]
    if case.name == "ver_p03":  # the plain path: a multinomial every step, no short row, k >= 2 once
        return (
            all(n["multinomial_samples"] for n in notes)
            and not short_row_steps(record)
            and any(n["multinomial_samples"] >= 2 for n in notes)
        )
    if case.name == "ver_short_row":  # a short row whose draw flips padding on, and a step without 0 -> 1 flips
        return any(n["multinomial_samples"] == 0 for n in notes) and any(
            bool(((step["z_predictor"] > 0.5) & ~(step["z_regularizer"] > 0.5) & (batch["masks"] == 0)).any())
            for step, batch in zip(record["steps"], record["train"], strict=True)
        )
    if case.name == "a2i_hinge":  # rows on both sides of the ln 2 cap
        ce = torch.cat([step["attack_cross_entropy"] for step in record["steps"] if step["phase"] == "main"])
        return bool((ce > math.log(2)).any() and (ce < math.log(2)).any())
    return True


def record(case: Case, references: dict[str, types.SimpleNamespace], setting: dict[str, Any]) -> dict[str, Any]:
    """The fixture of the first seed from ``case.first_seed`` on whose run is ``accepted``."""
    run = record_a2i if case.reference == "a2i" else record_ver
    result = seed_search(run, lambda result: accepted(case, result))(case, references, setting)
    result["short_row_steps"] = short_row_steps(result)
    return result


# -- the recorders' search and command line ----------------------------------------------------------
def seed_search(
    run: Callable[[types.SimpleNamespace, Any, dict[str, Any], int], dict[str, Any] | None],
    accepted: Callable[[dict[str, Any]], bool] | None = None,
    failure: str = "{case.name}: no seed in 200 exercises the case",
) -> Callable[[Any, dict[str, types.SimpleNamespace], dict[str, Any]], dict[str, Any]]:
    """``recorder_main``'s ``record`` for ``run(reference, case, setting, seed)``: the result of the
    first of the 200 seeds from ``case.first_seed`` on whose run is not None and ``accepted`` (if
    given), with the reference of ``case.reference``; ``RuntimeError(failure)`` (formatted with
    ``case``) if there is none. Without ``accepted``, a run that never returns None: the first seed."""

    def record(case: Any, references: dict[str, types.SimpleNamespace], setting: dict[str, Any]) -> dict[str, Any]:
        for seed in range(case.first_seed, case.first_seed + 200):
            result = run(references[case.reference], case, setting, seed)
            if result is not None and (accepted is None or accepted(result)):
                return result
        raise RuntimeError(failure.format(case=case))

    return record


def summary(result: dict[str, Any], path: Path, unit: str = "steps") -> str:
    """The line ``recorder_main`` prints of a saved fixture: seed, steps, draws and size."""
    return (
        f"{path}: seed {result['seed']}, {len(result['steps'])} {unit}, {len(result['tape']['kinds'])} draws, "
        f"{path.stat().st_size // 1024} KB"
    )


def recorder_main(
    doc: str,
    references: dict[str, tuple[str, str]],
    cases: Sequence[Case],
    record: Callable[[Any, dict[str, types.SimpleNamespace], dict[str, Any]], dict[str, Any]],
    describe: Callable[[dict[str, Any], Path], str] = summary,
) -> None:
    """A recorder's command line: record every case (or those named by ``--case``, an option only
    where there are several) into ``--out``. ``references`` maps each reference key to its option
    and help (``{"mcd": ("--reference", "checkout of ...")}``); the checkouts are loaded
    (``load_reference``) and ``record(case, references, setting)`` gets them by key, with the shared
    setting, on one torch thread. Each fixture is saved as ``<case>.pt``, loaded back with
    ``weights_only`` (it must stay loadable without pickled code); ``describe`` gives the line
    printed of it."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for flag, help_text in references.values():
        parser.add_argument(flag, type=Path, required=True, help=help_text)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "golden" / "parity")
    if len(cases) > 1:
        parser.add_argument("--case", action="append", choices=[c.name for c in cases], help="only these cases")
    options = parser.parse_args()
    loaded = {
        key: load_reference(getattr(options, flag.removeprefix("--").replace("-", "_")))
        for key, (flag, _) in references.items()
    }
    setting = make_setting()
    options.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for case in cases:
        if getattr(options, "case", None) and case.name not in options.case:
            continue
        result = record(case, loaded, setting)
        path = options.out / f"{case.name}.pt"
        torch.save(result, path)
        torch.load(path, weights_only=True)  # stays loadable without pickled code
        print(describe(result, path))


def main() -> None:
    """Record every case (or those named by ``--case``) into ``--out``."""

    def describe(result: dict[str, Any], path: Path) -> str:
        samples = [step.get("perturbation", {}).get("multinomial_samples") for step in result["steps"]]
        return f"{summary(result, path)}; multinomial samples {samples}, short-row steps {result['short_row_steps']}"

    references = {
        "ver": ("--reference", "checkout of jugechengzi/Rationalization-VER"),
        "a2i": ("--a2i-reference", "checkout of jugechengzi/Rationalization-A2I"),
        "fr": ("--fr-reference", "checkout of jugechengzi/FR (its code/ folder)"),
        "dr": ("--dr-reference", "checkout of jugechengzi/Rationalization-DR"),
    }
    recorder_main(__doc__, references, CASES, record, describe)


if __name__ == "__main__":
    main()
