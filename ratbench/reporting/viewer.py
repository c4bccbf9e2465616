"""``ratbench show``: the test examples of finished cells with their rationales against the gold.

Each selected word is a true positive (selected and in the human rationale), a false positive
(selected, not gold), or, for a gold word left out, a miss. The words themselves are not in a
cell's ``rationales.jsonl.gz`` (it holds masks): they are read again from the cell's dataset,
with the cell's recorded data config and ``--limit``, so ``--data-dir`` must point at the data
the cell was run on (a synthetic dataset regenerates its examples from the config). The files
read are checked against the content hashes in each cell's ``spec.json``: other documents would
be painted with the cell's masks, which look plausible and are garbage.

Two outputs: terminal text (ANSI colours, or bracket marks without a terminal) and one
self-contained HTML page (inline CSS, script and data; nothing fetched) with a picker per pane,
so that two methods' rationales of one review sit side by side.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ratbench.counts import f1_score, safe_div
from ratbench.data.adapter import encoder_kind
from ratbench.errors import RatbenchError
from ratbench.execution import cells, store
from ratbench.execution.variants import row_labels


@dataclass
class ShownCell:
    """One finished cell as the viewer shows it: its row in words and its test records."""

    row: str
    """The cell's table row label (``ver (perturb_rate=0.5)``)."""
    path: Path
    spec: cells.CellSpec
    label_names: list[str]
    records: dict[str, dict[str, Any]]
    """Test example id -> record of ``rationales.jsonl.gz`` in the shown mode."""

    @property
    def label(self) -> str:
        """The row and the seed: ``ver (perturb_rate=0.5) seed2``."""
        return f"{self.row} seed{self.spec.seed}"


@dataclass(frozen=True)
class Document:
    """A test example's words and label, shared by every cell of the dataset."""

    id: str
    words: tuple[str, ...]
    label: int
    query: tuple[str, ...] | None = None


def marks(mask: Sequence[int], gold: Sequence[int], length: int) -> list[str]:
    """The mark of each of the first ``length`` words: ``tp`` (selected and gold), ``fp``
    (selected only), ``fn`` (gold only) or ``""`` (neither)."""
    out = []
    for position in range(length):
        selected = position < len(mask) and bool(mask[position])
        in_gold = position < len(gold) and bool(gold[position])
        out.append("tp" if selected and in_gold else "fp" if selected else "fn" if in_gold else "")
    return out


def example_scores(record: dict[str, Any]) -> dict[str, float]:
    """Precision, recall and F1 (%) of one example's selection against its gold words."""
    length = record["length"]
    mask, gold = record["mask"][:length], record["gold"][:length]
    hits = sum(m and g for m, g in zip(mask, gold, strict=False))
    precision, recall = safe_div(hits, sum(mask)), safe_div(hits, sum(gold))
    return {"P": 100 * precision, "R": 100 * recall, "F1": 100 * f1_score(precision, recall)}


def plural(count: int, noun: str) -> str:
    """``1 cell``, ``2 cells``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def is_wrong(record: dict[str, Any]) -> bool:
    """Whether the cell's prediction for the example differs from its label."""
    return record.get("pred") is not None and record["pred"] != record["label"]


# -- loading ---------------------------------------------------------------------------------


def _read_records(cell: store.CellFolder, mode: str) -> dict[str, dict[str, Any]]:
    try:
        return {record["id"]: record for record in cell.rationales(mode)}
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise RatbenchError(
            f"{cell.file(store.RATIONALES_FILE)} cannot be read ({type(exc).__name__}: {exc}); "
            "rerun the cell with `ratbench run --force`"
        ) from None


