"""`ratbench show`: rationales against the gold in the terminal and in a page a real browser renders."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench import cells, grid
from ratbench.cli import main
from ratbench.scheduler import run_grid
from ratbench.viewer import marks

TINY = {
    "synthetic": {
        "n_train": "60",
        "n_dev": "16",
        "n_test": "12",
        "min_review_len": "60",
        "mean_review_len": "70",
        "max_review_len": "80",
    },
    "rnp": {"hidden_dim": "16"},
    "ver": {"hidden_dim": "16"},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with an RNP and a VER cell of the demo preset (tiny sizes)."""
    results = tmp_path_factory.mktemp("show")
    specs = grid.expand(["rnp", "ver"], ["synthetic.appearance"], [1], preset="demo", epochs=1, sets=TINY)
    assert run_grid(specs, results, echo=lambda _: None).ok
    return results


def _records(results: Path, method: str, mode: str = "reference") -> dict[str, dict]:
    """The cell's test records by example id (the file is in batch order, not the split's)."""
    [folder] = (results / "runs" / method).glob("*/*/seed1")
    with gzip.open(folder / cells.RATIONALES_FILE, "rt") as handle:
        return {r["id"]: r for r in map(json.loads, handle) if r["mode"] == mode}


def _show(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["show", *args])
    return result.exit_code, result.stdout, result.stderr


def test_marks() -> None:
    """Selected and gold, selected only, gold only, neither; a mask past the text is ignored."""
    assert marks([1, 1, 0, 0, 1], [1, 0, 1, 0], 4) == ["tp", "fp", "fn", ""]


def test_terminal_marks_every_word_as_its_record_says(demo: Path) -> None:
    """Plain marks: [tp] {fp} _fn_; one block per cell, both methods on the same example."""
    code, out, _ = _show(str(demo), "--limit", "1", "--color", "never", "--data-dir", str(demo))
    assert code == 0, out
    [shown] = re.findall(r"^== (\S+)  label: (\S+)$", out, flags=re.MULTILINE)
    first = _records(demo, "rnp")[shown[0]]
    assert shown[1] == str(first["label"])
    blocks = re.split(r"^-- ", out, flags=re.MULTILINE)[1:]
    assert [b.split(":")[0] for b in blocks] == ["rnp seed1", "ver seed1"]
    rnp_words = " ".join(line.strip() for line in blocks[0].splitlines()[1:])
    kinds = marks(first["mask"], first["gold"], first["length"])
    assert rnp_words.count("[") == kinds.count("tp")
    assert rnp_words.count("{") == kinds.count("fp")
    assert len(re.findall(r"(?:^| )_[^ ]+_", rnp_words)) == kinds.count("fn")
    code, coloured, _ = _show(str(demo), "--limit", "1", "--color", "always")
    assert code == 0 and "\033[30;42m" in coloured  # the same words, marked by colour instead
    unmarked = re.sub(r"(^| )_([^ ]+)_", r"\1\2", re.sub(r"[\[\]{}]", "", out.split("\n", 1)[1]), flags=re.M)
    assert re.sub(r"\033\[[0-9;]*m", "", coloured.split("\n", 1)[1]).split() == unmarked.split()


