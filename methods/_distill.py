"""What DMR and its reference variant share: the distillation and feature-matching terms and
the full-text teacher trained before the first epoch (METHODS.md 10)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ratbench.api import Batch, Method


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
    method: Method,
    batches: list[Batch],
    optimizer: torch.optim.Optimizer,
    embed: nn.Module | None = None,
    deal: Callable[[list[Batch]], list[Batch]] | None = None,
) -> float:
    """Train ``method.model.teacher`` on the full text for ``teacher_epochs`` shuffled passes over
    ``batches``, then freeze it; return its training accuracy (percent) in the last pass.

    ``embed`` is the teacher's input layer (default ``model.embed``; frozen with the teacher when
    given); ``deal`` makes each pass's batches (default: ``batches`` in a random order). Each
    batch goes to the method's device only while it is used: ``batches`` may stay in host
    memory (``host_batches``), so a GPU never holds an epoch of them."""
    model = method.model
    teacher_embed = model.embed if embed is None else embed
    model.teacher.train()
    correct = total = 0
    for _ in range(method.config.teacher_epochs):
        correct = total = 0
        order = deal(batches) if deal is not None else [batches[i] for i in torch.randperm(len(batches)).tolist()]
        for batch in order:
            batch = batch.to(method.device)
            logits = model.teacher(teacher_embed(batch.ids, batch.mask), batch.mask, batch.mask)
            loss = F.cross_entropy(logits, batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(-1) == batch.labels).sum())
            total += len(batch.labels)
    model.teacher.requires_grad_(False)
    if embed is not None:
        embed.requires_grad_(False)
    model.teacher_trained.fill_(True)
    return 100 * correct / max(total, 1)
