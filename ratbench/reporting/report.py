"""``ratbench report``: a Markdown reproduction report of a results folder.

It says what ran (cells per method and dataset, the ratbench, torch and Python versions and the
git revision the cells recorded, which cells failed or are corrupt and, given the grid, which
are missing: a grid's slot is filled only by a cell of the variant ``run --grid`` gives it),
renders every paper table the cells fill beside the paper's published numbers (and a generic
table of the cells no paper table shows), and checks the paper's claims
(``resources/paper_claims.toml``) on the cells: for each claim, dataset and pair of rows, the
mean difference over the seeds both rows share, a paired t-test, and whether the claim holds;
pairs it cannot compare (other settings, no shared seed, an N/A metric) are listed with why.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from ratbench.errors import RatbenchError, did_you_mean
from ratbench.execution import store
from ratbench.execution.paper_grids import PaperGrid
from ratbench.execution.variants import describe, items
from ratbench.reporting.layouts import LAYOUTS
from ratbench.reporting.results import KEY_COLUMNS, SPEC_COLUMNS
from ratbench.reporting.rows import Row, labels_for, row_encoder, seed_text, table_cells
from ratbench.reporting.stats import paired
from ratbench.reporting.tables import TableRequest, render
from ratbench.types import METRIC_COLUMNS

CLAIMS_FILE = "paper_claims.toml"
SIGNIFICANCE = 0.05
DEFAULT_GRID_SEEDS = (1, 2, 3, 4, 5)  # the paper's five seeds: what --grid expects without --seeds
DATA_DIR_STANDIN = "/ratbench-grid-data-dir"  # the --data-dir a grid ran with, which a report does not know
NOT_METRICS = {*KEY_COLUMNS, *SPEC_COLUMNS, "seconds_per_epoch", "finished_at", "cell_id", "versions", "n_examples"}


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``better`` beats ``worse`` (``*``: every other method) on
    ``metric`` on each of ``datasets``."""

    id: str
    statement: str
    better: str
    worse: str
    metric: str
    datasets: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Verdict:
    """One check of a claim: a dataset, the two rows compared, the shared seeds, the mean
    difference (better minus worse), the paired p-value and the verdict in words."""

    claim: Claim
    dataset: str
    better: str
    worse: str
    seeds: int
    difference: float
    p: float | None
    verdict: str
    paper_dataset: bool


def load_claims() -> list[Claim]:
    """The claims of the packaged file."""
    text = resources.files("ratbench").joinpath("resources", CLAIMS_FILE).read_text(encoding="utf-8")
    return [
        Claim(c["id"], c["statement"], c["better"], c["worse"], c["metric"], tuple(c["datasets"]), c["source"])
        for c in tomllib.loads(text)["claims"]
    ]


def _verdict(difference: float, p: float | None, seeds: int) -> str:
    if seeds < 2:
        return "holds on its one seed (untested)" if difference > 0 else "does not hold on its one seed (untested)"
    if difference <= 0:
        return "does not hold"
    if p is None:
        return "holds on every seed by the same margin (untested)"
    return "holds" if p < SIGNIFICANCE else "holds, not significant"


COMPARED_SETTINGS = ("preset", "data", "limit", "precision", "device")


def comparable(better: Row, worse: Row) -> bool:
    """Whether two rows may be compared: the same preset, data settings (encoder, padding,
    ...), ``--limit``, ``--precision`` and device kind. Their method settings may differ (each method has its
    own), but a VER row on padded batches is never tested against an RNP row on bucketed ones."""
    first, second = ((json.loads(row.variant) or {}) for row in (better, worse))
    return all(first.get(key) == second.get(key) for key in COMPARED_SETTINGS)


def _settings_difference(better: Row, worse: Row, labels: Mapping[Row, str]) -> str:
    """``ver: the preset's; rnp: data.max_len=40``: the compared settings in which two rows differ."""
    words = [items({**(json.loads(row.variant) or {}), "method": {}}) for row in (better, worse)]
    own = [[word for word in mine if word not in theirs] for mine, theirs in (words, words[::-1])]
    preset = "the preset's"  # no setting of its own: the preset's values
    return "; ".join(
        f"{labels[row]}: {', '.join(differ) or preset}" for row, differ in zip((better, worse), own, strict=True)
    )


