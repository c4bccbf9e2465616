"""The method plugin interface.

A method builds its networks from a typed config and the data description, trains one epoch
at a time and, at evaluation time, returns a rationale and a prediction per example. It never
reads files, seeds RNGs, picks devices or talks to a tracker: the runner does all of that, so
every method is treated the same.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from ratbench.config import Config

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ratbench.types import Batch, DataInfo, EvalMode, RationaleOutput

Kind = Literal["select_predict", "post_hoc"]
Presets = dict[str, dict[str, dict[str, Any]]]
"""``{preset: {scope: {config key: value}}}``: see ``Method.presets``."""


def merge_presets(*tables: Presets) -> Presets:
    """The preset tables merged preset by preset and scope by scope, later tables winning key by
    key (``merge_presets(RNP_PRESETS, {"demo": {"*": {"teacher_epochs": 2}}})`` keeps every other
    demo setting). The inputs are not changed."""
    merged: Presets = {}
    for table in tables:
        for preset, scopes in table.items():
            into = merged.setdefault(preset, {})
            for scope, values in scopes.items():
                into[scope] = {**into.get(scope, {}), **values}
    return merged


@dataclasses.dataclass(frozen=True)
class Provenance:
    """How faithful a method is to its authors' code, for ``ratbench info`` and the README.

    Attributes:
        reference: the reference implementation, ``owner/repository @ commit (files)``; empty
            when the method has none.
        proven_by: the tests that replay a parity fixture recorded from the reference through
            this code, and what they show (``tests/test_parity_x.py: bit-exact, ...``); or what
            is compared instead, and why no fixture exists.
        deviations: each remaining difference, ``"flag (reference value): what differs"``; the
            ``paper`` preset uses the reference value of every flag.
        layout: the batch layout of the ``paper`` preset and why (``Method.data_presets``).
    """

    reference: str
    proven_by: str
    deviations: tuple[str, ...] = ()
    layout: str = ""


@dataclasses.dataclass(frozen=True)
class MethodConfig(Config):
    """Fields the runner reads from every method config."""

    epochs: int = 300
    """Training epochs; the epoch with the best dev accuracy is evaluated on the test split."""
    batch_size: int = 128
    """Training batch size (evaluation uses the same size, as the reference does)."""
    select_epoch: Literal["best_dev", "last"] = "best_dev"
    """Which epoch is evaluated on the test split: the one with the best dev accuracy (strict
    ``>``, the earliest on ties; the jugechengzi protocol) or the last one (references that
    keep their final model: Inter_RAT, DMR)."""
    test_batch_size: int | None = None
    """Batch size of the test (annotated) split; None: ``batch_size``. With a GRU that reads the
    padding, the batch layout changes the selections (Inter_RAT's reference tests at 1)."""

    # The fields above, and two names that mean one thing in every method: ``sparsity``, which
    # the evaluator reads as a post-hoc method's top-k share, and ``*_lambda``, the weight of a
    # loss term. A field of a config piece or of one method is bounded where it is declared
    # (``GRUOptions.bounds``, ``InterRAT.Config.bounds``...); ``Config`` merges them.
    bounds: ClassVar[dict[str, str]] = {
        "epochs": "[1, inf)",
        "batch_size": "[1, inf)",
        "test_batch_size": "[1, inf)",
        "sparsity": "(0, 1)",
        "*_lambda": "[0, inf)",
    }
    key_settings: ClassVar[tuple[str, ...]] = ("sparsity", "lr", "batch_size", "epochs")


ConfigT = TypeVar("ConfigT", bound=MethodConfig)
"""The config class of a method: ``class Mine(SelectPredict["Mine.Config"])`` types
``self.config`` as ``Mine.Config`` in every hook."""


class Method(ABC, Generic[ConfigT]):
    """Base class of method plugins.

    Class attributes:
        name: registry name (set by ``@register_method``).
        version: bump when the method's outputs change for the same config; this gives new
            cell ids, so old results become stale instead of being mixed with new ones.
        kind: ``select_predict`` (returns a 0/1 mask and a prediction from it) or ``post_hoc``
            (returns token scores; the evaluator keeps the top-k at the target sparsity).
        Config: the typed, frozen config class (subclass of ``MethodConfig``); name it as the
            type argument too (``class Mine(Method["Mine.Config"])``), so that ``self.config``
            has its type.
        presets: ``{preset: {scope: overrides}}``, scope ``"*"``, a dataset name or
            ``dataset.subset`` (more specific scopes win), each also after ``hf/`` for the cells
            on a transformer; a scope no cell can read is an error when the plugin registers.
            ``paper`` is the class defaults plus its overrides; ``demo`` is a small setting for
            CPUs. ``merge_presets`` combines tables (the shared ones: ``ratbench.api``).
        data_presets: the same for the cell's data config (the reference's batch layout).

    Subclasses keep their networks in ``self.model`` (one ``nn.Module``) and their optimizers
    in ``self.optimizers``; the default ``state_dict`` covers both, plus the plain attributes
    named in ``state_attributes`` (epoch or step counters), so that restoring the best epoch's
    state restores all of it.

    A ``post_hoc`` method's ``rationalize`` must not depend on the mode: the runner explains
    the test split once and scores that explanation in both modes.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    kind: ClassVar[Kind] = "select_predict"
    description: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    presets: ClassVar[Presets] = {}
    data_presets: ClassVar[Presets] = {"demo": {"*": {"padding": "bucket"}}}
    """The data settings of each preset (``{preset: {scope: {data key: value}}}``, scopes as in
    ``presets``): under ``paper``, the method's reference pipeline (batch layout, maximum
    length, tokenization); they come after the dataset's preset and before ``--set``. The
    default: ``DataConfig``'s reference layout (every batch padded to ``max_len``, as the
    jugechengzi code base pads to 256) under ``paper``, length-bucketed batches under ``demo``."""
    state_attributes: ClassVar[tuple[str, ...]] = ()
    provenance: ClassVar[Provenance | None] = None
    """Reference code, parity proof and remaining deviations (``ratbench info NAME``)."""
    gold_label_at_test: ClassVar[bool] = False
    """True for a method whose test-time rationale or prediction reads the gold label (DMR's
    reference generators are told the true class): its figures are not comparable with the
    others', and the leaderboard leaves it out."""
    encoders: ClassVar[tuple[str, ...]] = ("word",)
    """The text encoders the method runs on (``DataInfo.encoder``): the word encoder unless the
    method opts in to transformers (``("word", "hf")``: its networks take the token ids, as the
    blocks' ``make_*`` builders do); a grid that asks for another is refused before any cell."""

    config: ConfigT
    model: nn.Module
    optimizers: list[torch.optim.Optimizer]

    def __init__(self, config: ConfigT, info: DataInfo, device: torch.device) -> None:
        self.config = config
        self.info = info
        self.device = device

    @abstractmethod
    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        """Train one pass over ``batches`` (already on the device); return mean loss terms."""

    @abstractmethod
    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        """Rationale and prediction for ``batch`` in eval mode, without gradients.

        ``mode="reference"`` reproduces the reference protocol (for the Gumbel selectors: a
        stochastic hard sample at test time); ``mode="clean"`` is deterministic.
        """

    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor | None:
        """Logits of the predictor given an explicit 0/1 ``rationale`` ``[B, T]``.

        Used for diagnostics (predictor accuracy on the full text and on the gold rationale);
        return None if the method has no such predictor.
        """
        return None

    def dev_accuracy(self, batches: Iterable[Batch], mode: EvalMode) -> float | None:
        """The dev accuracy (percent) that selects the evaluated epoch, for a method whose
        reference computes it otherwise than from ``rationalize`` (MGR pools its selectors' own
        rationales); None, the default, leaves it to the evaluator: the accuracy of
        ``rationalize``'s predictions. ``batches`` are the dev split's, in ``mode``'s layout."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Model and optimizer state, and the ``state_attributes``."""
        return {
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "attributes": {name: getattr(self, name) for name in self.state_attributes},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.model.load_state_dict(state["model"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for name, value in state.get("attributes", {}).items():
            setattr(self, name, value)
