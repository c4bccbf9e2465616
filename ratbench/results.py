"""Load finished cells from a results folder into a pandas DataFrame."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ratbench import cells

KEY_COLUMNS = ["method", "dataset", "subset", "config_id", "seed", "mode", "kind"]


def load_results(results_dir: Path, warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (finished cell, evaluation mode), with every scalar test metric as a column.

    A cell whose ``metrics.json`` is corrupt is left out and reported to ``warn`` (one line
    naming the file).
    """

    def on_corrupt(exc: cells.CorruptResult) -> None:
        if warn is not None:
            warn(f"skipping {exc} (rerun the cell with `ratbench run`)")

    rows = []
    for folder in cells.finished_cells(Path(results_dir) / "runs", on_corrupt):
        data = json.loads((folder / cells.METRICS_FILE).read_text(encoding="utf-8"))
        for mode, metrics in data["modes"].items():
            row = {key: data.get(key) for key in KEY_COLUMNS if key != "mode"}
            row["mode"] = mode
            row.update({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
            row["seconds_per_epoch"] = data.get("seconds_per_epoch")
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else KEY_COLUMNS)
