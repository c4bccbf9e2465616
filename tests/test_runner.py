"""The runner: seeding, model selection, the cell folder, skip/redo, failures."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ratbench import cells, grid
from ratbench.evaluate import f1_score, safe_div
from ratbench.method import Method, MethodConfig
from ratbench.registry import METHODS
from ratbench.scheduler import run_grid
from ratbench.types import Batch, EvalMode, RationaleOutput

# Dev accuracy the scripted method reaches after each epoch: the best is 80 at epoch 2
# (epoch 3 ties it and must NOT win: strict >, earliest epoch).
SCRIPTED_DEV_ACC = (50.0, 80.0, 80.0, 60.0)


class Scripted(Method):
    """Fake method whose dev accuracy follows SCRIPTED_DEV_ACC and whose test rationale
    reveals which epoch's state is evaluated (it selects the first `epoch` tokens)."""

    kind = "select_predict"

    @dataclasses.dataclass(frozen=True)
    class Config(MethodConfig):
        epochs: int = 4
        batch_size: int = 8

    def __init__(self, config: MethodConfig, info: object, device: torch.device) -> None:
        super().__init__(config, info, device)  # type: ignore[arg-type]
        self.model = nn.Module()
        self.model.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
        self.optimizers = []

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        for _ in batches:
            pass
        self.model.epoch += 1
        return {"loss": float(10 - self.model.epoch)}

    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        epoch = int(self.model.epoch)
        n = len(batch.labels)
        # Correct on the first `acc`% rows of the split (dev is one batch of 10 in the test).
        n_correct = round(SCRIPTED_DEV_ACC[epoch - 1] / 100 * n)
        predicted = batch.labels.clone()
        predicted[n_correct:] = 1 - predicted[n_correct:]
        logits = nn.functional.one_hot(predicted, 2).float()
        mask = torch.zeros_like(batch.mask)
        mask[:, :epoch] = 1
        return RationaleOutput(logits=logits, mask=mask * batch.mask)

    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(batch.labels, 2).float()


@pytest.fixture
def scripted() -> Iterator[type[Scripted]]:
    METHODS.register("scripted")(Scripted)
    yield Scripted
    METHODS._unregister("scripted")


def _grid(methods: list[str], seeds: list[int], **sets: str) -> list[cells.CellSpec]:
    return grid.expand(
        methods, ["toy"], seeds, preset="demo" if "rnp" in methods else "paper", sets={"toy": {"n": "10", **sets}}
    )


def test_best_dev_epoch_is_strictly_greater_earliest_and_its_state_is_tested(
    toy_dataset: type, scripted: type, tmp_path: Path
) -> None:
    """Selection keeps epoch 2 (80 %), not the tie at epoch 3, and evaluates epoch 2's state."""
    [spec] = _grid(["scripted"], [1])
    summary = run_grid([spec], tmp_path, echo=lambda _: None)
    assert summary.ok
    metrics = json.loads((cells.cell_dir(tmp_path, spec) / cells.METRICS_FILE).read_text())
    for mode in ("reference", "clean"):
        result = metrics["modes"][mode]
        assert result["best_epoch"] == 2 and result["dev_acc"] == 80.0
        # The epoch-2 state selects exactly 2 tokens per example.
        assert result["S"] == pytest.approx(100 * 2 * 10 / metrics["data"]["n_test_tokens"])
    epochs = [json.loads(line) for line in (cells.cell_dir(tmp_path, spec) / cells.EPOCHS_FILE).open()]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert [e["dev_acc_reference"] for e in epochs] == list(SCRIPTED_DEV_ACC)


