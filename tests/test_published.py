"""The packaged published rows match the tables of the paper's text, number for number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ratbench.reporting.published import counterpart, load_published

PAPER = Path(__file__).resolve().parents[1] / ".." / "shared" / "docs" / "paper.txt"
GROUPS = {
    "Beer-Appearance": "beer.appearance",
    "Beer-Aroma": "beer.aroma",
    "Beer-Palate": "beer.palate",
    "Hotel-Location": "hotel.location",
    "Hotel-Service": "hotel.service",
    "Hotel-Cleanliness": "hotel.cleanliness",
    "MultiRC": "eraser.multirc",
    "FEVER": "eraser.fever",
}


def _numbers(cells: list[str]) -> list[tuple[float, float | None] | None]:
    values = []
    for cell in cells:
        if cell == "N/A":
            values.append(None)
            continue
        mean, std = re.fullmatch(r"(\d+\.\d) \((\d+\.\d|n/a)\)", cell).groups()
        values.append((float(mean), None if std == "n/a" else float(std)))
    return values


def _paper_tables() -> dict[str, dict[tuple[str, str], dict[str, object]]]:
    """``table -> (row label, group) -> metric -> value`` read from the paper's text."""
    lines = PAPER.read_text(encoding="utf-8").splitlines()
    tables: dict[str, dict[tuple[str, str], dict[str, object]]] = {"table1": {}, "table2": {}, "table3": {}}
    for index, line in enumerate(lines):
        fields = [field for field in line.split("\t") if field.strip()]
        if not fields or fields[0] != "Methods":
            continue
        groups = [GROUPS[field.strip()] for field in fields if field.strip() in GROUPS]
        if groups and groups[0].startswith("eraser"):
            name, metrics = "table3", ["S", "Acc", "P", "R", "F1"]
        elif groups:
            name, metrics = "table1", ["S", "Acc", "P", "R", "F1"]
        else:
            name, metrics, groups = "table2", ["S", "P", "R", "F1"], ["beer.appearance"]
        for row in lines[index + 1 :]:
            cells = [cell.strip() for cell in row.split("\t") if cell.strip()]
            if not cells:
                break
            if cells[0] in ("S", "Datasets"):  # the column-name line
                continue
            label = re.sub(r"\s*\(ours\)$|\(ours\)$", "", cells[0]).strip()
            values = _numbers(cells[1:])
            assert len(values) == len(metrics) * len(groups), row
            for position, group in enumerate(groups):
                chunk = values[position * len(metrics) : (position + 1) * len(metrics)]
                tables[name][label, group] = dict(zip(metrics, chunk, strict=True))
    return tables


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper's text is in ../shared/docs")
def test_packaged_rows_are_the_papers_numbers() -> None:
    paper = _paper_tables()
    assert len(paper["table1"]) == 8 * 6 and len(paper["table2"]) == 5 and len(paper["table3"]) == 3 * 2
    n_seeds, tables = load_published()
    assert n_seeds == 5
    for name, table in tables.items():
        packaged = {}
        for row in table.rows:
            for group, values in row.results.items():
                packaged[row.label, group] = {m: v for m, v in values.items() if name != "table2" or m != "Acc"}
        assert packaged == paper[name], name


def test_counterparts_tell_nir_from_a2r_by_its_noise() -> None:
    _, tables = load_published()
    assert counterpart(tables["table3"], "nir", {}).label == "NIR*"
    assert counterpart(tables["table3"], "nir", {"noise_p": 0.0}).label == "A2R*"
    assert counterpart(tables["table3"], "nir", {"noise_p": 0.3}) is None
    assert counterpart(tables["table1"], "nir_rnp", {"epochs": 20}).label == "NIR"
    assert counterpart(tables["table2"], "inter_rat", {}) is None
    assert {row.source for row in tables["table2"].rows if row.label.endswith("*")} == {
        "CR (Zhang et al., 2023), copied into VER Table 2"
    }
