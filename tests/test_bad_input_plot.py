"""Bad input to ``ratbench plot``, each as a real process: the exit code, one line saying what
is wrong (or none), and the figure on disk.

The module fixture runs one tiny real grid (a ``data.max_len`` sweep of rnp and attention, one
epoch) and writes, without training, attention cells that differ in the string key ``scorer``;
then every case plots a copy of one of them, three processes at a time; each test checks one
case. Variations that need no process of their own are unit tests in ``test_plots.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input import TINY, Case, check_outcome, run_cases
from conftest import write_cell

from ratbench.execution import store

pytest.importorskip("matplotlib")

# rows differ in a data key (D20); one epoch per cell (D9); attention is post-hoc (D30)
DATA_SWEEP = ["run", "--methods", "rnp,attention", *TINY, "--sweep", "data.max_len=40,80"]
SOURCES: dict[str, Path] = {}  # "data_sweep", "string_sweep" -> a results folder, filled by the module fixture
PLOT = ["plot", "--results-dir", "{tmp}/r"]


def _copy(grid: str, cut_epochs: bool = False, to: str = "r") -> Callable[[Path], None]:
    """Prepare a case with a copy of a grid's results at ``{tmp}/<to>``; ``cut_epochs``: the
    first cell's ``epochs.jsonl`` ends in a line cut short, as a kill mid-write leaves it."""

    def prepare(tmp: Path) -> None:
        shutil.copytree(SOURCES[grid], tmp / to)
        if cut_epochs:
            epochs = sorted((tmp / to).glob(f"runs/rnp/**/{store.EPOCHS_FILE}"))[0]
            with epochs.open("a") as handle:
                handle.write('{"epoch": 2, "loss": 0.9, "diag_ann')

    return prepare


def _svg_texts(path: Path) -> list[str]:
    """The texts of a matplotlib SVG (each glyph run is preceded by a comment with its text)."""
    return re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8"))


def _has_texts(name: str, *wanted: str, absent: tuple[str, ...] = ()) -> Callable[[Path, str, str], bool]:
    def check(tmp: Path, out: str, err: str) -> bool:
        texts = _svg_texts(tmp / name)
        assert all(text in texts for text in wanted), texts
        assert not any(text in texts for text in absent), texts
        return True

    return check


def _line_markers(tmp: Path, out: str, err: str) -> bool:
    """The curves have markers: matplotlib's SVG defines a marker in the first line colour (a
    line without markers defines none; the ticks' markers are black)."""
    svg = (tmp / "c.svg").read_text(encoding="utf-8")
    assert re.search(r'<path id="m[0-9a-f]+" d="[^"]*"[^>]*style="stroke: ?#1f77b4', svg), "no line markers"
    return True


def _png(name: str) -> Callable[[Path, str, str], bool]:
    return lambda tmp, out, err: (tmp / name).read_bytes().startswith(b"\x89PNG")


def _stale_temp(tmp: Path) -> None:
    """An old figure behind a symlink and a temporary file that a killed write left an hour ago."""
    _copy("data_sweep")(tmp)
    (tmp / "real.png").write_bytes(b"old figure")
    (tmp / "link.png").symlink_to("real.png")
    leftover = tmp / ".real.png.abc123.tmp.png"
    leftover.write_bytes(b"")
    os.utime(leftover, (time.time() - 3600, time.time() - 3600))


