"""Claims and resume: exclusive cells across schedulers, stale takeover, SIGKILL and rerun."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import fake_metrics

from ratbench.cli import main
from ratbench.execution import claims, grid, store

# A tiny synthetic grid that a fresh `ratbench` process can run (no in-test plugins needed).
TINY = [
    "--datasets", "synthetic.appearance", "--preset", "demo", "--epochs", "2",
    "--set", "synthetic.n_train=40", "--set", "synthetic.n_dev=16", "--set", "synthetic.n_test=16",
    "--set", "synthetic.min_review_len=60", "--set", "synthetic.mean_review_len=70",
    "--set", "synthetic.max_review_len=80", "--set", "rnp.hidden_dim=16",
]  # fmt: skip


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_claim(folder: Path, **claim: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / claims.CLAIM_FILE).write_text(json.dumps(claim))


def test_claim_is_exclusive_and_released_only_by_its_owner(tmp_path: Path) -> None:
    """A live claim blocks a second claimant; release removes only our own claim."""
    folder = tmp_path / "cell"
    assert claims.try_claim(folder)
    assert not claims.try_claim(folder)  # same live process, still held
    _write_claim(folder, host="elsewhere", pid=1, started=time.time())
    claims.release_claim(folder)
    assert (folder / claims.CLAIM_FILE).exists()  # not ours: left alone
    assert not claims.try_claim(folder)  # a fresh claim from another host is respected


@pytest.mark.parametrize(
    "claim",
    [
        {"host": socket.gethostname(), "started": time.time()},  # dead pid on this host
        {"host": "elsewhere", "pid": 1, "started": time.time() - 7200},  # too old
    ],
)
def test_stale_claims_are_taken_over(tmp_path: Path, claim: dict) -> None:
    """A dead process on this host, or an age beyond --stale-after, makes a claim stale."""
    claim = {"pid": _dead_pid(), **claim}
    _write_claim(tmp_path / "cell", **claim)
    assert claims.read_claim(tmp_path / "cell") == claim
    assert claims.try_claim(tmp_path / "cell", stale_after=3600)
    assert claims.read_claim(tmp_path / "cell")["pid"] == os.getpid()


@pytest.mark.parametrize("content", ["", "{not json", '{"host": "h", "pid": "abc", "started": 1}', "[]"])
def test_an_unreadable_claim_is_stale_after_stale_after_and_at_once_with_0(tmp_path: Path, content: str) -> None:
    """An empty or malformed claim (e.g. a non-integer pid) must not block its cell forever, nor crash."""
    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / claims.CLAIM_FILE).write_text(content)
    assert not claims.try_claim(folder, stale_after=3600)  # fresh: it might be a scheduler's
    assert claims.try_claim(folder, stale_after=0)
    assert claims.read_claim(folder)["pid"] == os.getpid()
    (folder / claims.CLAIM_FILE).write_text(content)
    old = time.time() - 7200
    os.utime(folder / claims.CLAIM_FILE, (old, old))
    assert claims.try_claim(folder, stale_after=3600)  # older than --stale-after, by its file's age


def test_a_claim_whose_pid_was_reused_by_a_live_process_is_stale(tmp_path: Path) -> None:
    """The claim records its process's start time: the same pid with another start is another process."""
    folder = tmp_path / "cell"
    mine = claims.process_start(os.getpid())
    assert mine is not None  # Linux /proc
    _write_claim(folder, host=socket.gethostname(), pid=os.getpid(), pid_start=mine, started=time.time())
    assert not claims.claim_is_stale(claims.read_claim(folder), 3600)
    _write_claim(folder, host=socket.gethostname(), pid=os.getpid(), pid_start=str(int(mine) - 1), started=time.time())
    assert claims.claim_is_stale(claims.read_claim(folder), 3600)
    assert claims.try_claim(folder, stale_after=3600)


