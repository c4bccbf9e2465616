"""Export finished cells' predictions, e.g. in the ERASER results format.

ERASER format (DeYoung et al. 2020), one JSON line per example: ``annotation_id``,
``rationales`` = ``[{docid, hard_rationale_predictions: [{start_token, end_token}],
soft_rationale_predictions?}]`` (end exclusive), ``classification`` (label name) and
``classification_scores`` (label name -> probability), so the official scorer can re-score any
ratbench run. A word-level example's id serves as both annotation id and document id.
Selections on padding positions are not document tokens and are not exported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ratbench.execution import store


def mask_to_spans(mask: list[int]) -> list[dict[str, int]]:
    """Contiguous runs of 1 as ``{"start_token", "end_token"}`` (end exclusive)."""
    spans, start = [], None
    for position, value in enumerate([*mask, 0]):
        if value and start is None:
            start = position
        elif not value and start is not None:
            spans.append({"start_token": start, "end_token": position})
            start = None
    return spans


def eraser_lines(cell: Path | store.CellFolder, mode: str) -> Iterator[dict[str, Any]]:
    """The ERASER result lines of one finished cell in one evaluation mode."""
    cell = cell if isinstance(cell, store.CellFolder) else store.CellFolder(Path(cell))
    label_names = cell.result().get("label_names") or []
    for record in cell.rationales(mode):
        rationale: dict[str, Any] = {
            "docid": record.get("docid", record["id"]),
            "hard_rationale_predictions": mask_to_spans(record["mask"][: record["length"]]),
        }
        if record.get("token_scores") is not None:
            rationale["soft_rationale_predictions"] = record["token_scores"]
        out: dict[str, Any] = {"annotation_id": record["id"], "rationales": [rationale]}
        if record.get("pred") is not None:
            names = label_names or [str(i) for i in range(len(record["probs"]))]
            out["classification"] = names[record["pred"]]
            out["classification_scores"] = dict(zip(names, record["probs"], strict=True))
        yield out


def export_eraser(
    path: Path, mode: str, out: Path, warn: Callable[[str], None] | None = None
) -> tuple[list[Path], list[Path]]:
    """Write ``<out>/<cell_id>/eraser.<mode>.jsonl`` for every finished cell under ``path`` (a
    results folder or one cell); nothing under ``path`` is written.

    Returns the files written and the cells that could not be exported (an unreadable
    ``rationales.jsonl.gz``, reported to ``warn``); one such cell does not stop the others.
    """
    written, failed = [], []
    for cell in store.find_cells(path, warn):
        try:
            text = "".join(store.dumps(line) + "\n" for line in eraser_lines(cell, mode))
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as exc:
            failed.append(cell.path)
            if warn is not None:
                warn(f"skipping {cell.file(store.RATIONALES_FILE)}: cannot be read ({type(exc).__name__}: {exc})")
            continue
        target = Path(out) / cell.result()["cell_id"] / f"eraser.{mode}.jsonl"
        store.atomic_write_text(target, text)
        written.append(target)
    return written, failed
