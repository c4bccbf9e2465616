"""mlflow mirroring of finished cells: one run per cell, idempotency, backfill, failures, concurrency."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow")

from ratbench.errors import RatbenchError  # noqa: E402
from ratbench.execution import grid, store, tracking  # noqa: E402

EPOCHS = 2
SEEDS = [1, 2, 3, 4, 5, 6]
EXPERIMENT = "ratbench/toy"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A results folder with six finished rnp x toy cells (two epochs each), made once."""
    from conftest import Toy

    from ratbench.execution.launch import run_cells
    from ratbench.registry import DATASETS

    results = tmp_path_factory.mktemp("finished")
    DATASETS.register("toy")(Toy)
    try:
        specs = grid.expand(["rnp"], ["toy"], SEEDS, preset="demo", epochs=EPOCHS, sets={"toy": {"n": "12"}})
        summary = run_cells(specs, results, echo=lambda _: None)
    finally:
        DATASETS.unregister("toy")
    assert summary.ok and len(summary.finished) == len(SEEDS)
    yield results


@pytest.fixture
def results(finished: Path, tmp_path: Path) -> Path:
    """A private copy of the finished results folder (no mlflow store in it yet)."""
    return Path(shutil.copytree(finished, tmp_path / "results"))


def _uri(results: Path) -> str:
    return tracking.default_tracking_uri(results)


def _runs(uri: str, **kwargs: Any) -> list[Any]:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return [] if experiment is None else list(client.search_runs([experiment.experiment_id], **kwargs))


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_default_uri_is_sqlite_in_results_unless_env_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without MLFLOW_TRACKING_URI the store is results/mlflow.db (absolute); the env var wins."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.default_tracking_uri(Path("res")) == f"sqlite:///{(tmp_path / 'res' / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking.default_tracking_uri(Path("res")) == "http://tracking.example:5000"


def test_import_does_not_need_mlflow() -> None:
    """``import ratbench.execution.tracking`` imports no mlflow module."""
    code = "import sys, ratbench.execution.tracking; assert not [m for m in sys.modules if m.startswith('mlflow')]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_flatten_and_truncation() -> None:
    """Nested dicts flatten with dots; a value over the limit is cut to it and marked."""
    assert tracking.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}
    assert tracking.param_value(None, 100) == "null" and tracking.param_value("x", 100) == "x"
    cut = tracking.param_value("y" * 7000, 6000)
    assert len(cut) == 6000 and cut.endswith(tracking.TRUNCATED) and cut.startswith("y" * 5000)


def test_one_run_per_cell_with_tags_params_and_metrics(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell becomes one FINISHED run: tags, flattened spec, per-epoch history and final metrics."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cell = store.finished_cells(results / "runs")[0].path
    spec = json.loads((cell / store.SPEC_FILE).read_text())
    metrics = json.loads((cell / store.METRICS_FILE).read_text())
    tracker = tracking.Tracker(results)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tracking.TrackingWarning)
        assert tracker.mirror(cell) != "failed"

    [run] = _runs(tracker.uri)
    client = mlflow.MlflowClient(tracker.uri)
    assert run.info.status == "FINISHED" and run.info.run_name == spec["cell_id"]
    tags = run.data.tags
    assert tags[tracking.TAG_CELL_ID] == spec["cell_id"] and tags[tracking.TAG_CONFIG_ID] == spec["config_id"]
    assert (tags["method"], tags["dataset"], tags["subset"], tags["seed"]) == ("rnp", "toy", "main", str(spec["seed"]))
    params = run.data.params
    assert params["method_config.lr"] == json.dumps(spec["method_config"]["lr"])
    assert params["dataset_config.n"] == "12" and params["limit"] == "null" and params["method"] == "rnp"
    assert set(params) >= {f"method_config.{k}" for k in spec["method_config"]}
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(1, EPOCHS + 1))
    epochs = [json.loads(line) for line in (cell / store.EPOCHS_FILE).read_text().splitlines()]
    assert [m.value for m in history] == pytest.approx([e["loss"] for e in epochs])
    assert len(client.get_metric_history(run.info.run_id, "dev_acc_clean")) == EPOCHS
    final = run.data.metrics
    assert final["reference.F1"] == pytest.approx(metrics["modes"]["reference"]["F1"])
    assert final["clean.S"] == pytest.approx(metrics["modes"]["clean"]["S"])
    assert final["data.n_test"] == metrics["data"]["n_test"]
    assert "epoch" not in final
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {store.RATIONALES_FILE, store.SPEC_FILE, store.EPOCHS_FILE, store.METRICS_FILE}
    assert (results / tracking.ARTIFACTS_DIR).is_dir() and not Path("mlruns").exists()


