"""The training presets the built-in methods share, and the reference layout they imply.

``{preset: {scope: overrides}}`` tables (``Method.presets``); combine them with
``merge_presets``. None imports torch.
"""

from __future__ import annotations

from typing import Any

from ratbench.api import Presets, merge_presets

# The paper's BERT settings (data.encoder=hf:...; "we follow the settings of CR / NIR"):
# Table 2, Beer-Appearance at S about 10 %: CR (onepounchman/Causal-Retionalization@60b6814,
#   scripts/beer/run_beer_look.sh): lr 5e-6, batch 32, 10 epochs, pi 0.1. CR accumulates 8
#   batches (an effective 256) with AdamW; ratbench steps Adam on every batch of 32.
# Table 3, MultiRC and FEVER at S about 20 %: NIR (adamstorek/noise_injection@334e888, run_ce.py):
#   Adam 2e-5, batch 16, 5 epochs, sparsity 0.2, max length 512 (ERASER's default max_len).
HF_PAPER_SCOPES: dict[str, dict[str, Any]] = {
    "hf/beer": {"lr": 5e-6, "batch_size": 32, "epochs": 10, "sparsity": 0.1},
    "hf/eraser": {"lr": 2e-5, "batch_size": 16, "epochs": 5, "sparsity": 0.2},
}
# The VER paper tuned RNP and applied its training settings to NIR, DMR, A2I and VER.
PAPER_TRAINING_PRESET: dict[str, dict[str, Any]] = {
    "*": {"lr": 1e-4, "batch_size": 128},
    "beer": {"batch_size": 128},
    "hotel": {"batch_size": 256},
    **HF_PAPER_SCOPES,
}
# Small and fast for a 2-core CPU (about a minute per cell), not the paper's setting; on a
# transformer, a fine-tuning learning rate and two epochs.
DEMO_TRAINING_PRESET: dict[str, dict[str, Any]] = {
    "*": {"epochs": 10, "batch_size": 32, "hidden_dim": 64, "lr": 3e-3},
    "hf/*": {"epochs": 2, "batch_size": 16, "lr": 5e-5},
}
# Training settings only: for the methods without the selector's regularizers.
TRAINING_PRESETS: Presets = {"paper": PAPER_TRAINING_PRESET, "demo": DEMO_TRAINING_PRESET}
# The select-then-predict family adds the regularizer weights. The paper's (lambda_s 11,
# lambda_c 12) are tuned for 300 epochs at lr 1e-4: in a 10-epoch budget their gradients on the
# selector are 100-200 times the classification gradient, and the selector stays a random
# selection (benchmarks/README.md). 0.5 / 0.5 lets the selector learn within the demo budget.
RNP_PRESETS: Presets = merge_presets(
    TRAINING_PRESETS,
    {
        "paper": {"*": {"sparsity": 0.125, "sparsity_lambda": 11.0, "continuity_lambda": 12.0}},
        "demo": {"*": {"sparsity_lambda": 0.5, "continuity_lambda": 0.5}},
    },
)

PADDED_LAYOUT = (
    "every batch padded to data.max_len (256), as the jugechengzi reference code: its sparsity and "
    "continuity terms and reference-mode S count the selections on padding, and its GRUs read the padding"
)
# Not flags: differences of the random stream, which change no objective.
JUGECHENGZI_STREAM_NOTES = (
    "random stream (no flag): the reference shuffles batches with torch's generator and, after every epoch, "
    "computes a gradient-norm diagnostic over the training set (train_util.py get_grad) that draws Gumbel and "
    "dropout noise; ratbench shuffles with NumPy and draws no such noise, so one seed gives other draws in both",
)
