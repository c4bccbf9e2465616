"""Config pieces the built-in methods share, each field documented once.

Mix them into a method's ``Config`` (a frozen dataclass subclassing ``MethodConfig``). A method
that needs another default re-declares the field with its value (the docstring stays here); a
method whose field means something else says so in its class docstring. Each piece bounds its
own fields (``bounds``, merged by ``Config``). None imports torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

ShortRows = Literal["reference", "clamp"]


@dataclasses.dataclass(frozen=True)
class GRUOptions:
    """Training and width settings of the GRU models (the VER paper's RNP-tuned values)."""

    bounds: ClassVar[dict[str, str]] = {"lr": "(0, inf)", "hidden_dim": "[1, inf)", "dropout": "[0, 1)"}

    lr: float = 1e-4
    """Adam learning rate (of every parameter group unless the method says otherwise)."""
    hidden_dim: int = 200
    """Total BiGRU width (half per direction)."""
    dropout: float = 0.2
    """Dropout before the output layers (the selector's and the predictor's heads)."""


@dataclasses.dataclass(frozen=True)
class SelectionOptions:
    """The rationale a Gumbel selector is trained to select: its size and its regularizers
    (``MethodConfig.bounds`` covers ``sparsity`` and the ``*_lambda`` weights)."""

    bounds: ClassVar[dict[str, str]] = {"tau": "(0, inf)"}

    sparsity: float = 0.125
    """alpha: target fraction of selected tokens (a soft target)."""
    sparsity_lambda: float = 11.0
    """lambda_s, weight of the sparsity regularizer."""
    continuity_lambda: float = 12.0
    """lambda_c, weight of the continuity regularizer."""
    tau: float = 1.0
    """Gumbel-softmax temperature."""


@dataclasses.dataclass(frozen=True)
class TransformerOptions:
    """Config fields of the methods that run on a transformer (``data.encoder=hf:...``); the
    word encoder ignores them."""

    mask_mode: Literal["embedding", "attention"] = "embedding"
    """hf: how a rationale reaches the predictor's transformer: ``embedding`` (input embeddings
    times z, query and special tokens at 1; jugechengzi/Bert-MCD) or ``attention`` (an additive
    attention bias log(z + 1e-8) on the keys; CR's modified BERT)."""
    pooling: Literal["max", "cls"] = "max"
    """hf: the predictor pools its transformer's states by a masked max (as the GRU predictor and
    Bert-MCD) or takes the [CLS] state (NIR's rationale predictor)."""
    freeze_embeddings: bool = False
    """hf: freeze the transformers' input embedding layers (Bert-MCD freezes them)."""
    encoder_lr: float | None = None
    """hf: learning rate of the transformers' parameters (None: ``lr``, as the heads); Bert-MCD
    uses 1e-5 for the encoders and 1e-4 for the heads."""


def transformer_options(config: object) -> TransformerOptions:
    """The transformer settings of ``config``: itself when it carries ``TransformerOptions``, else
    the defaults (the settings of a method whose config has no such fields)."""
    return config if isinstance(config, TransformerOptions) else TransformerOptions()


@dataclasses.dataclass(frozen=True)
class PerturbOptions:
    """Config mixin of the methods that can train their predictor on VER's perturbed masks
    (``methods/_vicinal.py``)."""

    bounds: ClassVar[dict[str, str]] = {"perturb_rate": "[0, 1]"}
    key_settings: ClassVar[tuple[str, ...]] = ("perturb_rate",)

    perturb_rate: float = 0.0
    """VER's perturbation of the predictor's training mask: the probability of flipping each
    selected token off (as many unselected ones are flipped on); 0 is off (no draws)."""
    short_rows: ShortRows = "reference"
    """How a row with fewer unselected real tokens than the batch's 0 -> 1 count k is handled.
    ``reference``: ``torch.multinomial`` is asked for k positions of every row, as the reference
    does; on such a row it returns zero-weight positions (torch 2.13 on CPU: padding or selected
    tokens, which are then flipped; older torch raises) and it costs one host sync per step.
    ``clamp`` (deviation): each row flips at most its own unselected real tokens, drawn without
    a host sync. The two differ only on such rows, and draw different random numbers."""


@dataclasses.dataclass(frozen=True)
class FoldOptions:
    """FR's sharing, a flag of every method on the RNP model (as the VER repository's ``--fr``)."""

    identity_neutral: ClassVar[dict[str, Any]] = {"share_encoder": False}  # added after cells were run

    share_encoder: bool = False
    """FR (jugechengzi/FR ``GenEncShareModel``): one encoder and its LayerNorm serve the selector
    (on the full text) and the predictor (on the rationale); False: each has its own encoder."""


@dataclasses.dataclass(frozen=True)
class DecoupleOptions:
    """DR's learning-rate coupling, a flag of every method on the RNP optimizer (``--dis_lr``)."""

    identity_neutral: ClassVar[dict[str, Any]] = {"dis_lr": 0.0}  # added after cells were run

    dis_lr: float = 0.0
    """DR (jugechengzi/Rationalization-DR ``train_sp_norm``): 0 is off; 1 sets, before each step,
    the predictor's learning rate to its configured one times the batch's selected share (the
    selections over the real tokens, padding selections counted; 1 when nothing is selected;
    at least 0.05); any other value v sets it to the configured one / v (the VER repository's
    ``--dis_lr``)."""
