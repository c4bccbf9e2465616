"""The README's plugin examples are real: each code block loads as a plugin and runs a cell."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from test_method_contract import check_contract
from test_query_inputs import check_query_inputs

from ratbench.errors import RatbenchError
from ratbench.execution import grid, store
from ratbench.execution.launch import run_cells
from ratbench.registry import DATASETS, METHODS

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    [block] = [b for b in blocks if marker in b]
    return block


def _load_as_plugin(kind: str, name: str, source: str, tmp_path: Path) -> Iterator[ModuleType]:
    """Load ``source`` as ``ratbench._plugins.<kind>.<name>`` (as if saved in the plugin folder)."""
    path = tmp_path / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    module_name = f"ratbench._plugins.{kind}.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)


@pytest.fixture
def example_method(tmp_path: Path) -> Iterator[ModuleType]:
    yield from _load_as_plugin("methods", "budget_rnp", _block('@register_method("budget_rnp")'), tmp_path)
    METHODS.unregister("budget_rnp")


@pytest.fixture
def example_dataset(tmp_path: Path) -> Iterator[ModuleType]:
    yield from _load_as_plugin("datasets", "mytsv", _block('@register_dataset("mytsv")'), tmp_path)
    DATASETS.unregister("mytsv")


def test_readme_method_example_runs_next_to_rnp(example_method: ModuleType, toy_dataset: type, tmp_path: Path) -> None:
    """The example method registers, trains with its demo preset and gets evaluated; it is short,
    imports ``ratbench.api`` only, and logs its own term."""
    source = inspect.getsource(example_method)
    assert len(source.splitlines()) <= 60
    assert set(re.findall(r"^from (ratbench\S*) import", source, flags=re.M)) == {"ratbench.api"}
    specs = grid.expand(["budget_rnp", "rnp"], ["toy"], [1], preset="demo", sets={"toy": {"n": "30"}})
    assert specs[0].method_config["budget_lambda"] == 2.0 and specs[0].method_config["epochs"] == 10
    summary = run_cells(specs, tmp_path, echo=lambda _: None)
    assert summary.ok, summary.failed
    epochs = (store.cell_dir(tmp_path, specs[0]) / store.EPOCHS_FILE).read_text().splitlines()
    assert {"budget_loss", "continuity_loss", "cls_loss"} <= set(json.loads(epochs[0]))
    assert "sparsity_loss" not in json.loads(epochs[0])


def test_readme_method_example_keeps_the_contract(
    example_method: ModuleType, toy_dataset: type, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The contract test on both encoders: it runs on the word encoder and is refused on a
    transformer (the template's default ``encoders``)."""
    assert METHODS.get("budget_rnp").encoders == ("word",)
    for encoder in ("word", "hf"):
        check_contract("budget_rnp", encoder, request, tmp_path / encoder)


def test_readme_method_example_keeps_the_query_out_and_in_view(
    example_method: ModuleType, query_toy_dataset: type, request: pytest.FixtureRequest
) -> None:
    check_query_inputs("budget_rnp", "word", request)


def test_readme_dataset_example_reads_files_and_reports_errors(example_dataset: ModuleType, tmp_path: Path) -> None:
    """The example dataset reads the documented TSV layout and names a missing file."""
    folder = tmp_path / "data" / "mytsv"
    folder.mkdir(parents=True)
    rows = [("1", "a great beer", "0 1 0"), ("0", "an awful beer", "0 1 0")] * 10
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    specs = grid.expand(["rnp"], ["mytsv"], [1], preset="demo", epochs=1, data_dir=tmp_path / "data")
    summary = run_cells(specs, tmp_path / "results", data_dir=tmp_path / "data", echo=lambda _: None)
    assert summary.ok, summary.failed
    metrics = json.loads((store.cell_dir(tmp_path / "results", specs[0]) / store.METRICS_FILE).read_text())
    assert metrics["data"]["n_test"] == 20
    assert metrics["data"]["test_gold_sparsity"] == pytest.approx(100 / 3)
    adapter = DATASETS.get("mytsv")("main", DATASETS.get("mytsv").Config(), tmp_path / "nowhere")
    with pytest.raises(RatbenchError, match=r"missing .*nowhere/mytsv/train.tsv"):
        list(adapter.read("train"))
