"""DMR as its public reference implements it: class-wise generators chosen by the gold label."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ratbench.api import (
    Batch,
    DataInfo,
    EvalMode,
    Method,
    MethodConfig,
    Presets,
    Provenance,
    RationaleOutput,
    merge_presets,
    register_method,
)

from ._blocks import (
    BiGRU,
    EpochMeans,
    FrozenEmbedding,
    Predictor,
    continuity_loss,
    document_part,
    in_fp32,
    sparsity_loss,
    visible,
    word_vectors,
)
from ._distill import distillation_loss, feature_matching, host_batches, train_teacher
from ._options import GRUOptions
from ._presets import RNP_PRESETS

# The reference scripts' per-aspect settings (METHODS.md 10); lambda_c is 10 everywhere.
DMR_REF_SCRIPTS = {
    "beer.appearance": {"sparsity": 0.08, "sparsity_lambda": 5.0, "cls_lambda": 0.1, "om_lambda": 0.9,
                        "fm_lambda": 0.01, "teacher_epochs": 10, "epochs": 37},
    "beer.aroma": {"sparsity": 0.06, "sparsity_lambda": 2.0, "cls_lambda": 0.1, "om_lambda": 0.9,
                   "fm_lambda": 0.01, "teacher_epochs": 4, "epochs": 22},
    "beer.palate": {"sparsity": 0.065, "sparsity_lambda": 2.0, "cls_lambda": 0.9, "om_lambda": 0.1,
                    "fm_lambda": 0.1, "teacher_epochs": 10, "epochs": 41},
    "hotel.location": {"sparsity": 0.07, "sparsity_lambda": 2.0, "cls_lambda": 0.9, "om_lambda": 0.1,
                       "fm_lambda": 0.01, "epochs": 40},
    "hotel.service": {"sparsity": 0.08, "sparsity_lambda": 5.0, "cls_lambda": 0.9, "om_lambda": 0.1,
                      "fm_lambda": 0.01, "epochs": 16},
    "hotel.cleanliness": {"sparsity": 0.07, "sparsity_lambda": 2.0, "cls_lambda": 0.9, "om_lambda": 0.1,
                          "fm_lambda": 0.1, "epochs": 27},
}  # fmt: skip


def reference_select(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference's noiseless straight-through selection ``[B, T]`` from logits ``[B, T, 2]``.

    Forward: 1 where ``softmax(logits)[..., 1]`` is the larger probability, ties included (the
    reference marks every channel equal to the maximum, so a tie selects); backward: the
    gradient of that probability. Padding is 0 with no gradient.
    """
    soft = F.softmax(logits, dim=-1)
    select = soft[..., 1]
    hard = (select >= soft[..., 0]).to(select.dtype)
    return (hard - select.detach() + select) * mask


def argue_loss(logits: torch.Tensor, cls: int) -> torch.Tensor:
    """The generator's class term: ``-mean_b softmax(logits)[b, cls]`` (a probability, no log)."""
    return -F.softmax(logits, dim=-1)[:, cls].mean()


def reshaped_embeddings(vectors: np.ndarray) -> np.ndarray:
    """The table the reference's embedding layers start from: it builds the GloVe matrix as
    ``[dim, vocab]`` and hands it to a Keras constant initializer of a ``[vocab, dim]`` table,
    which reshapes (row-major) instead of transposing."""
    return np.ascontiguousarray(vectors.T).reshape(vectors.shape)


def keras_init_(module: nn.Module) -> None:
    """Keras' defaults in place: Glorot-uniform GRU kernels (input and recurrent, as the
    reference asks) and Dense kernels, zero biases."""
    for name, param in module.named_parameters():
        if name.endswith("embedding.weight"):
            continue  # the pretrained vectors
        if "bias" in name:
            nn.init.zeros_(param)
        else:
            nn.init.xavier_uniform_(param)  # limit sqrt(6 / (fan_in + fan_out)), as glorot_uniform


