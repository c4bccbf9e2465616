"""Building blocks shared by the RNP family (METHODS.md section 2).

Frozen embedding, the selector (BiGRU -> LayerNorm -> dropout -> Linear(., 2)), the predictor
(BiGRU over the masked embeddings -> masked max-pool -> dropout -> Linear), hard Gumbel-softmax
sampling with the straight-through estimator, and the batch-level sparsity and continuity
regularizers, all with the reference semantics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOL_FILL = -1e6  # value written at padding before the max-pool, as the reference does


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

    def forward(self, embedded: torch.Tensor, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from the rationale ``z`` ``[B, T]``."""
        hidden = self.encoder(embedded * z.unsqueeze(-1))
        hidden = hidden.masked_fill(mask.unsqueeze(-1) == 0, POOL_FILL)
        return self.head(self.dropout(hidden.max(dim=1).values))


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
