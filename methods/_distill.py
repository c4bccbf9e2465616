"""What DMR and its reference variant share: the distillation and feature-matching terms and
the full-text teacher trained before the first epoch (METHODS.md 10)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ratbench.api import Batch


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the student's distribution against ``softmax(teacher / T)`` (batch mean).

    As in the reference, only the teacher's logits are divided by the temperature.
    """
    target = F.softmax(teacher_logits / temperature, dim=-1)
    return -(target * F.log_softmax(student_logits, dim=-1)).sum(-1).mean()


def feature_matching(rationale: torch.Tensor, full: torch.Tensor, moments: int) -> torch.Tensor:
    """Central moment discrepancy between two ``[B, H]`` feature batches.

    ``||E[x] - E[y]||_2`` plus, for ``k = 2..moments``, ``||E[(x - E x)^k] - E[(y - E y)^k]||_2``.
    ``moments=1`` is the distance of the batch means, which is what the reference's CMD
    computes in effect (its higher terms multiply by k instead of raising to the power k).
    """
    mean_r, mean_f = rationale.mean(0), full.mean(0)
    total = (mean_r - mean_f).norm()
    for k in range(2, moments + 1):
        total = total + ((rationale - mean_r).pow(k).mean(0) - (full - mean_f).pow(k).mean(0)).norm()
    return total


def host_batches(batches: Iterable[Batch]) -> list[Batch]:
    """The epoch's batches, kept in host memory (the teacher's passes and the epoch's own pass
    move each one to the device when they use it)."""
    return [batch.to("cpu") for batch in batches]


def train_teacher(
    teacher: nn.Module,
    embed: nn.Module,
    batches: list[Batch],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device,
    deal: Callable[[list[Batch]], list[Batch]] | None = None,
) -> float:
    """Train ``teacher`` on the full text read through ``embed`` for ``epochs`` shuffled passes over
    ``batches``, then freeze both; return its training accuracy (percent) in the last pass.

    ``deal`` makes each pass's batches (default: ``batches`` in a random order). Each batch goes
    to ``device`` only while it is used: ``batches`` may stay in host memory (``host_batches``),
    so a GPU never holds an epoch of them."""
    teacher.train()
    correct = total = 0
    for _ in range(epochs):
        correct = total = 0
        order = deal(batches) if deal is not None else [batches[i] for i in torch.randperm(len(batches)).tolist()]
        for batch in order:
            batch = batch.to(device)
            logits = teacher(embed(batch.ids, batch.mask), batch.mask, batch.mask)
            loss = F.cross_entropy(logits, batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(-1) == batch.labels).sum())
            total += len(batch.labels)
    teacher.requires_grad_(False)
    embed.requires_grad_(False)
    return 100 * correct / max(total, 1)


def teacher_before_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device,
    dropout: bool,
) -> tuple[Iterable[Batch], dict[str, float]]:
    """A teacher method's ``before_epoch``: the first time, train ``model.teacher`` on the full
    text for ``epochs`` passes (the epoch's batches kept in host memory meanwhile) and record that
    in ``model.teacher_trained``; then keep it frozen, in train mode (``dropout``) or eval mode."""
    figures: dict[str, float] = {}
    if not bool(model.teacher_trained):
        batches = host_batches(batches)
        figures["teacher_train_acc"] = train_teacher(model.teacher, model.embed, batches, optimizer, epochs, device)
        model.teacher_trained.fill_(True)  # saved with the weights: a restored model keeps it
    model.teacher.requires_grad_(False)
    model.teacher.train(dropout)
    return batches, figures
