"""RNP: the select-then-predict rationalizer of Lei et al. (2016), as in the VER repository."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, TypeVar

import torch

from ratbench.api import Batch, ConfigValueError, Presets, Provenance, register_method

from ._blocks import continuity_loss, sparsity_loss
from ._family import Forward, SelectPredict, couple_learning_rates, selector_predictor_groups
from ._options import DecoupleOptions, FoldOptions, TransformerOptions
from ._presets import JUGECHENGZI_STREAM_NOTES, PADDED_LAYOUT, RNP_PRESETS

ConfigT = TypeVar("ConfigT", bound="RNP.Config")


@register_method("rnp")
class RNP(SelectPredict[ConfigT]):
    """RNP (Lei et al., EMNLP 2016) with a Gumbel-softmax selector and the Chang et al. (2020)
    regularizers; port of jugechengzi/Rationalization-VER@bc1c435 run with ``--perturb_rate 0``.

    Model: frozen embedding; selector BiGRU -> LayerNorm -> dropout -> Linear(., 2) with a hard
    Gumbel-softmax (tau 1) straight-through sample; predictor BiGRU over ``e * z`` -> masked
    max-pool -> dropout -> Linear. Loss ``0.9 CE + lambda_s |sum z / sum mask - alpha| +
    lambda_c mean |z_t - z_{t-1}|`` with batch-level regularizers; one Adam with two parameter
    groups (selector, predictor) at the same learning rate.

    Proven step by step (weights, every random draw, losses, gradients, weights after each
    Adam step, evaluation counts) against the reference by ``tests/test_parity_jugechengzi.py``.
    The ``paper`` preset runs the reference layout: every batch padded to ``data.max_len``
    (256); ``data.padding=bucket`` (the ``demo`` layout) is faster and a different loss.

    Deviations from the reference, each behind a flag whose default is the reference:
        mask_padding_in_loss (False): True excludes padding from both regularizers.
    Evaluation (runner): ``reference`` mode uses a stochastic Gumbel sample at test with padding
    counted, as the reference does; ``clean`` mode uses the argmax selector, padding masked.
    """

    description = "Lei et al. 2016 select-then-predict with Gumbel-softmax selector (VER repo, p=0)"
    kind = "select_predict"
    version = "1"
    encoders = ("word", "hf")

    @dataclasses.dataclass(frozen=True)
    class Config(SelectPredict.Config, TransformerOptions, FoldOptions, DecoupleOptions):
        cls_lambda: float = 0.9
        """Weight of the classification cross-entropy."""
        mask_padding_in_loss: bool = False
        """Deviation: exclude padding from the regularizers (reference: False)."""

        refused_flags: ClassVar[dict[str, str]] = {}
        """FR's and DR's flags (``share_encoder``, ``dis_lr``) that a method built on RNP does not
        implement, each with why: setting one away from its neutral value is a config error."""

        def __post_init__(self) -> None:
            super().__post_init__()
            neutral = self.neutral_values()
            for flag, why in self.refused_flags.items():
                if getattr(self, flag) != neutral[flag]:
                    raise ConfigValueError(flag, f"is not supported: {why}; leave it at {neutral[flag]}")

    presets: ClassVar[Presets] = RNP_PRESETS
    provenance = Provenance(
        reference="jugechengzi/Rationalization-VER @ bc1c435 (perturbation.py with --perturb_rate 0; model.py "
        "Perturb_model, train_util.py train_sp_norm, validate_util.py validate_share, metric.py)",
        proven_by="tests/test_parity_jugechengzi.py (case rnp): logits, masks, loss terms, gradients and weights "
        "after 3 Adam steps, dev accuracy and the annotation counts, on the padded layout",
        deviations=(
            "mask_padding_in_loss (false): true leaves padding out of the sparsity and continuity terms",
            "data.padding (max_len): bucket, the demo layout, pads length-sorted batches to their longest: faster, "
            "and a different loss at the paper's regularizer weights",
            *JUGECHENGZI_STREAM_NOTES,
        ),
        layout=PADDED_LAYOUT,
    )

    def build_optimizers(self) -> list[torch.optim.Optimizer]:
        """One Adam, parameter groups for the selector and the predictor at the same learning
        rate (with a transformer and ``encoder_lr``: the encoders at ``encoder_lr``)."""
        cfg = self.config
        return [torch.optim.Adam(selector_predictor_groups(self.model, cfg.lr, cfg.lr, cfg.encoder_lr))]

    def before_step(self, batch: Batch, forward: Forward) -> None:
        """DR's coupling of the predictor's learning rate to the batch's selected share (``dis_lr``)."""
        if self.config.dis_lr:
            share = float(forward.z.detach().sum() / batch.selectable.sum())  # a host sync, as the reference's .item()
            couple_learning_rates(self.optimizers[0], self.config.dis_lr, share)

    def regularizers(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Unweighted batch-level sparsity and continuity terms of ``z`` (padding as the
        ``mask_padding_in_loss`` flag says)."""
        cfg, mask = self.config, batch.selectable
        return {
            "sparsity": sparsity_loss(z, mask, cfg.sparsity, cfg.mask_padding_in_loss),
            "continuity": continuity_loss(z, mask if cfg.mask_padding_in_loss else None),
        }

    def loss_weights(self) -> dict[str, float]:
        """``cls_lambda`` for the cross-entropy, lambda_s and lambda_c for the regularizers."""
        return {**super().loss_weights(), "cls": self.config.cls_lambda}
