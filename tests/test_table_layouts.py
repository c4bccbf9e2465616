"""The paper's table layouts (`ratbench table --layout table1|table2|table3`, `--with-paper`),
checked against golden files on results folders written here (no training).

Set RATBENCH_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change (and read
the diff before committing it).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_cell

from ratbench.cli import main
from ratbench.execution.paper_grids import get_grid
from ratbench.paper_tables import table_files
from ratbench.reporting.layouts import LAYOUTS, get_layout, parse_metrics
from ratbench.reporting.published import load_published

GOLDEN = Path(__file__).parent / "golden" / "tables"
TABLE1_METHODS = ["ver", "rnp", "lime", "attention", "a2i", "dmr", "nir_rnp", "inter_rat"]  # not the paper's order
TABLE1_GROUPS = ["beer.appearance", "beer.aroma", "beer.palate", "hotel.location", "hotel.service"]  # no cleanliness


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for m, method in enumerate(TABLE1_METHODS):
        for g, group in enumerate(TABLE1_GROUPS):
            seeds = (1, 2) if (method, group) == ("dmr", "beer.aroma") else (1, 2, 3)  # one short cell: [n=2]
            for seed in seeds:
                write_cell(root, method, group, seed, 40.0 + 3 * m + g + seed)
    bert = {"data.encoder": "hf:bert-base-uncased", "data.max_len": 120}
    for seed in (1, 2, 3):
        write_cell(root, "rnp", "beer.appearance", seed, 30.0 + seed, data_changes=bert)
        write_cell(root, "ver", "beer.appearance", seed, 45.0 + seed, data_changes=bert)
        for target, base in (("eraser.multirc", 20.0), ("eraser.fever", 38.0)):
            eraser = {**bert, "data.max_len": 512}
            write_cell(root, "nir", target, seed, base + seed, data_changes=eraser)
            write_cell(root, "nir", target, seed, base - 3 + seed, {"noise_p": 0.0}, eraser)
            write_cell(root, "ver", target, seed, base + 2 + seed, data_changes=eraser)
    return root


def _table(results: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["table", "--results-dir", str(results), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("RATBENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; see the module docstring"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("table1.md", ["--layout", "table1"]),
        ("table1_paper.md", ["--layout", "table1", "--with-paper"]),
        ("table1_paper.tex", ["--layout", "table1", "--with-paper", "--format", "latex"]),
        ("table2_paper.md", ["--layout", "table2", "--with-paper"]),
        ("table3.md", ["--layout", "table3"]),
        ("table3_paper.md", ["--layout", "table3", "--with-paper"]),
        ("table3_paper.tex", ["--layout", "table3", "--with-paper", "--format", "latex"]),
    ],
)
def test_layouts_match_their_golden_files(results: Path, name: str, args: list[str]) -> None:
    _check_golden(name, _table(results, *args))


def _rows(text: str) -> dict[str, list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_table1_in_the_papers_order_with_missing_columns_bold_and_short_cells(results: Path) -> None:
    text = _table(results, "--layout", "table1")
    rows = _rows(text)
    assert list(rows) == ["lime", "attention", "rnp", "inter_rat", "nir_rnp", "dmr", "a2i", "ver"]
    header = next(line for line in text.splitlines() if line.startswith("|"))
    assert "Beer-Appearance S" in header and "Hotel-Cleanliness S" in header  # a column group with no result
    assert rows["rnp"][25:] == ["-"] * 5  # Hotel-Cleanliness
    assert rows["lime"][1] == "N/A"  # post-hoc Acc
    assert rows["inter_rat"][4] == "**63.0 (1.0)**" and rows["ver"][4] == "42.0 (1.0)"  # 3 points per method
    assert "[n=2]" in rows["dmr"][5]
    assert "bert" not in text and "nir" not in rows  # transformer rows belong to Tables 2 and 3


def test_with_paper_deltas_and_p_values_are_welch_tests_against_the_published_rows(results: Path) -> None:
    rows = _rows(_table(results, "--layout", "table3", "--with-paper", "--datasets", "eraser.fever"))
    assert list(rows) == ["A2R* [paper]", "NIR* [paper]", "VER [paper]", "nir", "nir (noise_p=0.0)", "rnp", "ver"]
    assert set(rows["rnp"]) == {"-"}  # a row of the grid that no cell fills
    # nir on FEVER: piece F1 = 38 + seed - 1 -> 39.0 (1.0) over 3 seeds, published NIR* 39.5 (2.5)
    assert rows["nir"][4] == "39.0 (1.0)" and rows["nir"][5] == "-0.5 (p=0.71)"
    assert rows["nir (noise_p=0.0)"][5].startswith("-0.7")  # 36.0 against A2R*'s 36.7
    assert rows["NIR* [paper]"][5] == ""  # published rows have no delta


def test_filters_metrics_levels_and_formats(results: Path) -> None:
    rows = _rows(_table(results, "--layout", "table1", "--methods", "rnp,ver", "--datasets", "hotel", "--metrics=F1"))
    assert list(rows) == ["rnp", "ver"] and len(rows["rnp"]) == 3  # location, service, cleanliness
    word = _rows(_table(results, "--layout", "table3", "--level", "word", "--metrics", "F1"))
    piece = _rows(_table(results, "--layout", "table3", "--metrics", "F1"))
    assert word["ver"][0] == "**24.0 (1.0)**" and piece["ver"][0] == "**23.0 (1.0)**"
    html = _table(results, "--layout", "table2", "--with-paper", "--format", "html")
    assert "<table>" in html and "<b>46.0 (1.0)</b>" not in html and "<b>47.2 (7.9)</b>" in html
    csv = _table(results, "--layout", "table2", "--with-paper", "--format", "csv")
    assert "CR* [paper],,,,beer.appearance,F1,39.0,1.5,5,,CR (Zhang et al., 2023)" in csv.replace('"', "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--with-paper"], "--with-paper needs a paper layout"),
        (["--layout", "table2", "--datasets", "hotel"], "--datasets hotel: none of them is a column"),
        (["--metrics", "f1"], "unknown metric 'f1' (did you mean 'F1'?)"),
        (["--layout", "table2", "--methods", "lime"], "no rows for --layout table2: none of the finished cells"),
        (["--methods", "cr"], "no finished cells of --methods cr"),
    ],
)
def test_bad_table_requests_are_one_line_errors(results: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["table", "--results-dir", str(results), *args])
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_piece_metrics_are_metrics_a_table_shows(results: Path) -> None:
    """D25: the piece_* figures of metrics.json are --metrics like any other."""
    assert parse_metrics("piece_F1,F1") == ("piece_F1", "F1")
    rows = _rows(_table(results, "--layout", "table2", "--level", "word", "--metrics", "piece_F1,F1"))
    assert rows["ver"] == ["46.0 (1.0)", "**47.0 (1.0)**"]  # pieces: F1 - 1


@pytest.mark.parametrize("fmt", ["github", "csv"])
def test_with_paper_beside_no_results_shows_the_papers_rows_and_ours_as_dashes(tmp_path: Path, fmt: str) -> None:
    """A paper table beside an empty (or absent) results folder: the paper's rows, and a row of
    - for each row of its grid."""
    text = _table(tmp_path / "none", "--layout", "table3", "--with-paper", "--format", fmt)
    if fmt == "csv":
        assert set(pd.read_csv(io.StringIO(text))["label"]) == {"A2R* [paper]", "NIR* [paper]", "VER [paper]"}
        return
    rows = _rows(text)
    assert list(rows) == ["A2R* [paper]", "NIR* [paper]", "VER [paper]", "nir", "nir (noise_p=0.0)", "rnp", "ver"]
    assert all(set(rows[label]) == {"-"} for label in ("nir", "nir (noise_p=0.0)", "rnp", "ver"))
    assert "S, P, R and F1 count word pieces (as CR and NIR do)." in text


def test_each_table_is_one_data_file_its_layout_grid_and_published_rows_read() -> None:
    """A table's file is the one place its title, columns, level, rows and published numbers are
    written: its layout, grid and published table read them there (so they have one title), and
    a key no reader knows is a typo."""
    files = table_files()
    assert sorted(files) == ["leaderboard", "table1", "table2", "table3"]
    assert list(LAYOUTS) == ["generic", "table1", "table2", "table3"]  # the paper's: what `ratbench report` shows
    for name, table in files.items():
        assert set(table) <= {"kind", "title", "level", "columns", "base", "layout", "grid", "published"}, name
        assert set(table["layout"]) <= {"metrics", "encoder", "method_order", "published_column"}, name
        assert set(table["grid"]) <= {"preset", "sets", "part"}, name
        layout, grid = get_layout(name), get_grid(name)
        assert layout.title == grid.title == table["title"] and layout.groups == grid.datasets, name
        assert len(layout.group_titles) == len(layout.groups or ()), name
        if table["kind"] == "paper":
            published = load_published()[1][name]
            assert (published.title, published.metric_level) == (layout.title, layout.level), name
            assert {group for row in published.rows for group in row.results} == set(layout.groups or ()), name
            assert set(grid.methods) <= set(layout.method_order), name
        else:
            assert table["kind"] == "own" and name not in load_published()[1], name
    leaderboard, table1 = get_layout("leaderboard"), get_layout("table1")
    assert (leaderboard.groups, leaderboard.group_titles) == (table1.groups, table1.group_titles)
    assert table1.group_title("hotel.service") == "Hotel-Service" and table1.group_title("x.y") == "x.y"