def check_claims(
    cell_frame: pd.DataFrame, labels: dict[Row, str], claims: Sequence[Claim], problems: list[str] | None = None
) -> list[Verdict]:
    """The verdicts of ``claims`` on the table cells ``cell_frame`` (``tables.table_cells``):
    on the paper's datasets where the cells have them, else on every dataset they have.

    Why a pair of rows on one dataset was not compared (other settings, no shared seed, no
    value of the metric) is added to ``problems`` (once each)."""

    def problem(text: str) -> None:
        if problems is not None and text not in problems:
            problems.append(text)

    verdicts = []
    groups = list(dict.fromkeys(cell_frame["group"]))
    for claim in claims:
        covered = [g for g in claim.datasets if g in groups]
        for group in covered or groups:
            here = cell_frame[cell_frame["group"] == group]
            rows = list(dict.fromkeys(here["row"]))
            for better in (row for row in rows if row.method == claim.better):
                for worse in rows:
                    if worse.method == claim.better or claim.worse not in ("*", worse.method):
                        continue
                    if not comparable(better, worse):
                        problem(
                            f"{labels[better]} and {labels[worse]} on {group} were run with different settings "
                            f"({_settings_difference(better, worse, labels)})"
                        )
                        continue
                    compared = _compare(here, claim, better, worse, labels)
                    if isinstance(compared, str):
                        problem(compared)
                        continue
                    seeds, difference, p = compared
                    verdict = _verdict(difference, p, seeds)
                    verdicts.append(
                        Verdict(
                            claim, group, labels[better], labels[worse], seeds, difference, p, verdict, bool(covered)
                        )
                    )
    return verdicts


def _compare(
    cells_here: pd.DataFrame, claim: Claim, better: Row, worse: Row, labels: Mapping[Row, str]
) -> tuple[int, float, float | None] | str:
    """(shared seeds, mean difference, paired p) of ``claim.metric``, or why there is none."""
    group = cells_here["group"].iloc[0]
    if claim.metric not in cells_here:
        return f"no cell on {group} has {claim.metric}"
    values = {
        row: pd.to_numeric(
            cells_here[cells_here["row"] == row].set_index("seed")[claim.metric], errors="coerce"
        ).dropna()
        for row in (better, worse)
    }
    for row in (better, worse):
        if values[row].empty:
            return f"{labels[row]} has no {claim.metric} on {group} (N/A)"
    seeds = sorted(set(values[better].index) & set(values[worse].index))
    if not seeds:
        return (
            f"{labels[better]} and {labels[worse]} share no seed on {group} ({labels[better]}: "
            f"{', '.join(map(str, sorted(values[better].index)))}; {labels[worse]}: "
            f"{', '.join(map(str, sorted(values[worse].index)))}); run both with the same --seeds"
        )
    test = paired([float(values[better][s]) for s in seeds], [float(values[worse][s]) for s in seeds])
    return len(seeds), test.difference, test.p


def metric_names(frame: pd.DataFrame) -> list[str]:
    """The metrics the cells of ``frame`` hold: the paper's five first, then as found."""
    found = [column for column in frame.columns if column not in NOT_METRICS]
    return [*(m for m in METRIC_COLUMNS if m in found), *(m for m in found if m not in METRIC_COLUMNS)]


def _problems_text(problems: list[str], limit: int = 3) -> str:
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def compare_lines(
    frame: pd.DataFrame,
    mode: str,
    better: str,
    worse: str,
    metric: str = "F1",
    seeds: Sequence[int] | None = None,
) -> list[str]:
    """One line per dataset and pair of rows: is ``better``'s ``metric`` higher than
    ``worse``'s? The mean difference over the seeds both rows share and a paired t-test; then a
    ``not compared:`` line for each pair that could not be compared, and why. Nothing to
    compare at all is an error that says why (``seeds``: only the cells of these seeds)."""
    known = metric_names(frame)
    if not frame.empty and metric not in known:
        raise RatbenchError(
            f"unknown --compare-metric {metric!r}{did_you_mean(metric, known)}; the cells have: {', '.join(known)}"
        )
    cell_frame, _ = table_cells(frame, mode, seeds=seeds)
    pair = f"--compare {better},{worse}"
    groups = {
        name: list(dict.fromkeys(cell_frame.loc[cell_frame["method"] == name, "group"])) for name in (better, worse)
    }
    for name in (better, worse):
        if not groups[name]:
            found = ", ".join(sorted(set(cell_frame["method"])))
            raise RatbenchError(f"{pair}: no finished cells of {name} (the cells are of {found})")
    if not set(groups[better]) & set(groups[worse]):
        raise RatbenchError(
            f"{pair}: no dataset has finished cells of both methods ({better}: {', '.join(groups[better])}; "
            f"{worse}: {', '.join(groups[worse])})"
        )
    labels = labels_for(list(dict.fromkeys(cell_frame["row"])))
    claim = Claim("compare", f"{better} beats {worse}", better, worse, metric, (), "--compare")
    problems: list[str] = []
    lines = []
    for v in check_claims(cell_frame, labels, [claim], problems):
        p = "untested" if v.p is None else f"p = {v.p:.3g}"
        lines.append(
            f"{v.better} vs {v.worse}, {metric} ({mode} mode) on {v.dataset}: mean difference {v.difference:+.1f} "
            f"over {v.seeds} seed{'s' if v.seeds != 1 else ''} paired by seed, paired t-test {p}: {v.verdict}"
        )
    if not lines:
        raise RatbenchError(f"{pair}: nothing to compare: {_problems_text(problems)}")
    return lines + [f"not compared: {problem}" for problem in problems]


