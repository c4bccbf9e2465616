"""Bad input to ``ratbench table`` and ``ratbench report`` (issue 18: D4, D5, D8, D12, D19, D24-D27,
D31, D32, ``--with-paper`` beside no rows), each as a real ``ratbench`` process: the exit code, one
line saying what is wrong, and a table or report that is never garbage (a row is one method and
one variant, said in words; a grid slot is filled only by a cell of the grid's variant).

Results folders are written without training (``conftest.write_cell``: the spec and ids a run writes, with its
``--precision`` and ``--cpu-threads`` in the pipeline). The cases run as subprocesses three at a
time in a module fixture; each test then checks one.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from bad_input import Case, check_outcome, run_cases
from conftest import write_cell

from ratbench.execution import cells, store

HF = {"data.encoder": "hf:bert-base-uncased"}
GLOVE = {"data.embeddings": "glove:/data/glove.6B.100d.txt"}  # what `run --grid table1 --data-dir /data` records


def _ver_rnp(tmp: Path, rnp_seeds: tuple[int, ...] = (1, 2), rnp_data: dict | None = None) -> None:
    """VER on seeds 1-2 and RNP (on ``rnp_seeds``, with ``rnp_data``) on synthetic.appearance."""
    for seed in (1, 2):
        write_cell(tmp / "r", "ver", "synthetic.appearance", seed, 50.0 + seed)
    for seed in rnp_seeds:
        write_cell(tmp / "r", "rnp", "synthetic.appearance", seed, 40.0 + seed, data_changes=rnp_data)


def _threads_and_precision(tmp: Path) -> None:
    """D5's repro: bf16 seed 1, then fp32 seeds 1-2, then seed 3 on two threads (each its own config id)."""
    write_cell(tmp / "r", "rnp", "synthetic.appearance", 1, 45.0, precision="bf16")
    for seed in (1, 2):
        write_cell(tmp / "r", "rnp", "synthetic.appearance", seed, 40.0 + seed)
    write_cell(tmp / "r", "rnp", "synthetic.appearance", 3, 43.0, threads=2)


def _table3_smoke(tmp: Path) -> None:
    """A demo, hf:minilm, limit-60 smoke cell of RNP on FEVER, and VER on FEVER as Table 3's grid runs it."""
    smoke = {"data.encoder": "hf:minilm", "data.max_len": 128}
    write_cell(tmp / "r", "rnp", "eraser.fever", 1, 30.0, preset="demo", data_changes=smoke, limit=60)
    write_cell(tmp / "r", "ver", "eraser.fever", 1, 40.0, data_changes=HF)


def _corrupt(tmp: Path) -> None:
    _ver_rnp(tmp)
    folder = write_cell(tmp / "r", "rnp", "synthetic.appearance", 3, 43.0)
    (folder / store.METRICS_FILE).write_text('{"status": "ok", "modes": {"ref')


def _symlink(tmp: Path) -> None:
    _ver_rnp(tmp)
    (tmp / "real.md").write_text("old\n")
    (tmp / "link.md").symlink_to("real.md")


def _fifo(tmp: Path) -> None:
    _ver_rnp(tmp)
    os.mkfifo(tmp / "fifo.md")


def _beer_appearance(tmp: Path) -> None:
    for seed in (1, 2):
        write_cell(tmp / "r", "rnp", "beer.appearance", seed, 60.0 + seed, data_changes=GLOVE)


def _word_rule_first(tmp: Path) -> None:
    for seed in (1, 2):
        write_cell(tmp / "r", "rnp", "beer.appearance", seed, 30.0, data_changes={**HF, "data.word_rule": "first"})


def _csv_without_verdict(tmp: Path, out: str, err: str) -> bool:
    frame = pd.read_csv(io.StringIO(out))
    return set(frame["method"]) == {"ver", "rnp"} and not frame["label"].str.contains(" vs ").any()


def _d5_rows(tmp: Path, out: str, err: str) -> bool:
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| rnp")}
    return (
        set(rows) == {"rnp", "rnp (precision=bf16)"}
        and "42.0 (1.0)" in rows["rnp"]  # seeds 1-2 (one thread) and 3 (two threads): one row of 3 seeds
        and "[n=1]" in rows["rnp (precision=bf16)"]
        and "stale" not in out
        and "CPU threads" in " ".join(out.split())
    )


