"""Export finished cells' predictions, e.g. in the ERASER results format.

ERASER format (DeYoung et al. 2020), one JSON line per example: ``annotation_id``,
``rationales`` = ``[{docid, hard_rationale_predictions: [{start_token, end_token}],
soft_rationale_predictions?}]`` (end exclusive), ``classification`` (label name) and
``classification_scores`` (label name -> probability), so the official scorer can re-score any
ratbench run. A word-level example's id serves as both annotation id and document id.
Selections on padding positions are not document tokens and are not exported.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ratbench import cells
from ratbench.errors import RatbenchError


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


def eraser_lines(cell: Path, mode: str) -> Iterator[dict[str, Any]]:
    """The ERASER result lines of one finished cell in one evaluation mode."""
    metrics = json.loads((cell / cells.METRICS_FILE).read_text(encoding="utf-8"))
    label_names = metrics.get("label_names") or []
    with gzip.open(cell / cells.RATIONALES_FILE, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["mode"] != mode:
                continue
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


def finished_cells(path: Path, warn: Callable[[str], None] | None = None) -> list[Path]:
    """``path`` itself if it is a finished cell folder, else every finished cell below it (below
    ``path/runs`` for a results folder: the mlflow store's artifact copies are no cells); a
    corrupt ``metrics.json`` below ``path`` is skipped and reported to ``warn``."""
    path = Path(path)
    if (path / cells.METRICS_FILE).is_file():
        cells.read_metrics(path)  # a corrupt result raises CorruptResult: a one-line error
        return [path]
    if (path / "runs").is_dir():
        path = path / "runs"

    def on_corrupt(exc: cells.CorruptResult) -> None:
        if warn is not None:
            warn(f"skipping {exc} (rerun the cell with `ratbench run`)")

    found = cells.finished_cells(path, on_corrupt)
    if not found:
        raise RatbenchError(f"no finished cell (a folder with a valid {cells.METRICS_FILE}) in {path}")
    return found


def export_eraser(path: Path, mode: str, warn: Callable[[str], None] | None = None) -> tuple[list[Path], list[Path]]:
    """Write ``export/eraser.<mode>.jsonl`` in every finished cell under ``path``.

    Returns the files written and the cells that could not be exported (an unreadable
    ``rationales.jsonl.gz``, reported to ``warn``); one such cell does not stop the others.
    """
    written, failed = [], []
    for cell in finished_cells(path, warn):
        try:
            text = "".join(cells.dumps(line) + "\n" for line in eraser_lines(cell, mode))
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as exc:
            failed.append(cell)
            if warn is not None:
                warn(f"skipping {cell / cells.RATIONALES_FILE}: cannot be read ({type(exc).__name__}: {exc})")
            continue
        target = cell / cells.EXPORT_DIR / f"eraser.{mode}.jsonl"
        cells.atomic_write_text(target, text)
        written.append(target)
    return written, failed