def test_cell_folder_and_recomputable_rationales(toy_dataset: type, tmp_path: Path) -> None:
    """spec.json, epochs.jsonl, rationales.jsonl.gz and metrics.json; metrics recompute from rationales."""
    [spec] = _grid(["rnp"], [1], n="40")
    run_grid([spec], tmp_path, echo=lambda _: None)
    folder = cells.cell_dir(tmp_path, spec)
    assert json.loads((folder / cells.SPEC_FILE).read_text())["cell_id"] == spec.cell_id
    assert len((folder / cells.EPOCHS_FILE).read_text().splitlines()) == spec.method_config["epochs"]
    metrics = json.loads((folder / cells.METRICS_FILE).read_text())
    with gzip.open(folder / cells.RATIONALES_FILE, "rt") as handle:
        records = [json.loads(line) for line in handle]
    for mode in ("reference", "clean"):
        rows = [r for r in records if r["mode"] == mode]
        assert len(rows) == 40
        tp = sum(sum(m * g for m, g in zip(r["mask"], r["gold"], strict=False)) for r in rows)
        pred = sum(sum(r["mask"]) for r in rows)
        gold = sum(sum(r["gold"]) for r in rows)
        tokens = sum(r["length"] for r in rows)
        p, r = safe_div(tp, pred), safe_div(tp, gold)
        got = metrics["modes"][mode]
        assert got["F1"] == pytest.approx(100 * f1_score(p, r))
        assert got["S"] == pytest.approx(100 * pred / tokens)
        assert got["Acc"] == pytest.approx(100 * np.mean([r["pred"] == r["label"] for r in rows]))
        if mode == "clean":  # padding is never selected in the clean mode
            assert all(len(r["mask"]) == r["length"] for r in rows)


def _metrics_without_timing(path: Path) -> dict:
    data = json.loads(path.read_text())
    for key in ("wall_seconds", "seconds_per_epoch", "setup_seconds", "finished_at"):
        data.pop(key)
    return data


def test_same_seed_gives_identical_metrics_and_another_seed_differs(toy_dataset: type, tmp_path: Path) -> None:
    """One seeding point per cell: rerunning a cell reproduces every metric exactly."""
    specs = _grid(["ver"], [1, 2], n="40")
    run_grid(specs, tmp_path / "a", echo=lambda _: None)
    run_grid(specs, tmp_path / "b", echo=lambda _: None)
    a1, b1 = (_metrics_without_timing(cells.cell_dir(tmp_path / d, specs[0]) / cells.METRICS_FILE) for d in "ab")
    assert a1 == b1
    a2 = _metrics_without_timing(cells.cell_dir(tmp_path / "a", specs[1]) / cells.METRICS_FILE)
    assert a2["modes"] != a1["modes"]


def test_done_cells_are_skipped_and_a_deleted_metrics_file_is_redone(toy_dataset: type, tmp_path: Path) -> None:
    """Rerun: 0 cells; delete one metrics.json: exactly that cell runs again; --force reruns all."""
    specs = _grid(["rnp", "ver"], [1, 2])
    first = run_grid(specs, tmp_path, echo=lambda _: None)
    assert len(first.finished) == 4
    second = run_grid(specs, tmp_path, echo=lambda _: None)
    assert second.finished == [] and len(second.skipped) == 4
    (cells.cell_dir(tmp_path, specs[2]) / cells.METRICS_FILE).unlink()
    third = run_grid(specs, tmp_path, echo=lambda _: None)
    assert third.finished == [specs[2].cell_id]
    assert len(run_grid(specs, tmp_path, force=True, echo=lambda _: None).finished) == 4


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(toy_dataset: type, tmp_path: Path) -> None:
    """A crash leaves error.txt with the traceback and no metrics.json; the next cell still runs."""
    bad = dataclasses.replace(_grid(["rnp"], [1])[0], method_config={"epochs": 1, "batch_size": 0})
    good = _grid(["rnp"], [2])[0]
    summary = run_grid([bad, good], tmp_path, echo=lambda _: None)
    assert [cell for cell, _ in summary.failed] == [bad.cell_id]
    assert summary.finished == [good.cell_id]
    folder = cells.cell_dir(tmp_path, bad)
    assert "Traceback" in (folder / cells.ERROR_FILE).read_text()
    assert not (folder / cells.METRICS_FILE).exists()
