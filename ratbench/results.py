"""Load finished cells from a results folder into a pandas DataFrame."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ratbench.cells import METRICS_FILE

KEY_COLUMNS = ["method", "dataset", "subset", "config_id", "seed", "mode", "kind"]


def load_results(results_dir: Path) -> pd.DataFrame:
    """One row per (finished cell, evaluation mode), with every scalar test metric as a column."""
    rows = []
    for path in sorted((Path(results_dir) / "runs").glob(f"**/{METRICS_FILE}")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("status") != "ok":
            continue
        for mode, metrics in data["modes"].items():
            row = {key: data.get(key) for key in KEY_COLUMNS if key != "mode"}
            row["mode"] = mode
            row.update({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
            row["seconds_per_epoch"] = data.get("seconds_per_epoch")
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else KEY_COLUMNS)