def _grid_slot_not_filled(tmp: Path, out: str, err: str) -> bool:
    return (
        "Missing cells of the grid: 7." in out
        and "- rnp on eraser.fever seed 1\n" in out  # the smoke cell does not fill the paper's slot
        and "- ver on eraser.fever seed 1\n" not in out  # the grid's own cell does
        and "rnp on eraser.fever seed 1 (preset=demo, data.encoder=hf:minilm" in out
    )


def _symlink_kept(tmp: Path, out: str, err: str) -> bool:
    link, real = tmp / "link.md", tmp / "real.md"
    return link.is_symlink() and real.read_text().startswith("# ratbench reproduction report")


def _paper_beside_nothing(tmp: Path, out: str, err: str) -> bool:
    """Table 1's paper rows, and ours (VER and the seven others) as rows of -."""
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines() if line.startswith("| ")}
    return "VER [paper]" in rows and {cell.strip() for cell in rows["ver"]} == {"-"} and "synthetic" not in out


def _says(text: str) -> Callable[[Path, str, str], bool]:
    """A check that stdout says ``text`` (line breaks aside)."""
    return lambda tmp, out, err: text in " ".join(out.split())


TABLE = ["table", "--results-dir", "{tmp}/r"]
REPORT = ["report", "--results-dir", "{tmp}/r"]
CASES: dict[str, Case] = {
    # D4: a grid slot is filled only by a cell of the grid's variant
    "d4-smoke-cell-fills-no-grid-slot": Case(
        [*REPORT, "--grid", "table3", "--seeds", "1"], 0, "", lines=0, prepare=_table3_smoke,
        check=_grid_slot_not_filled,
    ),
    # D5: --cpu-threads cells are seeds of one row, --precision cells rows of their own
    "d5-threads-one-row-precision-labelled": Case(
        TABLE, 0, "", lines=0, prepare=_threads_and_precision, check=_d5_rows,
    ),
    # D8: the CSV stays CSV; the verdict goes to stderr
    "d8-csv-compare": Case(
        [*TABLE, "--format", "csv", "--compare", "ver,rnp"], 0, "ver vs rnp, F1 (reference mode) on synthetic.",
        prepare=_ver_rnp, check=_csv_without_verdict,
    ),
    # D12: report --out through a symlink, never over a FIFO
    "d12-report-out-symlink": Case(
        [*REPORT, "--out", "{tmp}/link.md"], 0, "", lines=0, prepare=_symlink, check=_symlink_kept,
    ),
    "d12-report-out-fifo": Case(
        [*REPORT, "--out", "{tmp}/fifo.md"], 2, "error: --out {tmp}/fifo.md: not a regular file", prepare=_fifo,
        check=lambda tmp, out, err: (tmp / "fifo.md").is_fifo(),
    ),
    # D19: the real cause of a failed --compare
    "d19-unknown-compare-metric": Case(
        [*TABLE, "--compare", "ver,rnp", "--compare-metric", "nope"], 2,
        "error: unknown --compare-metric 'nope'; the cells have: S, Acc, P, R, F1", prepare=_ver_rnp,
        check=lambda tmp, out, err: out == "",
    ),
    "d19-no-shared-seed": Case(
        [*TABLE, "--compare", "ver,rnp"], 2,
        "error: --compare ver,rnp: nothing to compare: ver and rnp share no seed on synthetic.appearance "
        "(ver: 1, 2; rnp: 3, 4); run both with the same --seeds",
        prepare=lambda tmp: _ver_rnp(tmp, rnp_seeds=(3, 4)),
    ),
    "d19-metric-not-available": Case(
        [*TABLE, "--compare", "lime,rnp", "--compare-metric", "Acc"], 2,
        "error: --compare lime,rnp: nothing to compare: lime has no Acc on synthetic.appearance (N/A)",
        prepare=lambda tmp: [write_cell(tmp / "r", m, "synthetic.appearance", 1, 40.0) for m in ("lime", "rnp")],
    ),
    "d19-different-data-settings": Case(
        [*TABLE, "--compare", "ver,rnp"], 2,
        "error: --compare ver,rnp: nothing to compare: ver and rnp on synthetic.appearance were run with "
        "different settings (ver: the preset's; rnp: data.max_len=40)",
        prepare=lambda tmp: _ver_rnp(tmp, rnp_data={"data.max_len": 40}),
    ),
    "d19-report-says-why-no-claim": Case(
        REPORT, 0, "", lines=0, prepare=lambda tmp: _ver_rnp(tmp, rnp_seeds=(3, 4)),
        check=_says("No claim of the paper could be checked: ver and rnp share no seed on synthetic.appearance"),
    ),
    # D24: --seeds is a list of seeds, as in run, show and report
    "d24-table-seeds-range": Case(
        [*TABLE, "--seeds", "1-2"], 0, "", lines=0, prepare=lambda tmp: _ver_rnp(tmp, rnp_seeds=(1, 2, 3)),
        check=lambda tmp, out, err: "| rnp " in out and "41.5 (0.7)" in out and "[n=" not in out.split("\n\n")[0],
    ),
    "d24-table-seeds-none-there": Case(
        [*TABLE, "--seeds", "7"], 2, "error: --seeds 7: no finished cell has these seeds (the cells have seeds 1-2)",
        prepare=_ver_rnp,
    ),
    # D25: the piece_* metrics of metrics.json
    "d25-metrics-piece-f1": Case(
        [*TABLE, "--metrics", "piece_F1"], 0, "", lines=0, prepare=_ver_rnp,
        check=lambda tmp, out, err: "synthetic.appearance piece_F1" in out and "41.5" not in out and "40.5" in out,
    ),
    # D26, D27: corrupt cells are listed; --seeds without --grid is applied
    "d26-report-lists-corrupt-cells": Case(
        REPORT, 0, "warning: skipping {tmp}/r/runs/rnp/synthetic.appearance/", prepare=_corrupt,
        check=lambda tmp, out, err: "Corrupt cells: 1." in out and "/seed3`: not valid JSON" in out,
    ),
    "d27-report-seeds-applied": Case(
        [*REPORT, "--seeds", "1"], 0, "warning: skipping {tmp}/r/runs/rnp/synthetic.appearance/", prepare=_corrupt,
        check=lambda tmp, out, err: "2 finished cells" in out and "Seeds: 1 (--seeds)" in out
        and "Corrupt cells: 0." in out,
    ),
    # D31, D32: footnotes true of the rows shown
    "d31-piece-level-on-word-cells": Case(
        [*TABLE, "--level", "piece"], 0, "", lines=0, prepare=_ver_rnp,
        check=_says("count word pieces; these rows ran on the word encoder, whose pieces are its words"),
    ),
    "d32-word-rule-first": Case(
        TABLE, 0, "", lines=0, prepare=_word_rule_first,
        check=lambda tmp, out, err: "when its first piece is" in " ".join(out.split())
        and "when a piece of it is" not in out,
    ),
    # --with-paper beside no row of the table, or beside some of them
    "with-paper-beside-nothing": Case(
        [*TABLE, "--layout", "table1", "--with-paper"], 0, "", lines=0, prepare=_ver_rnp,
        check=_paper_beside_nothing,
    ),
    "with-paper-beside-part": Case(
        [*TABLE, "--layout", "table1", "--with-paper"], 0, "", lines=0, prepare=_beer_appearance,
        check=lambda tmp, out, err: "| rnp " in out and "61.5 (0.7)" in out and "| dmr " in out,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    return run_cases(CASES, tmp_path_factory.mktemp("bad-input-report"))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_report(outcomes: dict, name: str) -> None:
    """Exit code, the one line that says what is wrong (no traceback), and the table or report."""
    check_outcome(CASES[name], *outcomes[name])


def test_cells_written_here_are_what_a_run_writes(tmp_path: Path) -> None:
    """``_cell`` writes a spec whose ids are its own and a metrics.json a finished cell has."""
    folder = write_cell(tmp_path, "rnp", "synthetic.appearance", 1, 40.0, threads=2)
    spec = json.loads((folder / store.SPEC_FILE).read_text())
    assert cells.CellSpec.from_json(spec).cell_id == spec["cell_id"] and store.read_metrics(folder) is not None
