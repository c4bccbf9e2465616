"""Results on disk: what counts as a finished cell, corrupt results, and file modes."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import fake_metrics

from ratbench.cli import main
from ratbench.execution import store

GRID = ["run", "--methods", "rnp", "--datasets", "toy", "--seeds", "1-2", "--preset", "demo", "--epochs", "1"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{broken", "not valid JSON"),
        ("{}", "missing key(s) cell_id, config_id"),
        ("[]", "expected a JSON object"),
        (json.dumps(fake_metrics(status="failed")), "status is 'failed'"),
        (json.dumps({**fake_metrics(), "modes": {"reference": {}}}), "modes must hold the results"),
        (json.dumps(fake_metrics(f1=None)), "modes.reference.P is None, not a finite number"),
        ("\udcff", "not valid JSON"),
    ],
)
def test_a_metrics_file_that_is_no_result_is_corrupt(tmp_path: Path, content: str, reason: str) -> None:
    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / store.METRICS_FILE).write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(store.CorruptResult, match=re.escape(reason)):
        store.read_metrics(folder)
    reported: list[store.CorruptResult] = []
    assert store.finished_cells(tmp_path, on_corrupt=reported.append) == []
    assert [exc.path for exc in reported] == [folder / store.METRICS_FILE]


def test_a_valid_result_with_post_hoc_accuracy_is_finished(tmp_path: Path) -> None:
    data = fake_metrics()
    data["modes"]["reference"]["Acc"] = None  # post-hoc methods report no accuracy
    store.atomic_write_json(tmp_path / store.METRICS_FILE, data)
    assert store.read_metrics(tmp_path) == data


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_corrupt_cell_is_reported_skipped_and_rerun(toy_dataset: type, tmp_path: Path) -> None:
    """dry-run says corrupt; table/export/sync-mlflow name it in one warning and go on; run redoes
    it and keeps the bad file as metrics.json.corrupt-<time>."""
    results = ["--results-dir", str(tmp_path), "--no-track"]
    assert _cli(*GRID, *results)[0] == 0
    _, bad = [cell.path for cell in store.finished_cells(tmp_path / "runs")]
    (bad / store.METRICS_FILE).write_text("{}")

    code, out, _ = _cli(*GRID, *results, "--dry-run")
    assert code == 0 and out.splitlines()[0].endswith("1 corrupt (2 cells)")
    for command in (
        ["table", "--results-dir", str(tmp_path)],
        ["export", str(tmp_path), "--out", str(tmp_path / "exported")],
    ):
        code, out, err = _cli(*command)
        assert code == 0, err
        assert err == f"warning: skipping {bad / store.METRICS_FILE}: missing key(s) {', '.join(store.METRIC_KEYS)} " \
            "(rerun the cell with `ratbench run`)\n"  # fmt: skip
    code, out, err = _cli("sync-mlflow", "--results-dir", str(tmp_path))
    assert code == 0 and "1 logged, 0 already there, 0 failed" in out and str(bad) in err

    code, out, _ = _cli(*GRID, *results)
    assert code == 0 and "1 ran, 1 already done" in out and "was corrupt, kept as metrics.json.corrupt-" in out
    assert store.read_metrics(bad) is not None
    [kept] = bad.glob(f"{store.METRICS_FILE}.corrupt-*")
    assert kept.read_text() == "{}"


def test_result_files_get_the_umask_mode_not_0600(toy_dataset: type, tmp_path: Path) -> None:
    """metrics.json and spec.json are written via temporary files; they must be as readable as the rest."""
    old = os.umask(0o022)
    try:
        assert _cli(*GRID, "--results-dir", str(tmp_path), "--no-track")[0] == 0
        os.umask(0o002)
        store.atomic_write_text(tmp_path / "group-writable.txt", "x")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {store.METRICS_FILE, store.SPEC_FILE, store.EPOCHS_FILE, store.RATIONALES_FILE}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}
    assert stat.S_IMODE((tmp_path / "group-writable.txt").stat().st_mode) == 0o664


def test_metrics_json_is_the_typed_record_the_readers_expect(tmp_path: Path) -> None:
    """A real cell's metrics.json has every required key of ``CellResult`` and no key it does
    not declare; the keys a reader must find are its required keys."""
    from conftest import tiny_synthetic_specs

    from ratbench.execution.launch import run_cells

    [spec] = tiny_synthetic_specs([1])
    assert run_cells([spec], tmp_path, echo=lambda _: None).ok
    written = json.loads((store.cell_dir(tmp_path, spec) / store.METRICS_FILE).read_text())
    required = store.CellResult.__required_keys__
    assert required == {*store.METRIC_KEYS, "status"}
    assert required <= set(written) <= required | store.CellResult.__optional_keys__
