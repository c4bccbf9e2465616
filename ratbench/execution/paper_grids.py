"""The paper's grids (``ratbench run --grid table1|table2|table3``), read from the tables' data
files, and the leaderboard grid (``--grid leaderboard``), made from the method registry.

The ``[grid]`` section of each paper table's file (``resources/paper_tables/NAME.toml``, see
``ratbench.paper_tables``) says which methods ran on the table's datasets (its columns) with
which preset and ``--set`` values (sparsity targets, encoder, embeddings), with the source of each
setting in a comment. A grid is one or more *runs* (a methods x datasets product with its own
extra ``--set`` values, e.g. NIR without noise as the A2R row), so the file is data and this
module only reads it and turns it into the arguments of :func:`ratbench.execution.grid.expand`.

The leaderboard is every built-in select-then-predict method on the datasets of its ``base``
table (Table 1) with that table's data settings, each with its own ``paper`` preset; its methods
are read from the registry each time it is asked for, so a plugin added to ``methods/`` joins it
with no edit here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ratbench.errors import RatbenchError, did_you_mean
from ratbench.paper_tables import LEADERBOARD, paper_table_names, table_columns, table_files

DATA_DIR_PLACEHOLDER = "{data_dir}"


@dataclass(frozen=True)
class GridRun:
    """One methods x datasets product of a grid, with the ``--set`` items it adds."""

    methods: tuple[str, ...]
    sets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperGrid:
    """A table's grid: its runs over ``datasets`` with ``preset`` and the grid-wide ``sets``."""

    name: str
    title: str
    layout: str
    preset: str
    datasets: tuple[str, ...]
    sets: dict[str, Any]
    runs: tuple[GridRun, ...]

    @property
    def methods(self) -> tuple[str, ...]:
        """Every method of the grid, in the order of its runs."""
        return tuple(dict.fromkeys(name for run in self.runs for name in run.methods))


def _text(value: Any) -> str:
    """A TOML value as ``--set`` writes it (``true``, ``0.15``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@cache
def load_grids() -> dict[str, PaperGrid]:
    """The grid of each of the paper's tables, by the table's name."""
    grids = {}
    for name in paper_table_names():
        table = table_files()[name]
        grid = table["grid"]
        grids[name] = PaperGrid(
            name=name,
            title=table["title"],
            layout=name,
            preset=grid["preset"],
            datasets=tuple(dataset for dataset, _ in table_columns(name)),
            sets=dict(grid.get("sets", {})),
            runs=tuple(GridRun(tuple(run["methods"]), dict(run.get("sets", {}))) for run in grid["part"]),
        )
    return grids


def leaderboard_methods() -> tuple[str, ...]:
    """The leaderboard's methods, by name: every built-in plugin (``methods/``) of kind
    ``select_predict`` that runs on the word encoder, except those that read the gold label at
    test (``Method.gold_label_at_test``: their F1 and Acc are not comparable).
    Post-hoc methods (LIME, attention) are left out: the leaderboard compares rationalizers
    that predict from their own rationale. Read from the registry at each call (a plugin added
    since, or registered by a test, is picked up)."""
    from ratbench.registry import METHODS

    names = []
    for name, info in sorted(METHODS.infos().items()):
        if not info.origin.startswith("builtin:") or info.meta.get("gold_label_at_test"):
            continue
        if info.meta.get("kind", "select_predict") != "select_predict":  # post-hoc, known without an import
            continue
        cls = METHODS.get(name)  # the kind a subclass inherits, and the encoders it runs on
        if cls.kind == "select_predict" and "word" in cls.encoders and not cls.gold_label_at_test:
            names.append(name)
    return tuple(names)


def leaderboard_grid() -> PaperGrid:
    """The leaderboard grid: ``leaderboard_methods()`` x its base table's datasets (Table 1's six
    beer and hotel aspects), preset ``paper`` (each method's own), with the base grid's data and
    dataset settings (100-d GloVe) and none of its method settings (those are LIME's and
    attention's top 15 %)."""
    table = table_files()[LEADERBOARD]
    base = load_grids()[table["base"]]
    scopes = {"data", *(name.partition(".")[0] for name in base.datasets)}
    return PaperGrid(
        name=LEADERBOARD,
        title=table["title"],
        layout=LEADERBOARD,
        preset=table["grid"]["preset"],
        datasets=base.datasets,
        sets={key: value for key, value in base.sets.items() if key.partition(".")[0] in scopes},
        runs=(GridRun(leaderboard_methods()),),
    )


def grid_names() -> list[str]:
    """Every grid ``--grid`` takes: the paper's, then the leaderboard."""
    return [*load_grids(), LEADERBOARD]


def get_grid(name: str) -> PaperGrid:
    """The grid called ``name``, or a one-line error listing the grids there are."""
    if name == LEADERBOARD:
        return leaderboard_grid()
    grids = load_grids()
    if name not in grids:
        names = grid_names()
        raise RatbenchError(f"unknown grid {name!r}{did_you_mean(name, names)}; available: {', '.join(names)}")
    return grids[name]


def grid_for_layout(layout: str) -> PaperGrid | None:
    """The grid of the table whose layout is called ``layout`` (None: that table has no grid)."""
    if layout == LEADERBOARD:
        return leaderboard_grid()
    return load_grids().get(layout)


def _pick(chosen: Sequence[str] | None, available: Sequence[str], what: str, grid: str) -> list[str]:
    """``available`` filtered to ``chosen`` (all of it when None); a name outside it is an error."""
    if chosen is None:
        return list(available)
    outside = [name for name in chosen if name not in available]
    if outside:
        raise RatbenchError(
            f"--{what} {','.join(outside)}: not part of grid {grid} (it has {', '.join(available)}); "
            f"drop --grid to run other {what}"
        )
    return [name for name in available if name in chosen]


def grid_requests(
    grid: PaperGrid,
    data_dir: Path | None,
    user_sets: Sequence[str] = (),
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> list[tuple[list[str], list[str], list[str]]]:
    """``(methods, datasets, --set items)`` for each run of ``grid``, restricted to ``methods``
    and ``datasets`` when given (runs left empty are dropped). The grid's items come first and the
    user's last, so the user's win; an item for a method outside the run is left out (it would
    name a scope the run does not have). ``{data_dir}`` is replaced by ``data_dir`` (``data``
    when None, the default data root)."""
    root = str(data_dir if data_dir is not None else Path("data"))
    chosen_datasets = _pick(datasets, grid.datasets, "datasets", grid.name)
    _pick(methods, grid.methods, "methods", grid.name)
    requests = []
    for run in grid.runs:
        run_methods = [name for name in run.methods if methods is None or name in methods]
        if not run_methods or not chosen_datasets:
            continue
        items = []
        for key, value in {**grid.sets, **run.sets}.items():
            scope = key.partition(".")[0]
            if scope in {"data", *(d.partition(".")[0] for d in chosen_datasets)} or scope in run_methods:
                items.append(f"{key}={_text(value).replace(DATA_DIR_PLACEHOLDER, root)}")
        requests.append((run_methods, chosen_datasets, [*items, *user_sets]))
    return requests
