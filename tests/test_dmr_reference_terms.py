"""dmr_ref against its TF1 reference, kochsnow/distribution-matching-rationality @95b40ec, term by term.

The reference (TensorFlow 1.12 eager, CuDNN) cannot run here, so no recorded fixture exists. Each
test restates how the reference computes one term or mechanism (file:line of the reference in
a comment; paths relative to /work/refs/kochsnow+distribution-matching-rationality), in plain
torch, on small fixed tensors, and compares it with what ratbench's dmr_ref code computes for
the same tensors. The layers themselves (Keras' CuDNNGRU and Dense) are stood in for by
ratbench's own nn.GRU and nn.Linear, whose arithmetic is the same (cuDNN's GRU is torch's); what
is compared is everything around them: inputs, masks, pooling, losses, gradients, alternation
and evaluation. Each docstring names a change of ratbench's code the test catches (checked by
hand on a scratch copy). benchmarks/parity/README.md, section DMR, sums this up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_batches, tiny_examples, tiny_method

from ratbench._plugins.methods._distill import distillation_loss, feature_matching
from ratbench._plugins.methods.dmr_ref import DMRRef, argue_loss, deal_rows, reference_select
from ratbench.evaluation.evaluator import evaluate_rationales
from ratbench.types import Batch

C = 2  # the reference is binary (path 0 = negative generator, 1 = positive)


# ---------------------------------------------------------------------------------------------
# The reference's arithmetic, restated
# ---------------------------------------------------------------------------------------------


def ref_cmd(x1: torch.Tensor, x2: torch.Tensor, n_moments: int = 5) -> torch.Tensor:
    """core/distance.py:3-7 (l2diff), 10-17 (moment_diff), 35-43 (cmd, n_moments=5): the
    distance of the means plus, for k = 2..5, the distance of the means of the centred
    features *multiplied* by k (the quirk: not raised to the power k)."""

    def l2diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(((a - b) ** 2).sum())

    mx1, mx2 = x1.mean(0), x2.mean(0)
    sx1, sx2 = x1 - mx1, x2 - mx2
    dm = l2diff(mx1, mx2)
    for i in range(n_moments - 1):
        k = float(i + 2)
        dm = dm + l2diff((sx1 * k).mean(0), (sx2 * k).mean(0))
    return dm


def ref_soft_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``tf.reduce_mean(softmax_cross_entropy_with_logits_v2(logits, labels))``."""
    return (-(targets * F.log_softmax(logits, dim=-1)).sum(-1)).mean()


