"""Bad input to ``ratbench show``, each as a real process on tiny finished cells: the exit code,
one line saying what is wrong, and nothing garbage or lost on disk (issue 18: D3, D12, D22, D23,
D33, D34, D35 of the bad-input matrix).

A module fixture makes the cells once (RNP on two synthetic subsets, and RNP on a tiny ERASER
FEVER folder) under ``<root>/base``; every case reads them as ``{tmp}/../base/...``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input import TINY, Case, check_outcome, run_cases
from test_show import ERASER_SETS, odd_fever

ONE = "{tmp}/../base/one"  # the synthetic.appearance cell
TWO = "{tmp}/../base/two"  # the synthetic.appearance and synthetic.palate cells
FEVER = "{tmp}/../base/fever"  # the eraser.fever cell, run on {tmp}/../base/data
SHOW_FEVER = ["show", FEVER, "--color", "never", "--limit", "1"]
PAGE = "{tmp}/page.html"


def _build(base: Path) -> None:
    """The shared cells: two synthetic subsets (``two``, and ``one`` without palate) and FEVER."""
    two = [arg.replace("synthetic.appearance", "synthetic.appearance,synthetic.palate") for arg in TINY]
    odd_fever(base / "data")
    eraser = [f"--set=eraser.{key}={value}" for key, value in ERASER_SETS.items()]
    fever = ["--datasets", "eraser.fever", "--data-dir", str(base / "data"), "--preset", "demo", "--epochs", "1",
             "--no-track", "--set", "rnp.hidden_dim=16", *eraser]  # fmt: skip
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "ratbench", "run", "--methods", "rnp", *args, "--results-dir", str(base / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, args in (("two", two), ("fever", fever))
    ]
    for process in runs:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, out
    shutil.copytree(base / "two", base / "one")
    shutil.rmtree(base / "one" / "runs" / "rnp" / "synthetic.palate")


def _data_copy(change: Callable[[Path], None] = lambda folder: None) -> Callable[[Path], None]:
    """Prepare ``{tmp}/data``: a copy of the FEVER cell's data, then ``change`` of its folder."""

    def prepare(tmp: Path) -> None:
        shutil.copytree(tmp.parent / "base" / "data", tmp / "data")
        change(tmp / "data" / "eraser" / "fever")

    return prepare


def _reverse_sentences(folder: Path) -> None:
    """Every document with its lines in reverse order: the same words and lengths, other places."""
    for doc in (folder / "docs").iterdir():
        doc.write_text("\n".join(reversed(doc.read_text(encoding="utf-8").splitlines())) + "\n", encoding="utf-8")


