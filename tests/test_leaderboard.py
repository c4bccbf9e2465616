"""The leaderboard: `ratbench run --grid leaderboard` (every built-in select-then-predict method on
Table 1's six datasets, each with its `paper` preset) and `ratbench table --layout leaderboard`
(F1 and S per dataset beside each method's published F1 and its source), checked against golden
files on results written here (no training).

Set RATBENCH_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change (and read
the diff before committing it).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_cell
from test_paper_grids import _run, _settings
from test_table_layouts import _check_golden

from ratbench.api import RNP_PRESETS, Method, Presets, SelectPredict, register_method
from ratbench.cli import main
from ratbench.execution import paper_grids
from ratbench.registry import METHODS
from ratbench.reporting.published import other_published, published_f1

TARGETS = ["beer.appearance", "beer.aroma", "beer.palate", "hotel.location", "hotel.service", "hotel.cleanliness"]


class LeaderToy(SelectPredict):
    """A select-then-predict method that appears while the test runs."""

    kind = "select_predict"
    description = "test-only select-then-predict toy"
    presets: ClassVar[Presets] = RNP_PRESETS


class PostHocToy(Method):
    """A post-hoc method that appears while the test runs (never instantiated)."""

    kind = "post_hoc"
    description = "test-only post-hoc toy"


@pytest.fixture
def new_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``lb_toy`` (select-predict) and ``lb_posthoc`` registered as if their files had just been
    added to ``methods/`` (a built-in origin), and ``lb_outside`` (select-predict) as a method
    defined outside the plugin folder."""
    register_method("lb_toy")(LeaderToy)
    register_method("lb_posthoc")(PostHocToy)
    register_method("lb_outside")(type("LeaderOutside", (LeaderToy,), {}))
    for name in ("lb_toy", "lb_posthoc"):
        monkeypatch.setattr(METHODS.infos()[name], "origin", f"builtin:methods/{name}.py")
    yield
    for name in ("lb_toy", "lb_posthoc", "lb_outside"):
        METHODS.unregister(name)


def test_the_grid_is_every_builtin_select_then_predict_method_on_table1s_datasets() -> None:
    grid = paper_grids.get_grid("leaderboard")
    table1 = paper_grids.get_grid("table1")
    assert grid.layout == "leaderboard" and grid.preset == "paper" and grid.datasets == table1.datasets
    assert grid.sets == {"data.embeddings": table1.sets["data.embeddings"]}  # not LIME's and attention's top 15 %
    assert {"rnp", "ver", "nir", "nir_rnp", "dmr", "a2i", "inter_rat"} <= set(grid.methods)
    assert not {"dmr_ref", "lime", "attention"} & set(grid.methods)  # gold label at test; post-hoc
    for name in grid.methods:
        assert METHODS.check(name).origin.startswith("builtin:")
        assert METHODS.get(name).kind == "select_predict"
    assert list(grid.methods) == sorted(grid.methods)
    assert "leaderboard" in paper_grids.grid_names() and "leaderboard" not in paper_grids.load_grids()