def ref_straight_through(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """core/model.py:118-133 and 181-182: softmax; hard = every channel equal to the row max (a
    tie marks both); ``stop_gradient(hard - soft) + soft``; padding forced to [1, 0]. Returns the
    whole ``[B, T, 2]`` rationale."""
    soft = F.softmax(logits, dim=-1)
    hard = (soft == soft.max(dim=-1, keepdim=True).values).to(soft.dtype)
    z = (hard - soft).detach() + soft
    masks_ = mask.unsqueeze(-1)
    pad = torch.tensor([1.0, 0.0]).expand_as(z)
    return masks_ * z + (1.0 - masks_) * pad


def ref_embed(weight: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """core/model.py:162, 169, 189, 302: ``masks_ * embedding(inputs)``."""
    return mask.unsqueeze(-1) * weight[ids]


def ref_pool(gru: torch.nn.GRU, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """core/model.py:200-210 (306-309 for the teacher): the BiGRU over the whole padded
    sequence, ``outputs * masks_ + (1 - masks_) * -1e6``, max over time."""
    outputs = gru(inputs)[0]
    masks_ = mask.unsqueeze(-1)
    return (outputs * masks_ + (1.0 - masks_) * (-1e6)).max(dim=1).values


def ref_forward(method: DMRRef, batch: Batch, path: int, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """TargetRNN.call (core/model.py:135-215) for ``path``, plus the teacher (302-314), with
    ratbench's layers as the reference's layers and each module's own embedding table."""
    model, mask, ids = method.model, batch.mask, batch.ids
    T = ids.shape[1]
    masks_ = mask.unsqueeze(-1)
    labels_ = F.one_hot(labels, C).float().unsqueeze(1).expand(-1, T, -1) * masks_  # model.py:148-151
    generator = model.generators[path]
    gen_inputs = torch.cat([ref_embed(model.generator_embeds[path].embedding.weight, ids, mask), labels_], -1)
    gen_logits = generator.head(generator.encoder.gru(gen_inputs)[0])  # model.py:164-165 / 171-172
    rationale = ref_straight_through(gen_logits, mask)  # model.py:178-182
    gen_idx = torch.zeros(*ids.shape, C)
    gen_idx[..., path] = 1.0  # model.py:155-156, 166 / 173: on every position, padding included
    dis_embeddings = ref_embed(model.student_embed.embedding.weight, ids, mask)  # model.py:189
    rationale_inputs = torch.cat([dis_embeddings * rationale[:, :, 1:2], gen_idx], -1)  # model.py:190-195
    raw_inputs = torch.cat([dis_embeddings, gen_idx], -1)  # model.py:196-197
    student_gru = model.predictor.encoder.gru
    rationale_output = ref_pool(student_gru, rationale_inputs, mask)
    raw_output = ref_pool(student_gru, raw_inputs, mask)
    teacher = model.teacher
    teacher_output = ref_pool(teacher.encoder.gru, ref_embed(model.teacher_embed.embedding.weight, ids, mask), mask)
    return {
        "gen_inputs": gen_inputs,
        "rationale": rationale,
        "rationale_inputs": rationale_inputs,
        "raw_inputs": raw_inputs,
        "rationale_output": rationale_output,
        "raw_output": raw_output,
        "logits": model.predictor.head(rationale_output),  # model.py:213
        "teacher_logits": teacher.head(teacher_output),  # model.py:312
    }


def ref_losses(method: DMRRef, batch: Batch, path: int) -> dict[str, torch.Tensor]:
    """core/train_utils.py:117-173: the student ("discriminator") loss and the path generator's
    loss of one batch, with the true labels fed to the generator."""
    cfg = method.config
    out = ref_forward(method, batch, path, batch.labels)
    onehot = F.one_hot(batch.labels, C).float()
    hard = ref_soft_ce(out["logits"], onehot)  # train_utils.py:144
    soft_labels = F.softmax(out["teacher_logits"] / cfg.temperature, dim=-1)  # :145, params_t
    soft = ref_soft_ce(out["logits"], soft_labels.detach())  # :146 (teacher vars not updated)
    fm = ref_cmd(out["rationale_output"], out["raw_output"])  # :148-150
    dis_loss = cfg.cls_lambda * hard + cfg.om_lambda * soft + cfg.fm_lambda * fm  # :152
    gen_targets = torch.zeros(len(batch.labels), C)
    gen_targets[:, path] = 1.0  # :131-136
    class_loss = -(F.softmax(out["logits"], -1) * gen_targets).sum(-1).mean()  # :9-26 (no log)
    z, masks = out["rationale"][:, :, 1], batch.mask
    sparsity = (z.sum() / masks.sum() - cfg.sparsity).abs()  # :168-170, core/metric.py:8-17
    continuity = (z[:, 1:] - z[:, :-1]).abs().mean()  # :171-172, core/metric.py:20-26
    gen_loss = class_loss + cfg.sparsity_lambda * sparsity + cfg.continuity_lambda * continuity  # :173
    return {
        **out,
        "cls_loss": hard,
        "distill_loss": soft,
        "fm_loss": fm,
        "student_loss": dis_loss,
        "argue_loss": class_loss,
        "sparsity_loss": sparsity,
        "continuity_loss": continuity,
        "generator_loss": gen_loss,
    }


# ---------------------------------------------------------------------------------------------
# Fixed inputs
# ---------------------------------------------------------------------------------------------

# Four rows padded to 9 positions, beyond the longest (7), as the reference pads every batch to
# a fixed length: row 1 holds an OOV token (id 0, mask 1) and row 3 only "skip" words.
IDS = [
    [1, 12, 2, 13, 3, 14, 15, 0, 0],
    [4, 0, 16, 5, 17, 0, 0, 0, 0],
    [6, 18, 7, 0, 0, 0, 0, 0, 0],
    [11, 12, 13, 19, 20, 14, 0, 0, 0],
]
LENGTHS = [7, 5, 3, 6]
LABELS = [0, 1, 1, 0]
GOLD = [
    [1, 1, 0, 0, 1, 0, 0, 0, 0],
    [1, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 1, 0, 0, 0, 0, 0],
]


def fixed_batch() -> Batch:
    """The batch above; ids 1-10 are "select" words, 11-20 "skip" words for a controlled generator."""
    mask = torch.zeros(4, 9)
    for row, n in enumerate(LENGTHS):
        mask[row, :n] = 1
    return Batch(
        ids=torch.tensor(IDS),
        mask=mask,
        labels=torch.tensor(LABELS),
        gold=torch.tensor(GOLD, dtype=torch.float32) * mask,
        example_ids=[str(i) for i in range(4)],
    )


def controlled_generator_(method: DMRRef, cls: int, flip: bool = False) -> None:
    """Make generator ``cls`` select exactly the tokens whose vector is positive in dimension 0:
    its GRU computes ``h_t = tanh(4 e_t[0])`` in unit 0 of each direction (update gate shut, no
    recurrence, every other unit 0) and its head scores ``h`` with equal biases, so a token with
    a zero vector (OOV, padding) is an exact tie. Its embedding table: ids 1-10 positive, ids
    11-20 negative (the other way round with ``flip``), row 0 zero."""
    generator = method.model.generators[cls]
    gru, size = generator.encoder.gru, generator.encoder.gru.hidden_size
    with torch.no_grad():
        for name, param in gru.named_parameters():
            param.zero_()
            if name.startswith("bias_ih"):
                param[size : 2 * size] = -1e4  # update gate exactly 0: h_t = n_t
            if name.startswith("weight_ih"):
                param[2 * size, 0] = 4.0  # candidate unit 0 reads e_t[dim]
        generator.head.weight.zero_()
        generator.head.weight[1, 0] = generator.head.weight[1, size] = 3.0
        generator.head.bias.fill_(0.25)
        table = method.model.generator_embeds[cls].embedding.weight
        rng = np.random.default_rng(7 + cls)
        values = torch.as_tensor(rng.uniform(0.5, 1.5, size=table.shape), dtype=table.dtype)
        values[11:] *= -1
        values[0] = 0
        table.copy_(-values if flip else values)


def ref_method(**config: object) -> DMRRef:
    """A tiny dmr_ref (reference defaults) whose teacher counts as trained."""
    method = tiny_method("dmr_ref", **config)
    method.model.teacher_trained.fill_(True)
    return method


class KeepGrads:
    """Stands in for an optimizer: no update; remembers the gradients present at each step."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.steps: list[dict[str, torch.Tensor]] = []

    def step(self) -> None:
        self.steps.append({n: p.grad.clone() for n, p in self.model.named_parameters() if p.grad is not None})


def one_step(method: DMRRef, batch: Batch) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """ratbench's train_epoch on ``batch`` alone, without updates: its loss terms and the
    gradients it computed (generator's and student's), by parameter name."""
    keep = KeepGrads(method.model)
    method.optimizers = [keep, keep, method.optimizers[2]]
    terms = method.train_epoch([batch])
    return terms, keep.steps[-1]


@pytest.fixture(params=["keras_weights", "controlled_generator"])
def stepped(request: pytest.FixtureRequest) -> Iterator[tuple[DMRRef, Batch, dict, dict, dict]]:
    """One ratbench step (path 0) on the fixed batch, and the reference's terms for it: with
    the default (Keras) weights, and with the generator of path 0 controlled so that row 3
    selects nothing and row 1's OOV token is a tie."""
    method = ref_method()
    if request.param == "controlled_generator":
        controlled_generator_(method, 0)
    batch = fixed_batch()
    reference = ref_losses(method, batch, 0)
    terms, grads = one_step(method, batch)
    yield method, batch, reference, terms, grads


# ---------------------------------------------------------------------------------------------
# Loss terms
# ---------------------------------------------------------------------------------------------


def test_cmd_is_the_reference_arithmetic() -> None:
    """The default feature matching equals the reference's CMD, quirk included (its k >= 2
    terms are rounding residue), on seeded features and on pooled features with padding.
    Catches: a default ``fm_moments`` > 1 (true central moments), or the mean distance summed
    instead of an L2 norm."""
    torch.manual_seed(3)
    x1, x2 = torch.randn(6, 10), torch.randn(6, 10) * 2 + 0.5
    expected = ref_cmd(x1, x2)
    assert (expected - torch.sqrt(((x1.mean(0) - x2.mean(0)) ** 2).sum())).abs() < 1e-5  # the quirk's effect
    moments = DMRRef.Config().fm_moments
    assert feature_matching(x1, x2, moments).item() == pytest.approx(expected.item(), abs=1e-5)
    assert abs(feature_matching(x1, x2, 5).item() - expected.item()) > 0.5  # a true CMD is another term


def test_fm_term_in_a_training_step(stepped: tuple) -> None:
    """The fm_loss of a step is the reference's CMD of the pooled student features of the
    rationale and of the full text. Catches: matching the unpooled states, pooling padding,
    matching against the teacher's features, or the path one-hot left out of the full text."""
    _, _, reference, terms, _ = stepped
    assert terms["fm_loss"] == pytest.approx(reference["fm_loss"].item(), rel=1e-5, abs=1e-6)


def test_distillation_is_the_reference_soft_cross_entropy(stepped: tuple) -> None:
    """CE(student logits, softmax(teacher logits / T)), batch mean, T = 3 on the teacher only,
    no T^2 factor (train_utils.py:145-146). Catches: the student's logits divided by T too, a
    KL divergence instead of the cross-entropy, a sum over the batch, or T^2 scaling."""
    torch.manual_seed(4)
    student, teacher = torch.randn(5, C), torch.randn(5, C) * 3
    temperature = DMRRef.Config().temperature
    assert temperature == 3.0  # run.py:145-149, params_t; no script overrides it
    expected = ref_soft_ce(student, F.softmax(teacher / 3.0, dim=-1))
    assert distillation_loss(student, teacher, temperature).item() == pytest.approx(expected.item(), rel=1e-6)
    _, _, reference, terms, _ = stepped
    assert terms["distill_loss"] == pytest.approx(reference["distill_loss"].item(), rel=1e-5)
    assert terms["cls_loss"] == pytest.approx(reference["cls_loss"].item(), rel=1e-5)


def test_generator_class_term_is_a_probability(stepped: tuple) -> None:
    """gen_nl_loss (train_utils.py:9-26): ``-mean_b p_student(path class)``, no log, whatever
    the true label. Catches: a log-likelihood, the true label as the target instead of the
    path's class, or a sum over the batch."""
    torch.manual_seed(5)
    logits = torch.randn(6, C)
    for path in range(C):
        targets = F.one_hot(torch.full((6,), path), C).float()
        expected = -(F.softmax(logits, -1) * targets).sum(-1).mean()
        assert argue_loss(logits, path).item() == pytest.approx(expected.item(), rel=1e-6)
    _, _, reference, terms, _ = stepped
    assert terms["argue_loss"] == pytest.approx(reference["argue_loss"].item(), rel=1e-5)


def test_sparsity_and_continuity_as_the_reference_counts_them(stepped: tuple) -> None:
    """Sparsity ``|sum z / sum mask - alpha|`` over the batch, continuity the mean of
    ``|z_t - z_t-1|`` over every pair of the padded batch (metric.py:8-26), on a batch with
    trailing padding columns, an all-unselected row and a tie. Catches: the continuity
    averaged over real pairs only (``continuity_loss(z, mask)``), a per-row sparsity, or the
    sparsity divided by the padded size."""
    _, _, reference, terms, _ = stepped
    assert terms["sparsity_loss"] == pytest.approx(reference["sparsity_loss"].item(), rel=1e-5, abs=1e-7)
    assert terms["continuity_loss"] == pytest.approx(reference["continuity_loss"].item(), rel=1e-5, abs=1e-7)
    assert terms["student_loss"] == pytest.approx(reference["student_loss"].item(), rel=1e-5)
    assert terms["generator_loss"] == pytest.approx(reference["generator_loss"].item(), rel=1e-5)


def test_controlled_generator_selection() -> None:
    """With the controlled generator, ratbench's selection is the reference's, and the batch has
    what the fixtures rely on: row 3 selects nothing, the OOV token of row 1 is an exact tie and
    is selected, padding (also a tie) is not. Catches: ``argmax`` instead of the reference's
    equality with the max (the OOV tie would not select), or padding left selectable."""
    method = ref_method()
    controlled_generator_(method, 0)
    batch = fixed_batch()
    z = ref_forward(method, batch, 0, batch.labels)["rationale"][:, :, 1]
    assert z[3].sum() == 0 and z[1, 1] == 1 and (z * (1 - batch.mask)).sum() == 0
    assert 0 < z.sum() < batch.mask.sum()
    assert torch.equal(method._select(batch.ids, batch.mask, 0, batch.labels), z)


def test_gradients_of_one_step_are_the_reference_gradients(stepped: tuple) -> None:
    """The student's gradient is that of the reference's student loss with respect to the
    student's variables (GRU, dense, its own embedding table); the generator's is that of the
    generator loss with respect to the path generator's variables only (train_utils.py:160-185).
    Catches: the student loss reaching the generator, the generator loss reaching the student,
    a gradient through the teacher, or the other generator updated."""
    method, _, reference, _, grads = stepped
    model = method.model
    student = {f"predictor.{n}": p for n, p in model.predictor.named_parameters()}
    student |= {f"student_embed.{n}": p for n, p in model.student_embed.named_parameters()}
    generator = {f"generators.0.{n}": p for n, p in model.generators[0].named_parameters()}
    generator |= {f"generator_embeds.0.{n}": p for n, p in model.generator_embeds[0].named_parameters()}
    for loss, params in ((reference["student_loss"], student), (reference["generator_loss"], generator)):
        expected = torch.autograd.grad(loss, list(params.values()), retain_graph=True)
        for (name, _), grad in zip(params.items(), expected, strict=True):
            assert torch.allclose(grads[name], grad, rtol=1e-4, atol=1e-6), name
    assert set(grads) == set(student) | set(generator)


# ---------------------------------------------------------------------------------------------
# Mechanisms
# ---------------------------------------------------------------------------------------------


def test_straight_through_mask_is_deterministic_ties_select_padding_zero() -> None:
    """model.py:118-133, 181-182: the select channel of ``stop_gradient(hard - soft) + soft``,
    hard marking every channel equal to the max (a tie selects), padding 0 with no gradient; the
    same values and gradients. Catches: ``argmax`` (a tie would not select), Gumbel noise, a
    padding position left selectable, or the soft probability in the forward pass."""
    torch.manual_seed(6)
    logits = torch.randn(3, 7, 2)
    logits[0, 2] = torch.tensor([0.4, 0.4])  # a tie
    logits[2] = torch.tensor([1.0, -1.0])  # a row that selects nothing
    mask = torch.ones(3, 7)
    mask[1, 4:] = 0
    mask[0, 6:] = 0
    logits[1, 5] = torch.tensor([-2.0, 2.0])  # padding that would select
    upstream = torch.randn(3, 7)
    ours_in, ref_in = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = reference_select(ours_in, mask)
    expected = ref_straight_through(ref_in, mask)[..., 1]
    assert torch.equal(ours, expected)
    assert ours[0, 2] == 1 and ours[2].sum() == 0 and ours[1, 5] == 0
    (ours * upstream).sum().backward()
    (expected * upstream).sum().backward()
    assert torch.allclose(ours_in.grad, ref_in.grad, atol=1e-7)
    assert ours_in.grad[1, 5].abs().sum() == 0
    assert torch.equal(reference_select(logits, mask), ours.detach())  # deterministic


@pytest.mark.parametrize("path", [0, 1])
def test_generator_and_student_inputs(path: int) -> None:
    """The generator of the path reads ``[masks * e ; onehot(true label) * masks]`` with its own
    table (model.py:148-151, 162-163, 169-170), the student ``[masks * e * z ; onehot(path)]``
    and ``[masks * e ; onehot(path)]`` with the path one-hot at padding too (189-197). Catches:
    the generator told the path instead of the label, the label one-hot left at padding, the
    path one-hot masked at padding, or the student reading the generator's table."""
    method = ref_method()
    method._step = path
    batch = fixed_batch()
    seen: dict[str, list[torch.Tensor]] = {"generator": [], "student": []}
    hooks = [
        method.model.generators[path].encoder.gru.register_forward_pre_hook(
            lambda _, args: seen["generator"].append(args[0].detach().clone())
        ),
        method.model.predictor.encoder.gru.register_forward_pre_hook(
            lambda _, args: seen["student"].append(args[0].detach().clone())
        ),
    ]
    try:
        reference = ref_forward(method, batch, path, batch.labels)
        seen = {"generator": [], "student": []}  # the reference's own calls above do not count
        one_step(method, batch)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(seen["generator"]) == 1 and torch.equal(seen["generator"][0], reference["gen_inputs"])
    rationale_inputs, raw_inputs = seen["student"]
    assert torch.allclose(rationale_inputs, reference["rationale_inputs"], atol=1e-7)
    assert torch.equal(raw_inputs, reference["raw_inputs"])


def test_paths_alternate_from_zero_across_epochs_not_counting_the_teacher() -> None:
    """``path = dis_step_counter % 2`` (train_utils.py:129), a counter of student updates that
    starts at 0, survives epochs and is not advanced by the teacher's pretraining (run.py:266-276,
    its own counter). Only the path generator gets a gradient. Catches: the path reset every
    epoch, starting at 1, or advanced by the teacher's steps."""
    method = tiny_method("dmr_ref", teacher_epochs=2)
    keep = KeepGrads(method.model)
    method.optimizers = [keep, KeepGrads(torch.nn.Module()), method.optimizers[2]]
    batches = tiny_batches(tiny_examples(12))
    method.train_epoch(batches)  # teacher pretraining, then three steps
    method.train_epoch(batches[:2])
    paths = []
    for grads in keep.steps:
        moved = {n.split(".")[1] for n in grads if n.startswith("generators.")}
        assert len(moved) == 1
        paths.append(int(moved.pop()))
    assert paths == [0, 1, 0, 1, 0]


def test_embeddings_start_reshaped_one_trainable_copy_per_module() -> None:
    """language.py:361-371 builds the GloVe matrix as ``[dim, vocab]`` (column = word, pad
    column 0); model.py:51-60 hands it to a Keras constant initializer of a ``[vocab, dim]``
    table, which reshapes it row-major (TF's eager constant reshapes a value of the same size);
    model.py:81-91, 252 give each module its own trainable table. Catches: a transpose instead
    of the reshape, one table shared, or a frozen table."""
    method = tiny_method("dmr_ref")
    vectors = method.info.embeddings
    vocab, dim = vectors.shape
    matrix = np.zeros((dim, vocab), dtype=np.float32)
    for index in range(vocab):
        matrix[:, index] = vectors[index]
    expected = torch.as_tensor(matrix.reshape(vocab, dim))  # numpy's reshape is row-major, as TF's
    model = method.model
    tables = [*model.generator_embeds, model.student_embed, model.teacher_embed]
    weights = [table.embedding.weight for table in tables]
    assert all(torch.equal(w, expected) and w.requires_grad for w in weights)
    assert len({w.data_ptr() for w in weights}) == len(weights)
    assert not np.shares_memory(vectors, weights[0].detach().numpy())


def test_keras_initial_weights() -> None:
    """model.py:10-13, 101-108 and Keras' defaults: CuDNNGRU kernel and recurrent kernel
    Glorot-uniform (the reference asks for it on the recurrent one), zero biases; Dense
    Glorot-uniform, zero bias. Catches: torch's default initialization (uniform biases, a
    1/sqrt(h) bound)."""
    method = tiny_method("dmr_ref", hidden_dim=64)
    for module in (*method.model.generators, method.model.predictor, method.model.teacher):
        for name, param in module.named_parameters():
            if "bias" in name:
                assert not param.any(), name
                continue
            fan_out, fan_in = param.shape  # torch stores the transpose of Keras' kernel
            limit = math.sqrt(6 / (fan_in + fan_out))
            assert param.abs().max() <= limit, name
            if param.numel() > 500:
                assert param.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.1), name


def test_teacher_pretraining_reshuffles_examples_every_pass() -> None:
    """run.py:224-225, 274-276: ``train_dataset.shuffle(...).batch(...)`` reshuffles the
    examples on every pass, so each teacher pass sees new batches of the same sizes. Catches:
    the first epoch's batches reused in a new order only."""
    torch.manual_seed(0)
    batches = tiny_batches(tiny_examples(12, seed=2), size=4)
    width = max(b.ids.shape[1] for b in batches)
    pad = [(0, width - b.ids.shape[1]) for b in batches]  # the reference's fixed padded length
    padded = [
        Batch(F.pad(b.ids, p), F.pad(b.mask, p), b.labels, None, b.example_ids)
        for b, p in zip(batches, pad, strict=True)
    ]
    dealt = deal_rows(padded)
    assert [len(b.labels) for b in dealt] == [len(b.labels) for b in padded]
    assert sorted(i for b in dealt for i in b.example_ids) == sorted(i for b in padded for i in b.example_ids)
    assert {tuple(b.example_ids) for b in dealt} != {tuple(b.example_ids) for b in padded}
    by_id = {i: (b.ids[r], b.labels[r]) for b in padded for r, i in enumerate(b.example_ids)}
    for b in dealt:
        for r, i in enumerate(b.example_ids):
            assert torch.equal(b.ids[r], by_id[i][0]) and b.labels[r] == by_id[i][1]


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reference", "clean"])
def test_evaluation_rule(mode: str) -> None:
    """eval_utils.py:395-504 and metric.py:544-569: both generators run, each told its own class
    (label_zeros / label_ones); each example keeps the mask of its TRUE class's generator; micro
    P/R/F1 over the annotation set with ``pred >= 0.5``, padding excluded (the rationale is [1, 0]
    there); sparsity = predicted / real tokens. Catches: the mask chosen by the predicted label
    or by the other class, generators told the gold label instead of their own class, or
    padding counted."""
    method = ref_method()
    controlled_generator_(method, 0)
    controlled_generator_(method, 1, flip=True)
    batch = fixed_batch()
    counts = np.zeros(4)  # true positives, predicted, real, words
    with torch.no_grad():
        neg = ref_forward(method, batch, 0, torch.zeros_like(batch.labels))["rationale"]
        pos = ref_forward(method, batch, 1, torch.ones_like(batch.labels))["rationale"]
        labels = F.one_hot(batch.labels, C).float()
        factual = labels[:, 0, None, None] * neg + labels[:, 1, None, None] * pos  # eval_utils.py:425-431
        predictions = (factual[:, :, 1] >= 0.5).float()
        counts += [(batch.gold * predictions).sum(), predictions.sum(), batch.gold.sum(), batch.mask.sum()]
    assert not torch.equal(neg[:, :, 1], pos[:, :, 1])  # the choice matters
    precision, recall = counts[0] / counts[1], counts[0] / counts[2]
    expected = {
        "S": 100 * counts[1] / counts[3],
        "P": 100 * precision,
        "R": 100 * recall,
        "F1": 100 * 2 * precision * recall / (precision + recall),
    }
    metrics = evaluate_rationales(method, [batch], mode, None).metrics
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(float(value), rel=1e-6), key
