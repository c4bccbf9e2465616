"""`ratbench plot`: the four figures from a results folder written here (no training)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_cell

from ratbench.cli import main
from ratbench.execution import store

pytest.importorskip("matplotlib")


def _add_epochs(root: Path, f1: float) -> None:
    """Give every cell under ``root`` three epochs of diagnostics and a best epoch (2)."""
    for metrics_path in (root / "runs").glob(f"*/*/*/seed*/{store.METRICS_FILE}"):
        metrics = json.loads(metrics_path.read_text())
        for mode in metrics["modes"].values():
            mode["best_epoch"] = 2
        store.atomic_write_json(metrics_path, metrics)
        seed = metrics["seed"]
        lines = [
            {"epoch": e, "loss": 1.0 / e, "diag_annotation_F1": f1 * e / 3 + seed, "diag_gold_ce_mean": 0.5 / e}
            for e in (1, 2, 3)
        ]
        (metrics_path.parent / store.EPOCHS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for seed in (1, 2, 3):
        for target in ("synthetic.appearance", "synthetic.aroma"):
            write_cell(tmp_path, "rnp", target, seed, 40.0 + seed)
            for rate, gain in ((0.0, 1.0), (0.5, 2.0)):
                write_cell(tmp_path, "ver", target, seed, 40.0 + seed + gain, {"perturb_rate": rate})
            write_cell(tmp_path, "ver", target, seed, 44.0 + seed)  # the preset's 0.3: not in the variant
    _add_epochs(tmp_path, 60.0)
    for spec_path in (tmp_path / "runs" / "ver").glob(f"*/*/seed*/{store.SPEC_FILE}"):
        spec = json.loads(spec_path.read_text())
        spec["method_config"].setdefault("perturb_rate", 0.3)  # as a real run resolves it
        spec_path.write_text(json.dumps(spec))
    return tmp_path


def test_the_sweep_reads_the_presets_value_from_the_spec(results: Path) -> None:
    from ratbench.reporting.plots import _config_value

    specs = sorted((results / "runs" / "ver").glob(f"*/*/seed1/{store.SPEC_FILE}"))
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
    assert code == 2 and "run a grid with --sweep of one key first" in output


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures ``ratbench plot`` saves (still inspectable after it closes them)."""
    from matplotlib.figure import Figure

    figures, savefig = [], Figure.savefig

    def record(self: Figure, *args: Any, **kwargs: Any) -> None:
        figures.append(self)
        savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def _one_epoch(root: Path) -> Path:
    """rnp and ver on one dataset, two seeds, one epoch each (as ``--epochs 1`` leaves them)."""
    for seed in (1, 2):
        write_cell(root, "rnp", "synthetic.appearance", seed, 40.0 + seed)
        write_cell(root, "ver", "synthetic.appearance", seed, 42.0 + seed)
    for metrics_path in (root / "runs").glob(f"**/{store.METRICS_FILE}"):
        line = {"epoch": 1, "loss": 0.7, "diag_annotation_F1": 20.0, "diag_gold_ce_mean": 0.6}
        (metrics_path.parent / store.EPOCHS_FILE).write_text(json.dumps(line) + "\n")
    return root


def test_a_one_epoch_curve_is_drawn_with_markers(tmp_path: Path, drawn: list[Any]) -> None:
    """D9: a line of one point without markers draws nothing."""
    code, output = _plot(_one_epoch(tmp_path / "r"), "--figure", "curves", "--out", str(tmp_path / "c.png"))
    assert code == 0, output
    [ax] = drawn[0].axes
    assert len(ax.lines) == 2 and all(line.get_marker() not in (None, "", "None") for line in ax.lines)
    assert [tick for tick in ax.get_xticks() if 0 < tick < 2] == [1]  # whole epochs