def test_none_metric_is_skipped_and_long_param_truncated(results: Path) -> None:
    """None final metrics are left out; an over-long spec value is logged truncated to mlflow's limit."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    cell = store.finished_cells(results / "runs")[0].path
    metrics = json.loads((cell / store.METRICS_FILE).read_text())
    metrics["modes"]["reference"]["Acc"] = None
    (cell / store.METRICS_FILE).write_text(json.dumps(metrics))
    spec = json.loads((cell / store.SPEC_FILE).read_text())
    spec["dataset_fingerprint"]["note"] = "z" * (MAX_PARAM_VAL_LENGTH + 100)
    (cell / store.SPEC_FILE).write_text(json.dumps(spec))
    tracker = tracking.Tracker(results, _uri(results))
    assert tracker.mirror(cell) != "failed"
    [run] = _runs(tracker.uri)
    assert "reference.Acc" not in run.data.metrics and "clean.Acc" in run.data.metrics
    note = run.data.params["dataset_fingerprint.note"]
    assert len(note) == MAX_PARAM_VAL_LENGTH and note.endswith(tracking.TRUNCATED)


def test_logging_twice_keeps_one_run_and_a_new_result_replaces_it(results: Path) -> None:
    """Logging a cell again is a no-op; a changed metrics.json (a --force rerun) replaces the run."""
    cell = store.finished_cells(results / "runs")[0].path
    tracker = tracking.Tracker(results, _uri(results))
    assert tracker.mirror(cell) == "logged"
    assert tracker.mirror(cell) == "skipped"
    assert tracking.Tracker(results, _uri(results)).mirror(cell) == "skipped"  # a fresh process, same store
    [first] = _runs(tracker.uri)

    metrics = json.loads((cell / store.METRICS_FILE).read_text())
    metrics["modes"]["reference"]["F1"] = 99.5
    (cell / store.METRICS_FILE).write_text(json.dumps(metrics))
    assert tracker.mirror(cell) == "logged"
    [second] = _runs(tracker.uri)
    assert second.info.run_id != first.info.run_id and second.data.metrics["reference.F1"] == 99.5


def test_sync_backfills_every_finished_cell(results: Path) -> None:
    """sync logs all finished cells once and skips them the second time; a corrupt metrics.json is
    no finished cell: it is named in a warning and not mirrored."""
    broken = results / "runs" / "rnp" / "toy.main" / "c-broken" / "seed1"
    broken.mkdir(parents=True)
    (broken / store.METRICS_FILE).write_text("{not json")
    (results / "runs" / "rnp" / "toy.main" / "c-unfinished" / "seed1").mkdir(parents=True)  # no metrics.json

    warnings: list[str] = []
    assert tracking.sync(results, _uri(results), warn=warnings.append) == (len(SEEDS), 0, 0)
    assert len(warnings) == 1 and str(broken / store.METRICS_FILE) in warnings[0] and "not valid JSON" in warnings[0]
    runs = _runs(_uri(results))
    assert sorted(r.data.tags[tracking.TAG_CELL_ID] for r in runs) == sorted(
        str(p.relative_to(results / "runs")) for p in [cell.path for cell in store.finished_cells(results / "runs")]
    )
    assert tracking.sync(results, _uri(results), warn=warnings.append) == (0, len(SEEDS), 0)
    assert len(_runs(_uri(results))) == len(SEEDS)


def test_sync_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sync without a runs/ folder, or without mlflow, is a clear RatbenchError."""
    with pytest.raises(RatbenchError, match="no runs/ folder"):
        tracking.sync(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(RatbenchError, match="mlflow is not installed"):
        tracking.sync(tmp_path)


@pytest.mark.parametrize("backend", ["http", "sqlite-unwritable", "sqlite-garbage", "no-mlflow"])
def test_broken_store_warns_once_returns_false_and_leaves_the_cell_alone(
    results: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable/broken store (or no mlflow) warns once, returns False, never raises, touches nothing."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    uri = {
        "http": "http://127.0.0.1:9",
        "sqlite-unwritable": "sqlite:////proc/ratbench-nonexistent/mlflow.db",
        "sqlite-garbage": _uri(results),
        "no-mlflow": _uri(results),
    }[backend]
    if backend == "sqlite-garbage":
        (results / tracking.DB_FILE).write_bytes(b"this is not a sqlite database" * 100)
    if backend == "no-mlflow":
        monkeypatch.setitem(sys.modules, "mlflow", None)
    first, second = [cell.path for cell in store.finished_cells(results / "runs")][:2]
    before = _snapshot(results / "runs")
    tracker = tracking.Tracker(results, uri)
    with pytest.warns(tracking.TrackingWarning) as caught:
        assert tracker.mirror(first) == "failed"
        assert tracker.mirror(second) == "failed"  # disabled after the failure: no retry, no second warning
    assert len(caught) == 1 and tracker.disabled
    message = str(caught[0].message)
    assert uri in message and "ratbench sync-mlflow" in message and "\n" not in message
    assert _snapshot(results / "runs") == before


def _concurrent_worker(results: str, uri: str, mine: list[str], barrier: Any, queue: Any) -> None:
    """Child process: log its own cells, then every cell, all at once with the other children."""
    import warnings

    from mlflow import MlflowClient  # noqa: F401  (imported before the barrier: start together)

    from ratbench.execution import tracking

    everything = [str(p) for p in [cell.path for cell in store.finished_cells(Path(results) / "runs")]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        barrier.wait(timeout=60)
        tracker = tracking.Tracker(Path(results), uri)
        outcomes = [tracker.mirror(Path(cell)) for cell in [*mine, *everything]]
    queue.put((outcomes, [f"{w.category.__name__}: {w.message}" for w in caught]))


def test_concurrent_writers_share_one_fresh_sqlite_store(results: Path, tmp_path: Path) -> None:
    """Three spawned processes logging into one new sqlite store: no failure, one FINISHED run per cell."""
    uri = "sqlite:///" + (tmp_path / "store" / "mlflow.db").as_posix()  # does not exist yet
    folders = [str(p) for p in [cell.path for cell in store.finished_cells(results / "runs")]]
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_concurrent_worker, args=(str(results), uri, folders[i::3], barrier, queue))
        for i in range(3)
    ]
    for proc in procs:
        proc.start()
    reports = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    outcomes = [outcome for report, _ in reports for outcome in report]
    assert [w for _, caught in reports for w in caught if w.startswith("TrackingWarning")] == []
    assert "failed" not in outcomes
    assert outcomes.count("logged") == len(folders)  # every cell logged by exactly one process
    assert outcomes.count("skipped") == 3 * len(folders)  # then found by the others

    runs = _runs(uri)
    assert sorted(r.data.tags[tracking.TAG_CELL_ID] for r in runs) == sorted(
        str(Path(f).relative_to(results / "runs")) for f in folders
    )
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_mlflow_search_runs_finds_one_finished_run_per_cell(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a backfill, ``mlflow.search_runs`` (the public API) lists exactly one FINISHED run per cell."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _uri(results))
    assert tracking.sync(results) == (len(SEEDS), 0, 0)
    assert tracking.sync(results) == (0, len(SEEDS), 0)
    frame = mlflow.search_runs(experiment_names=[EXPERIMENT])
    expected = sorted(
        str(p.relative_to(results / "runs")) for p in [cell.path for cell in store.finished_cells(results / "runs")]
    )
    assert sorted(frame[f"tags.{tracking.TAG_CELL_ID}"]) == expected
    assert set(frame["status"]) == {"FINISHED"}
    assert frame.set_index(f"tags.{tracking.TAG_CELL_ID}")["metrics.reference.F1"].to_dict() == pytest.approx(
        {
            cell: json.loads((results / "runs" / cell / store.METRICS_FILE).read_text())["modes"]["reference"]["F1"]
            for cell in expected
        }
    )
