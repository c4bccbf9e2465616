"""NIR as the VER paper ran it: RNP whose predictor reads tf-idf noise in the selected tokens."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch

from ratbench.api import Batch, DataInfo, Provenance, register_method

from ._family import SelectPredictModel
from ._noise import NoiseInjector
from ._options import PerturbOptions
from ._presets import PADDED_LAYOUT
from .rnp import RNP


@register_method("nir_rnp")
class NIRRNP(RNP["NIRRNP.Config"]):
    """NIR as the VER paper's appendix describes its GRU baseline ("we use RNP as its
    backbone"): RNP whose predictor, in training, reads the selected tokens with NIR's tf-idf
    noise (:class:`NoiseInjector`, ``noise_p`` 0.1 as the paper chose). The selector still gets
    its gradient through the straight-through mask; evaluation is RNP's, without noise.

    Not in METHODS.md, which specifies the reference's A2R architecture (``nir``); this is the
    variant the VER paper's Table 1 reports. Defaults and presets are RNP's (the paper applied
    RNP's tuned settings to NIR). Deviations from RNP: the noise only. Extension (off by
    default): ``perturb_rate > 0`` adds VER's vicinal perturbation to the predictor's training
    mask (the noise then goes into the perturbed mask's tokens).
    """

    description = "NIR as the VER paper ran it: RNP whose predictor sees tf-idf noise in the selected tokens"
    model: SelectPredictModel
    kind = "select_predict"
    version = "1"
    provenance = Provenance(
        reference="none: the VER paper's GRU adaptation on RNP's code (jugechengzi/Rationalization-VER @ bc1c435, "
        "proven for rnp) with NIR's noise (adamstorek/noise_injection @ 334e888)",
        proven_by="tests/test_nir.py: the noise tables and replacement probabilities follow NIR's word statistics; "
        "RNP's step is the one tests/test_parity_jugechengzi.py proves",
        deviations=("noise_p (0.1): the noise proportion the VER paper chose",),
        layout=PADDED_LAYOUT + " (the VER paper ran NIR in that code base with RNP's settings)",
    )

    @dataclasses.dataclass(frozen=True)
    class Config(RNP.Config, PerturbOptions):
        noise_p: float = 0.1
        """Noise proportion: mean replacement probability of a selected token."""

        bounds: ClassVar[dict[str, str]] = {"noise_p": "[0, 1]"}
        key_settings: ClassVar[tuple[str, ...]] = ("noise_p",)

    def __init__(self, config: NIRRNP.Config, info: DataInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.inject_noise = NoiseInjector(info, config.noise_p, device)

    def predictor_input(self, batch: Batch, embedded: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The embedded text with noise in the tokens of the (hard) training mask ``z``."""
        noisy = self.inject_noise(batch.ids, batch.selectable, (z.detach() > 0.5).to(batch.mask.dtype))
        return self.model.embed(noisy, batch.mask)
