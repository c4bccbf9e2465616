"""The select-then-predict template: one training loop for the RNP family, with named hooks.

A selector scores every token, a sample of those scores is the rationale ``z``, and a predictor
classifies from ``z`` alone; the loss is a weighted sum of named terms. ``SelectPredict`` runs
that loop; a method overrides only the hooks where it differs (``docs/adding_a_method.md``):

======================  ===========================================================  ==========================
hook                    default                                                      overridden by
======================  ===========================================================  ==========================
``build_model``         embedding, one selector, one predictor                       A2I, DMR, DAR, MGR
                        (``SelectPredictModel``; FR's shared encoder on a flag)
``build_optimizers``    one Adam over every trainable parameter                      RNP, A2I, DMR, DAR, MGR,
                                                                                     MCD, MRD
``selector_logits``     ``selector(embedded)``                                       Inter_RAT
``sample``              hard Gumbel-softmax (``gumbel_sample``)                      DMR
``training_masks``      straight-through mask; VER's perturbation for the predictor  Inter_RAT, MRD, N2R
``predictor_input``     the embedded text                                            NIR-RNP (noise)
``classify``            the predictor on ``visible(z)``                              Inter_RAT
``forward``             the above, in that order: a ``Forward``                      A2I, DMR, DAR, MCD, MRD
``losses``              ``cls`` and ``regularizers``: named, unweighted terms        A2I, DMR, DAR, MCD, MRD
``loss_weights``        ``cls`` 1, ``sparsity_lambda``, ``continuity_lambda``        RNP and most others
``before_epoch``        nothing (a teacher is trained here)                          DMR, DAR
``after_epoch``         nothing (a learning-rate schedule goes here)                 A2I, Inter_RAT
``before_step``         nothing (learning rates that follow the batch go here)       RNP (DR's ``dis_lr``)
``train_step``          forward, losses, weighted sum, one step of ``optimizers[0]``  A2I, MCD, MRD, N2R (a
                                                                                     second step), MGR
``select``              Gumbel sample (reference mode) or argmax (clean mode)        DMR, Inter_RAT, MGR
======================  ===========================================================  ==========================

The context rule is the template's, not the method's: every mask it hands a predictor goes
through ``visible`` (query and special tokens always seen), and every selection through
``document_part`` (never selected, never regularised); the evaluator applies the same rules to
what any method returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ratbench.api import Batch, DataInfo, EvalMode, Method, MethodConfig, RationaleOutput

from ._blocks import (
    EpochMeans,
    NormedEncoder,
    continuity_loss,
    document_part,
    eval_selection,
    gumbel_sample,
    make_embedding,
    make_predictor,
    make_selector,
    param_groups,
    sparsity_loss,
    trainable_groups,
    visible,
)
from ._options import FoldOptions, GRUOptions, PerturbOptions, SelectionOptions, TransformerOptions, transformer_options
from ._vicinal import predictor_and_selection_masks

DR_MIN_FACTOR = 0.05  # DR's floor on the predictor's learning-rate factor


@dataclasses.dataclass
class Forward:
    """One forward pass of a select-then-predict model on a batch.

    Attributes:
        embedded: the embedded text (``[B, T, D]``, or the token ids on a transformer).
        z: the selection ``[B, T]`` (straight-through, document positions only): what the
            regularizers see and ``train_sparsity`` counts.
        z_predictor: the mask the predictor read (``z``, or a perturbation of it).
        logits: the predictor's logits ``[B, C]`` on ``z_predictor``.
        extra: whatever else a method's ``losses`` needs (features, a teacher's logits...).
    """

    embedded: torch.Tensor
    z: torch.Tensor
    z_predictor: torch.Tensor
    logits: torch.Tensor
    extra: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


class SelectPredictModel(nn.Module):
    """Embedding, selector and predictor with separate encoders: BiGRUs, or two copies of the
    cell's transformer (read as ``transformer`` says); with ``share_encoder`` (``FoldOptions``,
    FR) the predictor reads through the selector's encoder and LayerNorm."""

    def __init__(
        self,
        info: DataInfo,
        hidden_dim: int,
        dropout: float,
        transformer: TransformerOptions,
        share_encoder: bool = False,
    ) -> None:
        super().__init__()
        self.embed = make_embedding(info)
        self.selector = make_selector(info, hidden_dim, dropout, transformer)
        shared = NormedEncoder(self.selector.encoder, self.selector.norm) if share_encoder else None
        self.predictor = make_predictor(info, hidden_dim, info.num_classes, dropout, transformer, shared)


ConfigT = TypeVar("ConfigT", bound="SelectPredict.Config")


