"""Bad input and faults, each as a real ``ratbench`` process on tiny data: the exit code, one
line saying what is wrong, and nothing garbage or lost on disk.

The cases run as subprocesses three at a time in a module fixture; each test then checks one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input import RUN, TINY, Case, check_outcome, run_cases

from ratbench.execution import claims, store


def _glove(content: bytes) -> Callable[[Path], None]:
    return lambda tmp: (tmp / "glove.5d.txt").write_bytes(content)


def _claim(content: str) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "ratbench", *RUN, "--results-dir", str(tmp / "r"), "--dry-run"],
            capture_output=True,
            text=True,
            check=True,
        )
        cell = tmp / "r" / "runs" / out.stdout.split("to run: ")[1].strip()
        cell.mkdir(parents=True)
        (cell / claims.CLAIM_FILE).write_text(content)

    return prepare


def _eraser(lines: list[bytes], docs: dict[str, str]) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        folder = tmp / "eraser" / "fever"
        (folder / "docs").mkdir(parents=True)
        (folder / "val.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
        for name, text in docs.items():
            (folder / "docs" / name).write_text(text)

    return prepare


def _annotation(docid: str, label: str = "SUPPORTS") -> bytes:
    row = {
        "annotation_id": f"{docid}-1",
        "classification": label,
        "docids": [docid],
        "evidences": [[{"docid": docid, "start_token": 0, "end_token": 1}]],
        "query": "a claim",
    }
    return json.dumps(row).encode()


ERASER_CHECK = ["data", "check", "eraser.fever", "--data-dir", "{tmp}", "--set", "eraser.train_split=val",
                "--set", "eraser.test_split=val", "--set", "eraser.dev_split=val", "--set", "eraser.dev_carve_out=0.3",
                "--set", "eraser.test_carve_out=0.3"]  # fmt: skip
ERASER_RUN = ["run", "--methods", "rnp", "--datasets", "eraser.fever", "--preset", "demo", "--epochs", "1",
              "--no-track", *ERASER_CHECK[3:]]  # fmt: skip
GOOD_DOCS = {"d1": "the claim is true .\n", "d2": "it is not .\n"}


def _hotel(tmp: Path) -> None:
    (tmp / "hotel").mkdir()
    rows = ["task\tlabel\ttext\trationale", "cleanliness\t1\tvery clean room\t0 1 0", "cleanliness\t0\tdirty\t1"]
    (tmp / "hotel" / "ann.tsv").write_text("\n".join(rows) + "\n\n")  # a trailing blank line


def _no_cells_left(tmp: Path, out: str, err: str) -> None:
    assert not list(tmp.glob("**/metrics.json")), "a cell was finished"


def _failed_not_done(tmp: Path, out: str, err: str) -> None:
    [error] = list(tmp.glob("r/runs/**/error.txt"))
    assert not (error.parent / store.METRICS_FILE).exists()
    for line in (error.parent / store.FAILED_EPOCHS_FILE).read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))


def _two_workers(tmp: Path, out: str, err: str) -> None:
    pids = {line.rsplit("pid ", 1)[1].rstrip("]") for line in out.splitlines() if " ok F1=" in line}
    assert len(pids) == 2 and "2 cells: 2 ran" in out


def _lenient_skip(tmp: Path, out: str, err: str) -> None:
    assert "skipped malformed lines in" in out and out.rstrip().endswith(": 1")


CASES: dict[str, Case] = {
    # 1. non-finite input and impossible values
    "glove-nan": Case(
        [*RUN, "--set", "data.embeddings=glove:{tmp}/glove.5d.txt", "--results-dir", "{tmp}/r"],
        2, "error: {tmp}/glove.5d.txt:2: the vector of 'the' has a NaN or infinite value",
        prepare=_glove(b"a 1 2 3 4 5\nthe nan nan nan nan nan\n"), check=_no_cells_left,
    ),
    "glove-inf-data-check": Case(
        ["data", "check", "synthetic.appearance", "--set", "data.embeddings=glove:{tmp}/glove.5d.txt"],
        2, "error: {tmp}/glove.5d.txt:1: the vector of 'the' has a NaN or infinite value",
        prepare=_glove(b"the 1 inf 3 4 5\n"),
    ),
    "max-len-0": Case([*RUN, "--set", "data.max_len=0"], 2, "error: synthetic.max_len must be >= 1, got 0"),
    "lr-0": Case([*RUN, "--set", "rnp.lr=0"], 2, "error: rnp.lr must be > 0, got 0.0"),
    "lr-negative": Case([*RUN, "--set", "rnp.lr=-1"], 2, "error: rnp.lr must be > 0, got -1.0"),
    "lr-nan": Case([*RUN, "--set", "rnp.lr=nan"], 2, "error: rnp.lr expects a finite number, got 'nan'"),
    "lr-inf": Case([*RUN, "--set", "rnp.lr=inf"], 2, "error: rnp.lr expects a finite number, got 'inf'"),
    "sparsity-1.5": Case([*RUN, "--set", "rnp.sparsity=1.5"], 2, "error: rnp.sparsity must be in (0, 1), got 1.5"),
    "sparsity-0": Case([*RUN, "--set", "rnp.sparsity=0"], 2, "error: rnp.sparsity must be in (0, 1), got 0.0"),
    "nan-loss": Case(
        [*RUN, "--set", "rnp.lr=1e30", "--results-dir", "{tmp}/r"],
        1, "  failed: rnp/synthetic.appearance/", check=_failed_not_done,
    ),
    # 6. claims
    "empty-claim-stale-after-0": Case(
        [*RUN, "--results-dir", "{tmp}/r", "--dry-run", "--stale-after", "0"], 0, "", lines=0,
        prepare=_claim(""), check=lambda tmp, out, err: out.startswith("0 todo, 0 done, 0 failed, 0 running, 1 stale"),
    ),
    "claim-bad-pid": Case(
        [*RUN, "--results-dir", "{tmp}/r", "--dry-run"], 0, "", lines=0,
        prepare=_claim('{"host": "h", "pid": "abc", "started": 1e18}'),
        check=lambda tmp, out, err: out.startswith("0 todo, 0 done, 0 failed, 1 running"),
    ),
    # 8, 9. resources
    "workers-100": Case(
        ["run", "--methods", "rnp", "--seeds", "1-2", *TINY, "--results-dir", "{tmp}/r", "--workers", "100"],
        0, f"warning: --workers 100 x --cpu-threads 1 is more than the {os.cpu_count()} CPU cores here",
        check=_two_workers,
    ),
    "seeds-huge": Case(
        [*RUN, "--seeds", "1-100000000", "--dry-run"], 2,
        "error: --seeds 1-100000000 gives 100,000,000 seeds, more than the limit of 10,000 cells",
    ),
    "seed-above-32-bit": Case(
        [*RUN, "--seeds", "4294967296"], 2, "error: --seeds 4294967296: a seed must be between 0 and 4294967295"
    ),
    "grid-above-max-cells": Case(
        [*RUN, "--seeds", "1-20", "--max-cells", "10"], 2, "error: --seeds 1-20 gives 20 seeds, more than the limit"
    ),
    # 10. one-line errors
    "results-dir-under-a-file": Case(
        [*RUN, "--results-dir", "{tmp}/afile/sub"], 2, "error: cannot write to --results-dir {tmp}/afile/sub",
        prepare=lambda tmp: (tmp / "afile").write_text(""),
    ),
    "results-dir-read-only": Case(
        [*RUN, "--results-dir", "/proc/ratbench-results"], 2, "error: cannot write to --results-dir /proc/ratbench"
    ),
    "glove-not-utf8-run": Case(
        [*RUN, "--set", "data.embeddings=glove:{tmp}/glove.5d.txt", "--results-dir", "{tmp}/r"],
        2, "error: {tmp}/glove.5d.txt:2: not UTF-8 text", prepare=_glove(b"a 1 2 3 4 5\n\xff\xfe 1 2 3 4 5\n"),
    ),
    "glove-not-utf8-data-check": Case(
        ["data", "check", "synthetic.appearance", "--set", "data.embeddings=glove:{tmp}/glove.5d.txt"],
        2, "error: {tmp}/glove.5d.txt:2: not UTF-8 text", prepare=_glove(b"a 1 2 3 4 5\n\xff\xfe 1 2 3 4 5\n"),
    ),
    "device-tpu": Case([*RUN, "--device", "tpu"], 2, "error: unknown --device 'tpu': use cpu, cuda or cuda:N"),
    # 12. exit codes
    "eraser-missing-doc": Case(
        [*ERASER_RUN, "--results-dir", "{tmp}/r"],
        2, "error: eraser.fever: missing document file {tmp}/eraser/fever/docs/d3",
        prepare=_eraser([_annotation("d1"), _annotation("d3", "REFUTES")], GOOD_DOCS), check=_no_cells_left,
    ),
    "data-check-nothing-readable": Case(
        ["data", "check", "hotel.cleanliness", "--data-dir", "{tmp}"], 2, "error: hotel.cleanliness: no split has any",
        lines=None,  # the report comes first, on stdout
    ),
    # 13. lenient reading
    "hotel-trailing-blank-line": Case(
        ["data", "check", "hotel.cleanliness", "--data-dir", "{tmp}", "--set", "hotel.annotation_file=ann.tsv"],
        0, "", lines=0, prepare=_hotel,
        check=lambda tmp, out, err: "| test    | 2 " in out and "malformed" not in out + err,
    ),
    "eraser-non-utf8-lenient": Case(
        [*ERASER_CHECK, "--lenient"], 0, "", lines=0,
        prepare=_eraser([_annotation("d1"), b"\xff{", _annotation("d2", "REFUTES")], GOOD_DOCS), check=_lenient_skip,
    ),
    # 14. small
    "eraser-bad-json-message": Case(
        ERASER_CHECK,
        2, "error: {tmp}/eraser/fever/val.jsonl:2: invalid JSON: Unterminated string starting at (column 2)",
        prepare=_eraser([_annotation("d1"), b'{"annotation', _annotation("d2", "REFUTES")], GOOD_DOCS),
    ),
    "methods-empty": Case(["run", "--methods", "", *TINY], 2, "error: --methods is empty"),
    "methods-upper-case": Case(
        ["run", "--methods", "RNP", *TINY], 2, "error: unknown method 'RNP' (did you mean 'rnp'?)"
    ),
    "tracking-warning-plain": Case(
        [*RUN[:-1], "--results-dir", "{tmp}/r", "--tracking-uri", "sqlite:////proc/no-such/mlflow.db"],
        0, "warning: mlflow tracking to sqlite:////proc/no-such/mlflow.db failed for rnp/synthetic.appearance/",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    return run_cases(CASES, tmp_path_factory.mktemp("bad-input"))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(outcomes: dict, name: str) -> None:
    """Exit code, the one line that says what is wrong (no traceback), and the state on disk."""
    check_outcome(CASES[name], *outcomes[name])


def test_ctrl_c_exits_130_releases_every_claim_and_keeps_finished_cells(tmp_path: Path) -> None:
    """SIGINT to the process group (what a terminal's Ctrl-C sends) stops a two-worker grid:
    exit 130, one line, no claim or unfinished attempt left, no warning about leaked semaphores."""
    argv = [sys.executable, "-m", "ratbench", "run", "--methods", "rnp", "--seeds", "1-6", *TINY, "--epochs", "3",
            "--set", "synthetic.n_train=200", "--results-dir", str(tmp_path), "--workers", "2"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(tmp_path.glob(f"runs/**/{claims.CLAIM_FILE}"))) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the cells
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.startswith("interrupted: ") and err.count("\n") == 1, err
    assert "semaphore" not in err and "Traceback" not in err
    assert not list(tmp_path.glob(f"runs/**/{claims.CLAIM_FILE}"))
    assert not list(tmp_path.glob(f"runs/**/{store.ATTEMPT_PREFIX}*"))
    for metrics in tmp_path.glob(f"runs/**/{store.METRICS_FILE}"):
        assert store.read_metrics(metrics.parent) is not None
    shutil.rmtree(tmp_path)
