"""Query-conditioned inputs with the word encoder: ``query <sep> document``, the query always
visible to the predictor, never selectable, never counted (ERASER's claims and questions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ratbench.data.adapter import DataConfig
from ratbench.data.batching import collate, eval_batches
from ratbench.data.encoders import WordEncoder, check_encoder, layout, query_budget
from ratbench.errors import RatbenchError
from ratbench.evaluation.evaluator import RationaleCounts, score_rationales
from ratbench.execution import grid
from ratbench.execution.runner import prepare_data, run_cell, seed_everything
from ratbench.registry import METHODS
from ratbench.types import Example, RationaleOutput


def _encoder(max_len: int = 8, max_query_len: int = 128) -> WordEncoder:
    encoder = WordEncoder(DataConfig(max_len=max_len, max_query_len=max_query_len, embedding_dim=4))
    train = [Example("t", ("good", "beer", "bad"), 1, query=("is", "it"))]
    encoder.fit({"train": train, "dev": [], "test": []})
    return encoder


def test_query_separator_document_layout() -> None:
    encoder = _encoder()
    vocab = encoder.vocab
    example = Example("e", ("bad", "beer", "good"), 0, rationale=(1, 0, 1), query=("is", "it"))
    encoded = encoder.encode(example)
    expected = [vocab.lookup("is"), vocab.lookup("it"), vocab.separator, *(vocab.lookup(t) for t in example.tokens)]
    assert encoded.ids.tolist() == expected
    assert vocab.separator == len(vocab.vectors) - 1 and np.linalg.norm(vocab.vectors[vocab.separator]) > 0
    assert encoded.selectable.tolist() == [False, False, False, True, True, True]
    assert encoded.word_index.tolist() == [-1, -1, -1, 0, 1, 2]
    assert encoded.gold.tolist() == [0, 0, 0, 1, 0, 1]


def test_a_long_document_is_cut_at_its_tail_and_the_query_is_kept_capped() -> None:
    tokens = tuple(f"w{i}" for i in range(20))
    encoded = _encoder(max_len=8).encode(Example("e", tokens, 0, rationale=(1,) * 20, query=("is", "it")))
    assert len(encoded.ids) == 8 and encoded.selectable.sum() == 5  # 2 query + separator + 5 document words
    assert encoded.word_index.tolist()[3:] == [0, 1, 2, 3, 4]
    capped = _encoder(max_len=8, max_query_len=1).encode(Example("e", tokens, 0, query=("is", "it", "so")))
    assert capped.selectable.tolist() == [False, False] + [True] * 6
    long_query = _encoder(max_len=4).encode(Example("e", tokens, 0, query=tuple("abcdefgh")))
    assert long_query.selectable.sum() == 1  # the query never takes the last document position


def test_a_query_longer_than_max_len_takes_at_most_half_of_it() -> None:
    """A 400-word claim with max_len 16: the query keeps 8 words (half), the separator 1, and the
    document the other 7 positions, not 1 (issue 18, D2)."""
    tokens = tuple(f"w{i}" for i in range(40))
    encoded = _encoder(max_len=16).encode(Example("e", tokens, 0, query=tuple(f"q{i}" for i in range(400))))
    assert len(encoded.ids) == 16 and encoded.selectable.sum() == 7
    assert encoded.word_index[encoded.selectable].tolist() == list(range(7))
    assert query_budget(400, 256, 128, specials=1) == 128  # the defaults: the half rule changes nothing
    assert layout(400, 40, 16, 128, "word") == (8, 7) and layout(0, 40, 16, 128, "word") == (0, 16)


def test_a_max_len_without_room_for_the_document_is_refused_before_any_cell() -> None:
    """The word encoder needs max_len >= 2 (the separator after a query, one document word) (D17)."""
    with pytest.raises(RatbenchError, match=r"data.max_len 1 leaves no position for the document .*max_len=2 or more"):
        check_encoder(DataConfig(max_len=1))
    check_encoder(DataConfig(max_len=2))


def test_a_dataset_without_queries_gets_no_separator_row() -> None:
    encoder = WordEncoder(DataConfig(embedding_dim=4))
    encoder.fit({"train": [Example("t", ("a", "b"), 0)], "dev": [], "test": []})
    assert encoder.vocab.separator is None and len(encoder.vocab.vectors) == 3
    encoded = encoder.encode(Example("e", ("a", "b"), 0))
    assert encoded.selectable is None and encoded.word_index is None


def test_the_evaluator_counts_document_positions_only() -> None:
    """Selecting everything, query included, scores S = 100 over the document and P = gold share."""
    encoder = _encoder()
    examples = [
        Example("a", ("good", "beer"), 1, rationale=(1, 0), query=("is", "it")),
        Example("b", ("bad", "beer", "bad"), 0, rationale=(1, 0, 1), query=("is",)),
    ]
    batch = collate([encoder.encode(ex) for ex in examples])
    assert batch.has_context and batch.context.sum() == 5

    class Everything:
        name = "everything"

        def predict(self, batch, rationale):
            return None

    outputs = [(batch, RationaleOutput(logits=torch.zeros(2, 2), mask=torch.ones_like(batch.mask)))]
    for mode in ("reference", "clean"):
        result = score_rationales(Everything(), outputs, mode, None)
        assert result.metrics["S"] == 100.0 and result.metrics["P"] == pytest.approx(100 * 3 / 5)
        assert [r["mask"] for r in result.records] == [[1, 1], [1, 1, 1]]  # document coordinates
        assert [r["gold"] for r in result.records] == [[1, 0], [1, 0, 1]]
    counts = RationaleCounts()
    counts.update(np.ones((1, 3)), np.array([[0, 1, 1]]), np.array([[0, 1, 1]]), None, np.array([0]))
    assert counts.metrics()["S"] == 150.0  # the caller passes the selectable positions as the mask


@pytest.mark.parametrize(
    ("name", "encoder"), [(name, encoder) for name in METHODS.names() for encoder in METHODS.get(name).encoders]
)
def test_every_method_keeps_the_query_out_of_its_rationale_and_in_view(
    name: str, encoder: str, query_toy_dataset: type, request: pytest.FixtureRequest
) -> None:
    check_query_inputs(name, encoder, request)


def check_query_inputs(name: str, encoder: str, request: pytest.FixtureRequest) -> None:
    """No rationale of method ``name`` holds a query (or special) position, and its predictor's
    output depends on the query, with the word encoder or a transformer (the ``query_toy_dataset``
    fixture must be active). Also used for the README's example method."""
    sets = {"querytoy": {"n": "16"}}
    if encoder == "hf":
        sets["data"] = {"encoder": f"hf:{request.getfixturevalue('tiny_hf_model')}"}
    [spec] = grid.expand([name], ["querytoy"], [1], preset="demo", epochs=1, sets=sets)
    seed_everything(1)
    data = prepare_data(spec)
    cls = METHODS.get(name)
    method = cls(cls.Config.resolve(spec.method_config), data.info, torch.device("cpu"))
    batch = next(eval_batches(data.splits["test"], 16))
    assert batch.has_context
    for mode in ("reference", "clean"):
        out = method.rationalize(batch, mode)
        if out.mask is not None:
            assert not (out.mask * batch.context).any(), f"{mode}: a query position was selected"
    if name == "lime":  # its features are the document positions
        assert not (out.scores * batch.context).any()
    no_query = batch.ids.masked_fill(batch.context.bool(), 0)  # query and separators -> OOV / [PAD] ids
    changed = type(batch)(**{**batch.__dict__, "ids": no_query})
    nothing = torch.zeros_like(batch.mask)
    assert not torch.equal(method.predict(batch, nothing), method.predict(changed, nothing)), "query not visible"


def test_a_full_text_classifier_learns_a_query_dependent_label(query_toy_dataset: type, tmp_path) -> None:
    """With the query the label is learnable; the document alone is at chance."""
    sets = {"querytoy": {"n": "200"}, "attention": {"lr": "1e-2", "hidden_dim": "32"}}
    [spec] = grid.expand(["attention"], ["querytoy"], [1], preset="demo", epochs=20, sets=sets)
    metrics = run_cell(spec, tmp_path)
    assert metrics["modes"]["reference"]["acc_full_text"] >= 90.0
