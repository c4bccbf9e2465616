"""VER: vicinal evaluation rationalization (RNP whose predictor trains on perturbed masks)."""

from __future__ import annotations

import dataclasses

import torch

from ratbench.registry import register_method

from ._blocks import straight_through
from .rnp import RNP


def perturb_index(
    index: torch.Tensor,
    mask: torch.Tensor,
    rate: float,
    u_selected: torch.Tensor,
    u_unselected: torch.Tensor,
) -> torch.Tensor:
    """Flip a hard 0/1 rationale ``index`` ``[B, T]`` as the VER reference does.

    * 1 -> 0: every selected real token with ``u_selected < rate`` (Bernoulli(rate) each).
    * 0 -> 1: one batch-level count ``k = max(floor(#(1->0 flips) / B), 1)``, clamped per row
      to the number of unselected real tokens of that row (the reference's multinomial
      misbehaves when a row has fewer; clamping is our documented fix); each row flips the
      ``k_b`` unselected real tokens with the largest ``u_unselected`` (a uniform draw
      without replacement). If some row has no unselected real token, no row gets 0 -> 1
      flips (reference behaviour).
    * padding is never flipped.

    ``u_selected`` and ``u_unselected`` are uniform ``[B, T]`` draws passed in so the
    function is deterministic given them. Runs without host synchronisation.
    """
    real = mask > 0
    selected = (index == 1) & real
    off = (u_selected < rate) & selected
    unselected = (index == 0) & real
    per_row_free = unselected.sum(dim=1)
    k = torch.div(off.sum(), index.shape[0], rounding_mode="floor").clamp(min=1)
    k_row = torch.minimum(k.expand_as(per_row_free), per_row_free)
    keys = torch.where(unselected, u_unselected, torch.full_like(u_unselected, -1.0))
    rank = keys.argsort(dim=1, descending=True).argsort(dim=1)
    on = unselected & (rank < k_row.unsqueeze(1)) & (per_row_free.min() > 0)
    return torch.where(off | on, 1 - index, index)


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
    class Config(RNP.Config):
        perturb_rate: float = 0.3
        """p: probability of flipping each selected real token off (0 gives RNP)."""

    def training_masks(
        self, soft: torch.Tensor, index: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(perturbed straight-through mask for the predictor, unperturbed one for the regularizers)."""
        u_selected = torch.rand(index.shape, device=index.device)
        u_unselected = torch.rand(index.shape, device=index.device)
        perturbed = perturb_index(index, mask, self.config.perturb_rate, u_selected, u_unselected)
        z = straight_through(index, soft)[..., 1]
        z_perturbed = straight_through(perturbed, soft)[..., 1]
        return z_perturbed, z
