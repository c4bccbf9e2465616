"""VER's vicinal perturbation as a component any select-then-predict method can use.

The VER paper trains the predictor on random vicinal perturbations of the selected mask and
notes that the perturbation can be combined with other rationalizers. ``perturb_index`` is the
reference's perturbation of a hard mask; ``vicinal_masks`` turns a Gumbel sample into the two
straight-through masks a method needs: the perturbed one for its predictor and the unperturbed
one for its regularizers (and anything else). A method opts in by adding ``PerturbOptions`` to
its config and calling ``predictor_and_selection_masks`` where it samples its rationale;
``perturb_rate = 0`` (the default for every method but ``ver``) leaves it exactly as it was,
drawing no random numbers.
"""

from __future__ import annotations

import dataclasses

import torch

from ._blocks import straight_through


@dataclasses.dataclass(frozen=True)
class PerturbOptions:
    """Config mixin of the methods that can train their predictor on perturbed masks."""

    perturb_rate: float = 0.0
    """VER's perturbation of the predictor's training mask: the probability of flipping each
    selected token off (as many unselected ones are flipped on); 0 is off."""


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


def vicinal_masks(
    soft: torch.Tensor, index: torch.Tensor, selectable: torch.Tensor, rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(perturbed straight-through mask for the predictor, unperturbed one), the "select"
    channel of a Gumbel sample (``soft`` ``[B, T, 2]``, ``index`` ``[B, T]``). The perturbed
    mask carries the same soft probabilities, so the selector still gets its gradient through
    it. Always perturbs (VER's reference flips one token on per row even at rate 0)."""
    u_selected = torch.rand(index.shape, device=index.device)
    u_unselected = torch.rand(index.shape, device=index.device)
    perturbed = perturb_index(index, selectable, rate, u_selected, u_unselected)
    return straight_through(perturbed, soft)[..., 1], straight_through(index, soft)[..., 1]


def predictor_and_selection_masks(
    soft: torch.Tensor, index: torch.Tensor, selectable: torch.Tensor, rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``vicinal_masks`` when ``rate > 0``; else the unperturbed mask twice (no draws)."""
    if rate > 0:
        return vicinal_masks(soft, index, selectable, rate)
    z = straight_through(index, soft)[..., 1]
    return z, z
