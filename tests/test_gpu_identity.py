"""The GPU path's identity and settings, checked on the CPU (issue 19, items 3, 4, 5 and 7):
the device kind in the cell id (CPU ids unchanged), the GPU versions in metrics.json, the
determinism and TF32 settings of a CUDA cell, the pinned non-blocking copies, and best-epoch
snapshots kept on the CPU."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from ratbench.errors import RatbenchError
from ratbench.execution import cells, grid, runner, store
from ratbench.registry import DATASETS, METHODS
from ratbench.reporting.results import load_results
from ratbench.types import Batch, transfer_options
from ratbench.versions import EVAL_VERSION, PIPELINE_VERSION, pipeline

# The pipeline dict every cell had before the device entered it: CPU cells must keep it as it is.
PIPELINE_BEFORE = {"version": PIPELINE_VERSION, "limit_shuffle_seed": 0, "precision": "fp32", "cpu_threads": 1}
# config_id of rnp (demo preset) on synthetic.aroma, recorded with `grid.expand` before the change,
# at these versions (a version bump changes the id on purpose: then the check is skipped).
RECORDED = {"id": "c-137bfd7644", "rnp": "1", "synthetic": "1", "pipeline": "3", "eval": "2"}


def test_cpu_cell_ids_do_not_change_and_a_cuda_kind_gives_other_ids() -> None:
    """A CPU grid keeps its pipeline dict and ids; ``device_kind="cuda"`` (no GPU needed) gives
    other ids, with the device kind and the TF32 policy in the pipeline."""
    [cpu] = grid.expand(["rnp"], ["synthetic.aroma"], [1], preset="demo")
    assert cpu.pipeline == PIPELINE_BEFORE
    assert cpu.config_id == dataclasses.replace(cpu, pipeline=dict(PIPELINE_BEFORE)).config_id
    versions = (METHODS.get("rnp").version, DATASETS.get("synthetic").version, PIPELINE_VERSION, EVAL_VERSION)
    if versions == (RECORDED["rnp"], RECORDED["synthetic"], RECORDED["pipeline"], RECORDED["eval"]):
        assert cpu.config_id == RECORDED["id"]
    [explicit] = grid.expand(["rnp"], ["synthetic.aroma"], [1], preset="demo", device_kind="cpu")
    assert explicit.cell_id == cpu.cell_id

    [cuda] = grid.expand(["rnp"], ["synthetic.aroma"], [1], preset="demo", device_kind="cuda")
    assert cuda.pipeline == {**PIPELINE_BEFORE, "device": "cuda", "tf32": False}
    assert cuda.config_id != cpu.config_id and cuda.cell_id != cpu.cell_id
    assert cuda.method_config == cpu.method_config and cuda.variant == cpu.variant  # same request, other device
    with pytest.raises(ValueError, match="device_kind"):
        pipeline(device_kind="cuda:0")  # the kind, never the index


def _tiny_rnp(seeds: list[int], device_kind: str = "cpu") -> list[cells.CellSpec]:
    return grid.expand(
        ["rnp"], ["toy"], seeds, preset="demo", sets={"toy": {"n": "10"}}, epochs=2, device_kind=device_kind
    )


def test_metrics_record_the_gpu_versions_and_a_cell_runs_on_its_own_device_kind(
    toy_dataset: type, tmp_path: Path
) -> None:
    """metrics.json's ``versions`` names the GPU, CUDA and cuDNN (None on the CPU); a spec
    without a device reads as ``cpu``; a cell expanded for cuda refuses to run on the CPU."""
    [spec] = _tiny_rnp([1])
    metrics = runner.run_cell(spec, tmp_path)
    assert {key: metrics["versions"][key] for key in ("gpu", "cuda", "cudnn")} == dict.fromkeys(
        ("gpu", "cuda", "cudnn")
    )
    on_disk = json.loads((store.cell_dir(tmp_path, spec) / store.METRICS_FILE).read_text())
    assert on_disk["versions"]["gpu"] is None and on_disk["device"] == "cpu"
    assert set(load_results(tmp_path)["device"]) == {"cpu"}  # no "device" in the spec: a CPU cell

    [gpu_spec] = _tiny_rnp([1], "cuda")
    with pytest.raises(RatbenchError, match="expanded for --device cuda but would run on cpu"):
        runner.run_cell(gpu_spec, tmp_path)


def _flags() -> tuple[Any, ...]:
    return (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


@pytest.fixture
def restore_backend_flags() -> Iterator[None]:
    """Put torch's global flags and CUBLAS_WORKSPACE_CONFIG back after the test."""
    matmul_tf32, cudnn_tf32, deterministic, benchmark, algorithms, warn_only, env = _flags()
    yield
    torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = benchmark
    torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
    if env is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = env


