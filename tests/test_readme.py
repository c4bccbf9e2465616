"""The README's plugin examples are real: each code block loads as a plugin and runs a cell."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ratbench import cells, grid
from ratbench.errors import RatbenchError
from ratbench.registry import DATASETS, METHODS
from ratbench.scheduler import run_grid

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
    yield from _load_as_plugin("methods", "random_rationale", _block('@register_method("random_rationale")'), tmp_path)
    METHODS._unregister("random_rationale")


@pytest.fixture
def example_dataset(tmp_path: Path) -> Iterator[ModuleType]:
    yield from _load_as_plugin("datasets", "mytsv", _block('@register_dataset("mytsv")'), tmp_path)
    DATASETS._unregister("mytsv")


def test_readme_method_example_runs_next_to_rnp(example_method: ModuleType, toy_dataset: type, tmp_path: Path) -> None:
    """The example method registers, trains with its demo preset and gets evaluated."""
    assert METHODS.get("random_rationale").kind == "select_predict"
    specs = grid.expand(["random_rationale"], ["toy"], [1], preset="demo", sets={"toy": {"n": "30"}})
    assert specs[0].method_config["epochs"] == 3 and specs[0].method_config["hidden_dim"] == 32
    summary = run_grid(specs, tmp_path, echo=lambda _: None)
    assert summary.ok, summary.failed
    metrics = json.loads((cells.cell_dir(tmp_path, specs[0]) / cells.METRICS_FILE).read_text())
    # A random rationale at 15 % selects about 15 % of the tokens (clean mode: padding masked).
    assert 5 < metrics["modes"]["clean"]["S"] < 30


def test_readme_dataset_example_reads_files_and_reports_errors(example_dataset: ModuleType, tmp_path: Path) -> None:
    """The example dataset reads the documented TSV layout and names a missing file."""
    folder = tmp_path / "data" / "mytsv"
    folder.mkdir(parents=True)
    rows = [("1", "a great beer", "0 1 0"), ("0", "an awful beer", "0 1 0")] * 10
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    specs = grid.expand(["rnp"], ["mytsv"], [1], preset="demo", epochs=1, data_dir=tmp_path / "data")
    summary = run_grid(specs, tmp_path / "results", data_dir=tmp_path / "data", echo=lambda _: None)
    assert summary.ok, summary.failed
    metrics = json.loads((cells.cell_dir(tmp_path / "results", specs[0]) / cells.METRICS_FILE).read_text())
    assert metrics["data"]["n_test"] == 20
    assert metrics["data"]["test_gold_sparsity"] == pytest.approx(100 / 3)
    adapter = DATASETS.get("mytsv")("main", DATASETS.get("mytsv").Config(), tmp_path / "nowhere")
    with pytest.raises(RatbenchError, match=r"missing .*nowhere/mytsv/train.tsv"):
        list(adapter.read("train"))
