"""MGR: multi-generator rationalization: several selectors train one shared predictor."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ratbench.api import Batch, DataInfo, EvalMode, Presets, Provenance, merge_presets, register_method

from ._blocks import document_part, make_embedding, make_predictor, make_selector, param_groups
from ._family import Forward, train_stats
from ._options import TransformerOptions
from ._presets import PADDED_LAYOUT, RNP_PRESETS
from .rnp import RNP

TestRationale = Literal["average", "first"]
DevRule = Literal["pooled", "rationale"]


class MGRModel(nn.Module):
    """The frozen embedding, ``num_gen`` selectors (an ``nn.ModuleList``, so that ``state_dict``
    holds them) and one predictor; ``selector`` is the first selector (the template's default)."""

    def __init__(
        self, info: DataInfo, hidden_dim: int, dropout: float, num_gen: int, transformer: TransformerOptions
    ) -> None:
        super().__init__()
        self.embed = make_embedding(info)
        self.selectors = nn.ModuleList(make_selector(info, hidden_dim, dropout, transformer) for _ in range(num_gen))
        self.predictor = make_predictor(info, hidden_dim, info.num_classes, dropout, transformer)

    @property
    def selector(self) -> nn.Module:
        """The first selector (the one ``test_rationale=first`` evaluates)."""
        return self.selectors[0]


@register_method("mgr")
class MGR(RNP["MGR.Config"]):
    """MGR, multi-generator rationalization (Liu et al., ACL 2023); port of
    jugechengzi/Rationalization-MGR@3926fbd (``norm_beer.py``, ``model.py`` ``Multi_gen``,
    ``train_util.py`` ``train_multi_gen``, ``validate_util.py``).

    Model: ``num_gen`` RNP selectors (each BiGRU -> LayerNorm -> dropout -> Linear(., 2) over the
    frozen embedding) and one RNP predictor (BiGRU over ``e * z`` -> masked max-pool -> dropout ->
    Linear). Per batch, in the reference's order: every selector's logits, then one hard
    Gumbel-softmax (tau 1) straight-through sample ``z_i`` of each, then the shared predictor on
    each ``e * z_i``. The loss is the sum over the selectors of RNP's loss on ``z_i``,
    ``sum_i [0.9 CE(P(e z_i), y) + lambda_s |sum z_i / sum mask - alpha| + lambda_c mean |z_i,t -
    z_i,t-1|]`` (batch-level regularizers, padding counted; the corrected Eq. 4 of the paper),
    back-propagated once: one Adam step. One Adam with a group per selector, selector ``i`` (from
    0) at ``lr + lr * i * lr_lambda`` (lr, 2 lr, 3 lr at the reference's ``--lr_lambda 1``), and the
    predictor at ``lr / num_gen``.

    Test-time rationale (``test_rationale``): ``average`` (the reference's default,
    ``--average_test 1``: ``validate_share`` -> ``Multi_gen.test``) averages the selectors'
    softmax probabilities and draws one Bernoulli sample per token from the averaged select
    probability (reference mode; padding positions can be selected and count, as in the
    reference) or takes ``mean p(select) > mean p(skip)`` (clean mode); ``first``
    (``--average_test 0``: ``validate_onehead`` -> ``test_one_head``) is the first selector's
    Gumbel sample (reference) or argmax (clean), RNP's evaluation; the paper (Fig. 3b) finds it
    about as good as the average.

    Presets: the class defaults are the VER paper's RNP settings (``rnp``'s; the reference's
    argparse defaults for the rest: ``num_gen`` 3, ``lr_lambda`` 1, ``cls_lambda`` 0.9, hidden
    200, dropout 0.2). ``paper`` adds the reference README's two settings: ``beer.appearance`` lr
    3e-5, batch 128, 400 epochs and alpha 0.173 (the README's S ~ 20 run; 0.083 and 0.273 give
    S ~ 10 and 30: ``--set mgr.sparsity=...``), whose numbers are on the correlated beer files
    (``--set beer.variant=correlated``: train and dev balanced, as the reference's
    ``Beer_correlated(balance=True)``); ``hotel.cleanliness`` lr 7e-5, batch 1024, alpha 0.1,
    lambda_s 10, lambda_c 10, 800 epochs. The reference gives no settings for the other subsets
    (offered by e-mail, jugechengzi/Rationalization-MGR#1): those keep ``rnp``'s.

    Proven step by step (weights, every random draw, per-selector logits, masks and loss terms,
    the summed loss, gradients, weights after each Adam step, the reference's dev loop, the
    test-time rationale of both ``test_rationale`` values and its counts) against the reference
    by ``tests/test_parity_mgr.py``.

    Deviations, each behind a flag whose default is the reference:
        mask_padding_in_loss (False): as ``rnp``.
        test_rationale (average): ``first`` is the reference's ``--average_test 0``.
        dev_rule (pooled): the reference selects its epoch on the dev accuracy pooled over every
            selector's own Gumbel rationale (``norm_beer.py``'s dev loop: the training forward in
            eval mode; ``Method.dev_accuracy``, checked against the reference's figure by
            ``tests/test_parity_mgr.py``); ``rationale`` uses the test-time rationale's, the
            runner's rule for the other methods.
    Not flags (said plainly):
        * the selectors live in an ``nn.ModuleList``; the reference keeps them in a Python list,
          outside ``state_dict()`` (its saved models lose them). The same numbers; ratbench's
          best-epoch restore needs them in the state.
        * the reference's printed training accuracy counts the last selector's predictions twice;
          ``train_acc`` (a log, no objective) is the mean over the selectors.
    Left out: ``--share 1`` (one selector GRU shared by every head: the reference puts it in
    every selector's Adam group, which torch refuses, so it does not run) and the full-text
    diagnostics of ``validate_dev_sentence`` / ``validate_annotation_sentence``. Extensions
    without a reference: the transformer encoders (``hf`` cells: the selectors' and the
    predictor's ``encoder_lr`` scale as their ``lr``). FR's ``share_encoder`` and DR's
    ``dis_lr`` of ``rnp``'s config do not apply to several selectors and are refused.
    """

    description = "MGR: several selectors share one predictor; their RNP losses are summed"
    model: MGRModel
    kind = "select_predict"
    version = "2"  # 2: the epoch is selected on the reference's pooled dev accuracy (dev_rule)

    @dataclasses.dataclass(frozen=True)
    class Config(RNP.Config):
        num_gen: int = 3
        """Number of selectors (the reference's ``--num_gen``; 3 in the paper)."""
        lr_lambda: float = 1.0
        """Selector ``i`` (from 0) learns at ``lr + lr * i * lr_lambda`` (reference ``--dis_lr 1
        --lr_lambda 1``: lr, 2 lr, 3 lr); 0 puts every selector at ``lr`` (``--dis_lr 0``)."""
        test_rationale: TestRationale = "average"
        """The test-time rationale: ``average`` of the selectors' probabilities, one Bernoulli
        sample (reference ``--average_test 1``, its default), or the ``first`` selector's
        (``--average_test 0``)."""
        dev_rule: DevRule = "pooled"
        """The dev accuracy that selects the evaluated epoch: ``pooled`` over every selector's own
        Gumbel rationale and prediction in eval mode (the reference's ``norm_beer.py`` dev loop), or
        that of the ``test_rationale`` (``rationale``: the runner's rule for every other method)."""

        bounds: ClassVar[dict[str, str]] = {"num_gen": "[1, inf)"}

        refused_flags: ClassVar[dict[str, str]] = {
            "share_encoder": "FR's sharing is not defined for several selectors",
            "dis_lr": "DR's coupling is not defined for several selectors (lr_lambda sets their rates)",
        }

    # Reference README (jugechengzi/Rationalization-MGR@3926fbd readme.md, "Running Example"):
    #   correlated Beer-Appearance: norm_beer.py --correlated 1 --lr 0.00003 --batch_size 128
    #     --sparsity_percentage 0.083 / 0.173 / 0.273 (S ~ 10 / 20 / 30) --epochs 400 --aspect 0
    #     (lambda_s 11, lambda_c 12: norm_beer.py's argparse defaults, as rnp's);
    #   Hotel-Cleanliness: --data_type hotel --lr 0.00007 --batch_size 1024 --sparsity_percentage 0.1
    #     --sparsity_lambda 10 --continuity_lambda 10 --epochs 800 --aspect 2.
    presets: ClassVar[Presets] = merge_presets(
        RNP_PRESETS,
        {
            "paper": {
                "beer.appearance": {"lr": 3e-5, "batch_size": 128, "sparsity": 0.173, "epochs": 400},
                "hotel.cleanliness": {
                    "lr": 7e-5,
                    "batch_size": 1024,
                    "sparsity": 0.1,
                    "sparsity_lambda": 10.0,
                    "continuity_lambda": 10.0,
                    "epochs": 800,
                },
            }
        },
    )
    provenance = Provenance(
        reference="jugechengzi/Rationalization-MGR @ 3926fbd (norm_beer.py; model.py Multi_gen; train_util.py "
        "train_multi_gen; validate_util.py validate_share, validate_onehead, validate_rationales; metric.py)",
        proven_by="tests/test_parity_mgr.py: three selectors with their own learning rates, 3 Adam steps (per-selector "
        "logits, masks and loss terms, the summed loss, gradients, weights after each step), the reference's pooled "
        "dev loop, the averaged Bernoulli test rationale on dev and the annotations (counts, S/P/R/F1, gold "
        "accuracy) and the first selector's after a state_dict restore, on the padded layout",
        deviations=(
            "mask_padding_in_loss (false): as rnp",
            "test_rationale (average): first evaluates the first selector alone (--average_test 0)",
            "selectors in an nn.ModuleList (no flag): the reference keeps them in a Python list, outside its "
            "state_dict; the same numbers, and ratbench's best-epoch restore needs them",
            "dev_rule (pooled): rationale selects the epoch on the test-time rationale's dev accuracy (the runner's "
            "rule for the other methods) instead of the reference's, pooled over every selector's own Gumbel rationale",
            "data.padding (max_len): as rnp",
            "random stream (no flag): the reference shuffles with torch's generator (ratbench: NumPy) and draws its "
            "test-time Bernoulli sample for both channels (torch.binomial over [B, T, 2]; ratbench: torch.bernoulli "
            "on the select channel), and ratbench runs the dev loop once per evaluation mode (reference and clean "
            "layouts), so one seed gives other draws in both",
        ),
        layout=PADDED_LAYOUT,
    )

    # -- construction ------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """The embedding, ``num_gen`` selectors and the predictor."""
        cfg = self.config
        return MGRModel(self.info, cfg.hidden_dim, cfg.dropout, cfg.num_gen, cfg)

    def build_optimizers(self) -> list[torch.optim.Optimizer]:
        """One Adam: selector ``i`` at ``lr + lr * (i * lr_lambda)`` (the reference's expression),
        the predictor at ``lr / num_gen`` (with a transformer and ``encoder_lr``: the encoders at
        ``encoder_lr`` scaled alike)."""
        cfg = self.config

        def scaled(rate: float, i: int) -> float:
            return rate + rate * (i * cfg.lr_lambda)

        groups = []
        for i, selector in enumerate(self.model.selectors):
            selector_encoder_lr = None if cfg.encoder_lr is None else scaled(cfg.encoder_lr, i)
            groups += param_groups(selector, scaled(cfg.lr, i), selector_encoder_lr)
        encoder_lr = None if cfg.encoder_lr is None else cfg.encoder_lr / cfg.num_gen
        groups += param_groups(self.model.predictor, cfg.lr / cfg.num_gen, encoder_lr)
        return [torch.optim.Adam(groups)]

    # -- training ----------------------------------------------------------------------------
    def forwards(self, batch: Batch) -> list[Forward]:
        """One ``Forward`` per selector, computed in the reference's order: every selector's
        logits, then a sample of each, then the predictor on each sample."""
        embedded = self.embed(batch)
        logits = [self.selector_logits(batch, embedded, selector) for selector in self.model.selectors]
        masks = []
        for selector_logits in logits:
            z_predictor, z = self.training_masks(*self.sample(selector_logits), batch)
            masks.append((document_part(z_predictor, batch), document_part(z, batch)))
        return [
            Forward(
                embedded,
                z,
                z_predictor,
                self.classify(batch, self.predictor_input(batch, embedded, z_predictor), z_predictor),
            )
            for z_predictor, z in masks
        ]

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Every selector's forward, RNP's weighted loss of each, their sum (added in the selectors'
        order), one step. Logged: the summed loss, each term summed over the selectors, and the
        mean ``train_acc`` / ``train_sparsity`` over them."""
        forwards = self.forwards(batch)
        terms = [self.losses(batch, forward) for forward in forwards]
        loss = running_sum([self.total_loss(selector_terms) for selector_terms in terms])
        self.step(loss)
        figures: dict[str, torch.Tensor] = {"loss": loss}
        for name in terms[0]:
            figures[f"{name}_loss"] = running_sum([selector_terms[name] for selector_terms in terms])
        stats = [train_stats(batch, forward) for forward in forwards]
        for name in stats[0]:
            figures[name] = running_sum([s[name] for s in stats]) / len(stats)
        return figures

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def dev_accuracy(self, batches: Iterable[Batch], mode: EvalMode) -> float | None:
        """``dev_rule=pooled``: the share of right predictions over every selector's forward (its
        own Gumbel rationale) on every dev example, in eval mode, as the reference's dev loop
        pools TP/TN/FP/FN over its selectors; ``rationale``: None (the runner's rule)."""
        if self.config.dev_rule == "rationale":
            return None
        self.model.eval()
        correct = total = 0
        for batch in batches:
            for forward in self.forwards(batch):
                correct += int((forward.logits.argmax(-1) == batch.labels).sum())
                total += len(batch.labels)
        return 100 * correct / total if total else 0.0

    @torch.no_grad()
    def select(self, batch: Batch, mode: EvalMode) -> torch.Tensor:
        """0/1 rationale ``[B, T]``. ``average``: a Bernoulli sample of the selectors' mean select
        probability, padding kept (reference, ``Multi_gen.test``), or ``mean p(select) > mean
        p(skip)`` on the document (clean); ``first``: the first selector's, as ``rnp``."""
        if self.config.test_rationale == "first":
            return super().select(batch, mode)
        mean = self.mean_probabilities(batch, self.embed(batch))
        if mode == "reference":
            return document_part(torch.bernoulli(mean[..., 1]), batch)
        return (mean[..., 1] > mean[..., 0]).to(mean.dtype) * batch.selectable

    def mean_probabilities(self, batch: Batch, embedded: torch.Tensor) -> torch.Tensor:
        """The selectors' mean skip/select probabilities ``[B, T, 2]`` (``Multi_gen.test``: each
        selector's softmax, added in order, divided by ``num_gen``)."""
        probabilities = [
            F.softmax(self.selector_logits(batch, embedded, selector).float(), dim=-1)
            for selector in self.model.selectors
        ]
        return running_sum(probabilities) / len(probabilities)


def running_sum(values: list[Any]) -> Any:
    """``((v0 + v1) + v2) + ...``: Python's ``sum`` without its leading 0, as the reference adds
    its selectors' losses and probabilities."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total
