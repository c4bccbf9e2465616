"""VER: vicinal evaluation rationalization (RNP whose predictor trains on perturbed masks)."""

from __future__ import annotations

import dataclasses

import torch

from ratbench.registry import register_method

from ._vicinal import PerturbOptions, perturb_index, vicinal_masks
from .rnp import RNP

__all__ = ["VER", "perturb_index"]


@register_method("ver")
class VER(RNP):
    """VER (vicinal evaluation rationalization, the VER paper in ../shared/docs/paper.txt);
    port of jugechengzi/Rationalization-VER@bc1c435 (``perturbation.py``, ``--perturb_rate``).

    Everything is RNP except the predictor's training input: after the hard Gumbel sample, a
    random vicinal perturbation of the mask (see ``perturb_index``) is fed to the predictor,
    with the same soft probabilities in the straight-through estimator, so the selector still
    receives gradients through the perturbed mask. The sparsity and continuity regularizers
    see the unperturbed mask. Training only: evaluation is RNP's.

    Deviations from the reference, each with the reference available:
        per-row clamp of the 0 -> 1 count (always on): the reference asks torch.multinomial
        for more draws than a short row has, which crashes (old torch) or silently flips
        padding (torch 2.13); the clamp only matters in that case.
        mask_padding_in_loss (False): as in RNP.
    """

    description = "VER: RNP whose predictor is trained on random vicinal perturbations of the mask"
    kind = "select_predict"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Config(RNP.Config, PerturbOptions):
        perturb_rate: float = 0.3
        """p: probability of flipping each selected real token off. At 0 the reference still
        flips one unselected token on per row, so VER at 0 is not RNP (RNP has no perturbation)."""

    def training_masks(
        self, soft: torch.Tensor, index: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(perturbed straight-through mask for the predictor, unperturbed one for the regularizers)."""
        return vicinal_masks(soft, index, mask, self.config.perturb_rate)
