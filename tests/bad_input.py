"""The machinery of the bad-input modules (``tests/test_bad_input*.py``): a ``Case`` is one
bad input run as a real ``ratbench`` process on tiny data; ``run_cases`` runs a module's cases
three at a time, ``check_outcome`` asserts the exit code, the one line on stderr that says what
is wrong (no traceback, no raw warning) and the case's own check of what is on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TINY = [
    "--datasets", "synthetic.appearance", "--preset", "demo", "--epochs", "1",
    "--set", "synthetic.n_train=40", "--set", "synthetic.n_dev=16", "--set", "synthetic.n_test=16",
    "--set", "synthetic.min_review_len=60", "--set", "synthetic.mean_review_len=70",
    "--set", "synthetic.max_review_len=80", "--set", "rnp.hidden_dim=16", "--no-track",
]  # fmt: skip
RUN = ["run", "--methods", "rnp", *TINY]


@dataclass
class Case:
    """One bad input: the command (``{tmp}`` is the case's folder), what to prepare, and what to expect."""

    args: list[str]
    code: int
    message: str  # the stderr line that must be there (the only line, unless ``lines`` says more)
    prepare: Callable[[Path], None] = lambda tmp: None
    check: Callable[[Path, str, str], None] = lambda tmp, out, err: None
    lines: int = 1
    stdin: str | None = None
    extra: dict = field(default_factory=dict)


def _format(items: list[str], tmp: Path) -> list[str]:
    return [item.replace("{tmp}", str(tmp)) for item in items]


def run_case(name: str, case: Case, root: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """Prepare the case's folder ``root/name`` and run its command there."""
    tmp = root / name
    tmp.mkdir()
    case.prepare(tmp)
    env = {**os.environ, "RATBENCH_DATA": str(tmp / "data")}
    argv = [sys.executable, "-m", "ratbench", *_format(case.args, tmp)]
    return tmp, subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=tmp, input=case.stdin)


def run_cases(cases: dict[str, Case], root: Path) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every case's outcome, three processes at a time."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run_case, name, case, root) for name, case in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def check_outcome(case: Case, tmp: Path, result: subprocess.CompletedProcess) -> None:
    """Exit code, the one line that says what is wrong (no traceback), and the state on disk."""
    err = result.stderr
    assert result.returncode == case.code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{err}"
    assert "Traceback" not in err and "Warning:" not in err, err
    message = case.message.replace("{tmp}", str(tmp))
    lines = [line for line in err.splitlines() if line.strip()]
    if case.lines is not None:
        assert len(lines) == case.lines, err
    if message:
        assert any(line.startswith(message) for line in lines), err
    if case.check(tmp, result.stdout, err) is False:
        pytest.fail(f"check failed\nstdout:\n{result.stdout}")
