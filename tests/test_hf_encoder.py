"""The Hugging Face encoder: word pieces of the adapter's words, NIR's query layout, the
piece-to-word map, gold per piece, truncation, and word- vs piece-level scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ratbench.data.adapter import DataConfig
from ratbench.data.batching import collate
from ratbench.data.encoders import HFEncoder, check_encoder, looks_like_hub_name
from ratbench.errors import RatbenchError
from ratbench.evaluation.evaluator import score_rationales
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
    """A hub-like name gets the download advice; a path (``/``, ``.``, ``~``) does not (D28)."""
    with pytest.raises(RatbenchError) as info:
        check_encoder(DataConfig(encoder="hf:no-such-org/no-such-model"))
    message = str(info.value)
    assert "\n" not in message and "not found" in message and "huggingface-cli download no-such-org/" in message
    for path in (f"{tmp_path}/nothing-here", "./nothing-here", "~/nothing-here", "/nonexistent/model"):
        with pytest.raises(RatbenchError) as info:
            check_encoder(DataConfig(encoder=f"hf:{path}"))
        message = str(info.value)
        assert message.startswith(f"model folder {path!r} not found") and "huggingface-cli" not in message
        assert "\n" not in message
    assert looks_like_hub_name("bert-base-uncased") and looks_like_hub_name("sentence-transformers/all-MiniLM-L6-v2")
    assert not looks_like_hub_name("a/b/c") and not looks_like_hub_name(".hidden")
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


def test_a_long_query_takes_at_most_half_of_max_len(tiny_hf_model: Path) -> None:
    """12 query pieces with max_len 10: the query keeps 5, [CLS] [SEP] [SEP] 3, the document 2
    (it kept 1 before, D2)."""
    words = ("the", "beer", "was", "superb", "and", "it", "had", "foam")
    encoded = _encoder(tiny_hf_model, max_len=10).encode(Example("e", words, 1, query=("is", "it", "good") * 4))
    assert len(encoded.ids) == 10 and (~encoded.selectable).sum() == 8 and encoded.selectable.sum() == 2


def test_a_max_len_without_room_for_the_document_is_refused(tiny_hf_model: Path) -> None:
    """[CLS], [SEP] and a query's [SEP]: the hf encoder needs max_len >= 4 (D17)."""
    for max_len in (1, 3):
        with pytest.raises(RatbenchError, match=f"data.max_len {max_len} leaves no position for the document"):
            check_encoder(DataConfig(encoder=f"hf:{tiny_hf_model}", max_len=max_len))
    check_encoder(DataConfig(encoder=f"hf:{tiny_hf_model}", max_len=4))


def _copy(model: Path, folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(model / name, folder)
    return folder


def test_a_model_folder_without_its_tokenizer_is_refused(tiny_hf_model: Path, tmp_path: Path) -> None:
    """transformers builds an empty 5-token tokenizer for a folder without tokenizer files: every
    word would be [UNK]; the vocabulary must match the embeddings (D1)."""
    folder = _copy(tiny_hf_model, tmp_path / "notok", "config.json", "model.safetensors")
    with pytest.raises(RatbenchError) as info:
        check_encoder(DataConfig(encoder=f"hf:{folder}"))
    assert str(info.value).startswith(f"hf:{folder}: the tokenizer of {folder} has 5 tokens but the model's embeddings")
    bigger = _copy(tiny_hf_model, tmp_path / "bigger", *(p.name for p in tiny_hf_model.iterdir()))
    config = json.loads((bigger / "config.json").read_text())
    (bigger / "config.json").write_text(json.dumps({**config, "vocab_size": 10}))  # fewer rows than tokens
    with pytest.raises(RatbenchError, match="has 30 tokens but the model's embeddings have 10 rows"):
        check_encoder(DataConfig(encoder=f"hf:{bigger}"))
    (bigger / "config.json").write_text(json.dumps({**config, "pad_token_id": 3}))
    with pytest.raises(RatbenchError, match="pads with id 0, the model with id 3"):
        check_encoder(DataConfig(encoder=f"hf:{bigger}"))


def test_a_folder_that_is_not_a_model_is_refused(tiny_hf_model: Path, tmp_path: Path) -> None:
    """No config.json, a config.json transformers cannot read, no weights, no tokenizer (D18)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RatbenchError, match=r"is not a Hugging Face model folder \(no config.json\)"):
        check_encoder(DataConfig(encoder=f"hf:{empty}"))
    (empty / "config.json").write_text("{}")
    with pytest.raises(RatbenchError, match=r"config.json does not load \(Unrecognized model"):
        check_encoder(DataConfig(encoder=f"hf:{empty}"))
    no_weights = _copy(tiny_hf_model, tmp_path / "no-weights", "config.json", "tokenizer.json")
    with pytest.raises(RatbenchError, match="has no model weights"):
        check_encoder(DataConfig(encoder=f"hf:{no_weights}"))
