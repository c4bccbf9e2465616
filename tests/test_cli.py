"""The command line: a grid run end to end, rerun skipping, tables, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench.cli import main


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_run_twice_executes_nothing_the_second_time_and_table_renders(toy_dataset: type, tmp_path: Path) -> None:
    """First run trains 4 cells, the second 0; the table has one row per method, mean (std)."""
    args = [
        "run",
        "--methods",
        "rnp,ver",
        "--datasets",
        "toy",
        "--seeds",
        "1-2",
        "--preset",
        "demo",
        "--epochs",
        "2",
        "--results-dir",
        str(tmp_path),
    ]
    code, out, _ = _run(*args)
    assert code == 0, out
    assert "4 cells: 4 ran, 0 already done, 0 left to other schedulers, 0 failed" in out
    assert out.count(" ok F1=") == 4
    code, out, _ = _run(*args)
    assert code == 0 and "4 cells: 0 ran, 4 already done, 0 left to other schedulers, 0 failed" in out

    code, out, _ = _run("table", "--results-dir", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == ["Method", "toy.main S", "Acc", "P", "R", "F1"]
    rows = {line.split("|")[1].strip(): line for line in lines[2:4]}
    assert set(rows) == {"rnp", "ver"}
    assert all(cell.count("(") == 1 for cell in rows["rnp"].split("|")[2:7])  # mean (std) with 2 seeds
    assert "Mode: reference" in out

    code, out, _ = _run(
        "table", "--results-dir", str(tmp_path), "--mode", "clean", "--format", "latex", "--seeds", "1-3"
    )
    assert code == 0 and r"\multicolumn{5}{c}{toy.main}" in out and "[n=2]" in out and "mode: clean" in out
    code, out, _ = _run("table", "--results-dir", str(tmp_path), "--format", "csv")
    header, *body = out.strip().splitlines()
    assert header == "label,method,variant,stale,group,metric,mean,std,n,config_id,source"
    assert len(body) == 2 * 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "rnpp"], "error: unknown method 'rnpp' (did you mean 'rnp'?); available:"),
        (["--datasets", "toyy"], "error: unknown dataset 'toyy' (did you mean 'toy'?); available:"),
        (["--datasets", "toy.nope"], "error: unknown subset 'nope' of dataset 'toy'"),
        (["--seeds", "1-x"], "error: malformed --seeds '1-x': use a range like 1-5 or a list like 1,3,5"),
        (["--seeds", "5-1"], "error: malformed --seeds '5-1': range 5-1 goes backwards"),
        (["--set", "rnp.lrr=1"], "error: unknown config key rnp.lrr (did you mean 'lr'?)"),
        (["--set", "rnp.lr=fast"], "error: rnp.lr expects a number, got 'fast'"),
        (["--set", "rnp.epochs=2.5"], "error: rnp.epochs expects an integer, got '2.5'"),
        (["--set", "lr=1"], "error: malformed --set 'lr=1': use METHOD.KEY=VALUE"),
        (["--set", "rnp.epochs=0"], "error: rnp.epochs must be >= 1, got 0"),
        (["--set", "ver.lr=1"], "error: --set/--sweep ver.…: 'ver' is not a method or dataset of this grid"),
        (["--preset", "fast"], "error: method rnp has no preset 'fast'; available: demo, paper"),
        (
            ["--set", "data.embeddings=glove:/nonexistent/glove.6B.100d.txt"],
            "error: embedding file not found: /nonexistent/glove.6B.100d.txt; download glove.6B.zip",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    toy_dataset: type, tmp_path: Path, args: list[str], message: str
) -> None:
    """Each bad input gives exactly one line on stderr, no traceback, exit code 2, nothing written."""
    base = {"--methods": "rnp", "--datasets": "toy", "--seeds": "1"}
    extra = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[flag] = value
        else:
            extra += [flag, value]
    argv = ["run", *[x for kv in base.items() for x in kv], *extra, "--results-dir", str(tmp_path)]
    code, _, err = _run(*argv)
    assert code == 2
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_table_without_results_is_a_clear_error(tmp_path: Path) -> None:
    """No finished cells: one line saying what to do."""
    code, _, err = _run("table", "--results-dir", str(tmp_path))
    assert code == 2 and err.startswith("error: no finished cells found")


def test_cuda_without_gpu_is_a_clear_error(toy_dataset: type, tmp_path: Path) -> None:
    """--device cuda on a machine without CUDA fails before any cell runs."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    code, _, err = _run(
        "run", "--methods", "rnp", "--datasets", "toy", "--device", "cuda", "--results-dir", str(tmp_path)
    )
    assert code == 2 and "no CUDA GPU is visible" in err
