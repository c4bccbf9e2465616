"""`ratbench report`: what ran, the paper's tables beside its numbers, the paper's claims
checked with paired t-tests, failed and missing cells (results written here, no training)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_cell

from ratbench.cli import main
from ratbench.errors import RatbenchError
from ratbench.execution.paper_grids import get_grid
from ratbench.reporting.report import build_report, check_claims, compare_lines, fills, grid_slots, load_claims
from ratbench.reporting.results import load_results
from ratbench.reporting.rows import labels_for, table_cells

TABLE1 = {"data.embeddings": "glove:/data/glove.6B.100d.txt"}  # what `run --grid table1 --data-dir /data` records


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """VER 3 points of F1 above RNP on two beer aspects (seeds 1-3, the gap grows with the seed
    on aroma), LIME far below, one failed cell; all run as ``run --grid table1`` runs them."""
    for seed in (1, 2, 3):
        for target in ("beer.appearance", "beer.aroma"):
            gap = 3.0 if target == "beer.appearance" else 1.0 + seed
            write_cell(tmp_path, "rnp", target, seed, 60.0 + seed, data_changes=TABLE1)
            write_cell(tmp_path, "ver", target, seed, 60.0 + seed + gap, data_changes=TABLE1)
            write_cell(tmp_path, "lime", target, seed, 30.0, data_changes=TABLE1)
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
    for pair, message in (("ver", "give two methods"), ("ver,nir", "no finished cells of nir (the cells are of")):
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


def test_a_cell_fills_a_grid_slot_only_with_the_grids_variant(tmp_path: Path) -> None:
    """D4: a slot of the grid is filled by a cell of its preset, settings and no --limit (its
    data folder may be any, its --precision too); a smoke cell of the same method, dataset and
    seed is listed as run with other settings, and its slot as missing."""
    table3 = get_grid("table3")
    nir = next(s for s in grid_slots(table3) if s.label == "nir" and s.group == "eraser.fever")
    assert nir.variant["data"]["data.encoder"] == "hf:bert-base-uncased"  # and NIR's own data settings
    assert fills(nir.variant, nir) and fills({**nir.variant, "precision": "bf16"}, nir)
    assert not fills({**nir.variant, "limit": 60}, nir) and not fills({**nir.variant, "preset": "demo"}, nir)
    assert not fills({**nir.variant, "method": {"noise_p": 0.0}}, nir)  # that is A2R's slot
    glove = next(s for s in grid_slots(get_grid("table1")) if s.method == "rnp")
    assert fills({**glove.variant, "data": {"data.embeddings": "glove:../shared/data/glove.6B.100d.txt"}}, glove)
    assert not fills({**glove.variant, "data": {"data.embeddings": "glove:/data/glove.840B.300d.txt"}}, glove)

    hf = {"data.encoder": "hf:bert-base-uncased"}
    write_cell(tmp_path, "ver", "eraser.fever", 1, 40.0, data_changes=hf)
    write_cell(tmp_path, "rnp", "eraser.fever", 1, 30.0, data_changes={"data.encoder": "hf:minilm"})
    text = build_report(tmp_path, load_results(tmp_path), "reference", table3, [1])
    assert "Missing cells of the grid: 7." in text and "- rnp on eraser.fever seed 1\n" in text
    assert "- ver on eraser.fever seed 1\n" not in text
    assert "- rnp on eraser.fever seed 1 (preset=paper, data.encoder=hf:minilm)" in text


def test_compare_says_why_nothing_was_compared(tmp_path: Path) -> None:
    """D19: an unknown metric, a method without cells, datasets not shared, other settings, no
    shared seed and an N/A metric each say so."""
    for seed in (1, 2):
        write_cell(tmp_path, "ver", "beer.aroma", seed, 50.0)
        write_cell(tmp_path, "rnp", "beer.aroma", seed + 2, 40.0)
        write_cell(tmp_path, "rnp", "beer.palate", seed, 40.0, data_changes={"data.max_len": 40})
        write_cell(tmp_path, "ver", "beer.palate", seed, 50.0)
        write_cell(tmp_path, "lime", "beer.palate", seed, 30.0, data_changes={"data.max_len": 40})
        write_cell(tmp_path, "a2i", "hotel.service", seed, 30.0)
    frame = load_results(tmp_path)
    cases = [
        (("ver", "rnp", "f1"), "unknown --compare-metric 'f1' (did you mean 'F1'?); the cells have: S, Acc, P, R, F1"),
        (("ver", "dmr", "F1"), "--compare ver,dmr: no finished cells of dmr (the cells are of a2i, lime, rnp, ver)"),
        (("ver", "a2i", "F1"), "no dataset has finished cells of both methods (ver: beer.aroma, beer.palate; a2i: "),
        (
            ("ver", "rnp", "F1"),
            "--compare ver,rnp: nothing to compare: ver and rnp (data.max_len=40) on beer.palate were run with "
            "different settings (ver: the preset's; rnp (data.max_len=40): data.max_len=40); ver and rnp share no "
            "seed on beer.aroma (ver: 1, 2; rnp: 3, 4); run both with the same --seeds",
        ),
        (("lime", "rnp", "Acc"), "--compare lime,rnp: nothing to compare: lime has no Acc on beer.palate (N/A)"),
    ]
    for (better, worse, metric), message in cases:
        with pytest.raises(RatbenchError) as caught:
            compare_lines(frame, "reference", better, worse, metric)
        assert message in str(caught.value)


def test_the_report_lists_corrupt_cells_and_keeps_to_its_seeds(results: Path) -> None:
    """D26: a corrupt metrics.json is listed (the tables leave it out); D27: --seeds picks the
    cells of the report, failed and corrupt ones too."""
    corrupt = next((results / "runs" / "rnp" / "beer.aroma").glob("*/seed3")) / "metrics.json"
    corrupt.write_text('{"status": "ok", "mo')
    text = build_report(results, load_results(results), "reference")
    assert "Corrupt cells: 1. The tables leave them out" in text and "/seed3`: not valid JSON" in text
    assert "Failed cells: 1." in text and "17 finished cells" in text
    two = build_report(results, load_results(results), "reference", seeds=[2])
    assert "Seeds: 2 (--seeds)" in two and "6 finished cells" in two
    assert "Corrupt cells: 0." in two and "Failed cells: 0." in two


def test_csv_with_compare_stays_csv_and_the_verdicts_go_to_stderr(results: Path) -> None:
    """D8: the prose verdicts of --compare never enter the CSV (stderr instead); in LaTeX they are comments."""
    args = ["table", "--results-dir", str(results), "--compare", "ver,rnp"]
    csv = CliRunner().invoke(main, [*args, "--format", "csv"])
    assert csv.exit_code == 0 and csv.stderr.startswith("ver vs rnp, F1 (reference mode) on beer.appearance")
    assert set(pd.read_csv(io.StringIO(csv.stdout))["method"]) == {"ver", "rnp", "lime"}
    latex = CliRunner().invoke(main, [*args, "--format", "latex"]).stdout
    assert latex.rstrip().splitlines()[-1].startswith("% ver vs rnp, F1 (reference mode) on beer.aroma")


def test_report_out_writes_through_a_symlink_and_never_over_a_fifo(results: Path, tmp_path: Path) -> None:
    """D12: --out through a symlink writes its target (the link stays); a FIFO is refused with one line."""
    (tmp_path / "real.md").write_text("old\n")
    (tmp_path / "link.md").symlink_to("real.md")
    result = CliRunner().invoke(main, ["report", "--results-dir", str(results), "--out", str(tmp_path / "link.md")])
    assert result.exit_code == 0 and (tmp_path / "link.md").is_symlink()
    assert (tmp_path / "real.md").read_text().startswith("# ratbench reproduction report")
    os.mkfifo(tmp_path / "fifo.md")
    fifo = CliRunner().invoke(main, ["report", "--results-dir", str(results), "--out", str(tmp_path / "fifo.md")])
    assert fifo.exit_code == 2 and fifo.stderr.count("\n") == 1 and "not a regular file" in fifo.stderr
    assert (tmp_path / "fifo.md").is_fifo()


def test_report_seeds_without_a_grid_are_applied(results: Path) -> None:
    """D27: report --seeds without --grid picks the cells (it was silently ignored)."""
    result = CliRunner().invoke(main, ["report", "--results-dir", str(results), "--seeds", "1-2"])
    assert result.exit_code == 0 and "12 finished cells" in result.stdout and "Seeds: 1-2 (--seeds)" in result.stdout