def _edit_a_query(folder: Path) -> None:
    lines = (folder / "val.jsonl").read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[0])
    row["query"] += " really"
    lines[0] = json.dumps(row)
    (folder / "val.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _shows_examples(tmp: Path, out: str, err: str) -> bool:
    return bool(re.search(r"^== \S+  label: ", out, flags=re.MULTILINE))


def _page(tmp: Path, name: str = "page.html") -> tuple[str, dict]:
    """The page's title and embedded data."""
    text = (tmp / name).read_text(encoding="utf-8")
    title = re.search(r"<title>(.*?)</title>", text).group(1)
    data = re.search(r'<script id="ratbench-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    return title, json.loads(data)


def _symlink(tmp: Path) -> None:
    (tmp / "real.html").write_text("old\n")
    (tmp / "link.html").symlink_to("real.html")


def _wrote_through_the_symlink(tmp: Path, out: str, err: str) -> None:
    assert (tmp / "link.html").is_symlink() and os.readlink(tmp / "link.html") == "real.html"
    assert (tmp / "real.html").read_text().startswith("<!doctype html>")
    assert {p.name for p in tmp.iterdir()} == {"link.html", "real.html"}


def _fifo_kept(tmp: Path, out: str, err: str) -> None:
    assert stat.S_ISFIFO((tmp / "page.html").lstat().st_mode), "the FIFO was replaced"
    assert {p.name for p in tmp.iterdir()} == {"page.html"}


def _limit_2(tmp: Path, out: str, err: str) -> None:
    assert out.startswith(f"2 examples of 1 cell written to {tmp}/page.html"), out
    assert len(_page(tmp)[1]["examples"]) == 2


def _one_cell(tmp: Path, out: str, err: str) -> None:
    assert out.startswith(f"16 examples of 1 cell written to {tmp}/page.html"), out
    title, data = _page(tmp)
    assert title == "ratbench show: synthetic.appearance, reference mode, 1 cell"
    assert len(data["examples"]) == 16 and len(data["cells"]) == 1


def _once(tmp: Path, out: str, err: str) -> None:
    assert re.findall(r"^== (\S+)", out, flags=re.MULTILINE) == ["test-000003"], out


def _temporaries(tmp: Path) -> None:
    """A temporary file a killed write left an hour ago, and one a write in progress holds now."""
    old = tmp / ".page.html.k1ll3d.tmp"
    old.write_text("<!doctype html> half a page")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    (tmp / ".page.html.n0wn0w.tmp.html").write_text("<!doctype html> being written")


def _stale_removed(tmp: Path, out: str, err: str) -> None:
    assert {p.name for p in tmp.iterdir()} == {"page.html", ".page.html.n0wn0w.tmp.html"}
    assert (tmp / "page.html").read_text().startswith("<!doctype html>")


CASES: dict[str, Case] = {
    # D3: the words must be those the cell was run on
    "d3-docs-changed": Case(
        [*SHOW_FEVER, "--data-dir", "{tmp}/data"],
        2, "error: {tmp}/data/eraser/fever/docs: not the folder rnp seed1 was run on",
        prepare=_data_copy(_reverse_sentences),
    ),
    "d3-test-file-changed": Case(
        [*SHOW_FEVER, "--data-dir", "{tmp}/data", "--html", PAGE],
        2, "error: {tmp}/data/eraser/fever/val.jsonl: not the file rnp seed1 was run on",
        prepare=_data_copy(_edit_a_query), check=lambda tmp, out, err: not (tmp / "page.html").exists(),
    ),
    "d3-a-copy-of-the-same-data": Case(
        [*SHOW_FEVER, "--data-dir", "{tmp}/data"], 0, "", lines=0, prepare=_data_copy(), check=_shows_examples,
    ),
    # D12: a symlink is written through, a FIFO is refused
    "d12-html-symlink": Case(
        ["show", ONE, "--html", "{tmp}/link.html"], 0, "", lines=0, prepare=_symlink, check=_wrote_through_the_symlink,
    ),
    "d12-html-fifo": Case(
        ["show", ONE, "--html", PAGE],
        2, "error: --html {tmp}/page.html: not a regular file (a FIFO, a device or a socket); give the path of a file",
        prepare=lambda tmp: os.mkfifo(tmp / "page.html"), check=_fifo_kept,
    ),
    # D22: an explicit --limit holds for the page too (without one, the page has every example)
    "d22-html-limit": Case(["show", ONE, "--html", PAGE, "--limit", "2"], 0, "", lines=0, check=_limit_2),
    # D23: --dataset that matches several subsets says so
    "d23-dataset-of-two-subsets": Case(
        ["show", TWO, "--dataset", "synthetic"],
        2, "error: --dataset synthetic matches 2 datasets (synthetic.appearance, synthetic.palate); "
        "name one as dataset.subset, e.g. --dataset synthetic.appearance",
    ),
    # D33: "1 cell", in the message and the title
    "d33-one-cell": Case(["show", ONE, "--html", PAGE], 0, "", lines=0, check=_one_cell),
    # D34: a repeated --example is shown once
    "d34-repeated-example": Case(
        ["show", ONE, "--example", "test-000003", "--example", "test-000003", "--color", "never"],
        0, "", lines=0, check=_once,
    ),
    # D35: a killed write's temporary file is removed by the next write (not one being written now)
    "d35-stale-temporary": Case(
        ["show", ONE, "--html", PAGE], 0, "", lines=0, prepare=_temporaries, check=_stale_removed,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    root = tmp_path_factory.mktemp("bad-input-show")
    _build(root / "base")
    return run_cases(CASES, root)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_show(outcomes: dict, name: str) -> None:
    """Exit code, the one line that says what is wrong (no traceback), and the state on disk."""
    check_outcome(CASES[name], *outcomes[name])