def test_only_wrong_example_and_filters(demo: Path) -> None:
    """--only-wrong keeps examples some cell gets wrong; --example picks one; bad input is one line."""
    wrong = {r["id"] for m in ("rnp", "ver") for r in _records(demo, m).values() if r["pred"] != r["label"]}
    code, out, _ = _show(str(demo), "--only-wrong", "--limit", "100", "--color", "never")
    shown = set(re.findall(r"^== (\S+)", out, flags=re.MULTILINE))
    assert code == 0 and shown == wrong
    last = sorted(_records(demo, "ver"))[-1]
    code, out, _ = _show(str(demo), "--example", last, "--methods", "ver", "--color", "never")
    assert code == 0 and re.findall(r"^== (\S+)", out, flags=re.MULTILINE) == [last]
    assert re.findall(r"^-- ([^:]+):", out, flags=re.MULTILINE) == ["ver seed1"]
    code, _, err = _show(str(demo), "--example", "nope")
    assert code == 2 and err.startswith("error: --example nope: no test example with that id")
    code, _, err = _show(str(demo), "--methods", "lime")
    assert code == 2 and err.startswith("error: no finished cell of method lime")
    code, _, err = _show(str(demo), "--seeds", "2-3")
    assert code == 2 and err.startswith("error: no finished cell of seed 2, 3")
    code, out, _ = _show(str(demo), "--seeds", "1", "--limit", "1", "--color", "never")
    assert code == 0 and re.findall(r"^-- ([^:]+):", out, flags=re.MULTILINE) == ["rnp seed1", "ver seed1"]


def test_cells_of_several_datasets_need_dataset(demo: Path, tmp_path: Path) -> None:
    """Two datasets are never mixed on one page: the error names them and the way out."""
    other = grid.expand(
        ["rnp"], ["synthetic.palate"], [1], preset="demo", epochs=1, sets={k: v for k, v in TINY.items() if k != "ver"}
    )
    assert run_grid(other, tmp_path, echo=lambda _: None).ok
    code, _, err = _show(str(demo), str(tmp_path))
    assert code == 2
    assert err.strip() == (
        "error: the cells are of 2 datasets (synthetic.appearance, synthetic.palate); pick one with --dataset"
    )
    code, out, _ = _show(str(demo), str(tmp_path), "--dataset", "synthetic.palate", "--color", "never")
    assert code == 0 and re.findall(r"^-- ([^:]+):", out, flags=re.MULTILINE)[:1] == ["rnp seed1"]


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_page_renders_rnp_and_ver_side_by_side_in_chromium(demo: Path, tmp_path: Path) -> None:
    """The self-contained page, loaded in headless Chromium: both panes hold the first review
    with exactly the record's highlighted spans, and the screenshot is not blank."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (apt-get install chromium); CI installs it and runs this test")
    page = tmp_path / "show.html"
    code, out, _ = _show(str(demo), "--html", str(page))
    assert code == 0 and out.startswith(f"12 examples of 2 cells written to {page}")
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text), "the page must fetch nothing"

    dom = _headless(browser, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    shown = re.search(r'<select id="example"><option value="([^"]+)"', dom.stdout)
    assert shown is not None, "the script filled no example picker"
    for index, method in enumerate(("rnp", "ver")):
        pane = re.search(
            rf'<section class="pane" id="pane-{index}" data-cell="([^"]+)">(.*?)</section>', dom.stdout, re.S
        )
        assert pane is not None and pane.group(1) == f"{method} seed1"
        first = _records(demo, method)[shown.group(1)]
        kinds = marks(first["mask"], first["gold"], first["length"])
        spans = re.findall(r'<span class="tok ?([a-z]*)">', pane.group(2))
        assert spans == kinds, f"{method}: the highlighted spans differ from the record"
        assert "tp" in spans or "fp" in spans

    shot = tmp_path / "show.png"
    result = _headless(browser, f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    from matplotlib import image

    pixels = image.imread(shot)
    assert pixels.shape[0] == 1000 and pixels.shape[1] == 1400
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"


def test_the_panes_first_show_different_methods() -> None:
    """Two panes over rnp seeds 1-2 and ver seeds 1-2 start with rnp seed1 beside ver seed1."""
    from types import SimpleNamespace

    from ratbench.viewer import first_cells

    shown = [SimpleNamespace(spec=SimpleNamespace(method=m)) for m in ("rnp", "rnp", "ver", "ver")]
    assert first_cells(shown, 2) == [0, 2]
    assert first_cells(shown, 3) == [0, 2, 1]
    assert first_cells(shown[:2], 2) == [0, 1]
    assert first_cells(shown[:1], 2) == [0]
