"""ERASER export: span conversion, file layout, and token F1 = 100 for the gold rationale."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import fake_metrics

from ratbench.cli import main
from ratbench.execution import grid, store
from ratbench.execution.launch import run_cells
from ratbench.reporting.export import eraser_lines, mask_to_spans


def eraser_token_prf(truth: list[dict], predictions: list[dict]) -> tuple[float, float, float]:
    """Plain restatement of ERASER's token-level micro P/R/F1: explode every span into
    (annotation_id, docid, token) triples and compare the sets."""

    def explode(lines: list[dict], key: str) -> set[tuple[str, str, int]]:
        out = set()
        for line in lines:
            for rationale in line["rationales"]:
                for span in rationale[key]:
                    for token in range(span["start_token"], span["end_token"]):
                        out.add((line["annotation_id"], rationale["docid"], token))
        return out

    gold, pred = explode(truth, "gold_spans"), explode(predictions, "hard_rationale_predictions")
    tp = len(gold & pred)
    precision, recall = tp / len(pred), tp / len(gold)
    return precision, recall, 2 * precision * recall / (precision + recall)


def test_mask_to_spans() -> None:
    """Runs of ones become end-exclusive spans, including at both ends."""
    assert mask_to_spans([1, 1, 0, 1, 0, 0, 1]) == [
        {"start_token": 0, "end_token": 2},
        {"start_token": 3, "end_token": 4},
        {"start_token": 6, "end_token": 7},
    ]
    assert mask_to_spans([0, 0]) == []


def _fake_cell(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True)
    (folder / store.METRICS_FILE).write_text(json.dumps(fake_metrics(label_names=["NEG", "POS"])))
    with gzip.open(folder / store.RATIONALES_FILE, "wt") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def test_exporting_the_gold_rationale_scores_token_f1_100(tmp_path: Path) -> None:
    """A cell whose predicted masks equal the gold exports spans that score P = R = F1 = 1."""
    golds = {"a": [0, 1, 1, 0, 1], "b": [1, 0, 0, 0], "c": [0, 0, 1, 1, 1, 0]}
    records = [
        {
            "mode": "clean",
            "id": i,
            "docid": f"doc-{i}",
            "label": 1,
            "pred": 1,
            "length": len(g),
            "mask": g,
            "gold": g,
            "probs": [0.25, 0.75],
        }
        for i, g in golds.items()
    ]
    # Reference-mode selections on padding (beyond `length`) must not be exported.
    records.append({**records[0], "mode": "reference", "mask": [*golds["a"], 1, 1]})
    _fake_cell(tmp_path / "cell", records)
    lines = list(eraser_lines(tmp_path / "cell", "clean"))
    truth = [
        {"annotation_id": i, "rationales": [{"docid": f"doc-{i}", "gold_spans": mask_to_spans(g)}]}
        for i, g in golds.items()
    ]
    assert eraser_token_prf(truth, lines) == (1.0, 1.0, 1.0)
    assert lines[0]["classification"] == "POS"
    assert lines[0]["classification_scores"] == {"NEG": 0.25, "POS": 0.75}
    [reference] = eraser_lines(tmp_path / "cell", "reference")
    assert reference["rationales"][0]["hard_rationale_predictions"] == mask_to_spans(golds["a"])


def test_cli_export_of_a_real_run(toy_dataset: type, tmp_path: Path) -> None:
    """`ratbench export RESULTS --format eraser` writes one line per test example per cell."""
    specs = grid.expand(["rnp"], ["toy"], [1, 2], preset="demo", epochs=1, sets={"toy": {"n": "12"}})
    run_cells(specs, tmp_path, echo=lambda _: None)
    # The mlflow store keeps copies of the cells' files; they are no cells to export.
    shutil.copytree(store.cell_dir(tmp_path, specs[0]), tmp_path / "mlartifacts" / "1" / "abc" / "artifacts")
    out = tmp_path / "exported"
    args = ["export", str(tmp_path), "--format", "eraser", "--mode", "clean", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.splitlines()]
    assert written == [out / spec.cell_id / "eraser.clean.jsonl" for spec in specs]
    lines = [json.loads(line) for line in written[0].read_text().splitlines()]
    assert len(lines) == 12
    for line in lines:
        assert set(line) == {"annotation_id", "rationales", "classification", "classification_scores"}
        assert line["rationales"][0]["docid"] == line["annotation_id"]
        assert sum(line["classification_scores"].values()) == pytest.approx(1.0, abs=1e-5)
    (tmp_path / "empty").mkdir()
    missing = CliRunner().invoke(main, ["export", str(tmp_path / "empty")])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: no finished cell")
