"""`ratbench report`: what ran, the paper's tables beside its numbers, the paper's claims
checked with paired t-tests, failed and missing cells (results written here, no training)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_cell

from ratbench.cli import main
from ratbench.paper_grids import get_grid
from ratbench.report import build_report, check_claims, load_claims
from ratbench.results import load_results
from ratbench.tables import labels_for, table_cells


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """VER 3 points of F1 above RNP on two beer aspects (seeds 1-3, the gap grows with the seed
    on aroma), LIME far below, one failed cell."""
    for seed in (1, 2, 3):
        for target in ("beer.appearance", "beer.aroma"):
            gap = 3.0 if target == "beer.appearance" else 1.0 + seed
            write_cell(tmp_path, "rnp", target, seed, 60.0 + seed)
            write_cell(tmp_path, "ver", target, seed, 60.0 + seed + gap)
            write_cell(tmp_path, "lime", target, seed, 30.0)
    failed = tmp_path / "runs" / "a2i" / "beer.palate" / "c-0123456789" / "seed1"
    failed.mkdir(parents=True)
    (failed / "error.txt").write_text("NonFiniteError: epoch 3: training became non-finite\ntraceback...\n")
    return tmp_path


def test_claims_get_paired_t_test_verdicts(results: Path) -> None:
    cell_frame, _ = table_cells(load_results(results), "reference")
    labels = labels_for(list(dict.fromkeys(cell_frame["row"])))
    verdicts = check_claims(cell_frame, labels, load_claims())
    found = {(v.claim.id, v.dataset, v.worse): v for v in verdicts}
    constant = found["ver-beats-rnp", "beer.appearance", "rnp"]
    assert constant.seeds == 3 and constant.difference == pytest.approx(3.0)
    assert constant.p is None and constant.verdict.endswith("(untested)")  # no variance: no t-test
    growing = found["ver-beats-rnp", "beer.aroma", "rnp"]  # differences 2, 3, 4: t = 3 / (1 / sqrt 3), df 2
    assert growing.difference == pytest.approx(3.0) and growing.p == pytest.approx(0.0351, abs=1e-4)
    assert growing.verdict == "holds"
    assert found["ver-beats-every-baseline", "beer.aroma", "lime"].verdict == "holds"
    assert ("ver-accuracy-on-beer", "beer.aroma", "rnp") in found  # Acc: equal seeds, equal values
    assert found["ver-accuracy-on-beer", "beer.aroma", "rnp"].verdict == "does not hold"
    assert all(v.paper_dataset for v in verdicts)


def test_the_report_says_what_ran_failed_and_is_missing(results: Path) -> None:
    text = build_report(results, load_results(results), "reference", get_grid("table1"), [1, 2, 3])
    assert text.startswith("# ratbench reproduction report")
    assert "- git revision: abc123" in text and "- torch: 2.test" in text
    assert "Failed cells: 1." in text and "a2i/beer.palate/c-0123456789/seed1`: NonFiniteError: epoch 3" in text
    # table1 x seeds 1-3 = 144 cells, 18 finished
    assert "Missing cells of the grid: 126." in text and "- inter_rat on hotel.cleanliness seed 3" in text
    assert "### Table 1: results on standard benchmarks (BiGRU encoder)" in text
    assert "| VER [paper]" in text and "ΔF1 (p)" in text
    claim_rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if "| ver vs" in line
    ]
    assert [
        "VER's rationale F1 is higher than RNP's",
        "beer.aroma",
        "ver vs rnp",
        "F1",
        "3",
        "+3.00",
        "0.0351",
        "holds",
    ] in (claim_rows)


def test_cli_report_to_a_file_and_on_synthetic_cells(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    result = CliRunner().invoke(main, ["report", "--results-dir", str(results), "--out", str(out)])
    assert result.exit_code == 0 and result.stdout == f"report written to {out}\n"
    assert "## Claims of the paper" in out.read_text()
    synthetic = tmp_path / "synthetic"
    for seed in (1, 2):
        write_cell(synthetic, "rnp", "synthetic.appearance", seed, 50.0)
        write_cell(synthetic, "ver", "synthetic.appearance", seed, 55.0 + seed)
    result = CliRunner().invoke(main, ["report", "--results-dir", str(synthetic)])
    assert "### All cells (datasets or encoders of no paper table)" in result.stdout
    assert re.search(r"\| synthetic.appearance \(not the paper's\) +\| ver vs rnp +\| F1 +\| 2 ", result.stdout)
    bad = CliRunner().invoke(main, ["report", "--results-dir", str(results), "--grid", "table9"])
    assert bad.exit_code == 2 and "unknown grid 'table9'" in bad.stderr
    empty = CliRunner().invoke(main, ["report", "--results-dir", str(tmp_path / "none")])
    assert empty.exit_code == 2 and "no finished cells" in empty.stderr


def test_table_compare_prints_a_paired_test_per_dataset(results: Path) -> None:
    """`ratbench table --compare ver,rnp`: one line per dataset under the table; bad pairs are one line."""
    result = CliRunner().invoke(main, ["table", "--results-dir", str(results), "--compare", "ver,rnp"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == (
        "ver vs rnp, F1 (reference mode) on beer.aroma: mean difference +3.0 over 3 seeds paired by seed, "
        "paired t-test p = 0.0351: holds"
    )
    assert lines[-2].startswith("ver vs rnp, F1 (reference mode) on beer.appearance: mean difference +3.0")
    flipped = CliRunner().invoke(main, ["table", "--results-dir", str(results), "--compare", "rnp,ver"])
    assert flipped.stdout.splitlines()[-1].endswith("mean difference -3.0 over 3 seeds paired by seed, "
                                                    "paired t-test p = 0.0351: does not hold")  # fmt: skip
    for pair, message in (("ver", "give two methods"), ("ver,nir", "no dataset has finished cells of both")):
        bad = CliRunner().invoke(main, ["table", "--results-dir", str(results), "--compare", pair])
        assert bad.exit_code == 2 and message in bad.stderr


def test_rows_of_different_data_settings_are_never_compared(tmp_path: Path) -> None:
    """VER on padded batches is tested against RNP on padded batches only, not on bucketed ones."""
    padded = {"data.padding": "max_len"}
    for seed in (1, 2, 3):
        write_cell(tmp_path, "rnp", "beer.appearance", seed, 60.0 + seed)
        write_cell(tmp_path, "rnp", "beer.appearance", seed, 50.0 + seed, data_changes=padded)
        write_cell(tmp_path, "ver", "beer.appearance", seed, 55.0 + 2 * seed, data_changes=padded)
    result = CliRunner().invoke(main, ["table", "--results-dir", str(tmp_path), "--compare", "ver,rnp"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("ver ")]
    assert lines == [
        "ver vs rnp (data.padding=max_len), F1 (reference mode) on beer.appearance: mean difference +7.0 over "
        "3 seeds paired by seed, paired t-test p = 0.00673: holds"
    ]  # differences 6, 7, 8: t = 7 / (1 / sqrt 3), df 2
