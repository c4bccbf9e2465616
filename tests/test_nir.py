"""NIR specifics (METHODS.md 12): tf-idf noise tables and probabilities, noise only on selected
tokens and only in training, compaction, no gradient through the selection, JS and the
reference formulas behind ``ref_quirks``; on a transformer, the reference's top-k rule and
rationale layouts (the step-level proof is ``test_parity_nir.py``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_batches, tiny_examples, tiny_method

from ratbench._plugins.methods import _noise, nir
from ratbench.data.batching import collate
from ratbench.registry import METHODS
from ratbench.types import Batch, DataInfo, EncodedExample


def _doc(i: int, ids: list[int]) -> EncodedExample:
    return EncodedExample(str(i), np.asarray(ids, dtype=np.int64), 0, None)


def test_noise_tables_match_a_hand_computation() -> None:
    """ATF(w) = sum_d count/|d|, IDF = log(N / df); replacement weights ~ max s - s(w), id 0 excluded."""
    tables = _noise.noise_tables([_doc(0, [1, 1, 2]), _doc(1, [2, 3, 0])], vocab_size=5)
    log2 = math.log(2)
    assert tables.idf.tolist() == pytest.approx([log2, log2, 0.0, log2, 0.0])
    # s(1) = 2/3 log 2, s(2) = 0, s(3) = 1/3 log 2 -> margins 0, 2/3, 1/3 (x log 2); word 1 never drawn
    assert tables.candidates.tolist() == [2, 3]
    assert tables.weights.tolist() == pytest.approx([2 / 3, 1 / 3])


def test_replacement_probability_matches_a_plain_restatement() -> None:
    """r_i = tf/|d| * idf; p_i = (max r - r_i) / sum(max r - r) * |d| * noise_p, clipped; 0 at padding."""
    rng = np.random.default_rng(0)
    idf = rng.uniform(0, 3, size=10)
    ids = torch.tensor([[1, 2, 2, 3, 4, 4, 4, 0], [5, 6, 5, 0, 0, 0, 0, 0], [7, 7, 7, 0, 0, 0, 0, 0]])
    mask = torch.tensor([[1.0] * 8, [1.0] * 3 + [0.0] * 5, [1.0] * 3 + [0.0] * 5])
    got = _noise.replacement_probability(ids, mask, torch.as_tensor(idf, dtype=torch.float32), 0.1)
    for row in range(3):
        n = int(mask[row].sum())
        words = ids[row, :n].tolist()
        r = [words.count(w) / n * idf[w] for w in words]
        margin = [max(r) - v for v in r]
        expected = [0.1] * n if sum(margin) == 0 else [min(m / sum(margin) * n * 0.1, 1.0) for m in margin]
        assert got[row, :n].tolist() == pytest.approx(expected, rel=1e-5)
        assert (got[row, n:] == 0).all()
    assert got[0, :8].mean().item() == pytest.approx(0.1, rel=1e-5)  # mean 1 x noise_p without clipping


def test_noise_replaces_only_selected_tokens_with_training_words() -> None:
    """Unselected and padding positions never change; replacements come from the candidates; the
    replaced share of selected tokens is about noise_p."""
    train = tiny_examples(40, vocab=12)
    method = tiny_method("nir", train=tuple(train), noise_p=0.3)
    ids = torch.randint(1, 21, (64, 30))
    mask = torch.ones(64, 30)
    mask[:, 25:] = 0
    ids = ids * mask.long()
    selected = (torch.rand(64, 30) < 0.5).float() * mask
    noisy = method.inject_noise(ids, mask, selected)
    changed = noisy != ids
    assert not (changed & (selected == 0)).any()
    assert set(noisy[changed].tolist()) <= set(method.inject_noise.candidates.tolist()) <= set(range(1, 13))
    # Drawing the same word again does not show as a change, so the observed share is a bit lower.
    share = changed.sum().item() / selected.sum().item()
    assert 0.2 < share < 0.33


def test_compact_moves_selected_tokens_to_the_front_in_order() -> None:
    ids = torch.tensor([[5, 6, 7, 8, 9], [1, 2, 3, 0, 0]])
    keep = torch.tensor([[0.0, 1, 0, 1, 1], [1.0, 0, 0, 0, 0]])
    new_ids, new_mask = nir.compact(ids, keep)
    assert new_ids.tolist() == [[6, 8, 9], [1, 0, 0]]
    assert new_mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_rationale_predictor_reads_the_compacted_selection() -> None:
    """compact=True: the logits equal those of a text made of the selected tokens alone; in place
    (compact=False) the zeroed unselected positions still pass through the GRU and the pool."""
    for compact in (True, False):
        method = tiny_method("nir", compact=compact)
        method.model.eval()
        [batch] = tiny_batches(tiny_examples(4), size=4)
        selected = torch.zeros_like(batch.mask)
        selected[:, :2] = 1
        logits, _ = method._rationale_logits(batch, selected)
        front = Batch(batch.ids[:, :2], torch.ones(4, 2), batch.labels, None, batch.example_ids)
        alone, _ = method._rationale_logits(front, torch.ones(4, 2))
        assert torch.allclose(logits, alone) == compact


def test_no_gradient_reaches_the_soft_model_through_the_selection() -> None:
    """The rationale loss trains the rationale predictor only; the soft loss the soft model only."""
    method = tiny_method("nir", train=tuple(tiny_examples(8)))
    [batch, *_] = tiny_batches(tiny_examples(8))
    soft_logits, weights = method.model.soft(method.model.embed(batch.ids, batch.mask), batch.mask)
    selected = method._select(weights, batch)
    hard_logits, _ = method._rationale_logits(batch, selected)
    soft_loss, hard_loss, _, _ = method._losses(soft_logits, hard_logits, batch.labels)
    hard_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in method.model.soft.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.predictor.parameters())
    method.model.zero_grad(set_to_none=True)
    soft_loss.backward()
    assert all(p.grad is None for p in method.model.predictor.parameters())


def test_js_is_the_true_divergence_and_ref_quirks_the_reference_formulas() -> None:
    p = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    q = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    m = (p + q) / 2
    kl = lambda a, b: (a * (a / b).log()).sum(-1)  # noqa: E731
    assert nir.js_divergence(p, q).item() == pytest.approx(float((0.5 * kl(p, m) + 0.5 * kl(q, m)).mean()))
    assert nir.js_divergence(p, p).item() == pytest.approx(0.0, abs=1e-7)
    assert nir.js_reference(p, q).item() == pytest.approx(float((0.5 * (kl(m, p) + kl(m, q))).sum()))

    logits = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    assert tiny_method("nir").ref_quirks is False  # the GRU adaptation's default (on hf: True)
    for quirks in (False, True):
        method = tiny_method("nir", ref_quirks=quirks, proximity=0.0)
        _, hard_loss, _, _ = method._losses(logits, logits, labels)
        inputs = logits.softmax(-1) if quirks else logits  # the reference applies CE to probabilities
        assert hard_loss.item() == pytest.approx(F.cross_entropy(inputs, labels).item())


def test_evaluation_is_noiseless_and_deterministic() -> None:
    """Both modes: the top-k of the attention, no padding, same logits on repeated calls."""
    method = tiny_method("nir", train=tuple(tiny_examples(8)), noise_p=1.0, sparsity=0.3)
    method.train_epoch(tiny_batches(tiny_examples(8)))
    [batch, *_] = tiny_batches(tiny_examples(8))
    first = method.rationalize(batch, "reference")
    second = method.rationalize(batch, "clean")
    assert torch.equal(first.mask, second.mask) and torch.equal(first.logits, second.logits)
    k = torch.clamp(torch.round(0.3 * batch.mask.sum(1)), min=1)
    assert torch.equal(first.mask.sum(1), k) and not (first.mask * (1 - batch.mask)).any()


def test_nir_rnp_is_rnp_when_noise_is_off_and_noises_only_selected_tokens() -> None:
    """nir_rnp with noise_p=0 trains exactly as RNP; with noise, the predictor's training input
    differs from the text only at positions of the hard training mask."""
    train = tuple(tiny_examples(16))
    rnp, quiet = tiny_method("rnp", train=train), tiny_method("nir_rnp", train=train, noise_p=0.0)
    for method in (rnp, quiet):
        torch.manual_seed(3)
        method.train_epoch(tiny_batches(tiny_examples(16)))
    for key, value in rnp.model.state_dict().items():
        assert torch.equal(value, quiet.model.state_dict()[key]), key

    noisy = tiny_method("nir_rnp", train=train, noise_p=1.0)
    [batch, *_] = tiny_batches(tiny_examples(16))
    z = (torch.rand_like(batch.mask) < 0.5).float() * batch.mask
    embedded = noisy.model.embed(batch.ids, batch.mask)
    changed = (noisy.predictor_input(batch, embedded, z) != embedded).any(dim=-1)
    assert changed.any() and not (changed & (z == 0)).any()


def test_replacement_probability_per_group_and_the_reference_zero_rule() -> None:
    """groups: max, margins and |g| per group (tf and |d| still over the document); a flat group
    gets noise_p (flat="noise_p") or 0 (flat="zero", the reference's normalize)."""
    ids = torch.tensor([[1, 2, 3, 3, 4, 4]])
    groups = torch.tensor([[0, 0, 0, 1, 1, 1]])
    idf = torch.tensor([0.0, 1.0, 2.0, 0.5, 1.5])
    got = _noise.replacement_probability(ids, torch.ones(1, 6), idf, 0.5, groups, flat="zero")[0].tolist()
    expected = []
    r = [ids[0].tolist().count(w) / 6 * idf[w].item() for w in ids[0].tolist()]
    for members in ([0, 1, 2], [3, 4, 5]):
        margin = [max(r[j] for j in members) - r[i] for i in members]
        expected += [min(m / sum(margin) * len(members) * 0.5, 1.0) for m in margin]
    assert got == pytest.approx(expected, rel=1e-6)
    flat = torch.tensor([[1, 1, 1]])
    for rule, value in (("noise_p", 0.5), ("zero", 0.0)):
        assert _noise.replacement_probability(flat, torch.ones(1, 3), idf, 0.5, flat=rule)[0].tolist() == [value] * 3


CLS, SEP = 2, 3


def _a2r(tiny_hf_model: Path, **config: object) -> nir.NIR:
    """``nir`` on the tiny BERT of ``conftest`` (noise off unless asked: the layouts alone)."""
    train = (EncodedExample("t", np.asarray([CLS, 5, 6, SEP, 10, 11, 12, SEP]), 0, None),)
    info = DataInfo(2, None, train, encoder="hf", model_path=str(tiny_hf_model), pad_id=0)
    cls = METHODS.get("nir")
    return cls(cls.Config.resolve({"noise_p": 0.0, **config}), info, torch.device("cpu"))


def _query_batch(*documents: list[int]) -> Batch:
    """``[CLS] 5 6 [SEP] document [SEP]`` rows, as the hf encoder lays them out, padded."""
    rows = []
    for i, document in enumerate(documents):
        ids = np.asarray([CLS, 5, 6, SEP, *document, SEP])
        selectable = np.zeros(len(ids), dtype=bool)
        selectable[4 : 4 + len(document)] = True
        rows.append(
            EncodedExample(str(i), ids, 0, None, selectable, np.where(selectable, np.cumsum(selectable) - 1, -1))
        )
    return collate(rows)


def test_a2r_top_k_counts_every_piece_and_competes_with_the_final_sep_and_padding(tiny_hf_model: Path) -> None:
    """k = max(1, round(sparsity * non-pad pieces)) ([CLS], query, separators counted), capped at
    the model's positions - 1; the top-k runs from the document's first piece to the row's end,
    and only document pieces are returned."""
    method = _a2r(tiny_hf_model, sparsity=0.2)
    batch = _query_batch([10, 11, 12, 13, 14, 15], [10, 11])  # 11 and 7 pieces: k = 2 and 1
    weights = torch.zeros(2, 11)
    weights[0, [1, 5, 7, 10]] = torch.tensor([9.0, 1.0, 3.0, 2.0])  # a query piece never competes
    weights[1, [5, 7, 9]] = torch.tensor([1.0, 2.0, 3.0])  # padding (9) outranks the document
    assert method._select_a2r(weights, batch).nonzero().tolist() == [[0, 7]]  # the final [SEP] took a slot
    assert method._select_a2r(weights, batch).shape == batch.mask.shape
    masked = _a2r(tiny_hf_model, sparsity=0.2, mask_padding=True)._select_a2r(weights, batch)
    assert masked[1].nonzero().flatten().tolist() == [5]  # without padding, piece 5 wins row 1
    weights[0, 10] = 0.0  # the final [SEP] out of the way: k = 2 document pieces, or 1 once n is capped
    assert method._select_a2r(weights, batch)[0].nonzero().flatten().tolist() == [5, 7]
    method.max_positions = 8  # n is capped at 7: k = round(1.4) = 1
    assert method._select_a2r(weights, batch)[0].nonzero().flatten().tolist() == [7]


def test_a2r_rationale_layouts(tiny_hf_model: Path) -> None:
    """Noiseless (evaluation): [CLS] q [SEP] [SEP] selected [SEP]; with noise: [CLS] q [SEP] +
    the piece before each selected one (the first document piece: the last) + [SEP], a row
    without a selected piece keeps its first; ref_quirks=False: the selected pieces, one [SEP]."""
    batch = _query_batch([10, 11, 12, 13], [10, 11, 12, 13], [10, 11])
    selected = torch.zeros_like(batch.mask)
    selected[0, [4, 6]] = 1
    selected[1, [5, 7]] = 1
    layouts = {}
    for quirks in (True, False):
        method = _a2r(tiny_hf_model, ref_quirks=quirks)
        for noisy in (False, True):
            ids, mask, _ = method._a2r_input(batch, selected, noisy)
            layouts[quirks, noisy] = [row[: int(n)] for row, n in zip(ids.tolist(), mask.sum(1).tolist(), strict=True)]
    head = [CLS, 5, 6, SEP]
    assert layouts[True, False] == [[*head, SEP, 10, 12, SEP], [*head, SEP, 11, 13, SEP], [*head, SEP, SEP]]
    assert layouts[True, True] == [[*head, 13, 11, SEP], [*head, 10, 12, SEP], [*head, 10, SEP]]
    assert layouts[False, False] == [[*head, 10, 12, SEP], [*head, 11, 13, SEP], [*head, SEP]]
    assert layouts[False, True] == [[*head, 10, 12, SEP], [*head, 11, 13, SEP], [*head, 10, SEP]]
    # predict (the evaluator's full text, remainder, ...) never doubles the [SEP]: the full text is the input
    method = _a2r(tiny_hf_model)
    ids, mask, _ = method._a2r_input(batch, batch.selectable, noisy=False, repeat_sep=False)
    assert torch.equal(ids, batch.ids) and torch.equal(mask, batch.mask)
