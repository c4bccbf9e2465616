"""VER: vicinal evaluation rationalization (RNP whose predictor trains on perturbed masks)."""

from __future__ import annotations

import dataclasses

from ratbench.api import Provenance, register_method

from ._options import PerturbOptions
from ._presets import JUGECHENGZI_STREAM_NOTES, PADDED_LAYOUT
from .rnp import RNP


@register_method("ver")
class VER(RNP["VER.Config"]):
    """VER (vicinal evaluation rationalization, the VER paper in ../shared/docs/paper.txt);
    port of jugechengzi/Rationalization-VER@bc1c435 (``perturbation.py``, ``--perturb_rate``),
    proven step by step against it by ``tests/test_parity_jugechengzi.py``.

    Everything is RNP except the predictor's training input: after the hard Gumbel sample, a
    random vicinal perturbation of the mask (``_vicinal.perturb_index_reference``) is fed to
    the predictor, with the same soft probabilities in the straight-through estimator, so the
    selector still receives gradients through the perturbed mask. The sparsity and continuity
    regularizers see the unperturbed mask. Training only: evaluation is RNP's. At
    ``perturb_rate=0`` nothing is perturbed and VER is RNP, as in the reference
    (``model.py:462-464``).

    Deviations from the reference, each behind a flag whose default is the reference:
        short_rows ("reference"): ``clamp`` flips at most a row's own unselected real tokens
        where the reference's ``torch.multinomial`` returns zero-weight positions (torch 2.13
        on CPU: padding or selected tokens; older torch raises).
        mask_padding_in_loss (False): as in RNP.
    """

    description = "VER: RNP whose predictor is trained on random vicinal perturbations of the mask"
    kind = "select_predict"
    version = "2"  # 2: the reference's sampler (torch.multinomial) and no perturbation at rate 0
    provenance = Provenance(
        reference="jugechengzi/Rationalization-VER @ bc1c435 (perturbation.py; model.py Perturb_model.perturb_gumbel, "
        "perturb_forward; train_util.py train_sp_norm; validate_util.py)",
        proven_by="tests/test_parity_jugechengzi.py (cases ver_p0, ver_p03, ver_short_row): logits, the perturbed "
        "and unperturbed masks, loss terms, gradients and weights after 3 Adam steps, and the evaluation, "
        "on the padded layout",
        deviations=(
            "short_rows (reference): clamp flips at most a row's own unselected real tokens where the reference's "
            "torch.multinomial returns zero-weight positions (padding or selected tokens in torch 2.13)",
            "mask_padding_in_loss (false): as rnp",
            "data.padding (max_len): as rnp",
            *JUGECHENGZI_STREAM_NOTES,
        ),
        layout=PADDED_LAYOUT,
    )

    @dataclasses.dataclass(frozen=True)
    class Config(RNP.Config, PerturbOptions):
        perturb_rate: float = 0.3
        """p: probability of flipping each selected real token off (as many unselected ones are
        flipped on); 0 turns the perturbation off (VER is then RNP, as in the reference)."""
