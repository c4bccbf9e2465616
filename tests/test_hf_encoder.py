"""The Hugging Face encoder: word pieces of the adapter's words, NIR's query layout, the
piece-to-word map, gold per piece, truncation, and word- vs piece-level scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ratbench.batching import collate
from ratbench.data import DataConfig
from ratbench.encoders import HFEncoder, check_encoder
from ratbench.errors import RatbenchError
from ratbench.evaluate import score_rationales
from ratbench.types import Example, RationaleOutput

pytest.importorskip("transformers")


def _encoder(model: Path, **config: object) -> HFEncoder:
    return HFEncoder(DataConfig(encoder=f"hf:{model}", **config))


def test_query_layout_word_map_and_gold_per_piece(tiny_hf_model: Path) -> None:
    """[CLS] is it good [SEP] the superb beer [SEP]: 'superb' is two pieces, both gold."""
    encoder = _encoder(tiny_hf_model)
    vocab = encoder.tokenizer.get_vocab()
    example = Example("e", ("the", "superb", "beer"), 1, rationale=(0, 1, 0), query=("is", "it", "good"))
    encoded = encoder.encode(example)
    pieces = ["[CLS]", "is", "it", "good", "[SEP]", "the", "super", "##b", "beer", "[SEP]"]
    assert encoded.ids.tolist() == [vocab[p] for p in pieces]
    assert encoded.selectable.tolist() == [False] * 5 + [True] * 4 + [False]
    assert encoded.word_index.tolist() == [-1] * 5 + [0, 1, 1, 2, -1]
    assert encoded.gold.tolist() == [0] * 5 + [0, 1, 1, 0, 0]
    plain = encoder.encode(Example("p", ("the", "beer"), 0, rationale=(1, 0)))
    assert plain.ids.tolist() == [vocab[p] for p in ("[CLS]", "the", "beer", "[SEP]")]
    assert plain.selectable.tolist() == [False, True, True, False]


def test_max_len_counts_every_piece_the_query_is_kept_and_the_document_cut_at_its_tail(tiny_hf_model: Path) -> None:
    words = ("the", "beer", "was", "superb", "and", "it", "had", "foam")
    example = Example("e", words, 1, rationale=(1,) * 8, query=("is", "it", "good"))
    encoded = _encoder(tiny_hf_model, max_len=10).encode(example)
    assert len(encoded.ids) == 10 and encoded.selectable.sum() == 4  # [CLS] 3 [SEP] 4 [SEP]
    assert encoded.word_index[encoded.selectable].tolist() == [0, 1, 2, 3]  # 'superb' cut after its first piece
    capped = _encoder(tiny_hf_model, max_len=10, max_query_len=1).encode(example)
    assert capped.selectable.tolist()[:3] == [False, False, False] and capped.selectable.sum() == 6


def test_piece_ids_are_used_as_they_are(tiny_hf_model: Path) -> None:
    encoder = HFEncoder(DataConfig(encoder=f"hf:{tiny_hf_model}"), tokens_are_piece_ids=True)
    encoded = encoder.encode(Example("m", ("7", "8", "9"), 0, rationale=(0, 1, 1)))
    cls, sep = encoder.tokenizer.cls_token_id, encoder.tokenizer.sep_token_id
    assert encoded.ids.tolist() == [cls, 7, 8, 9, sep] and encoded.gold.tolist() == [0, 0, 1, 1, 0]


def test_a_missing_model_is_one_line_naming_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(RatbenchError) as info:
        check_encoder(DataConfig(encoder=f"hf:{tmp_path}/nothing-here"))
    message = str(info.value)
    assert "\n" not in message and "not found" in message and "huggingface-cli download" in message
    with pytest.raises(RatbenchError, match="unknown encoder 'bert'"):
        check_encoder(DataConfig(encoder="bert"))


def test_scores_count_words_by_default_and_pieces_as_a_second_set(tiny_hf_model: Path) -> None:
    """Selecting only the second piece of 'superb': a selected word under 'any', none under
    'first'; one of two gold pieces at piece level."""
    encoder = _encoder(tiny_hf_model)
    batch = collate([encoder.encode(Example("e", ("the", "superb", "beer"), 1, rationale=(0, 1, 0)))])
    mask = torch.zeros_like(batch.mask)
    mask[0, 3] = 1  # [CLS] the super ##b beer [SEP]
    outputs = [(batch, RationaleOutput(logits=torch.zeros(1, 2), mask=mask))]

    class NoPredictor:
        name = "fixed"

        def predict(self, batch, rationale):
            return None

    by_any = score_rationales(NoPredictor(), outputs, "clean", None, "any").metrics
    by_first = score_rationales(NoPredictor(), outputs, "clean", None, "first").metrics
    assert (by_any["P"], by_any["R"], by_any["S"]) == (100.0, 100.0, pytest.approx(100 / 3))
    assert (by_first["P"], by_first["R"]) == (0.0, 0.0)
    assert by_any["piece_P"] == 100.0 and by_any["piece_R"] == 50.0 and by_any["piece_S"] == 25.0
    records = score_rationales(NoPredictor(), outputs, "clean", None, "any").records
    assert records[0]["mask"] == [0, 1, 0] and records[0]["gold"] == [0, 1, 0]  # per document word
    assert np.isclose(by_first["piece_F1"], by_any["piece_F1"])


def test_max_len_beyond_the_models_positions_is_refused(tiny_hf_model: Path) -> None:
    check_encoder(DataConfig(encoder=f"hf:{tiny_hf_model}", max_len=512))
    with pytest.raises(RatbenchError, match=r"data.max_len 600 is longer than the 512 positions"):
        check_encoder(DataConfig(encoder=f"hf:{tiny_hf_model}", max_len=600))
