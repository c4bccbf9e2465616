"""Per-epoch diagnostics (ratbench.evaluation.diagnostics): the figures on a scripted method, their
presence in a real cell's epochs.jsonl, and no effect on the results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_runner import SCRIPTED_DEV_ACC, _grid, _metrics_without_timing, scripted  # noqa: F401 (a fixture)

from ratbench.evaluation.diagnostics import EpochDiagnostics
from ratbench.execution import cells, store
from ratbench.execution.launch import run_cells


def _epochs(root: Path, spec: cells.CellSpec) -> list[dict]:
    return [json.loads(line) for line in (store.cell_dir(root, spec) / store.EPOCHS_FILE).open()]


@pytest.mark.usefixtures("toy_dataset", "scripted")
def test_the_figures_on_a_scripted_method(tmp_path: Path) -> None:
    """The scripted method predicts the label from the gold rationale (one-hot logits), is right on
    SCRIPTED_DEV_ACC of its own selections and selects the first `epoch` tokens."""
    [spec] = _grid(["scripted"], [1])
    assert run_cells([spec], tmp_path, echo=lambda _: None).ok
    epochs = _epochs(tmp_path, spec)
    assert [e["diag_gold_acc"] for e in epochs] == [100.0] * 4
    assert all(e["diag_gold_ce_mean"] == pytest.approx(math.log(1 + math.exp(-1))) for e in epochs)
    assert [e["diag_selected_acc"] for e in epochs] == list(SCRIPTED_DEV_ACC)
    # epoch e keeps e - 1 of its tokens and adds one: 1 / (e - 1) of the previous selection changed
    assert "diag_selection_change" not in epochs[0]
    assert [e["diag_selection_change"] for e in epochs[1:]] == pytest.approx([100.0, 50.0, 100 / 3])
    assert all(0 <= e["diag_annotation_F1"] <= 100 and e["diag_seconds"] >= 0 for e in epochs)


def test_diagnostics_change_no_result(toy_dataset: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's Gumbel draws run on a forked random state: the same metrics without them."""
    [spec] = _grid(["ver"], [1], epochs=12, n="40")
    run_cells([spec], tmp_path / "with", echo=lambda _: None)
    monkeypatch.setattr(EpochDiagnostics, "measure", lambda self, method: {})
    run_cells([spec], tmp_path / "without", echo=lambda _: None)
    with_, without = (
        _metrics_without_timing(store.cell_dir(tmp_path / d, spec) / store.METRICS_FILE) for d in ("with", "without")
    )
    assert with_ == without
    recorded = _epochs(tmp_path / "with", spec)
    assert all("diag_gold_acc" in e and "diag_selected_ce_median" in e for e in recorded)
    assert not any(key.startswith("diag_") for e in _epochs(tmp_path / "without", spec) for key in e)
