"""Building blocks shared by the RNP family (METHODS.md section 2).

Frozen embedding, the selector (BiGRU -> LayerNorm -> dropout -> Linear(., 2)), the predictor
(BiGRU over the masked embeddings -> masked max-pool -> dropout -> Linear), hard Gumbel-softmax
sampling with the straight-through estimator, and the batch-level sparsity and continuity
regularizers, all with the reference semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ratbench.types import Batch

POOL_FILL = -1e6  # value written at padding before the max-pool, as the reference does
MASKED_SCORE = -1e9  # attention logit at padding before the softmax


class FrozenEmbedding(nn.Module):
    """Pretrained vectors, not trained; row 0 (padding and OOV) is zeros."""

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.as_tensor(vectors, dtype=torch.float32), freeze=True)

    @property
    def dim(self) -> int:
        """Embedding width."""
        return self.embedding.embedding_dim

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask[..., None] * Emb(ids)``: ``[B, T, D]``."""
        return self.embedding(ids) * mask.unsqueeze(-1)


class BiGRU(nn.Module):
    """One-layer bidirectional GRU, ``hidden_dim`` wide in total, batch first, no packing."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden_dim // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D] -> [B, T, hidden_dim]``."""
        return self.gru(x)[0]


class Selector(nn.Module):
    """Per-token select/skip logits ``[B, T, 2]`` (channel 1 = select), at every position."""

    def __init__(self, input_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.encoder = BiGRU(input_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, 2)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, 2]``."""
        return self.head(self.dropout(self.norm(self.encoder(embedded))))


class Predictor(nn.Module):
    """Classifies from ``embedded * z``: BiGRU, max-pool over real positions, dropout, Linear.

    Deselected real tokens stay in the sequence as zero vectors (no compaction), and only
    padding is excluded from the max, as in the reference.
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = BiGRU(input_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, num_classes)

    def features(self, embedded: torch.Tensor, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The max-pooled representation ``[B, hidden_dim]`` of ``embedded * z`` (before dropout)."""
        hidden = self.encoder(embedded * z.unsqueeze(-1))
        hidden = hidden.masked_fill(mask.unsqueeze(-1) == 0, POOL_FILL)
        return hidden.max(dim=1).values

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from pooled features."""
        return self.head(self.dropout(features))

    def forward(self, embedded: torch.Tensor, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from the rationale ``z`` ``[B, T]``."""
        return self.classify(self.features(embedded, z, mask))


class AttentionClassifier(nn.Module):
    """BiGRU -> attention over real tokens -> attention-weighted sum -> dropout -> Linear.

    ``scorer="additive"`` scores ``v^T tanh(W h + b)`` (Lei et al. style); ``"linear"`` scores
    ``v^T (W h + b)``, as FR's attention module. Padding gets weight 0.
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_classes: int, dropout: float, scorer: str) -> None:
        super().__init__()
        self.encoder = BiGRU(input_dim, hidden_dim)
        self.project = nn.Linear(hidden_dim, hidden_dim)
        self.score = nn.Linear(hidden_dim, 1, bias=False)
        self.scorer = scorer
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, num_classes)

    def forward(self, embedded: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` and attention weights ``[B, T]`` (a softmax over the real tokens)."""
        hidden = self.encoder(embedded)
        projected = self.project(hidden)
        logits = self.score(torch.tanh(projected) if self.scorer == "additive" else projected).squeeze(-1)
        weights = F.softmax(logits.masked_fill(mask == 0, MASKED_SCORE), dim=-1) * mask
        context = (weights.unsqueeze(-1) * hidden).sum(dim=1)
        return self.head(self.dropout(context)), weights


class EpochMeans:
    """Per-batch loss terms summed on the device and averaged once per epoch (one host sync)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.batches = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        """Add one batch's terms (scalars; detached here)."""
        for key, value in terms.items():
            value = value.detach()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.batches += 1

    def means(self) -> dict[str, float]:
        """Mean of each term over the batches added so far."""
        return {key: float(value) / max(self.batches, 1) for key, value in self.sums.items()}


def gumbel_sample(logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a Gumbel-softmax sample: soft probabilities ``y`` and the hard argmax index.

    Same draw as ``F.gumbel_softmax``: ``y = softmax((logits + G) / tau)`` with
    ``G = -log(Exp(1))``; the hard sample is ``argmax(y)``.
    """
    gumbels = -torch.empty_like(logits).exponential_().log()
    soft = F.softmax((logits + gumbels) / tau, dim=-1)
    return soft, soft.argmax(dim=-1)


def straight_through(index: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``onehot(index) - soft.detach() + soft``: forward is hard, gradient is the soft one."""
    hard = F.one_hot(index, soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def hard_sample(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """A hard Gumbel-softmax sample of the "select" channel with the straight-through gradient."""
    soft, index = gumbel_sample(logits, tau)
    return straight_through(index, soft)[..., 1]


def eval_selection(logits: torch.Tensor, mode: str, tau: float) -> torch.Tensor:
    """0/1 selection ``[B, T]`` at evaluation: a fresh Gumbel sample in the ``reference`` mode
    (as the reference evaluates), the argmax in the ``clean`` mode. Padding is not removed here."""
    if mode == "reference":
        return gumbel_sample(logits, tau)[1].to(logits.dtype)
    return (logits[..., 1] > logits[..., 0]).to(logits.dtype)


def sparsity_loss(z: torch.Tensor, mask: torch.Tensor, target: float, mask_padding: bool = False) -> torch.Tensor:
    """``|sum(z) / sum(mask) - target|`` over the whole batch.

    The reference sums ``z`` at every position, padding included (``mask_padding=False``).
    """
    selected = (z * mask).sum() if mask_padding else z.sum()
    return (selected / mask.sum() - target).abs()


def continuity_loss(z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``|z[t] - z[t-1]|`` over ``B x (T-1)`` entries, padding included (reference).

    With ``mask`` given, only transitions between two real tokens count and the mean is taken
    over those.
    """
    diffs = (z[:, 1:] - z[:, :-1]).abs()
    if mask is None:
        return diffs.mean()
    pairs = mask[:, 1:] * mask[:, :-1]
    return (diffs * pairs).sum() / pairs.sum().clamp(min=1)


def train_classifier_epoch(
    forward: Callable[[Batch], torch.Tensor], optimizer: torch.optim.Optimizer, batches: Iterable[Batch]
) -> dict[str, float]:
    """One pass of cross-entropy training of a full-text classifier (``forward`` gives logits)."""
    means = EpochMeans()
    for batch in batches:
        logits = forward(batch)
        loss = F.cross_entropy(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        means.add({"loss": loss, "train_acc": (logits.argmax(-1) == batch.labels).float().mean()})
    return means.means()
