"""Reporting never writes: ``table``, ``report``, ``plot``, ``show``, ``export`` and
``run --dry-run`` leave every byte and every mtime of a results folder as they were, even one
that needs recovery (a commit cut short, a dead run's claim on a done cell, an abandoned
attempt, a corrupt result). The next ``ratbench run`` recovers it."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench.cli import main
from ratbench.execution import claims, grid, store
from ratbench.reporting.results import load_results

TINY = [
    "--methods", "rnp", "--datasets", "synthetic.appearance", "--preset", "demo", "--epochs", "2",
    "--set", "synthetic.n_train=40", "--set", "synthetic.n_dev=16", "--set", "synthetic.n_test=16",
    "--set", "rnp.hidden_dim=16", "--no-track",
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path below ``root``: kind, size, mtime and (for files) the sha256 of the content."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        found[str(path.relative_to(root))] = (path.is_dir(), info.st_size, info.st_mtime_ns, digest)
    return found


def _dead_pid() -> int:
    pid = 2**22 - 1
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid -= 1


def _cells(results: Path) -> list[Path]:
    return sorted(path.parent for path in store.runs_dir(results).glob(f"**/{store.SPEC_FILE}"))


@pytest.fixture(scope="module")
def messy_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five finished cells, then: seed 1's commit cut short (its result still in its attempt),
    seed 2 done under a dead run's claim, seed 3 with an abandoned unfinished attempt, seed 4's
    result corrupt, seed 5 failed."""
    results = tmp_path_factory.mktemp("messy")
    assert CliRunner().invoke(main, ["run", *TINY, "--seeds", "1-5", "--results-dir", str(results)]).exit_code == 0
    one, two, three, four, five = _cells(results)
    attempt = one / f"{store.ATTEMPT_PREFIX}cut-short"
    attempt.mkdir()
    for name in (store.METRICS_FILE, store.RATIONALES_FILE):
        os.replace(one / name, attempt / name)
    claim = {"host": socket.gethostname(), "pid": _dead_pid(), "started": time.time()}
    (two / claims.CLAIM_FILE).write_text(store.dumps(claim))
    (three / f"{store.ATTEMPT_PREFIX}abandoned").mkdir()
    (four / store.METRICS_FILE).write_text("{broken")
    (five / store.METRICS_FILE).unlink()
    (five / store.ERROR_FILE).write_text("Traceback (most recent call last):\nValueError: boom\n")
    return results


def _commands(results: Path, out: Path) -> dict[str, list[str]]:
    at = ["--results-dir", str(results)]
    return {
        "table": ["table", *at],
        "table-compare": ["table", *at, "--metrics", "S,F1", "--include-stale"],
        "report": ["report", *at, "--out", str(out / "report.md")],
        "plot": ["plot", *at, "--figure", "curves", "--out", str(out / "curves.png")],
        "show": ["show", str(results), "--limit", "2"],
        "show-html": ["show", str(results), "--html", str(out / "page.html")],
        "export": ["export", str(results), "--out", str(out / "export")],
        "dry-run": ["run", *TINY, "--seeds", "1-6", *at, "--dry-run"],
    }


@pytest.mark.parametrize("command", list(_commands(Path("r"), Path("o"))))
def test_a_reporting_command_leaves_the_results_folder_as_it_was(
    messy_results: Path, tmp_path: Path, command: str
) -> None:
    """Same paths, sizes, mtimes and contents after the command as before it."""
    before = _snapshot(messy_results)
    result = CliRunner().invoke(main, _commands(messy_results, tmp_path)[command])
    assert result.exit_code in (0, 1), result.output  # 1: export names the corrupt cell
    assert _snapshot(messy_results) == before


def test_readers_see_a_cut_short_commit_as_done_and_a_run_recovers_it(messy_results: Path, tmp_path: Path) -> None:
    """The tables count the cell whose commit was cut short; the next run installs its result
    (without running it again), drops the dead claim, and reruns only the corrupt and the failed
    cell (an abandoned attempt goes when its cell runs again, under its claim)."""
    results = tmp_path / "copy"
    shutil.copytree(messy_results, results)
    one, two, *_ = _cells(results)
    assert store.CellFolder(one).is_done() and not (one / store.METRICS_FILE).exists()
    assert sorted(set(load_results(results)["seed"])) == [1, 2, 3]
    specs = grid.expand(["rnp"], ["synthetic.appearance"], [1, 2, 3, 4, 5], preset="demo", epochs=2,
                        sets={"synthetic": {"n_train": "40", "n_dev": "16", "n_test": "16"},
                              "rnp": {"hidden_dim": "16"}})  # fmt: skip
    assert [store.status(results, spec) for spec in specs] == ["done", "done", "done", "corrupt", "failed"]
    run = CliRunner().invoke(main, ["run", *TINY, "--seeds", "1-5", "--results-dir", str(results)])
    assert run.exit_code == 0, run.output
    assert "2 ran, 3 already done" in run.output
    assert (one / store.METRICS_FILE).exists() and not list(one.glob(f"{store.ATTEMPT_PREFIX}*"))
    assert not (two / claims.CLAIM_FILE).exists()
