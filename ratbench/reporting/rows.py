"""The rows of a table and which cells are stale: the model that ``ratbench table``,
``ratbench report`` and ``ratbench plot`` share (``ratbench.reporting.tables`` renders it).

A row is one method plus one variant (``ratbench.execution.variants``: the preset and the overrides the
user asked for, the same for every dataset), so a row never mixes configurations across
columns; a method with several variants gets a row per variant, labelled by how they differ
(``ver (perturb_rate=0.5)``). Stale cells are hidden unless asked for: cells of an older method,
dataset, evaluator or pipeline version, cells that recorded no variant, and cells of a
configuration superseded by a newer run of the same variant in the same column (a changed
preset or data file). ``--cpu-threads`` changes float rounding only, so cells that differ in it
alone are seeds of one row (a seed run with two thread counts keeps its newest run);
``--precision bf16`` is another computation, part of the variant (``rnp (precision=bf16)``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ratbench.data.adapter import encoder_kind
from ratbench.errors import RatbenchError
from ratbench.execution.variants import row_labels
from ratbench.versions import EVAL_VERSION, PIPELINE_VERSION

SPEC_DEFAULTS = ("variant", "identity", "method_version", "dataset_version", "eval_version", "pipeline_version")
CELL_COLUMNS = ["method", "dataset", "subset", "config_id", "seed", "mode", "kind", *SPEC_DEFAULTS]


@dataclass(frozen=True)
class Row:
    """One table row: a method, a variant (canonical JSON) and why it is stale ("" if it is not)."""

    method: str
    variant: str
    stale: str = ""


def _current_version(registry: Any, name: str) -> str | None:
    """The version of an installed plugin (None for a plugin that is not installed)."""
    try:
        info = registry.check(name)
    except RatbenchError:
        return None
    return info.meta.get("version") or getattr(registry.get(name), "version", None)


def _version_reasons(cell: pd.Series, versions: dict[tuple[str, str], str | None]) -> str:
    reasons = []
    if cell["variant"] is None:
        reasons.append("no variant recorded")
    if cell["pipeline_version"] != PIPELINE_VERSION:
        reasons.append(f"pipeline version {cell['pipeline_version'] or 'none'} (now {PIPELINE_VERSION})")
    if cell["eval_version"] != EVAL_VERSION:
        reasons.append(f"evaluator version {cell['eval_version']} (now {EVAL_VERSION})")
    for kind, name, recorded in (
        ("method", cell["method"], cell["method_version"]),
        ("dataset", cell["dataset"], cell["dataset_version"]),
    ):
        current = versions[kind, name]
        if current is not None and recorded != current:
            reasons.append(f"{name} version {recorded} (now {current})")
    return "; ".join(reasons)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else key))
    return flat


def _how_it_differs(old: str, new: str, limit: int = 3) -> str:
    """``method_config.epochs=6, ...``: the identity items of ``old`` that differ from ``new``."""
    old_items, new_items = _flat(json.loads(old)), _flat(json.loads(new))
    changed = [key for key in sorted(old_items.keys() | new_items.keys()) if old_items.get(key) != new_items.get(key)]
    words = [f"{key}={old_items.get(key)}" for key in changed[:limit]]
    return ", ".join(words) + (", ..." if len(changed) > limit else "")


def _without_threads(identity: str | None, config_id: str) -> str:
    """The configuration without ``pipeline.cpu_threads``: cells that differ in it alone are
    seeds of one row, since a thread count changes the order of float reductions, not what is
    computed (``--precision`` is part of the variant instead: bf16 is another computation)."""
    if not identity:
        return config_id
    data = json.loads(identity)
    if isinstance(data.get("pipeline"), dict):
        data["pipeline"] = {key: value for key, value in data["pipeline"].items() if key != "cpu_threads"}
    return json.dumps(data, sort_keys=True)


def mark_stale(per_cell: pd.DataFrame) -> pd.Series:
    """Why each cell (a line of ``per_cell``: one per cell) is stale, "" where it is not.

    Of several configurations of one variant in one column, the newest is the row's; cells of a
    configuration run with several thread counts all are (a seed run twice keeps its newest run).
    """
    from ratbench.registry import DATASETS, METHODS

    versions: dict[tuple[str, str], str | None] = {}
    for kind, registry, column in (("method", METHODS, "method"), ("dataset", DATASETS, "dataset")):
        for name in per_cell[column].unique():
            versions[kind, name] = _current_version(registry, name)
    stale = per_cell.apply(lambda cell: _version_reasons(cell, versions), axis=1).astype(str)

    live = per_cell[stale == ""]
    live = live.assign(
        config_key=[_without_threads(i, c) for i, c in zip(live["identity"], live["config_id"], strict=True)],
        finished=live["finished_at"].fillna("").astype(str),
    )
    for _, group in live.groupby(["method", "variant", "group"], sort=False):
        configs = group.groupby("config_key")["finished"].max().sort_values(ascending=False)
        newest = configs.index[0]
        newest_identity = group.loc[group["config_key"] == newest, "identity"].iloc[0] or "{}"
        for config_key in configs.index[1:]:
            members = group.index[group["config_key"] == config_key]
            identity = group.loc[members[0], "identity"] or "{}"
            stale[members] = f"superseded by a newer configuration; it had {_how_it_differs(identity, newest_identity)}"
        current = group[group["config_key"] == newest].sort_values("finished", ascending=False)
        for index in current.index[current.duplicated("seed")]:
            newer = current[current["seed"] == current.loc[index, "seed"]].iloc[0]
            stale[index] = f"superseded by a newer run of seed {newer['seed']} with cpu_threads={newer['cpu_threads']}"
    return stale


def seed_text(seeds: Sequence[int]) -> str:
    """``1-3,7``: seeds as ``--seeds`` takes them."""
    parts: list[list[int]] = []
    for seed in sorted(set(seeds)):
        if parts and seed == parts[-1][1] + 1:
            parts[-1][1] = seed
        else:
            parts.append([seed, seed])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in parts)


def table_cells(
    frame: pd.DataFrame,
    mode: str,
    include_stale: bool = False,
    seeds: Sequence[int] | None = None,
    allow_empty: bool = False,
) -> tuple[pd.DataFrame, int]:
    """The cells of ``mode`` that a table shows, one line each with its ``row`` (a ``Row``) and
    ``group`` (dataset.subset), and the number of stale cells left out (0 with
    ``include_stale``). ``seeds``: only the cells of these seeds (staleness is decided over
    all of them first: a superseded configuration stays superseded). ``allow_empty``: no cells
    to show is an empty frame, not an error."""
    if frame.empty:
        if allow_empty:
            return pd.DataFrame(columns=[*CELL_COLUMNS, "row", "group", "stale"]), 0
        raise RatbenchError("no finished cells found; run `ratbench run ...` first or pass --results-dir")
    frame = frame[frame["mode"] == mode].copy()
    for column in (*SPEC_DEFAULTS, "precision", "cpu_threads"):
        if column not in frame:
            frame[column] = None
    frame["group"] = frame["dataset"] + "." + frame["subset"]
    frame["cell_key"] = frame["config_id"] + "/seed" + frame["seed"].astype(str)  # the config id names the column
    per_cell = frame.drop_duplicates("cell_key").set_index("cell_key")
    stale = mark_stale(per_cell)
    frame["stale"] = frame["cell_key"].map(stale)
    if seeds is not None:
        found = sorted(set(frame["seed"]))
        frame = frame[frame["seed"].isin(seeds)].copy()
        stale = stale[per_cell["seed"].isin(seeds)]
        if frame.empty and not allow_empty:
            raise RatbenchError(
                f"--seeds {seed_text(seeds)}: no finished cell has these seeds "
                f"(the cells have seeds {seed_text(found) or 'none'})"
            )
    hidden = 0 if include_stale else int((stale != "").sum())
    if not include_stale:
        frame = frame[frame["stale"] == ""].copy()
    if frame.empty and not allow_empty:
        raise RatbenchError(f"all {hidden} finished cells are stale; pass --include-stale to show them")
    frame["variant"] = frame["variant"].fillna("null")
    frame["row"] = [Row(m, v, s) for m, v, s in zip(frame["method"], frame["variant"], frame["stale"], strict=True)]
    return _split_mixed_stale_rows(frame), hidden


def _split_mixed_stale_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stale rows that would hold several configurations in one column get one row each (one
    configuration run with several thread counts is one)."""
    rows = frame["row"].copy()
    keys = pd.Series(
        [_without_threads(i, c) for i, c in zip(frame["identity"], frame["config_id"], strict=True)], index=frame.index
    )
    for (row, _), group in frame.groupby(["row", "group"], sort=False):
        configs = list(dict.fromkeys(keys[group.sort_values("finished_at", ascending=False).index]))
        for rank, config_key in enumerate(configs[1:], start=2):
            for index in group.index[keys[group.index] == config_key]:
                rows[index] = Row(row.method, row.variant, f"{row.stale} #{rank}")
    return frame.assign(row=rows)


