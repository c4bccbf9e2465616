"""The runner: seeding, model selection, the cell folder, skip/redo, failures."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ratbench.evaluation.evaluator import f1_score, safe_div
from ratbench.execution import cells, claims, grid, store
from ratbench.execution.launch import run_cells
from ratbench.execution.runner import run_cell
from ratbench.method import Method, MethodConfig
from ratbench.registry import METHODS
from ratbench.types import Batch, EvalMode, RationaleOutput

# Dev accuracy the scripted method reaches after each epoch: the best is 80 at epoch 2
# (epoch 3 ties it and must NOT win: strict >, earliest epoch).
SCRIPTED_DEV_ACC = (50.0, 80.0, 80.0, 60.0)


class Scripted(Method):
    """Fake method whose dev accuracy follows SCRIPTED_DEV_ACC and whose test rationale
    reveals which epoch's state is evaluated (it selects the first `epoch` tokens)."""

    kind = "select_predict"

    @dataclasses.dataclass(frozen=True)
    class Config(MethodConfig):
        epochs: int = 4
        batch_size: int = 8

    def __init__(self, config: MethodConfig, info: object, device: torch.device) -> None:
        super().__init__(config, info, device)  # type: ignore[arg-type]
        self.model = nn.Module()
        self.model.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
        self.optimizers = []

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        for _ in batches:
            pass
        self.model.epoch += 1
        return {"loss": float(10 - self.model.epoch)}

    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        epoch = int(self.model.epoch)
        n = len(batch.labels)
        # Correct on the first `acc`% rows of the split (dev is one batch of 10 in the test).
        n_correct = round(SCRIPTED_DEV_ACC[epoch - 1] / 100 * n)
        predicted = batch.labels.clone()
        predicted[n_correct:] = 1 - predicted[n_correct:]
        logits = nn.functional.one_hot(predicted, 2).float()
        mask = torch.zeros_like(batch.mask)
        mask[:, :epoch] = 1
        return RationaleOutput(logits=logits, mask=mask * batch.mask)

    def predict(self, batch: Batch, rationale: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(batch.labels, 2).float()


@pytest.fixture
def scripted() -> Iterator[type[Scripted]]:
    METHODS.register("scripted")(Scripted)
    yield Scripted
    METHODS.unregister("scripted")


def _grid(methods: list[str], seeds: list[int], epochs: int | None = None, **sets: str) -> list[cells.CellSpec]:
    """Cells on the toy dataset (``sets`` are toy settings); ``epochs`` caps every method's
    epochs (the paper preset's 300 would cost a minute and test nothing more)."""
    method_sets = {method: {"epochs": str(epochs)} for method in methods} if epochs else {}
    preset = "demo" if "rnp" in methods else "paper"
    return grid.expand(methods, ["toy"], seeds, preset=preset, sets={"toy": {"n": "10", **sets}, **method_sets})


def test_best_dev_epoch_is_strictly_greater_earliest_and_its_state_is_tested(
    toy_dataset: type, scripted: type, tmp_path: Path
) -> None:
    """Selection keeps epoch 2 (80 %), not the tie at epoch 3, and evaluates epoch 2's state."""
    [spec] = _grid(["scripted"], [1])
    summary = run_cells([spec], tmp_path, echo=lambda _: None)
    assert summary.ok
    metrics = json.loads((store.cell_dir(tmp_path, spec) / store.METRICS_FILE).read_text())
    for mode in ("reference", "clean"):
        result = metrics["modes"][mode]
        assert result["best_epoch"] == 2 and result["dev_acc"] == 80.0
        # The epoch-2 state selects exactly 2 tokens per example.
        assert result["S"] == pytest.approx(100 * 2 * 10 / metrics["data"]["n_test_tokens"])
    epochs = [json.loads(line) for line in (store.cell_dir(tmp_path, spec) / store.EPOCHS_FILE).open()]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert [e["dev_acc_reference"] for e in epochs] == list(SCRIPTED_DEV_ACC)


class OwnDevRule(Scripted):
    """Scripted, with a dev rule of its own (``Method.dev_accuracy``, as MGR's pooled one)."""

    OWN_DEV_ACC = (10.0, 20.0, 90.0, 30.0)

    def dev_accuracy(self, batches: Iterable[Batch], mode: EvalMode) -> float | None:
        return self.OWN_DEV_ACC[int(self.model.epoch) - 1]


def test_a_methods_own_dev_rule_selects_the_epoch(toy_dataset: type, tmp_path: Path) -> None:
    """``dev_accuracy`` overrides the accuracy of ``rationalize`` in both modes: epoch 3 (90 %)
    is kept and evaluated, not epoch 2 (the scripted 80 %)."""
    METHODS.register("own_dev")(OwnDevRule)
    try:
        [spec] = _grid(["own_dev"], [1])
        assert run_cells([spec], tmp_path, echo=lambda _: None).ok
    finally:
        METHODS.unregister("own_dev")
    metrics = json.loads((store.cell_dir(tmp_path, spec) / store.METRICS_FILE).read_text())
    for mode in ("reference", "clean"):
        assert metrics["modes"][mode]["best_epoch"] == 3 and metrics["modes"][mode]["dev_acc"] == 90.0
        assert metrics["modes"][mode]["S"] == pytest.approx(100 * 3 * 10 / metrics["data"]["n_test_tokens"])
    epochs = [json.loads(line) for line in (store.cell_dir(tmp_path, spec) / store.EPOCHS_FILE).open()]
    assert [e["dev_acc_reference"] for e in epochs] == list(OwnDevRule.OWN_DEV_ACC)


def test_select_epoch_last_evaluates_the_final_state(toy_dataset: type, scripted: type, tmp_path: Path) -> None:
    """``select_epoch=last`` (Inter_RAT's and DMR's references keep their final model): the last
    epoch is evaluated whatever its dev accuracy, with its own state."""
    [spec] = grid.expand(["scripted"], ["toy"], [1], sets={"toy": {"n": "10"}, "scripted": {"select_epoch": "last"}})
    assert run_cells([spec], tmp_path, echo=lambda _: None).ok
    metrics = json.loads((store.cell_dir(tmp_path, spec) / store.METRICS_FILE).read_text())
    for mode in ("reference", "clean"):
        result = metrics["modes"][mode]
        assert result["best_epoch"] == 4 and result["dev_acc"] == SCRIPTED_DEV_ACC[3]
        assert result["S"] == pytest.approx(100 * 4 * 10 / metrics["data"]["n_test_tokens"])


def test_cell_folder_and_recomputable_rationales(toy_dataset: type, tmp_path: Path) -> None:
    """spec.json, epochs.jsonl, rationales.jsonl.gz and metrics.json; metrics recompute from rationales."""
    [spec] = _grid(["rnp"], [1], n="40")
    run_cells([spec], tmp_path, echo=lambda _: None)
    folder = store.cell_dir(tmp_path, spec)
    assert json.loads((folder / store.SPEC_FILE).read_text())["cell_id"] == spec.cell_id
    assert len((folder / store.EPOCHS_FILE).read_text().splitlines()) == spec.method_config["epochs"]
    metrics = json.loads((folder / store.METRICS_FILE).read_text())
    with gzip.open(folder / store.RATIONALES_FILE, "rt") as handle:
        records = [json.loads(line) for line in handle]
    for mode in ("reference", "clean"):
        rows = [r for r in records if r["mode"] == mode]
        assert len(rows) == 40
        tp = sum(sum(m * g for m, g in zip(r["mask"], r["gold"], strict=False)) for r in rows)
        pred = sum(sum(r["mask"]) for r in rows)
        gold = sum(sum(r["gold"]) for r in rows)
        tokens = sum(r["length"] for r in rows)
        p, r = safe_div(tp, pred), safe_div(tp, gold)
        got = metrics["modes"][mode]
        assert got["F1"] == pytest.approx(100 * f1_score(p, r))
        assert got["S"] == pytest.approx(100 * pred / tokens)
        assert got["Acc"] == pytest.approx(100 * np.mean([r["pred"] == r["label"] for r in rows]))
        if mode == "clean":  # padding is never selected in the clean mode
            assert all(len(r["mask"]) == r["length"] for r in rows)


def _metrics_without_timing(path: Path) -> dict:
    data = json.loads(path.read_text())
    for key in ("wall_seconds", "seconds_per_epoch", "setup_seconds", "finished_at"):
        data.pop(key)
    return data


def test_same_seed_gives_identical_metrics_and_another_seed_differs(toy_dataset: type, tmp_path: Path) -> None:
    """One seeding point per cell: rerunning a cell reproduces every metric exactly."""
    specs = _grid(["ver"], [1, 2], epochs=12, n="40")
    run_cells(specs, tmp_path / "a", echo=lambda _: None)
    run_cells(specs, tmp_path / "b", echo=lambda _: None)
    a1, b1 = (_metrics_without_timing(store.cell_dir(tmp_path / d, specs[0]) / store.METRICS_FILE) for d in "ab")
    assert a1 == b1
    a2 = _metrics_without_timing(store.cell_dir(tmp_path / "a", specs[1]) / store.METRICS_FILE)
    assert a2["modes"] != a1["modes"]


def test_done_cells_are_skipped_and_a_deleted_metrics_file_is_redone(toy_dataset: type, tmp_path: Path) -> None:
    """Rerun: 0 cells; delete one metrics.json: exactly that cell runs again; --force reruns all."""
    specs = _grid(["rnp", "ver"], [1, 2])
    first = run_cells(specs, tmp_path, echo=lambda _: None)
    assert len(first.finished) == 4
    second = run_cells(specs, tmp_path, echo=lambda _: None)
    assert second.finished == [] and len(second.skipped) == 4
    (store.cell_dir(tmp_path, specs[2]) / store.METRICS_FILE).unlink()
    third = run_cells(specs, tmp_path, echo=lambda _: None)
    assert third.finished == [specs[2].cell_id]
    assert len(run_cells(specs, tmp_path, force=True, echo=lambda _: None).finished) == 4


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(toy_dataset: type, tmp_path: Path) -> None:
    """A crash leaves error.txt with the traceback and no metrics.json; the next cell still runs."""
    bad = dataclasses.replace(_grid(["rnp"], [1])[0], method_config={"epochs": 1, "batch_size": 0})
    good = _grid(["rnp"], [2])[0]
    summary = run_cells([bad, good], tmp_path, echo=lambda _: None)
    assert [cell for cell, _ in summary.failed] == [bad.cell_id]
    assert summary.finished == [good.cell_id]
    folder = store.cell_dir(tmp_path, bad)
    assert "Traceback" in (folder / store.ERROR_FILE).read_text()
    assert not (folder / store.METRICS_FILE).exists()


class Exploding(Scripted):
    """Scripted, but its training loss turns NaN (or the run is interrupted) at ``FAIL_AT``."""

    FAIL_AT: int | None = None
    INTERRUPT = False

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        record = super().train_epoch(batches)
        if int(self.model.epoch) == self.FAIL_AT:
            if self.INTERRUPT:
                raise KeyboardInterrupt
            record["loss"] = float("nan")
        return record


@pytest.fixture
def exploding() -> Iterator[type[Exploding]]:
    METHODS.register("exploding")(Exploding)
    yield Exploding
    Exploding.FAIL_AT, Exploding.INTERRUPT = None, False
    METHODS.unregister("exploding")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_non_finite_loss_fails_the_cell_and_never_finishes_it(
    toy_dataset: type, exploding: type, tmp_path: Path
) -> None:
    """NaN in training: error.txt names the epoch, no metrics.json, the epochs so far in strict JSON."""
    exploding.FAIL_AT = 3
    [spec] = _grid(["exploding"], [1])
    summary = run_cells([spec], tmp_path, echo=lambda _: None)
    [(cell_id, reason)] = summary.failed
    assert cell_id == spec.cell_id and "epoch 3: training became non-finite (loss=nan)" in reason
    folder = store.cell_dir(tmp_path, spec)
    assert not (folder / store.METRICS_FILE).exists() and store.status(tmp_path, spec) == "failed"
    epochs = [json.loads(line, parse_constant=pytest.fail) for line in (folder / store.FAILED_EPOCHS_FILE).open()]
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and epochs[-1]["loss"] is None
    assert epochs[-1]["non_finite"] == ["loss"]
    assert not list(folder.glob(f"{store.ATTEMPT_PREFIX}*"))


@pytest.mark.parametrize("how", ["interrupt", "nan"])
def test_a_forced_rerun_that_does_not_finish_keeps_the_old_result(
    toy_dataset: type, exploding: type, tmp_path: Path, how: str
) -> None:
    """--force writes a fresh attempt; Ctrl-C or a failure mid-run leaves the old files untouched."""
    [spec] = _grid(["exploding"], [1])
    assert run_cells([spec], tmp_path, echo=lambda _: None).ok
    folder = store.cell_dir(tmp_path, spec)
    before = _files(folder)
    exploding.FAIL_AT, exploding.INTERRUPT = 2, how == "interrupt"
    if how == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            run_cells([spec], tmp_path, force=True, echo=lambda _: None)
    else:
        assert not run_cells([spec], tmp_path, force=True, echo=lambda _: None).ok
    after = _files(folder)
    assert {k: v for k, v in after.items() if k in before} == before  # every old file as it was
    assert set(after) - set(before) <= {store.ERROR_FILE, store.FAILED_EPOCHS_FILE}
    assert store.is_done(tmp_path, spec) and not (folder / claims.CLAIM_FILE).exists()


def test_a_commit_cut_short_is_finished_when_the_next_run_starts(
    toy_dataset: type, scripted: type, tmp_path: Path
) -> None:
    """A crash between installing an attempt's files and its metrics.json is rolled forward by
    the recovery at the start of the next run (``store.recover``), not by a reader."""
    [spec] = _grid(["scripted"], [1])
    run_cells([spec], tmp_path, echo=lambda _: None)
    folder = store.cell_dir(tmp_path, spec)
    old = json.loads((folder / store.METRICS_FILE).read_text())
    attempt = store.new_attempt(folder)
    for name in (*store.RESULT_FILES, store.METRICS_FILE):
        (attempt / name).write_bytes((folder / name).read_bytes())
    new = {**old, "finished_at": "new"}
    store.atomic_write_json(attempt / store.METRICS_FILE, new)
    os.replace(attempt / store.SPEC_FILE, folder / store.SPEC_FILE)  # the crash: only one file moved
    assert store.is_done(tmp_path, spec)  # the old result, complete; reading changes nothing
    assert json.loads((folder / store.METRICS_FILE).read_text()) == old and attempt.exists()
    store.recover(folder)
    assert json.loads((folder / store.METRICS_FILE).read_text()) == new and not attempt.exists()


class Counting(Scripted):
    """Scripted whose epoch counter is a plain attribute saved through ``state_attributes``."""

    state_attributes = ("epochs_seen",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.epochs_seen = 0

    def train_epoch(self, batches: Iterable[Batch]) -> dict[str, float]:
        self.epochs_seen += 1
        return super().train_epoch(batches)

    def rationalize(self, batch: Batch, mode: EvalMode) -> RationaleOutput:
        out = super().rationalize(batch, mode)
        mask = torch.zeros_like(batch.mask)
        mask[:, : self.epochs_seen] = 1  # the test rationale reveals the restored counter
        return RationaleOutput(logits=out.logits, mask=mask * batch.mask)


def test_the_best_epochs_whole_state_is_restored_counters_included(toy_dataset: type, tmp_path: Path) -> None:
    """Counters outside the model are part of Method.state_dict and come back with the best epoch."""
    METHODS.register("counting")(Counting)
    try:
        [spec] = _grid(["counting"], [1])
        metrics = run_cell(spec, tmp_path)
    finally:
        METHODS.unregister("counting")
    for mode in ("reference", "clean"):
        assert metrics["modes"][mode]["best_epoch"] == 2
        assert metrics["modes"][mode]["S"] == pytest.approx(100 * 2 * 10 / metrics["data"]["n_test_tokens"])


def test_each_cell_runs_with_its_own_cpu_thread_count(
    toy_dataset: type, scripted: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread count changes float sums and so the numbers (3 demo epochs of RNP: Acc 55.0 on
    one thread, 54.2 on two), so it is part of the cell id and set by the runner, whatever the
    process had: ``--workers 1`` and ``--workers 2`` give the same cells and the same numbers."""
    seen: list[int] = []
    train_epoch = Scripted.train_epoch

    def recording(self: Scripted, batches: Iterable[Batch]) -> dict[str, float]:
        seen.append(torch.get_num_threads())
        return train_epoch(self, batches)

    monkeypatch.setattr(Scripted, "train_epoch", recording)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            [spec] = grid.expand(["scripted"], ["toy"], [1], sets={"toy": {"n": "10"}}, cpu_threads=threads)
            torch.set_num_threads(3 - threads)  # the process starts with the other count
            assert run_cells([spec], tmp_path, echo=lambda _: None).ok
            assert spec.pipeline["cpu_threads"] == threads
    finally:
        torch.set_num_threads(before)
    assert seen == [1] * 4 + [2] * 4
    one, two = (grid.expand(["scripted"], ["toy"], [1], cpu_threads=n)[0] for n in (1, 2))
    assert one.cell_id != two.cell_id