def test_a_failing_write_leaves_the_previous_figure(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D13, D35: the figure is written to a temporary file and renamed over the old one, so a
    write that dies half-way (here: a full disk) leaves the previous figure and no leftover."""
    from matplotlib.figure import Figure

    def half_written(self: Figure, path: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    out = tmp_path / "figures" / "c.png"
    out.parent.mkdir()
    out.write_bytes(b"the previous figure")
    monkeypatch.setattr(Figure, "savefig", half_written)
    code, output = _plot(results, "--figure", "curves", "--out", str(out))
    assert code == 2 and output == f"error: cannot write {out}: No space left on device\n"
    assert out.read_bytes() == b"the previous figure"
    assert [p.name for p in out.parent.iterdir()] == ["c.png"]


def test_a_cut_epochs_line_is_skipped_with_one_warning(results: Path, tmp_path: Path) -> None:
    """D14: a kill mid-write leaves a cut last line in epochs.jsonl; curves and gold skip it."""
    epochs = sorted(results.glob(f"runs/rnp/**/seed1/{store.EPOCHS_FILE}"))[0]
    with epochs.open("a") as handle:
        handle.write('{"epoch": 4, "loss": 0.9, "diag_ann')
    for figure in ("curves", "gold"):
        result = CliRunner().invoke(main, ["plot", "--results-dir", str(results), "--figure", figure,
                                           "--out", str(tmp_path / f"{figure}.png")])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.stderr == (
            f"warning: skipping unreadable line 4 of {epochs} (cut short?); the figure leaves those epochs out\n"
        )


@pytest.mark.parametrize("metric", ["row", "group", "seed", "epoch"])
def test_metric_must_be_a_per_epoch_number(results: Path, tmp_path: Path, metric: str) -> None:
    """D16: the columns plot adds are no metrics; the message lists the ones there are."""
    code, output = _plot(results, "--figure", "curves", "--metric", metric, "--out", str(tmp_path / "c.png"))
    assert code == 2
    assert output == (f"error: no cell recorded {metric!r} per epoch; --metric can be one of: loss, "
                      "diag_annotation_F1, diag_gold_ce_mean\n")  # fmt: skip


def test_metric_is_for_curves_only(results: Path, tmp_path: Path) -> None:
    code, output = _plot(results, "--figure", "sweep", "--metric", "F1", "--out", str(tmp_path / "s.png"))
    assert code == 2 and output == "error: --metric is for --figure curves only; leave it out for --figure sweep\n"


def test_a_string_key_is_swept_on_a_categorical_axis(tmp_path: Path, drawn: list[Any]) -> None:
    """D15: values that are not numbers are ticks in sorted order, the preset's read from spec.json."""
    root = tmp_path / "r"
    for seed in (1, 2):
        write_cell(root, "attention", "synthetic.appearance", seed, 40.0 + seed)
        for scorer in ("linear", "dot"):
            write_cell(root, "attention", "synthetic.appearance", seed, 45.0 + seed, {"scorer": scorer})
    for spec_path in root.glob(f"runs/**/{store.SPEC_FILE}"):
        spec = json.loads(spec_path.read_text())
        spec["method_config"].setdefault("scorer", "additive")  # as a run resolves the preset's
        spec_path.write_text(json.dumps(spec))
    code, output = _plot(root, "--figure", "sweep", "--out", str(tmp_path / "s.png"))
    assert code == 0, output
    [ax] = drawn[0].axes
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["additive", "dot", "linear"]
    assert ax.get_xlabel() == "scorer"
    f1 = ax.containers[0].lines[0]
    assert list(f1.get_xdata()) == [0, 1, 2] and list(f1.get_ydata()) == [41.5, 46.5, 46.5]


def test_a_data_key_is_a_swept_key(tmp_path: Path, drawn: list[Any]) -> None:
    """D20: rows that differ in ``data.max_len`` are a sweep; a row without it in its variant
    reads the value from its spec's dataset_config."""
    root = tmp_path / "r"
    for seed in (1, 2):
        for max_len in (40, 80, None):
            changes = {"data.max_len": max_len} if max_len else {}
            write_cell(root, "rnp", "synthetic.appearance", seed, 40.0 + (max_len or 256) / 40, data_changes=changes)
    for spec_path in root.glob(f"runs/**/{store.SPEC_FILE}"):
        spec = json.loads(spec_path.read_text())
        spec["dataset_config"]["max_len"] = (spec["variant"]["data"] or {}).get("data.max_len", 256)
        spec_path.write_text(json.dumps(spec))
    code, output = _plot(root, "--figure", "sweep", "--out", str(tmp_path / "s.png"))
    assert code == 0, output
    [ax] = drawn[0].axes
    assert ax.get_xlabel() == "data.max_len"
    f1 = ax.containers[0].lines[0]
    assert list(f1.get_xdata()) == [40, 80, 256] and list(f1.get_ydata()) == [41.0, 42.0, 46.4]


@pytest.mark.parametrize("folder", ["東京", "a$\\frac$b"])
def test_no_raw_matplotlib_warning_for_an_odd_path(results: Path, tmp_path: Path, folder: str) -> None:
    """D29: a path with glyphs the font lacks draws placeholder boxes without printing
    matplotlib's warning; a ``$`` is a dollar sign, not mathtext that fails to parse."""
    odd = tmp_path / "copy" / folder
    shutil.copytree(results / "runs", odd / "runs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, output = _plot(odd, "--figure", "curves", "--out", str(tmp_path / "c.png"))
    assert code == 0 and output == f"curves figure written to {tmp_path / 'c.png'}\n", output
    assert [str(w.message) for w in caught] == []


def test_the_gold_figure_of_post_hoc_cells_has_no_empty_panel(tmp_path: Path, drawn: list[Any]) -> None:
    """D30: post-hoc cells record no cross-entropy on gold rationales: one panel, not an empty one."""
    root = tmp_path / "r"
    write_cell(root, "attention", "synthetic.appearance", 1, 40.0)
    code, output = _plot(root, "--figure", "gold", "--out", str(tmp_path / "g.png"))
    assert code == 0, output
    assert [ax.get_ylabel() for ax in drawn[0].axes] == ["accuracy on gold rationales (%)"]
    _add_epochs(_one_epoch(root), 60.0)  # beside select-then-predict cells, both panels
    code, output = _plot(root, "--figure", "gold", "--out", str(tmp_path / "g.png"))
    assert code == 0, output
    assert [ax.get_ylabel() for ax in drawn[1].axes] == [
        "accuracy on gold rationales (%)",
        "cross-entropy on gold rationales",
    ]


def test_the_formats_are_named_and_picked_by_the_suffix(results: Path, tmp_path: Path) -> None:
    """D36: --help names png, pdf and svg; an upper-case suffix works; any other is refused."""
    help_text = CliRunner().invoke(main, ["plot", "--help"]).output
    assert "FILE.png, FILE.pdf or FILE.svg (the suffix picks the format)" in " ".join(help_text.split())
    code, output = _plot(results, "--figure", "sparsity", "--out", str(tmp_path / "s.SVG"))
    assert code == 0 and b"<svg" in (tmp_path / "s.SVG").read_bytes()
    code, output = _plot(results, "--figure", "sparsity", "--out", str(tmp_path / "s.jpg"))
    message = f"error: --out {tmp_path / 's.jpg'}: use a .png, .pdf or .svg file name (the suffix picks the format)"
    assert code == 2 and output == message + "\n"