def test_status_and_dry_run(tmp_path: Path) -> None:
    """--dry-run counts todo/done/failed/running/stale cells and lists what would run."""
    specs = grid.expand(["rnp"], ["synthetic.appearance"], [1, 2, 3, 4, 5, 6], preset="demo")
    folders = [store.cell_dir(tmp_path, spec) for spec in specs]
    store.atomic_write_json(folders[0] / store.METRICS_FILE, fake_metrics(specs[0]))
    folders[1].mkdir(parents=True)
    (folders[1] / store.ERROR_FILE).write_text("Traceback")
    _write_claim(folders[2], host=socket.gethostname(), pid=os.getpid(), started=time.time())
    _write_claim(folders[3], host=socket.gethostname(), pid=_dead_pid(), started=time.time())
    folders[5].mkdir(parents=True)
    (folders[5] / store.METRICS_FILE).write_text("{}")  # parses, but is no result
    assert [store.status(tmp_path, spec) for spec in specs] == [
        "done", "failed", "running", "stale", "todo", "corrupt"
    ]  # fmt: skip
    result = CliRunner().invoke(
        main,
        ["run", "--methods", "rnp", "--datasets", "synthetic.appearance", "--seeds", "1-6", "--preset", "demo",
         "--results-dir", str(tmp_path), "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "1 todo, 1 done, 1 failed, 1 running, 1 stale, 1 corrupt (6 cells)"
    assert {line.split()[-1] for line in result.stdout.splitlines() if line.startswith("  to run: ")} == {
        specs[4].cell_id,
        specs[1].cell_id,
        specs[3].cell_id,
        specs[5].cell_id,
    }


def test_a_done_cell_drops_the_stale_claim_of_a_run_killed_before_releasing_it(tmp_path: Path) -> None:
    """A kill between committing a cell and releasing its claim leaves both; looking at the cell
    changes nothing, and the next run's recovery keeps the result and removes the dead claim,
    but never a live one."""
    spec = grid.expand(["rnp"], ["synthetic.appearance"], [1], preset="demo")[0]
    folder = store.cell_dir(tmp_path, spec)
    store.atomic_write_json(folder / store.METRICS_FILE, fake_metrics(spec))
    _write_claim(folder, host=socket.gethostname(), pid=_dead_pid(), started=time.time())
    assert store.is_done(tmp_path, spec) and store.status(tmp_path, spec) == "done"
    assert (folder / claims.CLAIM_FILE).exists()  # a look never writes
    store.recover(folder)
    assert store.is_done(tmp_path, spec) and not (folder / claims.CLAIM_FILE).exists()
    _write_claim(folder, host=socket.gethostname(), pid=os.getpid(), started=time.time())  # e.g. a --force rerun
    store.recover(folder)
    assert store.is_done(tmp_path, spec) and (folder / claims.CLAIM_FILE).exists()


def _ratbench(results: Path, seeds: str) -> list[str]:
    return [sys.executable, "-m", "ratbench", "run", "--methods", "rnp", "--seeds", seeds, *TINY,
            "--results-dir", str(results)]  # fmt: skip


def _in_progress(results: Path) -> bool:
    return any(not (p.parent / store.METRICS_FILE).exists() for p in results.glob(f"runs/**/{claims.CLAIM_FILE}"))


def _finished(results: Path) -> dict[str, int]:
    """Finished cells (folder -> mtime of metrics.json), counting a finished attempt that a kill
    kept from being committed as its cell's (the next reader commits it, mtime kept)."""
    found = {}
    for path in results.glob(f"runs/**/{store.METRICS_FILE}"):
        in_attempt = path.parent.name.startswith(store.ATTEMPT_PREFIX)
        found[str(path.parent.parent if in_attempt else path.parent)] = path.stat().st_mtime_ns
    return found


@pytest.mark.slow
def test_sigkill_half_way_then_rerun_finishes_each_cell_exactly_once(tmp_path: Path) -> None:
    """Kill a grid with SIGKILL mid-run; the rerun completes it without redoing finished cells."""
    process = subprocess.Popen(_ratbench(tmp_path, "1-6"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (len(_finished(tmp_path)) >= 2 and _in_progress(tmp_path)):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # lands inside a cell (almost always: cells last ~1 s)
    process.wait()
    before = _finished(tmp_path)
    assert 2 <= len(before) < 6, "the kill must land half-way"

    rerun = subprocess.run(_ratbench(tmp_path, "1-6"), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = _finished(tmp_path)
    assert len(after) == 6
    assert all(after[cell] == mtime for cell, mtime in before.items()), "a finished cell was run again"
    assert f"{len(before)} of 6 cells already done" in rerun.stdout
    assert rerun.stdout.count(" ok F1=") == 6 - len(before)
    assert not list(tmp_path.glob(f"runs/**/{claims.CLAIM_FILE}"))


@pytest.mark.slow
def test_two_schedulers_on_one_folder_never_run_a_cell_twice(tmp_path: Path) -> None:
    """Two concurrent `ratbench run` of the same grid split the cells between them."""
    runs = [subprocess.Popen(_ratbench(tmp_path, "1-6"), stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert len(_finished(tmp_path)) == 6
    ran = [line.split()[1] for out in outputs for line in out.splitlines() if " ok F1=" in line]
    assert sorted(ran) == sorted(set(ran)) and len(ran) == 6, outputs
