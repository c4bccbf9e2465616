"""`ratbench run` mirrors every finished cell into mlflow; `--no-track` and broken stores lose nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench.cli import main

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def _isolated_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; undo it after each test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


GRID = ["run", "--methods", "rnp,ver", "--datasets", "toy", "--seeds", "1-2", "--preset", "demo", "--epochs", "1"]


def _finished_runs(results: Path) -> list[str]:
    # A client, not mlflow.set_tracking_uri: that one changes process-wide state for later tests.
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string="attributes.status = 'FINISHED'")
    return sorted(run.data.tags["ratbench.cell_id"] for run in runs)


def test_grid_is_mirrored_once_per_cell(toy_dataset: type, tmp_path: Path) -> None:
    """After a grid (and a rerun, and a sync) the store holds exactly one finished run per cell."""
    result = CliRunner().invoke(main, [*GRID, "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    cell_ids = sorted(str(p.parent.relative_to(tmp_path / "runs")) for p in tmp_path.glob("runs/**/metrics.json"))
    assert len(cell_ids) == 4 and _finished_runs(tmp_path) == cell_ids
    assert CliRunner().invoke(main, [*GRID, "--results-dir", str(tmp_path)]).exit_code == 0
    sync = CliRunner().invoke(main, ["sync-mlflow", "--results-dir", str(tmp_path)])
    assert sync.exit_code == 0 and "0 logged, 4 already there, 0 failed" in sync.stdout
    assert _finished_runs(tmp_path) == cell_ids


def test_no_track_writes_no_store_and_sync_backfills(toy_dataset: type, tmp_path: Path) -> None:
    """--no-track leaves mlflow alone; `ratbench sync-mlflow` backfills it later."""
    assert CliRunner().invoke(main, [*GRID, "--no-track", "--results-dir", str(tmp_path)]).exit_code == 0
    assert not (tmp_path / "mlflow.db").exists()
    sync = CliRunner().invoke(main, ["sync-mlflow", "--results-dir", str(tmp_path)])
    assert sync.exit_code == 0 and "4 logged, 0 already there, 0 failed" in sync.stdout
    assert len(_finished_runs(tmp_path)) == 4


def test_broken_store_warns_and_loses_no_result(toy_dataset: type, tmp_path: Path) -> None:
    """An unusable tracking URI costs a warning, never a cell."""
    broken = "sqlite:////proc/no-such-dir/mlflow.db"
    result = CliRunner().invoke(main, [*GRID, "--tracking-uri", broken, "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("runs/**/metrics.json"))) == 4
    assert "4 cells: 4 ran" in result.stdout
    assert result.stderr.count("warning: mlflow tracking to") == 1  # one plain line, no Python warning
    assert "TrackingWarning" not in result.stderr and "warnings.warn" not in result.stderr


def test_a_rerun_mirrors_finished_cells_that_an_earlier_run_did_not(toy_dataset: type, tmp_path: Path) -> None:
    """Cells finished without mirroring (a killed run, --no-track) are mirrored by the next run,
    even when it has no cell left to train: the store then equals the results folder."""
    assert CliRunner().invoke(main, [*GRID, "--no-track", "--results-dir", str(tmp_path)]).exit_code == 0
    assert not (tmp_path / "mlflow.db").exists()
    result = CliRunner().invoke(main, [*GRID, "--results-dir", str(tmp_path)])
    assert result.exit_code == 0 and "0 ran, 4 already done" in result.stdout
    assert "mirrored 4 finished cell(s)" in result.stdout
    cell_ids = sorted(str(p.parent.relative_to(tmp_path / "runs")) for p in tmp_path.glob("runs/**/metrics.json"))
    assert _finished_runs(tmp_path) == cell_ids
    again = CliRunner().invoke(main, [*GRID, "--results-dir", str(tmp_path)])
    assert again.exit_code == 0 and "mirrored" not in again.stdout and _finished_runs(tmp_path) == cell_ids