class SelectPredict(Method[ConfigT]):
    """Template of the select-then-predict family: one training loop with named hooks (see the
    module docstring). Not registered itself; a method subclasses it, naming its config
    (``class Mine(SelectPredict["Mine.Config"])``), and registers."""

    kind = "select_predict"

    @dataclasses.dataclass(frozen=True)
    class Config(MethodConfig, GRUOptions, SelectionOptions):
        """Training, width and selection settings; add a method's own fields in a subclass."""

    def __init__(self, config: ConfigT, info: DataInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.model = self.build_model().to(device)
        self.optimizers = self.build_optimizers()

    # -- construction ------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The networks, ``self.model``: ``embed``, ``selector`` and ``predictor`` at least, which the
        template's hooks read by these names (``get_submodule``: a method's own model class is
        typed in its own hooks); FR's shared encoder when the config carries ``FoldOptions`` and
        sets ``share_encoder``."""
        cfg = self.config
        share = isinstance(cfg, FoldOptions) and cfg.share_encoder
        return SelectPredictModel(self.info, cfg.hidden_dim, cfg.dropout, transformer_options(cfg), share)

    def build_optimizers(self) -> list[torch.optim.Optimizer]:
        """``self.optimizers``; ``train_step`` steps the first. Default: one Adam over every
        trainable parameter (with a transformer and ``encoder_lr``: the encoders at that rate)."""
        cfg = self.config
        return [torch.optim.Adam(trainable_groups(self.model, cfg.lr, transformer_options(cfg).encoder_lr))]

    # -- the forward pass --------------------------------------------------------------------
    def embed(self, batch: Batch) -> torch.Tensor:
        """The embedded text the selector and the predictor read."""
        return self.model.get_submodule("embed")(batch.ids, batch.mask)

    def selector_logits(self, batch: Batch, embedded: torch.Tensor, selector: nn.Module | None = None) -> torch.Tensor:
        """Select/skip logits ``[B, T, 2]`` of ``selector`` (default ``model.selector``)."""
        return (self.model.get_submodule("selector") if selector is None else selector)(embedded)

    def sample(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(soft probabilities ``[B, T, 2]``, hard index ``[B, T]``) of the training selection."""
        return gumbel_sample(logits, self.config.tau)

    def training_masks(
        self, soft: torch.Tensor, index: torch.Tensor, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask for the predictor, mask for the regularizers), both straight-through ``[B, T]``:
        the same mask twice, or, when the config carries ``PerturbOptions`` with ``perturb_rate``
        above 0, VER's perturbation of the first."""
        cfg = self.config
        perturb = cfg if isinstance(cfg, PerturbOptions) else PerturbOptions()
        return predictor_and_selection_masks(soft, index, batch.selectable, perturb.perturb_rate, perturb.short_rows)

    def selection(
        self, batch: Batch, embedded: torch.Tensor, selector: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``training_masks`` of a sample of ``selector``'s logits, context positions removed."""
        soft, index = self.sample(self.selector_logits(batch, embedded, selector))
        z_predictor, z = self.training_masks(soft, index, batch)
        return document_part(z_predictor, batch), document_part(z, batch)

    def predictor_input(self, batch: Batch, embedded: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """What the predictor reads in training under the mask ``z`` (default: the embedded text)."""
        return embedded

    def classify(self, batch: Batch, embedded: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The predictor's logits ``[B, C]`` on the rationale ``z``; the context stays visible."""
        return self.model.get_submodule("predictor")(embedded, visible(z, batch), batch.mask)

    def forward(self, batch: Batch, selector: nn.Module | None = None) -> Forward:
        """Embed, select (``selector``, default ``model.selector``) and predict, in that order."""
        embedded = self.embed(batch)
        z_predictor, z = self.selection(batch, embedded, selector)
        logits = self.classify(batch, self.predictor_input(batch, embedded, z_predictor), z_predictor)
        return Forward(embedded, z, z_predictor, logits)

    # -- the loss ----------------------------------------------------------------------------
    def regularizers(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Unweighted batch-level ``sparsity`` and ``continuity`` of ``z``, padding counted as the
        jugechengzi reference counts it."""
        return {"sparsity": sparsity_loss(z, batch.selectable, self.config.sparsity), "continuity": continuity_loss(z)}

    def losses(self, batch: Batch, forward: Forward) -> dict[str, torch.Tensor]:
        """Named, unweighted loss terms (each logged as ``<name>_loss``): ``cls``, the
        cross-entropy of the prediction, and the ``regularizers``."""
        return {"cls": F.cross_entropy(forward.logits, batch.labels), **self.regularizers(forward.z, batch)}

    def loss_weights(self) -> dict[str, float]:
        """The weight of each term of ``losses`` (a term without one counts once)."""
        return {"cls": 1.0, "sparsity": self.config.sparsity_lambda, "continuity": self.config.continuity_lambda}

    def total_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum_k weight_k * term_k``, added in the order of ``terms``."""
        weights = self.loss_weights()
        total = None
        for name, term in terms.items():
            weighted = weights.get(name, 1.0) * term
            total = weighted if total is None else total + weighted
        assert total is not None, "losses() returned no term"
        return total

    # -- training ----------------------------------------------------------------------------
    def before_epoch(self, batches: Iterable[Batch]) -> tuple[Iterable[Batch], dict[str, float]]:
        """Called before each epoch's pass: the batches to train on and figures to log."""
        return batches, {}

    def after_epoch(self) -> dict[str, float]:
        """Called after each epoch's pass: figures to log (e.g. a decayed learning rate)."""
        return {}

    def before_step(self, batch: Batch, forward: Forward) -> None:
        """Called in ``train_step`` after the loss, before the step (e.g. DR's learning rates)."""

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """One gradient step of ``optimizer`` (default ``optimizers[0]``) on ``loss``."""
        optimizer = self.optimizers[0] if optimizer is None else optimizer
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One batch: forward, losses, their weighted sum, one step; the figures to average."""
        forward = self.forward(batch)
        terms = self.losses(batch, forward)
        loss = self.total_loss(terms)
        self.before_step(batch, forward)
        self.step(loss)
        return {"loss": loss, **{f"{name}_loss": term for name, term in terms.items()}, **train_stats(batch, forward)}

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        """One pass of ``train_step`` over the batches; the mean of each figure."""
        self.model.train()
        batches, before = self.before_epoch(batches)
        means = EpochMeans()
        for batch in batches:
            means.add(self.train_step(batch.to(self.device)))  # a no-op for batches already there
        return {**before, **means.means(), **self.after_epoch()}

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def select(self, batch: Batch, mode: EvalMode) -> torch.Tensor:
        """0/1 rationale ``[B, T]``: a Gumbel sample with padding kept (reference, as the
        jugechengzi code counts it) or the argmax on the document positions (clean)."""
        z = eval_selection(self.selector_logits(batch, self.embed(batch)), mode, self.config.tau)
        return document_part(z, batch) if mode == "reference" else z * batch.selectable

    @torch.no_grad()
    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        """Rationale and the predictor's logits on it (one selector sample for both)."""
        self.model.eval()
        z = self.select(batch, mode)
        return RationaleOutput(logits=self.predict(batch, z), mask=z)

    @torch.no_grad()
    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        """The predictor's logits on an explicit rationale."""
        self.model.eval()
        return self.classify(batch, self.embed(batch), rationale)


def train_stats(batch: Batch, forward: Forward) -> dict[str, torch.Tensor]:
    """``train_acc`` (the prediction's accuracy) and ``train_sparsity`` (the selected share of
    the document positions) of one batch: one formula for every method of the family."""
    return {
        "train_acc": (forward.logits.argmax(-1) == batch.labels).float().mean(),
        "train_sparsity": (forward.z * batch.selectable).sum() / batch.selectable.sum(),
    }


def selector_predictor_groups(
    model: nn.Module, selector_lr: float, predictor_lr: float, encoder_lr: float | None = None
) -> list[dict[str, Any]]:
    """Adam parameter groups of ``model.selector`` at ``selector_lr``, then of the predictor's
    own parameters at ``predictor_lr`` (a predictor sharing the selector's encoder, FR, leaves it
    to the selector's groups; ``encoder_lr``: a transformer's parameters at that rate). The
    predictor's groups are marked ``coupled``, with their ``base_lr``, for ``couple_learning_rates``."""
    selector = model.get_submodule("selector")
    groups = param_groups(selector, selector_lr, encoder_lr)
    predictor = param_groups(model.get_submodule("predictor"), predictor_lr, encoder_lr, skip=selector.parameters())
    return groups + [{**group, "coupled": True, "base_lr": group["lr"]} for group in predictor]


def couple_learning_rates(optimizer: torch.optim.Optimizer, dis_lr: float, selected_share: float) -> None:
    """DR's coupling (``DecoupleOptions.dis_lr``) of the ``coupled`` groups of ``optimizer``:
    ``base_lr * max(selected_share or 1, 0.05)`` when ``dis_lr`` is 1, else ``base_lr / dis_lr``."""
    factor = max(selected_share if selected_share != 0 else 1.0, DR_MIN_FACTOR)
    for group in optimizer.param_groups:
        if group.get("coupled"):
            group["lr"] = group["base_lr"] * factor if dis_lr == 1 else group["base_lr"] / dis_lr
