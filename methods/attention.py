"""Attention baseline: a full-text classifier whose attention weights are the rationale scores."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import ClassVar, Literal

import torch
from torch import nn

from ratbench.api import (
    Batch,
    DataInfo,
    EvalMode,
    Method,
    MethodConfig,
    Presets,
    Provenance,
    RationaleOutput,
    register_method,
)

from ._blocks import (
    AttentionClassifier,
    make_embedding,
    make_encoder,
    train_classifier_epoch,
    trainable_groups,
    visible,
)
from ._options import GRUOptions, TransformerOptions
from ._presets import TRAINING_PRESETS


class AttentionModel(nn.Module):
    """Frozen embedding (or the token ids) and an attention classifier over the text read
    through ``keep`` (its BiGRU, or a transformer read as ``transformer`` says)."""

    def __init__(
        self, info: DataInfo, hidden_dim: int, dropout: float, scorer: str, transformer: TransformerOptions
    ) -> None:
        super().__init__()
        self.embed = make_embedding(info)
        encoder = make_encoder(info, hidden_dim, transformer)
        self.classifier = AttentionClassifier(None, None, info.num_classes, dropout, scorer, encoder)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and attention weights; ``keep`` is the mask for the full text, or a rationale."""
        return self.classifier(self.embed(ids, mask), mask, keep)


@register_method("attention")
class Attention(Method["Attention.Config"]):
    """Attention baseline (METHODS.md 13; Lei et al. 2016 style, as in the VER paper's Table 1).

    A full-text classifier (frozen GloVe, BiGRU, additive attention, attention-weighted
    average, dropout 0.2, Linear) trained with cross-entropy; the rationale of an example is
    its top ``k = max(1, round(sparsity * length))`` tokens by attention weight, chosen by the
    evaluator's shared top-k rule. Post-hoc: the classifier does not predict from the
    rationale, so Acc is N/A, as in the paper. Model selection uses its full-text dev accuracy.

    No reference repository: the recommended setting is Adam 1e-4 with RNP's batch sizes.
    Options: ``scorer="linear"`` reproduces FR's attention module (no tanh).

    Layout: with no reference pipeline of its own, the ``paper`` preset pads every batch to
    ``data.max_len`` like the jugechengzi code base of the RNP-family rows it is compared with
    in Table 1, so that its GRU reads the same inputs (a GRU without packing reads the padding).
    """

    description = "post-hoc baseline: top-k tokens by the attention of a full-text GRU classifier"
    model: AttentionModel
    kind = "post_hoc"
    version = "1"
    encoders = ("word", "hf")
    provenance = Provenance(
        reference="",
        proven_by="no reference code to compare with; the evaluator's top-k rule is tested in tests/test_evaluate.py",
        layout="every batch padded to data.max_len, as the RNP-family rows of Table 1 (no reference pipeline)",
    )

    @dataclasses.dataclass(frozen=True)
    class Config(MethodConfig, GRUOptions, TransformerOptions):
        sparsity: float = 0.15
        """Share of each example's tokens kept as its rationale (the paper matches about 15 %)."""
        scorer: Literal["additive", "linear"] = "additive"
        """Attention scorer: additive (tanh) or linear (FR's module)."""

    presets: ClassVar[Presets] = TRAINING_PRESETS

    def __init__(self, config: Attention.Config, info: DataInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.model = AttentionModel(info, config.hidden_dim, config.dropout, config.scorer, config).to(device)
        self.optimizers = [torch.optim.Adam(trainable_groups(self.model, config.lr, config.encoder_lr))]

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        """One pass of cross-entropy training on the full text."""
        self.model.train()
        return train_classifier_epoch(lambda b: self.model(b.ids, b.mask, b.mask)[0], self.optimizers[0], batches)

    @torch.no_grad()
    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        """Attention weights as token scores; no prediction from the rationale (post-hoc)."""
        self.model.eval()
        _, weights = self.model(batch.ids, batch.mask, batch.mask)
        return RationaleOutput(logits=None, scores=weights)

    @torch.no_grad()
    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        """The classifier's logits on ``embedded * rationale`` (full text: the mask)."""
        self.model.eval()
        return self.model(batch.ids, batch.mask, visible(rationale, batch))[0]
