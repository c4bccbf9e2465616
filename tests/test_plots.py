"""`ratbench plot`: the four figures from a results folder written here (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_cell

from ratbench import cells
from ratbench.cli import main

pytest.importorskip("matplotlib")


def _add_epochs(root: Path, f1: float) -> None:
    """Give every cell under ``root`` three epochs of diagnostics and a best epoch (2)."""
    for metrics_path in (root / "runs").glob(f"*/*/*/seed*/{cells.METRICS_FILE}"):
        metrics = json.loads(metrics_path.read_text())
        for mode in metrics["modes"].values():
            mode["best_epoch"] = 2
        cells.atomic_write_json(metrics_path, metrics)
        seed = metrics["seed"]
        lines = [
            {"epoch": e, "loss": 1.0 / e, "diag_annotation_F1": f1 * e / 3 + seed, "diag_gold_ce_mean": 0.5 / e}
            for e in (1, 2, 3)
        ]
        (metrics_path.parent / cells.EPOCHS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for seed in (1, 2, 3):
        for target in ("synthetic.appearance", "synthetic.aroma"):
            write_cell(tmp_path, "rnp", target, seed, 40.0 + seed)
            for rate, gain in ((0.0, 1.0), (0.5, 2.0)):
                write_cell(tmp_path, "ver", target, seed, 40.0 + seed + gain, {"perturb_rate": rate})
            write_cell(tmp_path, "ver", target, seed, 44.0 + seed)  # the preset's 0.3: not in the variant
    _add_epochs(tmp_path, 60.0)
    for spec_path in (tmp_path / "runs" / "ver").glob(f"*/*/seed*/{cells.SPEC_FILE}"):
        spec = json.loads(spec_path.read_text())
        spec["method_config"].setdefault("perturb_rate", 0.3)  # as a real run resolves it
        spec_path.write_text(json.dumps(spec))
    return tmp_path


def test_the_sweep_reads_the_presets_value_from_the_spec(results: Path) -> None:
    from ratbench.plots import _config_value

    specs = sorted((results / "runs" / "ver").glob(f"*/*/seed1/{cells.SPEC_FILE}"))
    values = sorted(_config_value(results, str(p.parent.relative_to(results / "runs")), "perturb_rate") for p in specs)
    assert values == [0.0, 0.0, 0.3, 0.3, 0.5, 0.5]


def _plot(results: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["plot", "--results-dir", str(results), *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("figure", ["curves", "sweep", "gold", "sparsity"])
def test_each_figure_is_drawn(results: Path, tmp_path: Path, figure: str) -> None:
    out = tmp_path / f"{figure}.png"
    code, output = _plot(results, "--figure", figure, "--out", str(out))
    assert code == 0, output
    assert output == f"{figure} figure written to {out}\n"
    import matplotlib.image

    pixels = matplotlib.image.imread(out)
    assert pixels.shape[0] > 100 and float(np.var(pixels)) > 1e-3  # not a blank canvas


def test_pdf_and_bad_requests(results: Path, tmp_path: Path) -> None:
    code, _ = _plot(results, "--figure", "sparsity", "--out", str(tmp_path / "s.pdf"))
    assert code == 0 and (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF")
    code, output = _plot(results, "--figure", "curves", "--out", str(tmp_path / "c.txt"))
    assert code == 2 and "use a .png, .pdf or .svg file name" in output
    code, output = _plot(results, "--figure", "curves", "--metric", "diag_nothing", "--out", str(tmp_path / "c.png"))
    assert code == 2 and "no cell recorded 'diag_nothing' per epoch" in output
    plain = tmp_path / "plain"
    write_cell(plain, "rnp", "synthetic.appearance", 1, 40.0)
    code, output = _plot(plain, "--figure", "sweep", "--out", str(tmp_path / "w.png"))
    assert code == 2 and "run a grid with --sweep first" in output
