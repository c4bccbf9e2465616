"""FR: folded rationalization, one encoder shared by the selector and the predictor."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ratbench.api import Presets, Provenance, merge_presets, register_method

from ._presets import JUGECHENGZI_STREAM_NOTES, PADDED_LAYOUT, RNP_PRESETS
from .rnp import RNP

# hyperparameters.txt of jugechengzi/FR @ 971e6da (run_share_beer.py / new_run_share_hotel.py):
# beer aspects 0-2 = appearance, aroma, palate; hotel 0-2 = location, service, cleanliness.
# It also uses 100-d GloVe (data.embedding_dim and its files are the grid's, as for every method).
FR_SCRIPTS = {
    "beer.appearance": {"lr": 1e-4, "batch_size": 256, "sparsity": 0.15, "sparsity_lambda": 10.0,
                        "continuity_lambda": 10.0, "epochs": 300},
    "beer.aroma": {"lr": 1e-4, "batch_size": 256, "sparsity": 0.123, "sparsity_lambda": 12.0,
                   "continuity_lambda": 10.0, "epochs": 500},
    "beer.palate": {"lr": 1e-4, "batch_size": 64, "sparsity": 0.12, "sparsity_lambda": 10.0,
                    "continuity_lambda": 10.0, "epochs": 500},
    "hotel.location": {"lr": 1e-4, "hidden_dim": 200, "batch_size": 64, "sparsity": 0.09, "sparsity_lambda": 8.0,
                       "continuity_lambda": 10.0, "epochs": 200},
    "hotel.service": {"lr": 5e-5, "hidden_dim": 100, "batch_size": 256, "sparsity": 0.115, "sparsity_lambda": 10.0,
                      "continuity_lambda": 10.0, "epochs": 400},
    "hotel.cleanliness": {"lr": 2e-4, "hidden_dim": 100, "batch_size": 256, "dropout": 0.2, "sparsity": 0.1,
                          "sparsity_lambda": 10.0, "continuity_lambda": 12.0, "epochs": 100},
}  # fmt: skip


@register_method("fr")
class FR(RNP["FR.Config"]):
    """FR, folded rationalization (Liu et al., NeurIPS 2022); port of jugechengzi/FR @ 971e6da
    (``code/model.py`` ``GenEncShareModel``, ``train_util.py`` ``train_share``), proven step by
    step against it by ``tests/test_parity_jugechengzi.py`` (case ``fr``).

    RNP with one BiGRU encoder and one LayerNorm for both players: the selector reads the full
    text through them (then dropout, Linear(., 2), hard Gumbel-softmax), the predictor reads
    ``e * z`` through the same two (then the masked max-pool, dropout, Linear). Loss and
    regularizers are RNP's (``0.9 CE + lambda_s Omega_s + lambda_c Omega_c``). The reference
    steps one Adam over every parameter; ratbench's has two groups (selector with the shared
    encoder, the predictor's head) at the same rate, the same update.

    The sharing is the flag ``share_encoder`` of every method on the RNP model (``ver`` + FR is
    ``--set ver.share_encoder=true``); note that the VER repository's own ``--fr`` shares the GRU
    but not the LayerNorm (its predictor has none), so it is not this model.

    Defaults: RNP's (the VER paper's settings); the ``paper`` preset holds the per-aspect commands
    of the reference's ``hyperparameters.txt`` for beer and hotel. Deviations: RNP's
    (``mask_padding_in_loss``), nothing of FR's own.
    """

    description = "FR: RNP with one encoder and LayerNorm shared by the selector and the predictor"
    kind = "select_predict"
    version = "1"
    provenance = Provenance(
        reference="jugechengzi/FR @ 971e6da (code/model.py GenEncShareModel, train_util.py train_share, "
        "validate_util.py validate_share, validate_rationales, run_share_beer.py)",
        proven_by="tests/test_parity_jugechengzi.py (case fr): selector and predictor logits, masks, loss terms, "
        "gradients and weights after 3 Adam steps, dev accuracy and the annotation counts, bit-exact",
        deviations=(
            "mask_padding_in_loss (false): as rnp",
            "data.padding (max_len): as rnp",
            *JUGECHENGZI_STREAM_NOTES,
        ),
        layout=PADDED_LAYOUT,
    )
    presets: ClassVar[Presets] = merge_presets(RNP_PRESETS, {"paper": FR_SCRIPTS})

    @dataclasses.dataclass(frozen=True)
    class Config(RNP.Config):
        share_encoder: bool = True