def load_cells(
    paths: Iterable[Path],
    mode: str,
    methods: Sequence[str] | None = None,
    dataset: str | None = None,
    warn: Callable[[str], None] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[ShownCell]:
    """The finished cells under ``paths`` (cell folders or results folders) of one dataset,
    labelled ``method (variant words) seedN`` and ordered by method, label and seed."""
    found: dict[Path, cells.CellSpec] = {}
    for path in paths:
        for cell in store.find_cells(Path(path), warn):
            spec = cell.spec()
            if (methods and spec.method not in methods) or (seeds and spec.seed not in seeds):
                continue
            found[cell.path.resolve()] = spec
    if not found:
        wanted = (f" of method {', '.join(methods)}" if methods else "") + (
            f" of seed {', '.join(map(str, seeds))}" if seeds else ""
        )
        raise RatbenchError(f"no finished cell{wanted} in {', '.join(str(p) for p in paths)}")

    def groups() -> list[str]:
        return sorted({f"{spec.dataset}.{spec.subset}" for spec in found.values()})

    if dataset is not None:
        every = groups()
        found = {
            path: spec for path, spec in found.items() if dataset in (spec.dataset, f"{spec.dataset}.{spec.subset}")
        }
        if not found:
            raise RatbenchError(f"--dataset {dataset}: no such cell here; the cells are of {', '.join(every)}")
        matched = groups()
        if len(matched) > 1:  # a bare dataset name with cells of several subsets
            raise RatbenchError(
                f"--dataset {dataset} matches {len(matched)} datasets ({', '.join(matched)}); "
                f"name one as dataset.subset, e.g. --dataset {matched[0]}"
            )
    datasets = groups()
    if len(datasets) > 1:
        raise RatbenchError(
            f"the cells are of {len(datasets)} datasets ({', '.join(datasets)}); pick one with --dataset"
        )

    by_method: dict[str, list[tuple[Path, cells.CellSpec]]] = {}
    for path, spec in sorted(found.items(), key=lambda item: (item[1].method, item[1].seed, str(item[0]))):
        by_method.setdefault(spec.method, []).append((path, spec))
    shown = []
    for method, members in by_method.items():
        labels = row_labels(method, [spec.variant or {} for _, spec in members])
        for (path, spec), label in zip(members, labels, strict=True):
            cell = store.CellFolder(path)
            names = cell.result().get("label_names") or []
            shown.append(ShownCell(label, path, spec, names, _read_records(cell, mode)))
    shown.sort(key=lambda cell: (cell.spec.method, cell.row, cell.spec.seed))
    return shown


SHOWN_ROLES = ("test", "docs")
"""The roles (``DatasetAdapter.content_paths``) of the files a test example's words come from:
the test split's file and ERASER's ``docs/`` folder. Train and dev files, and the embeddings,
may have changed without changing the words shown."""


def check_data(shown: Sequence[ShownCell], adapter: Any) -> None:
    """Raise ``RatbenchError`` naming the first file (or folder) of ``SHOWN_ROLES`` whose content
    differs from the sha256 a shown cell's ``spec.json`` records for it: the cell's masks would
    be painted over other words. A file the cell did not record (or that is missing now, which
    reading reports) is not compared."""
    from ratbench.data import filehash

    paths = adapter.content_paths()
    for role in SHOWN_ROLES:
        path = paths.get(role)
        if path is None or not Path(path).exists():
            continue
        current = None
        for cell in shown:
            recorded = ((cell.spec.dataset_fingerprint or {}).get("files") or {}).get(role)
            if not isinstance(recorded, dict) or "sha256" not in recorded:
                continue
            current = current or filehash.content_sha256(Path(path))
            if recorded["sha256"] != current:
                kind = "folder" if Path(path).is_dir() else "file"
                raise RatbenchError(
                    f"{path}: not the {kind} {cell.label} was run on (its content differs from the sha256 in "
                    f"{cell.path / store.SPEC_FILE}); point --data-dir at the data the cell was run on"
                )
    filehash.save()  # the hashes, for the next show of these files


def load_documents(shown: Sequence[ShownCell], data_dir: Path | None = None) -> dict[str, Document]:
    """The test split of the first shown cell's dataset (its recorded config and limit), by
    example id, after ``check_data``: the files must be those every shown cell was run on."""
    from ratbench.data.adapter import limit_examples
    from ratbench.registry import DATASETS

    spec = shown[0].spec
    adapter_cls = DATASETS.get(spec.dataset)
    config = adapter_cls.Config.resolve(spec.dataset_config, owner=spec.dataset)
    adapter = adapter_cls(spec.subset, config, data_dir)
    check_data(shown, adapter)
    examples = limit_examples(list(adapter.read("test")), spec.limit)
    words = _piece_decoder(adapter, config)
    return {ex.id: Document(ex.id, words(ex.tokens), ex.label, ex.query) for ex in examples}


def _piece_decoder(adapter: Any, config: Any) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """Word-piece ids (``movies_wordpiece``) as pieces, with the cell's tokenizer when it can be
    loaded from local files; other datasets' tokens are words already."""
    if not (adapter.tokens_are_piece_ids and encoder_kind(config.encoder) == "hf"):
        return tuple
    try:
        from ratbench.data.encoders import HFEncoder

        tokenizer = HFEncoder(config, tokens_are_piece_ids=True).tokenizer
    except Exception:  # no tokenizer here: the ids themselves are still a faithful view
        return tuple
    return lambda ids: tuple(tokenizer.convert_ids_to_tokens([int(i) for i in ids]))


# -- terminal --------------------------------------------------------------------------------

ANSI = {"tp": "\033[30;42m", "fp": "\033[30;41m", "fn": "\033[4;33m"}
PLAIN = {"tp": ("[", "]"), "fp": ("{", "}"), "fn": ("_", "_")}
LEGEND_WORDS = {"tp": "selected and gold", "fp": "selected, not gold", "fn": "gold, missed"}


def _label_name(names: Sequence[str], index: int | None) -> str:
    if index is None:
        return "-"
    return names[index] if index < len(names) else str(index)


def _word(word: str, kind: str, colour: bool) -> str:
    if not kind:
        return word
    if colour:
        return f"{ANSI[kind]}{word}\033[0m"
    opening, closing = PLAIN[kind]
    return f"{opening}{word}{closing}"


def _wrap(words: Sequence[tuple[str, int]], width: int, indent: str) -> list[str]:
    """Lines of the (text, visible width) items, wrapped at ``width`` visible characters."""
    lines: list[str] = []
    line: list[str] = []
    used = len(indent)
    for text, visible in words:
        if line and used + 1 + visible > width:
            lines.append(indent + " ".join(line))
            line, used = [], len(indent)
        line.append(text)
        used += visible + (1 if len(line) > 1 else 0)
    if line:
        lines.append(indent + " ".join(line))
    return lines


def choose_examples(
    shown: Sequence[ShownCell],
    documents: dict[str, Document],
    example_ids: Sequence[str] = (),
    only_wrong: bool = False,
    limit: int | None = None,
) -> list[str]:
    """Ids of the examples to show, in the test split's order: the asked-for ids (an unknown id
    is an error), or the examples every cell has, only those some cell predicts wrongly with
    ``only_wrong``; at most ``limit``."""
    common = [i for i in documents if all(i in cell.records for cell in shown)]
    if example_ids:
        unknown = [i for i in example_ids if i not in documents]
        if unknown:
            raise RatbenchError(
                f"--example {unknown[0]}: no test example with that id; some ids: {', '.join(common[:5])}"
            )
        chosen = list(dict.fromkeys(example_ids))
    else:
        chosen = common
    if only_wrong:
        chosen = [i for i in chosen if any(i in cell.records and is_wrong(cell.records[i]) for cell in shown)]
    return chosen[:limit] if limit is not None else chosen


def render_terminal(
    shown: Sequence[ShownCell],
    documents: dict[str, Document],
    ids: Sequence[str],
    colour: bool,
    width: int | None = None,
) -> str:
    """The chosen examples, each with every cell's prediction, example scores and marked words."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    out = ["  ".join(_word(words, kind, colour) for kind, words in LEGEND_WORDS.items()), ""]
    for example_id in ids:
        document = documents[example_id]
        names = shown[0].label_names
        out.append(f"== {example_id}  label: {_label_name(names, document.label)}")
        if document.query:
            out.append(f"   query: {' '.join(document.query)}")
        for cell in shown:
            record = cell.records.get(example_id)
            if record is None:
                out.append(f"-- {cell.label}: not in this cell's test split")
                continue
            scores = example_scores(record)
            verdict = "" if record.get("pred") is None else ("  wrong" if is_wrong(record) else "  right")
            out.append(
                f"-- {cell.label}: predicted {_label_name(cell.label_names, record.get('pred'))}{verdict}  "
                f"P {scores['P']:.1f}  R {scores['R']:.1f}  F1 {scores['F1']:.1f}"
            )
            length = record["length"]
            kinds = marks(record["mask"], record["gold"], length)
            items = []
            for word, kind in zip(document.words[:length], kinds, strict=False):
                visible = len(word) + (2 if kind and not colour else 0)
                items.append((_word(word, kind, colour), visible))
            padding = sum(record["mask"][length:])
            if padding:
                items.append((f"(+{padding} selected padding positions)", 40))
            out.extend(_wrap(items, width, "   "))
        out.append("")
    return "\n".join(out)


# -- HTML ------------------------------------------------------------------------------------


def _resource(name: str) -> str:
    """A file of the viewer's page (``ratbench/resources/viewer.css``, ``viewer.js``)."""
    return resources.files("ratbench").joinpath("resources", name).read_text(encoding="utf-8")


def _page_data(shown: Sequence[ShownCell], documents: dict[str, Document], ids: Sequence[str]) -> dict[str, Any]:
    examples = []
    for example_id in ids:
        document = documents[example_id]
        present = [cell.records[example_id] for cell in shown if example_id in cell.records]
        record, length = present[0], max(r["length"] for r in present)
        examples.append(
            {
                "id": example_id,
                "label": document.label,
                "words": list(document.words[:length]),
                "gold": [i for i, g in enumerate(record["gold"]) if g],
                "query": list(document.query) if document.query else None,
            }
        )
    cells_data = []
    for cell in shown:
        records = {}
        for example_id in ids:
            shown_record = cell.records.get(example_id)
            if shown_record is None:
                continue
            length = shown_record["length"]
            records[example_id] = {
                "label": shown_record["label"],
                "pred": shown_record.get("pred"),
                "length": length,
                "sel": [i for i, m in enumerate(shown_record["mask"][:length]) if m],
                "padding": sum(shown_record["mask"][length:]),
                **{key: round(value, 1) for key, value in example_scores(shown_record).items()},
            }
        cells_data.append({"label": cell.label, "label_names": cell.label_names, "records": records})
    return {"label_names": shown[0].label_names, "examples": examples, "cells": cells_data}


def embed_json(data: Any) -> str:
    """``data`` as JSON that is plain text inside a ``<script>`` element: ``<``, ``>`` and ``&``
    (which occur only in strings) become ``\\u003c``, ``\\u003e`` and ``\\u0026``, which JSON.parse
    reads back. Escaping ``</`` alone is not enough: ``<!--<script>`` in a word puts the HTML
    parser in the script's double-escaped state, which swallows the viewer's own script."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def first_cells(shown: Sequence[ShownCell], panes: int) -> list[int]:
    """The cells the panes show first: one per method while there are methods (RNP beside VER,
    not RNP's seed 1 beside its seed 2), then the next cells in order."""
    chosen: list[int] = []
    for index, cell in enumerate(shown):
        if cell.spec.method not in {shown[i].spec.method for i in chosen}:
            chosen.append(index)
    chosen += [i for i in range(len(shown)) if i not in chosen]
    return chosen[: max(1, min(panes, len(shown)))]


def render_html(
    shown: Sequence[ShownCell], documents: dict[str, Document], ids: Sequence[str], title: str, panes: int = 2
) -> str:
    """One self-contained page: an example picker and ``panes`` side-by-side panes (fewer when
    there are fewer cells), each with a cell picker, first showing ``first_cells``."""
    options = "".join(f'<option value="{i}">{html.escape(cell.label)}</option>' for i, cell in enumerate(shown))
    pane_html = "".join(
        f'<section class="pane" id="pane-{p}"><select class="method" aria-label="cell of pane {p + 1}">'
        + options.replace(f'<option value="{first}">', f'<option value="{first}" selected>', 1)
        + '</select><div class="meta"></div><div class="text"></div></section>'
        for p, first in enumerate(first_cells(shown, panes))
    )
    data = embed_json(_page_data(shown, documents, ids))
    legend = (
        '<span class="tok tp">selected and gold</span> <span class="tok fp">selected, not gold</span> '
        '<span class="tok fn">gold, missed</span>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{_resource("viewer.css")}</style></head>
<body><header><h1>{html.escape(title)}</h1><div class="legend">{legend}</div>
<nav><label>example <select id="example"></select></label>
<button id="prev" type="button">previous</button><button id="next" type="button">next</button>
<label><input type="checkbox" id="only-wrong"> only examples a shown cell predicts wrongly</label></nav></header>
<main id="panes">{pane_html}</main>
<script id="ratbench-data" type="application/json">{data}</script>
<script>
{_resource("viewer.js")}</script>
</body></html>
"""