def test_seed_everything_sets_the_cuda_settings_and_leaves_the_cpu_alone(
    restore_backend_flags: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CUDA cell: TF32 off, cuDNN deterministic without autotuning, deterministic algorithms
    (warn only), a fixed cuBLAS workspace; setting them needs no GPU. A CPU cell: untouched."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = _flags()
    runner.seed_everything(1)
    runner.seed_everything(1, device="cpu")
    assert _flags() == before
    runner.seed_everything(1, device=torch.device("cuda", 1))
    assert _flags() == (False, False, True, False, True, True, ":4096:8")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's valid choice is kept
    runner.seed_everything(1, device="cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_batch_to_pins_and_copies_asynchronously_only_to_a_gpu() -> None:
    """``Batch.to("cpu")`` gives equal tensors; only a CUDA target pins and copies non-blocking."""
    assert transfer_options("cpu") == (False, False) and transfer_options(torch.device("cpu")) == (False, False)
    assert transfer_options("cuda") == (True, True) and transfer_options(torch.device("cuda", 1)) == (True, True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    batch = Batch(
        ids=torch.tensor([[3, 4, 0], [5, 6, 7]]),
        mask=mask,
        labels=torch.tensor([0, 1]),
        gold=torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
        example_ids=["a", "b"],
        selectable=torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
        word_index=torch.tensor([[-1, 0, -1], [0, 1, 2]]),
        has_context=True,
        lengths=torch.tensor([2, 5]),
    )
    moved = batch.to("cpu")
    for field in ("ids", "mask", "labels", "gold", "selectable", "word_index", "lengths"):
        assert torch.equal(getattr(moved, field), getattr(batch, field)), field
    assert moved.example_ids == batch.example_ids and moved.has_context


def test_best_epoch_snapshots_are_cpu_copies_and_restore_the_state(
    toy_dataset: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's best-epoch snapshots hold CPU tensors that share no memory with the live
    state (model and Adam moments), and loading one restores that state."""
    taken: list[dict[str, Any]] = []
    snapshot = runner.cpu_snapshot

    def recording(state: dict[str, Any]) -> dict[str, Any]:
        copied = snapshot(state)
        taken.append(copied)
        return copied

    monkeypatch.setattr(runner, "cpu_snapshot", recording)
    [spec] = _tiny_rnp([1])
    runner.run_cell(spec, tmp_path)
    assert taken

    def tensors(value: Any) -> Iterator[torch.Tensor]:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from tensors(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from tensors(item)

    for state in taken:
        found = list(tensors(state["model"])) + list(tensors(state["optimizers"]))
        assert found and all(t.device.type == "cpu" for t in found)

    # A model and optimizer of its own: the copy shares no storage, and restoring brings the state back.
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = {"model": model.state_dict(), "optimizers": [optimizer.state_dict()], "attributes": {"_steps": 1}}
    copied = runner.cpu_snapshot(state)
    assert copied["model"]._metadata == state["model"]._metadata  # module versions, read by load_state_dict
    live = {t.data_ptr() for t in tensors(state)}
    assert not live & {t.data_ptr() for t in tensors(copied)}
    weight, moment = model.weight.detach().clone(), optimizer.state[model.weight]["exp_avg"].clone()
    optimizer.zero_grad()
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # the live state moves on; the copy must not
    assert not torch.equal(model.weight, weight)
    model.load_state_dict(copied["model"])
    optimizer.load_state_dict(copied["optimizers"][0])
    assert torch.equal(model.weight, weight) and torch.equal(optimizer.state[model.weight]["exp_avg"], moment)
    assert copied["attributes"] == {"_steps": 1}


def test_gpu_cells_are_a_labelled_row_of_their_own() -> None:
    """A cell run on a GPU reads as the variant word ``device=cuda`` (its own row, never averaged
    with CPU seeds); a CPU cell adds nothing."""
    from ratbench.execution.variants import items

    assert items({"preset": "paper", "device": "cuda"})[-1] == "device=cuda"
    assert items({"preset": "paper", "device": "cpu"}) == items({"preset": "paper"}) == ["preset=paper"]
