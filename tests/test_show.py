"""`ratbench show`: rationales against the gold in the terminal and in a page a real browser renders."""

from __future__ import annotations

import gzip
import html
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ratbench.cli import main
from ratbench.execution import grid, store
from ratbench.execution.launch import run_cells
from ratbench.reporting.viewer import Document, ShownCell, marks, render_html

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


ERASER_SETS = {"train_split": "val", "dev_split": "val", "test_split": "val", "dev_carve_out": "0.1"}
ERASER_SETS["test_carve_out"] = "0.2"  # the README's carve-out recipe: 40 claims give 8 test examples
HOSTILE = [
    "<!--<script>",
    "</script>",
    "<script>alert(1)</script>",
    "<script>document.title='pwned'</script>",
    "</script><script>document.title='pwned'</script>",
    "<img/src=x/onerror=document.title='pwned'>",
    "&amp;",
    "]]>",
    "שלום",
    "עולם",
    "😀",
    "東京",
]
"""Words a page must show as text: markup (the first opens the HTML parser's double-escaped
script state, D7), a script that would mark the page if it ran, an entity, RTL text, emoji."""


def odd_fever(root: Path, claims: int = 40, docs: int = 8) -> None:
    """A FEVER-layout dataset under ``root/eraser/fever`` (``val.jsonl`` and ``docs/``) whose
    documents start with the ``HOSTILE`` words and whose queries hold some of them."""
    folder = root / "eraser" / "fever"
    (folder / "docs").mkdir(parents=True)
    rng = random.Random(0)
    plain = ["the", "a", "of", "to", "and", "in", "is", "was", "film", "band", "born", "city", "river", "team"]
    for d in range(docs):
        first = [*HOSTILE[d:], *HOSTILE[:d]]
        lines = [" ".join(first), *(" ".join(rng.choice(plain) for _ in range(9)) + " ." for _ in range(3))]
        (folder / "docs" / f"d{d}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = []
    for i in range(claims):
        start = rng.randrange(0, 20)
        evidence = {"docid": f"d{i % docs}", "start_token": start, "end_token": start + rng.randrange(1, 5)}
        rows.append(
            {
                "annotation_id": f"c{i}",
                "classification": ("SUPPORTS", "REFUTES")[i % 2],
                "docids": [f"d{i % docs}"],
                "evidences": [[{**evidence, "start_sentence": 0, "end_sentence": 1, "text": ""}]],
                "query": f"does {HOSTILE[i % len(HOSTILE)]} hold ?",
            }
        )
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (folder / "val.jsonl").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with an RNP and a VER cell of the demo preset (tiny sizes)."""
    results = tmp_path_factory.mktemp("show")
    specs = grid.expand(["rnp", "ver"], ["synthetic.appearance"], [1], preset="demo", epochs=1, sets=TINY)
    assert run_cells(specs, results, echo=lambda _: None).ok
    return results


def _records(results: Path, method: str, mode: str = "reference") -> dict[str, dict]:
    """The cell's test records by example id (the file is in batch order, not the split's)."""
    [folder] = (results / "runs" / method).glob("*/*/seed1")
    with gzip.open(folder / store.RATIONALES_FILE, "rt") as handle:
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
    assert run_cells(other, tmp_path, echo=lambda _: None).ok
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

    from ratbench.reporting.viewer import first_cells

    shown = [SimpleNamespace(spec=SimpleNamespace(method=m)) for m in ("rnp", "rnp", "ver", "ver")]
    assert first_cells(shown, 2) == [0, 2]
    assert first_cells(shown, 3) == [0, 2, 1]
    assert first_cells(shown[:2], 2) == [0, 1]
    assert first_cells(shown[:1], 2) == [0]


def _data_block(page: str) -> str:
    """The text of the page's JSON ``<script>`` element (up to the first ``</script>``)."""
    match = re.search(r'<script id="ratbench-data" type="application/json">(.*?)</script>', page, re.S)
    assert match is not None
    return match.group(1)


