"""The paper's grids: `ratbench run --grid table1|table2|table3` from the packaged data file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench.cli import main
from ratbench.execution import paper_grids
from ratbench.registry import DATASETS, METHODS


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _settings(out: str) -> dict[tuple[str, str], str]:
    """``(method, dataset.subset) -> settings`` from the dry run's settings lines."""
    found = re.findall(r"^  (\w+) on ([\w.]+) \(preset \w+\): (.*)$", out, flags=re.MULTILINE)
    return {(method, target): settings for method, target, settings in found}


def test_table1_dry_run_lists_240_cells_with_the_paper_settings_and_the_missing_files(tmp_path: Path) -> None:
    code, out, err = _run(
        "run", "--grid", "table1", "--seeds", "1-5", "--dry-run", "--data-dir", str(tmp_path / "d"),
        "--results-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2
    assert out.startswith("240 todo, 0 done") and out.count("  to run: ") == 240
    settings = _settings(out)
    methods = ["lime", "attention", "rnp", "inter_rat", "nir_rnp", "dmr", "a2i", "ver"]
    targets = ["beer.appearance", "beer.aroma", "beer.palate", "hotel.location", "hotel.service", "hotel.cleanliness"]
    assert set(settings) == {(m, t) for m in methods for t in targets}
    glove = f"embeddings=glove:{tmp_path / 'd'}/glove.6B.100d.txt"
    assert all(glove in line and "encoder=word" in line for line in settings.values())
    # `paper` is each method's reference pipeline: the jugechengzi code base (and LIME and
    # attention, which Table 1 runs beside it) pads every batch to 256; Inter_RAT's reference
    # pads each batch to its longest text, cut at 300 tokens.
    for (method, _), line in settings.items():
        layout = "max_len=300, padding=longest" if method == "inter_rat" else "max_len=256, padding=max_len"
        assert line.endswith(layout), (method, line)
    for target in targets:
        assert "sparsity=0.15," in settings["lime", target] and "sparsity=0.15," in settings["attention", target]
        assert "sparsity=0.125," in settings["rnp", target] and "perturb_rate=0.3" in settings["ver", target]
        assert ("batch_size=128" if target.startswith("beer") else "batch_size=256") in settings["rnp", target]
    # Every missing file is named once, on stderr, then one summary error.
    missing = [line for line in err.splitlines() if line.startswith("missing: ")]
    assert any("glove.6B.100d.txt" in line for line in missing)
    assert any("reviews.aspect2.heldout.txt.gz" in line for line in missing)
    assert any("hotel_Cleanliness.dev" in line for line in missing)
    assert len(missing) == len(set(missing)) == 17  # GloVe, 7 beer files (annotations.json once), 9 hotel
    assert err.splitlines()[-1].startswith("error: 17 required file(s) or model(s) missing")


def test_table3_has_nir_with_and_without_noise_on_the_bert_encoder(tmp_path: Path) -> None:
    code, out, err = _run(
        "run", "--grid", "table3", "--seeds", "1", "--dry-run", "--data-dir", str(tmp_path), "--results-dir",
        str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2 and out.startswith("8 todo")  # (nir, nir without noise, rnp, ver) x (multirc, fever)
    lines = [line for line in out.splitlines() if " on eraser.fever " in line]
    assert sorted(re.search(r"noise_p=([\d.]+)", line).group(1) for line in lines if "nir on" in line) == ["0.0", "0.1"]
    assert all("encoder=hf:bert-base-uncased" in line and "max_len=512" in line for line in lines)
    assert all("sparsity=0.2," in line and "lr=2e-05" in line and "batch_size=16" in line for line in lines)
    assert "model 'bert-base-uncased' not found" in err


def test_a_grid_can_be_narrowed_and_overridden(tmp_path: Path) -> None:
    code, out, _ = _run(
        "run", "--grid", "table2", "--methods", "ver", "--set", "data.encoder=hf:minilm", "--set",
        "ver.perturb_rate=0.5", "--dry-run", "--data-dir", str(tmp_path), "--results-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2 and out.startswith("1 todo")  # the beer files are not in tmp_path
    (line,) = _settings(out).values()
    assert "perturb_rate=0.5" in line and "encoder=hf:minilm" in line and "max_len=120" in line
    assert "sparsity=0.1," in line and "lr=5e-06" in line and "batch_size=32" in line and "epochs=10" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "tabel1"], "unknown grid 'tabel1' (did you mean 'table1'?)"),
        (["--grid", "table2", "--methods", "lime"], "--methods lime: not part of grid table2"),
        (["--grid", "table2", "--datasets", "hotel"], "--datasets hotel: not part of grid table2"),
        (["--grid", "table1", "--preset", "demo"], "--grid table1 runs with preset paper; drop --preset demo"),
        (["--methods", "rnp"], "give --methods and --datasets, or --grid"),
    ],
)
def test_bad_grid_requests_are_one_line_errors(args: list[str], message: str, tmp_path: Path) -> None:
    code, _, err = _run("run", *args, "--dry-run", "--results-dir", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and message in err


def test_every_grid_names_real_methods_datasets_and_scopes() -> None:
    """A typo in the data file (a method, a dataset or a --set scope) would silently drop a
    setting; every name must be one the registries know."""
    grids = paper_grids.load_grids()
    assert set(grids) == {"table1", "table2", "table3"}
    for grid in grids.values():
        assert grid.layout == grid.name
        datasets = {name.partition(".")[0] for name in grid.datasets}
        for name in grid.datasets:
            dataset, _, subset = name.partition(".")
            assert subset in DATASETS.get(dataset).subsets
        for run in grid.runs:
            for method in run.methods:
                METHODS.check(method)
            for key in {**grid.sets, **run.sets}:
                scope = key.partition(".")[0]
                assert scope in {"data", *datasets, *grid.methods}, (grid.name, key)


@pytest.mark.parametrize("dataset", DATASETS.names())
def test_the_paper_preset_is_the_reference_layout_and_demo_stays_bucketed(dataset: str) -> None:
    """`--preset paper` is each method's reference pipeline (RNP family: every batch padded to
    max_len; Inter_RAT: each batch to its longest, max 300, lower-cased lookups, test batches of
    1); `--preset demo` keeps the fast length-bucketed batches for every method."""
    from ratbench.execution.grid import data_config_layers

    adapter_cls = DATASETS.get(dataset)
    for subset in adapter_cls.subsets:
        for method in METHODS.names():
            paper = adapter_cls.Config.resolve(*data_config_layers(dataset, subset, "paper", None, method)[0])
            demo = adapter_cls.Config.resolve(*data_config_layers(dataset, subset, "demo", None, method)[0])
            assert demo.padding == "bucket", (method, dataset)
            if method == "inter_rat":
                assert (paper.padding, paper.max_len, paper.lowercase) == ("longest", 300, True)
            else:
                assert paper.padding == "max_len", (method, dataset)
    assert METHODS.get("inter_rat").Config.resolve(*_paper_layers("inter_rat")).test_batch_size == 1


def _paper_layers(method: str) -> list:
    from ratbench.execution.grid import preset_layers, preset_scopes

    return preset_layers(METHODS.get(method).presets, "paper", preset_scopes("beer", "appearance"), method)


def test_a_bucketed_paper_row_says_so_in_its_label(tmp_path: Path) -> None:
    """Bucketing under `paper` is an opt-in for speed: the row's variant names it."""
    from ratbench.execution import grid

    [plain] = grid.expand(["rnp"], ["synthetic.aroma"], [1], "paper")
    [bucketed] = grid.expand(["rnp"], ["synthetic.aroma"], [1], "paper", sets={"data": {"padding": "bucket"}})
    assert plain.variant["data"] == {} and bucketed.variant["data"] == {"data.padding": "bucket"}
    assert plain.config_id != bucketed.config_id


def test_a_transformer_scoped_data_preset_is_the_plain_row() -> None:
    """NIR's reference layout on a transformer (`hf/*` data preset: per-batch longest padding) is
    its `paper` row, not a variant of it; on the word encoder it keeps the padded layout."""
    from ratbench.execution import grid

    [hf] = grid.expand(["nir"], ["synthetic.aroma"], [1], "paper", sets={"data": {"encoder": "hf:minilm"}})
    [word] = grid.expand(["nir"], ["synthetic.aroma"], [1], "paper")
    assert (hf.dataset_config["padding"], hf.dataset_config["max_query_len"]) == ("longest", 510)
    assert hf.variant["data"] == {"data.encoder": "hf:minilm"}
    assert word.dataset_config["padding"] == "max_len" and word.variant["data"] == {}
