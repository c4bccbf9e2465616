"""Load finished cells from a results folder into a pandas DataFrame."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ratbench.execution import cells, store
from ratbench.execution.variants import variant_key

KEY_COLUMNS = ["method", "dataset", "subset", "config_id", "seed", "mode", "kind"]
SPEC_COLUMNS = [
    "variant",
    "method_version",
    "dataset_version",
    "eval_version",
    "pipeline_version",
    "identity",
    "precision",
    "cpu_threads",
    "device",
]
"""From ``spec.json``: ``variant`` (canonical JSON, None when the cell recorded none), the
versions, ``identity`` (canonical JSON of what ``config_id`` hashes) for explaining how two
configurations differ, and the pipeline's ``precision``, ``cpu_threads`` and ``device`` (``cpu``
or ``cuda``; ``cpu`` for a spec without one: the pipeline names only a device other than the CPU,
so CPU cells kept their ids when the device entered it).

A precision other than fp32 is part of the variant (``precision=bf16``): bf16 autocast is a
different computation, so its cells are a row of their own; so is a device other than the CPU
(``device=cuda``: other kernels, other numbers). ``cpu_threads`` is not: it changes
the order of float reductions only, so cells that differ in it alone are seeds of one row."""


def _spec_columns(cell: store.CellFolder) -> dict[str, Any]:
    try:
        spec = cell.spec_json()
        identity = cells.CellSpec.from_json(spec).identity()
    except (OSError, ValueError, TypeError):
        return dict.fromkeys(SPEC_COLUMNS)
    pipeline = spec.get("pipeline") or {}
    precision = pipeline.get("precision") or "fp32"
    device = pipeline.get("device") or "cpu"
    variant = spec.get("variant")
    if variant is not None and precision != "fp32":
        variant = {**variant, "precision": precision}
    if variant is not None and device != "cpu":  # GPU kernels round otherwise: a row of its own
        variant = {**variant, "device": device}
    return {
        "variant": None if variant is None else variant_key(variant),
        "method_version": spec.get("method_version"),
        "dataset_version": spec.get("dataset_version"),
        "eval_version": spec.get("eval_version"),
        "pipeline_version": pipeline.get("version"),
        "identity": json.dumps(identity, sort_keys=True),
        "precision": precision,
        "cpu_threads": pipeline.get("cpu_threads", 1),
        "device": device,
    }


def load_results(results_dir: Path, warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (finished cell, evaluation mode), with every scalar test metric as a column,
    the cell's ``finished_at`` and the ``SPEC_COLUMNS`` of its ``spec.json``.

    A cell whose ``metrics.json`` is corrupt is left out and reported to ``warn`` (one line
    naming the file).
    """
    rows = []
    for cell in store.finished_results(results_dir, warn):
        data = cell.result()
        from_spec = _spec_columns(cell)
        for mode, metrics in data["modes"].items():
            row = {key: data.get(key) for key in KEY_COLUMNS if key != "mode"}
            row["mode"] = mode
            row.update({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
            row["seconds_per_epoch"] = data.get("seconds_per_epoch")
            row["finished_at"] = data.get("finished_at")
            row["cell_id"] = data.get("cell_id")
            row["versions"] = json.dumps(data.get("versions"), sort_keys=True) if data.get("versions") else None
            rows.append({**row, **from_spec})
    return pd.DataFrame(rows, columns=None if rows else [*KEY_COLUMNS, *SPEC_COLUMNS])