def _replaced_through_the_link(tmp: Path, out: str, err: str) -> bool:
    assert (tmp / "link.png").is_symlink() and (tmp / "real.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp.iterdir()) == ["link.png", "r", "real.png"], list(tmp.iterdir())
    return True


CASES: dict[str, Case] = {
    # D9: one epoch per cell is one point per line: drawn with a marker
    "curves-one-epoch": Case(
        [*PLOT, "--figure", "curves", "--out", "{tmp}/c.svg"], 0, "", lines=0,
        prepare=_copy("data_sweep"), check=_line_markers,
    ),
    # D14: a cut last line of epochs.jsonl is skipped with one warning
    "curves-cut-epochs-line": Case(
        [*PLOT, "--figure", "curves", "--out", "{tmp}/c.png"],
        0, "warning: skipping unreadable line 2 of {tmp}/r/runs/rnp/",
        prepare=_copy("data_sweep", cut_epochs=True), check=_png("c.png"),
    ),
    # D15: a string key gets a categorical axis
    "sweep-string-key": Case(
        [*PLOT, "--figure", "sweep", "--out", "{tmp}/s.svg"], 0, "", lines=0,
        prepare=_copy("string_sweep"), check=_has_texts("s.svg", "scorer", "additive", "linear"),
    ),
    # D16: a --metric that is not a per-epoch number
    "metric-row": Case(
        [*PLOT, "--figure", "curves", "--metric", "row", "--out", "{tmp}/c.png"],
        2, "error: no cell recorded 'row' per epoch; --metric can be one of: loss, ",
        prepare=_copy("data_sweep"), check=lambda tmp, out, err: not (tmp / "c.png").exists(),
    ),
    # D20: a data.* key is a swept key
    "sweep-data-key": Case(
        [*PLOT, "--figure", "sweep", "--out", "{tmp}/s.svg"], 0, "", lines=0,
        prepare=_copy("data_sweep"), check=_has_texts("s.svg", "data.max_len", "rnp F1", "attention F1"),
    ),
    # D29: no raw matplotlib warning for a path it has no glyphs for
    "cjk-results-path": Case(
        ["plot", "--results-dir", "{tmp}/東京", "--figure", "curves", "--out", "{tmp}/c.png"], 0, "", lines=0,
        prepare=_copy("data_sweep", to="東京"), check=_png("c.png"),
    ),
    # D30: post-hoc cells record no cross-entropy: no empty panel for it
    "gold-post-hoc": Case(
        [*PLOT, "--figure", "gold", "--out", "{tmp}/g.svg"], 0, "", lines=0, prepare=_copy("string_sweep"),
        check=_has_texts("g.svg", "accuracy on gold rationales (%)", absent=("cross-entropy on gold rationales",)),
    ),
    # D36: the formats that work are named; an unknown suffix is refused
    "out-jpg": Case(
        [*PLOT, "--figure", "curves", "--out", "{tmp}/c.jpg"],
        2, "error: --out {tmp}/c.jpg: use a .png, .pdf or .svg file name (the suffix picks the format)",
    ),
    # D13, D35: written through a temporary file and a rename; a killed write's leftover is removed
    "out-symlink-and-stale-temp": Case(
        [*PLOT, "--figure", "sparsity", "--out", "{tmp}/link.png"], 0, "", lines=0,
        prepare=_stale_temp, check=_replaced_through_the_link,
    ),
}  # fmt: skip


def _string_sweep(root: Path) -> None:
    """Attention cells of the preset's scorer (``additive``, in spec.json only, as a run
    resolves it) and of ``scorer=linear`` (in the variant), two seeds each, without training."""
    for seed in (1, 2):
        write_cell(root, "attention", "synthetic.appearance", seed, 40.0 + seed)
        write_cell(root, "attention", "synthetic.appearance", seed, 45.0 + seed, {"scorer": "linear"})
    for spec_path in (root / "runs").glob(f"**/{store.SPEC_FILE}"):
        spec = json.loads(spec_path.read_text())
        spec["method_config"].setdefault("scorer", "additive")
        spec_path.write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    root = tmp_path_factory.mktemp("bad-input-plot")
    SOURCES["data_sweep"], SOURCES["string_sweep"] = root / "data_sweep", root / "string_sweep"
    argv = [sys.executable, "-m", "ratbench", *DATA_SWEEP, "--results-dir", str(SOURCES["data_sweep"])]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    _string_sweep(SOURCES["string_sweep"])
    return run_cases(CASES, root)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_plot(outcomes: dict, name: str) -> None:
    """Exit code, the one line that says what is wrong (no traceback, no raw warning), the figure."""
    check_outcome(CASES[name], *outcomes[name])