def test_a_method_added_while_running_joins_the_grid_and_its_dry_run(new_plugins: None, tmp_path: Path) -> None:
    methods = paper_grids.get_grid("leaderboard").methods
    assert "lb_toy" in methods and "lb_posthoc" not in methods and "lb_outside" not in methods
    code, out, _ = _run(
        "run", "--grid", "leaderboard", "--methods", "lb_toy", "--seeds", "1", "--dry-run",
        "--data-dir", str(tmp_path / "d"), "--results-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2 and out.startswith("6 todo")
    assert set(_settings(out)) == {("lb_toy", target) for target in TARGETS}


def test_the_dry_run_lists_every_cell_with_its_own_paper_settings_and_the_missing_files(tmp_path: Path) -> None:
    methods = paper_grids.get_grid("leaderboard").methods
    code, out, err = _run(
        "run", "--grid", "leaderboard", "--seeds", "1-5", "--dry-run", "--data-dir", str(tmp_path / "d"),
        "--results-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2
    cells = len(methods) * 6 * 5
    assert out.startswith(f"{cells} todo, 0 done") and out.count("  to run: ") == cells
    settings = _settings(out)
    assert set(settings) == {(method, target) for method in methods for target in TARGETS}
    glove = f"embeddings=glove:{tmp_path / 'd'}/glove.6B.100d.txt"
    assert all(glove in line and "encoder=word" in line for line in settings.values())
    for target in TARGETS:  # each method's own `paper` preset
        assert "sparsity=0.125," in settings["rnp", target] and "perturb_rate=0.3" in settings["ver", target]
        assert "noise_p=0.1" in settings["nir_rnp", target] and "lr=0.0001" in settings["rnp", target]
        inter_rat = settings["inter_rat", target]
        assert "lr=0.001," in inter_rat and "epochs=20" in inter_rat  # Inter_RAT's reference settings
        assert inter_rat.endswith("max_len=300, padding=longest")
        assert ("batch_size=128" if target.startswith("beer") else "batch_size=256") in settings["rnp", target]
    missing = [line for line in err.splitlines() if line.startswith("missing: ")]
    assert any("glove.6B.100d.txt" in line for line in missing)
    assert any("reviews.aspect2.heldout.txt.gz" in line for line in missing)
    assert any("hotel_Cleanliness.dev" in line for line in missing)
    assert len(missing) == len(set(missing)) == 17  # GloVe, 7 beer files (annotations.json once), 9 hotel
    assert err.splitlines()[-1].startswith("error: 17 required file(s) or model(s) missing")


def test_published_numbers_are_the_checked_ones_on_the_same_data() -> None:
    """The VER paper's Table 1 for the methods it ran (NIR's row is nir_rnp, the GRU adaptation);
    FIELD.md's checked numbers on decorrelated beer and hotel for FR, DR, MGR and MCD (Hotel-Service
    only: its beer table is the correlated data); nothing for a method without a checked number."""
    assert published_f1("ver").f1["beer.appearance"] == (72.0, 1.5)
    assert published_f1("nir_rnp").f1["hotel.service"] == (46.3, 1.4) and published_f1("nir") is None
    assert published_f1("fr").f1["beer.appearance"] == (82.8, None)
    assert published_f1("mgr").f1["beer.aroma"] == (76.5, None) and published_f1("mgr").sparsity["beer.aroma"] == 15.6
    assert published_f1("dr").f1["hotel.cleanliness"] == (41.8, None)
    assert set(published_f1("mcd").f1) == {"hotel.service"}
    assert all(published_f1(name) is None for name in ("dar", "mrd", "n2r", "dmr_ref"))
    for published in other_published().values():
        assert set(published.f1) <= set(TARGETS) and set(published.f1) == set(published.sparsity)


# The golden tables: rows of the grid's methods, fixed here so that a method added to methods/
# does not change the files; FR, DR, MGR and MCD have no cells (rows of -) but their published F1.
GOLDEN_METHODS = ("a2i", "dmr", "dr", "fr", "inter_rat", "mcd", "mgr", "nir", "nir_rnp", "rnp", "ver")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for m, method in enumerate(["ver", "rnp", "nir_rnp", "inter_rat", "nir", "dmr"]):
        for g, target in enumerate(TARGETS[:5]):  # no Hotel-Cleanliness
            seeds = (1, 2) if (method, target) == ("dmr", "beer.aroma") else (1, 2, 3)  # one short cell: [n=2]
            for seed in seeds:
                write_cell(root, method, target, seed, 50.0 + 2 * m + g + seed)
    for seed in (1, 2, 3):
        write_cell(root, "lime", "beer.appearance", seed, 40.0)  # post-hoc: not a row
        write_cell(root, "dmr_ref", "beer.appearance", seed, 90.0)  # the gold label at test: not a row
        write_cell(root, "rnp", "beer.appearance", seed, 30.0, data_changes={"data.encoder": "hf:bert-base-uncased"})
    return root


@pytest.fixture
def fixed_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper_grids, "leaderboard_methods", lambda: GOLDEN_METHODS)


def _table(results: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["table", "--results-dir", str(results), "--layout", "leaderboard", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(("name", "args"), [("leaderboard.md", []), ("leaderboard.tex", ["--format", "latex"])])
def test_the_leaderboard_matches_its_golden_files(results: Path, fixed_grid: None, name: str, args: list[str]) -> None:
    _check_golden(name, _table(results, *args))


def _rows(text: str) -> dict[str, list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in [cells[0], *cells[2:]]}


def test_rows_are_the_grids_methods_with_f1_s_and_the_published_f1(results: Path, fixed_grid: None) -> None:
    text = _table(results)
    rows = _rows(text)
    assert list(rows) == ["Method", *GOLDEN_METHODS]
    assert rows["Method"][:4] == ["Beer-Appearance F1", "S", "published F1 [S]", "Beer-Aroma F1"]
    assert rows["Method"][-1] == "published in"
    # ver: F1 = 50 + appearance 0 + seed -> 52.0 (1.0); published 72.0 (1.5) at S 14.4
    assert rows["ver"][:3] == ["52.0 (1.0)", "15.2 (0.1)", "72.0 (1.5) [S 14.4]"]
    assert rows["ver"][-1] == "VER paper, Table 1 (5 seeds)" and rows["nir_rnp"][2].startswith("66.8 (1.7)")
    assert rows["dmr"][0] == "**62.0 (1.0)**" and "[n=2]" in rows["dmr"][3]  # best F1 of its column in bold
    assert rows["nir"][2] == "-" and rows["nir"][-1] == "-"  # no checked published number
    assert rows["mgr"][:3] == ["-", "-", "83.7 [S 18.4]"] and rows["mgr"][-1] == "MGR (ACL 2023) Tables 5a, 6"
    assert rows["mcd"][2] == "-" and rows["mcd"][14] == "47.8 [S 11.8]"  # Hotel-Service only
    assert rows["rnp"][15:18] == ["-", "-", "35.6 (0.8) [S 15.3]"]  # no Hotel-Cleanliness cell: ours is -
    assert "2 row(s) of methods outside the leaderboard grid" in text and "dmr_ref" in text
    assert "1 row(s) run on the transformer encoder" in text


def test_csv_lists_ours_and_the_published_numbers_with_their_source(results: Path, fixed_grid: None) -> None:
    frame = pd.read_csv(io.StringIO(_table(results, "--format", "csv")))
    mgr = frame[frame["label"] == "mgr [published]"].set_index(["group", "metric"])
    assert mgr.loc[("beer.appearance", "F1"), "mean"] == 83.7 and mgr.loc[("beer.appearance", "S"), "mean"] == 18.4
    assert set(mgr["source"]) == {"MGR (ACL 2023) Tables 5a, 6"}
    ours = frame[(frame["label"] == "ver") & (frame["metric"] == "F1")]
    assert len(ours) == 5 and set(ours["source"]) == {"ratbench"}


def test_without_results_the_leaderboard_shows_the_published_numbers(tmp_path: Path, fixed_grid: None) -> None:
    rows = _rows(_table(tmp_path / "none"))
    assert list(rows)[1:] == list(GOLDEN_METHODS)
    assert rows["fr"][:3] == ["-", "-", "82.8 [S 18.4]"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--with-paper"], "--layout leaderboard shows the published F1 without --with-paper"),
        (["--methods", "lime"], "--methods lime: not a method of the leaderboard"),
    ],
)
def test_bad_leaderboard_requests_are_one_line_errors(results: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["table", "--results-dir", str(results), "--layout", "leaderboard", *args])
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1