def test_the_page_data_holds_no_markup_characters() -> None:
    """Words with ``<!--<script>``, ``</script>`` or ``&`` are embedded as ``\\u003c`` etc.: the
    HTML parser sees no markup in the data block (D7), and JSON.parse gives the words back."""
    words = tuple(HOSTILE)
    record = {"id": "e1", "mode": "reference", "label": 1, "pred": 0, "length": len(words)}
    record |= {"mask": [1, 0] * 6, "gold": [1, 1] + [0] * 10}
    spec = SimpleNamespace(method="rnp", seed=1, dataset="eraser", subset="fever")
    cell = ShownCell("rnp", Path("cell"), spec, ["no", "yes"], {"e1": record})
    documents = {"e1": Document("e1", words, 1, ("is", "<!--<script>", "&amp;", "true"))}
    page = render_html([cell], documents, ["e1"], "t")
    block = _data_block(page)
    assert not set("<>&") & set(block), block
    data = json.loads(block)
    assert data["examples"][0]["words"] == list(words) and data["examples"][0]["query"][1] == "<!--<script>"
    assert page.count("<script") == 2 and page.rstrip().endswith("</script>\n</body></html>")


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A results folder with an RNP cell on ``odd_fever`` data, and that data's root."""
    root = tmp_path_factory.mktemp("show-odd")
    odd_fever(root / "data")
    sets = {"eraser": ERASER_SETS, "rnp": {"hidden_dim": "16"}}
    specs = grid.expand(["rnp"], ["eraser.fever"], [1], preset="demo", epochs=1, sets=sets, data_dir=root / "data")
    assert run_cells(specs, root / "results", data_dir=root / "data", echo=lambda _: None).ok
    return root / "results", root / "data"


# Appended to a copy of the page: picks every example in turn, as a user would, and dumps what
# the pane then shows (its query and its words) into the DOM as JSON.
_PROBE = """<script>
const probe = [];
const picker = document.getElementById("example");
for (let i = 0; i < picker.options.length; i++) {
  picker.selectedIndex = i;
  picker.dispatchEvent(new Event("change"));
  const text = document.querySelector("#pane-0 .text");
  const query = text.querySelector(".query");
  probe.push({id: picker.value, query: query ? query.textContent : null,
              words: Array.from(text.querySelectorAll(".tok")).map(span => span.textContent)});
}
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify(probe);
document.body.appendChild(out);
</script>"""


def test_the_page_shows_markup_rtl_and_emoji_as_text_in_chromium(odd: tuple[Path, Path], tmp_path: Path) -> None:
    """Data holding ``<!--<script>``, ``</script>``, ``<script>alert(1)</script>``, a script that
    sets the title, ``&amp;``, RTL text and emoji: in headless Chromium the page renders every
    example with exactly its words (and query), and no script from the data runs."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (apt-get install chromium); CI installs it and runs this test")
    results, data = odd
    page = tmp_path / "odd.html"
    code, _, err = _show(str(results), "--data-dir", str(data), "--html", str(page))
    assert code == 0, err
    embedded = json.loads(_data_block(page.read_text(encoding="utf-8")))
    expected = {ex["id"]: ex for ex in embedded["examples"]}
    assert len(expected) == 8 and all(HOSTILE[0] in ex["words"] for ex in expected.values())
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")

    dom = _headless(browser, "--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom.stdout, re.S)
    assert title is not None and html.unescape(title.group(1)) == "ratbench show: eraser.fever, reference mode, 1 cell"
    assert "pwned" not in dom.stdout.replace("document.title='pwned'", ""), "a script from the data ran"
    assert len(re.findall(r"<option value=\"c\d+\">", dom.stdout)) == len(expected), "the picker misses examples"
    shown = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert shown is not None, "the viewer's script did not run"
    rendered = json.loads(html.unescape(shown.group(1)))
    assert [ex["id"] for ex in rendered] == list(expected)
    record = embedded["cells"][0]["records"]
    for ex in rendered:
        assert ex["words"] == expected[ex["id"]]["words"][: record[ex["id"]]["length"]]
        assert ex["query"] == "query: " + " ".join(expected[ex["id"]]["query"])
    assert any("שלום" in ex["words"] and "😀" in ex["words"] and "&amp;" in ex["words"] for ex in rendered)