def deal_rows(batches: list[Batch]) -> list[Batch]:
    """The examples of ``batches`` dealt into batches of the same sizes in a fresh random order,
    as the reference reshuffles its examples on every pass; when the batches differ in padded
    length or have context positions, the batches in a random order."""
    order = torch.randperm(len(batches)).tolist()
    if any(b.has_context for b in batches) or len({b.ids.shape[1] for b in batches}) > 1:
        return [batches[i] for i in order]
    ids, mask, labels = (torch.cat([getattr(b, key) for b in batches]) for key in ("ids", "mask", "labels"))
    example_ids = [i for b in batches for i in b.example_ids]
    rows = torch.randperm(len(labels), device=labels.device)
    dealt, first = [], 0
    for size in (len(batches[i].labels) for i in order):
        own = rows[first : first + size]
        dealt.append(Batch(ids[own], mask[own], labels[own], None, [example_ids[i] for i in own.tolist()]))
        first += size
    return dealt


class ClassGenerator(nn.Module):
    """The reference's class-wise generator: BiGRU over ``[e ; onehot(label)]`` -> Linear(., 2)."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.encoder = BiGRU(input_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Select/skip logits ``[B, T, 2]`` (float32 under autocast too: ``in_fp32``)."""
        return in_fp32(self.head, self.encoder(inputs))


class DMRRefModel(nn.Module):
    """One label-conditioned generator per class, a path-conditioned student and a teacher, each
    with its own embedding table (trainable) or all sharing one frozen table."""

    teacher_trained: torch.Tensor  # a buffer (register_buffer), typed here

    def __init__(self, info: DataInfo, config: DMRRef.Config) -> None:
        super().__init__()
        classes = info.num_classes
        vectors = word_vectors(info)
        if config.embedding_init == "reshaped":
            vectors = reshaped_embeddings(vectors)
        if config.trainable_embeddings:
            # FrozenEmbedding's lookup and padding mask, its weight made trainable; each on its own
            # copy, since the weight shares the memory of the array it is built from
            embeds = [FrozenEmbedding(vectors.copy()).requires_grad_(True) for _ in range(classes + 2)]
        else:
            embeds = [FrozenEmbedding(vectors)] * (classes + 2)  # one frozen table, registered under each name
        self.generator_embeds = nn.ModuleList(embeds[:classes])
        self.student_embed, self.teacher_embed = embeds[classes], embeds[classes + 1]
        dim, hidden, dropout = embeds[0].dim, config.hidden_dim, config.dropout
        self.generators = nn.ModuleList(ClassGenerator(dim + classes, hidden) for _ in range(classes))
        self.predictor = Predictor(dim + classes, hidden, classes, dropout)  # the student
        self.teacher = Predictor(dim, hidden, classes, dropout)
        if config.init == "keras":
            for module in (self.generators, self.predictor, self.teacher):
                keras_init_(module)
        self.register_buffer("teacher_trained", torch.zeros((), dtype=torch.bool))


def _tiled(labels: torch.Tensor, like: torch.Tensor, classes: int) -> torch.Tensor:
    """``onehot(labels)`` repeated over the time axis of ``like`` ``[B, T, D]``: ``[B, T, C]``."""
    return F.one_hot(labels, classes).to(like.dtype).unsqueeze(1).expand(-1, like.shape[1], -1)


def _trainable(*modules: nn.Module) -> list[nn.Parameter]:
    """The distinct trainable parameters of ``modules``."""
    params = {id(p): p for m in modules for p in m.parameters() if p.requires_grad}
    return list(params.values())