def _seed_of(cell: str) -> int | None:
    match = re.search(r"seed(\d+)$", cell)
    return int(match.group(1)) if match else None


def failed_cells(results_dir: Path, seeds: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """``(cell id, first line of error.txt)`` of every cell that failed and has no result (of
    ``seeds`` only, when given)."""
    return [(cell, reason) for cell, reason in store.failed_cells(results_dir) if _of_seeds(cell, seeds)]


def corrupt_cells(results_dir: Path, seeds: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """``(cell id, what is wrong)`` of every cell whose ``metrics.json`` is corrupt: the tables
    leave it out, so the report must say it is there (of ``seeds`` only, when given)."""
    return [(cell, reason) for cell, reason in store.corrupt_cells(results_dir) if _of_seeds(cell, seeds)]


def _of_seeds(cell: str, seeds: Sequence[int] | None) -> bool:
    return seeds is None or _seed_of(cell) in seeds


@dataclass(frozen=True)
class GridSlot:
    """A row of a grid on one dataset: the method, its label (with its run's own settings) and
    the variant ``ratbench run --grid`` gives its cells."""

    method: str
    label: str
    group: str
    variant: Mapping[str, Any]


def grid_slots(grid: PaperGrid) -> list[GridSlot]:
    """Every (row, dataset.subset) of ``grid``, with its variant from the grid's own expansion
    (as ``run --grid`` makes it; the data files need not be here). A value that holds the data
    folder holds ``DATA_DIR_STANDIN`` instead."""
    from ratbench.execution.grid import expand, parse_sets
    from ratbench.execution.paper_grids import grid_requests

    slots = []
    standin = Path(DATA_DIR_STANDIN)
    for run, (methods, datasets, sets) in zip(grid.runs, grid_requests(grid, standin), strict=True):
        specs = expand(
            methods,
            datasets,
            [0],
            preset=grid.preset,
            sets=parse_sets(sets),
            data_dir=standin,
            on_missing=lambda _: None,  # the data need not be here: only the variants are wanted
        )
        for spec in specs:
            own = {k.partition(".")[2]: v for k, v in run.sets.items() if k.partition(".")[0] == spec.method}
            label = f"{spec.method} ({', '.join(f'{k}={v}' for k, v in own.items())})" if own else spec.method
            slots.append(GridSlot(spec.method, label, f"{spec.dataset}.{spec.subset}", spec.variant or {}))
    return slots


def _same_value(recorded: Any, expected: Any) -> bool:
    """Equal, or, for a value that names a file in the grid's data folder, the same file name
    in any folder (``glove:/data/glove.6B.100d.txt`` for ``glove:{data_dir}/glove.6B.100d.txt``)."""
    if isinstance(expected, str) and DATA_DIR_STANDIN in expected and isinstance(recorded, str):
        prefix, _, suffix = expected.partition(DATA_DIR_STANDIN)
        return recorded.startswith(prefix) and Path(recorded[len(prefix) :]).name == Path(suffix).name
    return recorded == expected


def fills(variant: Mapping[str, Any], slot: GridSlot) -> bool:
    """Whether a cell of ``variant`` fills ``slot``: the grid's preset, method and data settings
    and no ``--limit``, whatever the ``--precision`` or ``--cpu-threads`` (run options)."""
    expected = slot.variant
    data, wanted = variant.get("data") or {}, expected.get("data") or {}
    return (
        variant.get("preset") == expected.get("preset")
        and (variant.get("method") or {}) == (expected.get("method") or {})
        and variant.get("limit") == expected.get("limit")
        and set(data) == set(wanted)
        and all(_same_value(data[key], wanted[key]) for key in wanted)
    )


def grid_coverage(cell_frame: pd.DataFrame, grid: PaperGrid, seeds: Sequence[int]) -> tuple[list[str], list[str]]:
    """The cells of ``grid`` x ``seeds`` with no finished cell of the grid's variant, as
    ``method (settings) on dataset.subset seed N``, and the finished cells of the grid's
    methods, datasets and seeds that fill none of its slots (other settings: a demo smoke run)."""
    slots = grid_slots(grid)
    variants = {row: json.loads(row.variant) or {} for row in dict.fromkeys(cell_frame["row"])}
    filled: set[tuple[int, int]] = set()  # (slot number, seed)
    used: set[Any] = set()
    for number, slot in enumerate(slots):
        mine = cell_frame[(cell_frame["method"] == slot.method) & (cell_frame["group"] == slot.group)]
        for index, row, seed in zip(mine.index, mine["row"], mine["seed"], strict=True):
            if fills(variants[row], slot):
                filled.add((number, int(seed)))
                used.add(index)
    missing = [
        f"{slot.label} on {slot.group} seed {seed}"
        for number, slot in enumerate(slots)
        for seed in seeds
        if (number, seed) not in filled
    ]
    methods, groups = {slot.method for slot in slots}, {slot.group for slot in slots}
    others = cell_frame[
        cell_frame["method"].isin(methods)
        & cell_frame["group"].isin(groups)
        & cell_frame["seed"].isin(seeds)
        & ~cell_frame.index.isin(list(used))
    ]
    other = [
        f"{method} on {group} seed {seed} ({describe(variants[row])})"
        for method, group, seed, row in zip(
            others["method"], others["group"], others["seed"], others["row"], strict=True
        )
    ]
    return missing, other


def _versions(frame: pd.DataFrame) -> list[str]:
    lines = []
    recorded = [json.loads(v) for v in frame.get("versions", pd.Series(dtype=str)).dropna().unique()]
    for key, name in (("ratbench", "ratbench"), ("git", "git revision"), ("torch", "torch"), ("python", "Python")):
        values = sorted({str(v.get(key)) for v in recorded if v.get(key)})
        lines.append(f"- {name}: {', '.join(values) if values else 'not recorded'}")
    for column, name in (("eval_version", "evaluator version"), ("pipeline_version", "pipeline version")):
        values = sorted({str(v) for v in frame[column].dropna().unique()}) if column in frame else []
        lines.append(f"- {name}: {', '.join(values) if values else 'not recorded'}")
    return lines


def _tables(frame: pd.DataFrame, mode: str, cell_frame: pd.DataFrame, seeds: Sequence[int] | None) -> list[str]:
    """Each paper table the cells fill, with the paper's rows; a generic table of the rest."""
    parts, shown = [], set()
    for name, layout in LAYOUTS.items():
        if layout.groups is None:
            continue
        fits = cell_frame[
            cell_frame["group"].isin(layout.groups) & (cell_frame["row"].map(row_encoder) == layout.encoder)
        ]
        if fits.empty:
            continue
        shown |= set(fits.index)
        request = TableRequest(mode=mode, layout=name, seeds=seeds, with_paper=True)
        parts += [f"### {layout.title}", "", render(frame, request)]
    rest = cell_frame.drop(index=list(shown))
    if not rest.empty:
        groups = list(dict.fromkeys(rest["group"]))
        title = "Other cells" if shown else "All cells"
        parts += [f"### {title} (datasets or encoders of no paper table)", ""]
        parts.append(render(frame, TableRequest(mode=mode, datasets=groups, seeds=seeds)))
    return parts


def _claims_table(verdicts: list[Verdict]) -> str:
    rows = [
        [
            v.claim.statement,
            v.dataset if v.paper_dataset else f"{v.dataset} (not the paper's)",
            f"{v.better} vs {v.worse}",
            v.claim.metric,
            v.seeds,
            f"{v.difference:+.2f}",
            "n/a" if v.p is None else f"{v.p:.3g}",
            v.verdict,
        ]
        for v in verdicts
    ]
    headers = ["Claim", "Dataset", "Rows", "Metric", "Seeds", "Mean diff.", "p (paired t)", "Verdict"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _listing(title: str, items: list[str], limit: int = 200) -> list[str]:
    """A count line, then up to ``limit`` items as a Markdown list."""
    lines = [title, ""]
    if items:
        lines += [f"- {item}" for item in items[:limit]]
        lines += [f"- ... and {len(items) - limit} more"] if len(items) > limit else []
        lines.append("")
    return lines


def _no_claim_reason(cell_frame: pd.DataFrame, claims: Sequence[Claim], problems: list[str]) -> str:
    """Why no claim could be checked, in words."""
    if problems:
        return _problems_text(problems)
    better = sorted({claim.better for claim in claims})
    mine = cell_frame[cell_frame["method"].isin(better)]
    if mine.empty:
        return f"there are no finished cells of {', '.join(better)} (each claim compares it with a baseline)"
    beside = cell_frame[~cell_frame["method"].isin(better) & cell_frame["group"].isin(set(mine["group"]))]
    if beside.empty:
        return f"no dataset has a baseline beside {', '.join(better)}"
    return "no pair of rows the claims compare"


def build_report(
    results_dir: Path,
    frame: pd.DataFrame,
    mode: str = "reference",
    grid: PaperGrid | None = None,
    seeds: Sequence[int] | None = None,
) -> str:
    """The report as Markdown. ``seeds``: only the cells of these seeds (failed and corrupt ones
    too); ``grid``, what was meant to run over ``seeds`` (default 1-5), adds the missing cells."""
    if frame.empty:
        raise RatbenchError(f"no finished cells in {results_dir}; run `ratbench run ...` first or pass --results-dir")
    cell_frame, hidden = table_cells(frame, mode, seeds=seeds)
    labels = labels_for(list(dict.fromkeys(cell_frame["row"])))
    counts = cell_frame.groupby(["method", "group"]).size().unstack(fill_value=0)
    failed = failed_cells(results_dir, seeds)
    corrupt = corrupt_cells(results_dir, seeds)
    grid_seeds = list(seeds) if seeds is not None else list(DEFAULT_GRID_SEEDS)
    missing, other = grid_coverage(cell_frame, grid, grid_seeds) if grid is not None else ([], [])
    claims = load_claims()
    problems: list[str] = []
    verdicts = check_claims(cell_frame, labels, claims, problems)
    lines = [
        "# ratbench reproduction report",
        "",
        f"Results folder `{results_dir}`, {len(cell_frame)} finished cells ({mode} mode), "
        f"report written {time.strftime('%Y-%m-%d %H:%M:%S %z')}.",
        f"Grid: {grid.name} ({grid.title}), seeds {', '.join(map(str, grid_seeds))}."
        if grid
        else "Grid: not given (--grid).",
    ]
    if seeds is not None:
        lines.append(f"Seeds: {seed_text(seeds)} (--seeds); the cells of other seeds are left out.")
    lines += [
        "",
        "## What ran",
        "",
        *_versions(frame),
        "",
        "Finished cells (seeds) per method and dataset:",
        "",
        tabulate(counts.reset_index().values.tolist(), headers=["method", *counts.columns], tablefmt="github"),
        "",
    ]
    if hidden:
        lines += [f"{hidden} stale cell(s) are left out (older versions or superseded configurations).", ""]
    lines += _listing(f"Failed cells: {len(failed)}.", [f"`{cell}`: {reason}" for cell, reason in failed])
    lines += _listing(
        f"Corrupt cells: {len(corrupt)}."
        + (" The tables leave them out; rerun them with `ratbench run`." if corrupt else ""),
        [f"`{cell}`: {reason}" for cell, reason in corrupt],
    )
    if grid is not None:
        lines += _listing(f"Missing cells of the grid: {len(missing)}.", missing)
        if other:
            lines += _listing(
                f"Cells of the grid's methods, datasets and seeds run with other settings, which fill none of its "
                f"slots: {len(other)}.",
                other,
            )
    lines += ["## Tables", "", *_tables(frame, mode, cell_frame, seeds), "## Claims of the paper", ""]
    if verdicts:
        lines += [
            f"Verdict: holds = mean difference > 0 with p < {SIGNIFICANCE} (paired t-test over the shared seeds).",
            "",
            _claims_table(verdicts),
            "",
            "Sources: " + "; ".join(f"{c.statement}: {c.source}" for c in dict.fromkeys(v.claim for v in verdicts)),
        ]
        if problems:
            lines += ["", *_listing(f"Pairs of rows not compared: {len(problems)}.", problems)]
    else:
        lines.append(f"No claim of the paper could be checked: {_no_claim_reason(cell_frame, claims, problems)}.")
    return "\n".join(lines).rstrip() + "\n"