def labels_for(rows: list[Row]) -> dict[Row, str]:
    """Row labels: the method and how its variant differs from the method's other rows, plus
    the stale reason."""
    labels: dict[Row, str] = {}
    for method in dict.fromkeys(row.method for row in rows):
        variants = list(dict.fromkeys(row.variant for row in rows if row.method == method))
        named = row_labels(method, [json.loads(v) or {} for v in variants])
        for row in rows:
            if row.method == method:
                base = named[variants.index(row.variant)]
                labels[row] = f"{base} [stale: {row.stale}]" if row.stale else base
    return labels


def row_encoder(row: Row) -> str:
    """The encoder family (``word`` or ``hf``) of a row's variant."""
    data = (json.loads(row.variant) or {}).get("data") or {}
    return encoder_kind(str(data.get("data.encoder", "word")))


def method_changes(row: Row) -> dict[str, Any]:
    """The method settings in which a row's variant differs from its preset."""
    return (json.loads(row.variant) or {}).get("method") or {}


def has_settings(row: Row, settings: dict[str, Any]) -> bool:
    """Whether ``row``'s method settings include ``settings`` (NIR's ``noise_p=0.0``)."""
    changes = method_changes(row)
    return all(str(changes.get(key)) == str(value) for key, value in settings.items())


def word_rule(row: Row) -> str:
    """How a row's transformer cells count a word selected: ``any`` piece of it, or its ``first``."""
    data = (json.loads(row.variant) or {}).get("data") or {}
    return str(data.get("data.word_rule", "any"))