@register_method("dmr_ref")
class DMRRef(Method["DMRRef.Config"]):
    """DMR as its public reference implements it, kochsnow/distribution-matching-rationality
    @95b40ec (TF1; class-wise and CAR-based, METHODS.md 10).

    USES THE GOLD LABEL AT TEST: each example's rationale comes from the generator of its true
    class, and the student is told that class. Its figures are not comparable with label-free
    methods; ``dmr`` is the label-free, paper-level variant.

    One generator per class reads ``[e ; onehot(y)]`` (the true label in training, its own
    class at test; both zero at padding) and selects by a noiseless straight-through argmax of
    its softmax (a tie selects), padding never selected. Per batch, ``path = step mod C`` (the
    step counts batches across epochs, from 0): the path's generator selects ``z``; the student
    reads ``[e z ; onehot(path)]`` and ``[e ; onehot(path)]`` (the path one-hot at every
    position, padding included), max-pools its BiGRU states over the real tokens. Student loss
    ``cls_lambda CE(S(z), y) + om_lambda CE(S(z), softmax(teacher / T)) + fm_lambda CMD(pool
    S(z), pool S(full))``; generator loss ``-mean_b p_S(path | z) + lambda_s |sum z / sum mask -
    alpha| + lambda_c mean |z_t - z_t-1|`` (the mean over every position pair of the padded
    batch; each generator argues for its own class whatever the label). Both gradients come from
    the same forward pass, as the reference computes both before either update. The teacher is
    trained on the full text first (the examples reshuffled on every pass), then frozen. Adam for
    the generators, the student and the teacher; no dropout. The reference pads every batch to
    256 tokens, and the padded length enters the continuity term and the GRUs, which read the
    padding: its data layout is ``padding=max_len``.

    Defaults: the reference's beer-appearance script (batch 200, lr 1e-3, alpha .08, lambda_s 5,
    lambda_c 10, cls/om/fm .1/.9/.01, T 3, 10 teacher epochs, 37 epochs); the ``paper`` preset
    holds its per-aspect settings for beer and hotel. Also as the reference by default: every
    module has its own trainable copy of the word vectors (``trainable_embeddings``), started
    from the reference's reshaped GloVe table (``embedding_init``), and Keras' initializers
    (``init``).

    Deviations, with the flag that restores the reference where one exists:
        fm_moments (1): the reference's CMD, whose moments k >= 2 multiply the centred features
            by k instead of raising them to the power k, is the mean distance plus rounding
            residue (and a NaN gradient when a batch holds one example); 1 computes the mean
            distance; > 1 adds true central moments.
    Adaptations without a flag: a ``teacher_epochs``-pass teacher inside the first epoch (its
    passes deal the examples into new batches only when all batches share one padded length);
    the ``paper`` preset evaluates the last epoch as the reference does (``select_epoch``);
    torch's Adam (epsilon added to the bias-corrected sqrt(v); TF1 adds it to the uncorrected
    one) and random streams; an OOV token reads row 0 (the reference has an ``<unknown>`` row);
    the evaluation logits (the student told the gold class reading the factual rationale) exist
    for the harness's accuracy only, the reference reports none.

    Not on the select-then-predict template (``_family.SelectPredict``): one forward pass gives
    two losses whose gradients go to two parameter sets (generators, student) before either
    update, the generator is picked by a step counter and conditioned on a label, and evaluation
    reads the gold label; the template's one weighted loss and one step per batch do not fit.
    """

    description = "DMR reference variant: class-wise generators; USES THE GOLD LABEL AT TEST"
    model: DMRRefModel
    kind = "select_predict"
    gold_label_at_test = True
    version = "2"
    provenance = Provenance(
        reference="kochsnow/distribution-matching-rationality @ 95b40ec (TF1: core/model.py, train_utils.py, "
        "eval_utils.py, distance.py, metric.py)",
        proven_by="tests/test_dmr_reference_terms.py: every loss term, the straight-through mask, the path "
        "alternation, one step's gradients and the gold-label evaluation rule against the reference's arithmetic "
        "on fixed tensors; no recorded fixture (TF 1.12 with CuDNN does not install on Python 3.11)",
        deviations=(
            "fm_moments (1): the reference's CMD is the mean distance plus rounding residue (and a NaN gradient on "
            "a one-example batch)",
            "trainable_embeddings (true): false shares one frozen table",
            "embedding_init (reshaped): pretrained uses the GloVe vectors as they are",
            "init (keras): torch uses torch's initializers",
            "select_epoch (last, in paper): best_dev keeps the best dev-accuracy epoch",
            "vocabulary (no flag): the reference builds its own from train and dev (min count 2, an <unknown> row, "
            "N(0, 1) vectors for words missing from GloVe); here the shared GloVe vocabulary, OOV on the zero row",
            "random stream and Adam (no flag): TF1's streams and its epsilon placement are not reproduced",
        ),
        layout="every batch padded to data.max_len (256), as the reference's data layer",
    )

    @dataclasses.dataclass(frozen=True)
    class Config(MethodConfig, GRUOptions):
        epochs: int = 37
        batch_size: int = 200
        lr: float = 1e-3  # of the generators, the student and the teacher
        sparsity: float = 0.08
        """alpha: target fraction of selected tokens."""
        sparsity_lambda: float = 5.0
        """lambda_s, weight of the batch-level sparsity regularizer."""
        continuity_lambda: float = 10.0
        """lambda_c, weight of the continuity regularizer."""
        cls_lambda: float = 0.1
        """Weight of the student's cross-entropy."""
        om_lambda: float = 0.9
        """Weight of the distillation term."""
        fm_lambda: float = 0.01
        """Weight of the feature matching term."""
        temperature: float = 3.0
        """Distillation temperature applied to the teacher's logits."""
        teacher_epochs: int = 10
        """Full-text passes that train the teacher before the first epoch."""
        fm_moments: int = 1
        """Central moments in the feature matching (1: the reference's effective CMD)."""
        dropout: float = 0.0  # before the student's and the teacher's output layers (the reference has none)
        trainable_embeddings: bool = True
        """Each generator, the student and the teacher train their own copy of the word vectors
        with their own optimizer (reference); False: one frozen table shared by all."""
        embedding_init: Literal["reshaped", "pretrained"] = "reshaped"
        """``reshaped``: the reference's start, the ``[dim, vocab]`` GloVe matrix reshaped (not
        transposed) into the ``[vocab, dim]`` table; ``pretrained``: the vectors themselves."""
        init: Literal["keras", "torch"] = "keras"
        """Initial weights: Keras' (Glorot-uniform kernels, zero biases; reference) or torch's."""

        bounds: ClassVar[dict[str, str]] = {"temperature": "(0, inf)"}

    presets: ClassVar[Presets] = {
        # The reference reports the last of its fixed epochs (no dev-based selection).
        "paper": {"*": {"select_epoch": "last"}, **DMR_REF_SCRIPTS},
        "demo": merge_presets(RNP_PRESETS, {"demo": {"*": {"teacher_epochs": 2}}})["demo"],
    }
    state_attributes = ("_step",)

    def __init__(self, config: DMRRef.Config, info: DataInfo, device: torch.device) -> None:
        super().__init__(config, info, device)
        self.model = DMRRefModel(info, config).to(device)
        model = self.model
        self.optimizers = [
            torch.optim.Adam(_trainable(model.generators, model.generator_embeds), lr=config.lr),
            torch.optim.Adam(_trainable(model.predictor, model.student_embed), lr=config.lr),
            torch.optim.Adam(_trainable(model.teacher, model.teacher_embed), lr=config.lr),
        ]
        self._step = 0  # selects the path generator, as the reference's step counter

    def _select(self, ids: torch.Tensor, mask: torch.Tensor, cls: int, labels: torch.Tensor) -> torch.Tensor:
        """Straight-through mask ``[B, T]`` of class ``cls``'s generator told ``labels``."""
        embedded = self.model.generator_embeds[cls](ids, mask)
        # The label one-hot is zero at padding, as in the reference.
        label = _tiled(labels, embedded, self.info.num_classes) * mask.unsqueeze(-1)
        logits = self.model.generators[cls](torch.cat([embedded, label], dim=-1))
        return reference_select(logits, mask)

    def _student_features(
        self, ids: torch.Tensor, z: torch.Tensor, mask: torch.Tensor, path: torch.Tensor
    ) -> torch.Tensor:
        """The student's pooled features of ``[e * z ; onehot(path)]``."""
        embedded = self.model.student_embed(ids, mask)
        # The path one-hot is on every position, padding included, as in the reference.
        inputs = torch.cat([embedded * z.unsqueeze(-1), _tiled(path, embedded, self.info.num_classes)], dim=-1)
        return self.model.predictor.features(inputs, torch.ones_like(mask), mask)

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        """One pass of the alternating class-wise update (the teacher is trained first, once)."""
        cfg, model = self.config, self.model
        extra: dict[str, float] = {}
        if not bool(model.teacher_trained):
            batches = host_batches(batches)
            optimizer, epochs = self.optimizers[2], cfg.teacher_epochs
            extra["teacher_train_acc"] = train_teacher(
                model.teacher, model.teacher_embed, batches, optimizer, epochs, self.device, deal_rows
            )
            model.teacher_trained.fill_(True)  # saved with the weights: a restored model keeps it
        model.train()
        model.teacher.eval()
        generator_opt, student_opt = self.optimizers[:2]
        generator_params = _trainable(model.generators, model.generator_embeds)
        student_params = _trainable(model.predictor, model.student_embed)
        means = EpochMeans()
        for batch in batches:
            batch = batch.to(self.device)  # a no-op for batches already there
            cls_path = self._step % self.info.num_classes
            self._step += 1
            path = torch.full_like(batch.labels, cls_path)
            z = document_part(self._select(batch.ids, batch.mask, cls_path, batch.labels), batch)
            rationale_features = self._student_features(batch.ids, visible(z, batch), batch.mask, path)
            full_features = self._student_features(batch.ids, batch.mask, batch.mask, path)
            logits = model.predictor.classify(rationale_features)
            with torch.no_grad():
                teacher_logits = model.teacher(model.teacher_embed(batch.ids, batch.mask), batch.mask, batch.mask)
            cls = F.cross_entropy(logits, batch.labels)
            distill = distillation_loss(logits, teacher_logits, cfg.temperature)
            matching = feature_matching(rationale_features, full_features, cfg.fm_moments)
            student_loss = cfg.cls_lambda * cls + cfg.om_lambda * distill + cfg.fm_lambda * matching
            argue = argue_loss(logits, cls_path)
            sparsity = sparsity_loss(z, batch.selectable, cfg.sparsity)
            continuity = continuity_loss(z)
            generator_loss = argue + cfg.sparsity_lambda * sparsity + cfg.continuity_lambda * continuity
            # Both gradients from this forward pass, then both updates (the reference's order).
            generator_grads = torch.autograd.grad(
                generator_loss, generator_params, retain_graph=True, allow_unused=True
            )
            student_grads = torch.autograd.grad(student_loss, student_params, allow_unused=True)
            for params, grads in ((generator_params, generator_grads), (student_params, student_grads)):
                for param, grad in zip(params, grads, strict=True):
                    param.grad = grad
            generator_opt.step()
            student_opt.step()
            means.add(
                {
                    "student_loss": student_loss,
                    "generator_loss": generator_loss,
                    "cls_loss": cls,
                    "distill_loss": distill,
                    "fm_loss": matching,
                    "argue_loss": argue,
                    "sparsity_loss": sparsity,
                    "continuity_loss": continuity,
                    "train_acc": (logits.argmax(-1) == batch.labels).float().mean(),
                    "train_sparsity": z.sum() / batch.selectable.sum(),
                }
            )
        return {**extra, **means.means()}

    @torch.no_grad()
    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        """The rationale of each example's TRUE class generator (told its own class), kept where
        it is >= 0.5 as the reference counts it; the student told that class."""
        self.model.eval()
        z = torch.zeros_like(batch.mask)
        for cls in range(self.info.num_classes):
            own = torch.full_like(batch.labels, cls)
            chosen = (batch.labels == cls).unsqueeze(1)
            z = torch.where(chosen, self._select(batch.ids, batch.mask, cls, own), z)
        z = document_part((z >= 0.5).to(z.dtype), batch)
        features = self._student_features(batch.ids, visible(z, batch), batch.mask, batch.labels)
        return RationaleOutput(logits=self.model.predictor.classify(features), mask=z)

    @torch.no_grad()
    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        """The student's logits on an explicit rationale, told the true class (as at test)."""
        self.model.eval()
        rationale = visible(rationale.to(batch.mask.dtype), batch)
        features = self._student_features(batch.ids, rationale, batch.mask, batch.labels)
        return self.model.predictor.classify(features)
