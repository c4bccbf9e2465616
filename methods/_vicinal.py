"""VER's vicinal perturbation as a component any select-then-predict method can use.

The VER paper trains the predictor on random vicinal perturbations of the selected mask and
notes that the perturbation can be combined with other rationalizers. ``perturb_index_reference``
is the reference's perturbation of a hard mask (jugechengzi/Rationalization-VER@bc1c435,
``model.py`` ``perturb_gumbel``), ``perturb_index`` the same rule with a per-row clamp;
``vicinal_masks`` turns a Gumbel sample into the two straight-through masks a method needs: the
perturbed one for its predictor and the unperturbed one for its regularizers (and anything
else). A method opts in by adding ``PerturbOptions`` (``_options``) to its config; the template
(``_family.SelectPredict.training_masks``) then calls ``predictor_and_selection_masks``; ``perturb_rate = 0`` (the
default for every method but ``ver``) leaves it exactly as it was, drawing no random numbers,
as the reference does at rate 0 (``model.py:462-464``).
"""

from __future__ import annotations

import torch

from ._blocks import straight_through
from ._options import ShortRows


def _off_flips(index: torch.Tensor, mask: torch.Tensor, rate: float, u_selected: torch.Tensor) -> torch.Tensor:
    """1 -> 0 candidates: selected real tokens whose uniform draw is below ``rate`` (strict, as the
    reference's ``min`` over ``(rate, u)`` picks ``rate`` on ties)."""
    return (u_selected.reshape(index.shape) < rate) & (index == 1) & (mask > 0)


def perturb_index_reference(index: torch.Tensor, mask: torch.Tensor, rate: float) -> torch.Tensor:
    """Flip a hard 0/1 rationale ``index`` ``[B, T]`` exactly as the VER reference does,
    drawing what it draws, in its order:

    * ``torch.rand`` of the mask's shape; 1 -> 0: every selected real token with a draw below
      ``rate`` (Bernoulli(rate) each);
    * 0 -> 1: one batch-level count ``k = max(floor(#(1->0 flips) / B), 1)``; unless some row has
      no unselected real token (then no row gets 0 -> 1 flips), ``torch.multinomial`` draws k
      positions of every row without replacement, weighted by its unselected real tokens; a
      row with fewer than k such tokens gets zero-weight positions too (see
      ``PerturbOptions.short_rows``), which flip like the others;
    * padding is never flipped except by that short-row case.
    """
    off = _off_flips(index, mask, rate, torch.rand(index.shape, device=index.device))
    unselected = ((index == 0) & (mask > 0)).float()
    if bool((unselected.sum(dim=1) == 0).any()):
        return torch.where(off, 1 - index, index)
    k = max(int(off.sum()) // index.shape[0], 1)  # the reference's int(): one host sync
    drawn = torch.multinomial(unselected, k, replacement=False)
    on = torch.zeros_like(off).scatter_(1, drawn, True)
    return torch.where(off | on, 1 - index, index)


def perturb_index(
    index: torch.Tensor,
    mask: torch.Tensor,
    rate: float,
    u_selected: torch.Tensor,
    u_unselected: torch.Tensor,
) -> torch.Tensor:
    """The reference's rule with a per-row clamp (``short_rows="clamp"``), on given draws.

    * 1 -> 0: every selected real token with ``u_selected < rate`` (Bernoulli(rate) each).
    * 0 -> 1: one batch-level count ``k = max(floor(#(1->0 flips) / B), 1)``, clamped per row
      to the number of unselected real tokens of that row; each row flips the ``k_b``
      unselected real tokens with the largest ``u_unselected`` (a uniform draw without
      replacement). If some row has no unselected real token, no row gets 0 -> 1 flips
      (reference behaviour).
    * padding is never flipped.

    ``u_selected`` and ``u_unselected`` are uniform ``[B, T]`` draws passed in so the
    function is deterministic given them. Runs without host synchronisation.
    """
    real = mask > 0
    off = _off_flips(index, mask, rate, u_selected)
    unselected = (index == 0) & real
    per_row_free = unselected.sum(dim=1)
    k = torch.div(off.sum(), index.shape[0], rounding_mode="floor").clamp(min=1)
    k_row = torch.minimum(k.expand_as(per_row_free), per_row_free)
    keys = torch.where(unselected, u_unselected, torch.full_like(u_unselected, -1.0))
    rank = keys.argsort(dim=1, descending=True).argsort(dim=1)
    on = unselected & (rank < k_row.unsqueeze(1)) & (per_row_free.min() > 0)
    return torch.where(off | on, 1 - index, index)


def vicinal_masks(
    soft: torch.Tensor, index: torch.Tensor, selectable: torch.Tensor, rate: float, short_rows: ShortRows = "reference"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(perturbed straight-through mask for the predictor, unperturbed one), the "select"
    channel of a Gumbel sample (``soft`` ``[B, T, 2]``, ``index`` ``[B, T]``). The perturbed
    mask carries the same soft probabilities, so the selector still gets its gradient through
    it. Always perturbs; ``short_rows`` picks the reference's sampler or the clamped one."""
    if short_rows == "reference":
        perturbed = perturb_index_reference(index, selectable, rate)
    else:
        u_selected = torch.rand(index.shape, device=index.device)
        u_unselected = torch.rand(index.shape, device=index.device)
        perturbed = perturb_index(index, selectable, rate, u_selected, u_unselected)
    return straight_through(perturbed, soft)[..., 1], straight_through(index, soft)[..., 1]


def predictor_and_selection_masks(
    soft: torch.Tensor, index: torch.Tensor, selectable: torch.Tensor, rate: float, short_rows: ShortRows = "reference"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``vicinal_masks`` when ``rate > 0``; else the unperturbed mask twice (no draws), as the
    reference's ``perturb_forward`` at rate 0."""
    if rate > 0:
        return vicinal_masks(soft, index, selectable, rate, short_rows)
    z = straight_through(index, soft)[..., 1]
    return z, z
