"""``run_cell``: the only function an executor calls. It owns seeding, data, the epoch loop,
model selection, evaluation and every file a cell writes."""

from __future__ import annotations

import contextlib
import copy
import gzip
import math
import os
import platform
import random
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

import ratbench
from ratbench.counts import safe_div
from ratbench.data.adapter import DatasetAdapter, limit_examples
from ratbench.data.batching import eval_batches, train_batches
from ratbench.data.encoders import make_text_encoder
from ratbench.errors import RatbenchError
from ratbench.evaluation.diagnostics import PROBE_EXAMPLES, EpochDiagnostics
from ratbench.evaluation.evaluator import (
    accuracy,
    iter_batches,
    predictor_accuracy,
    rationalize_split,
    score_rationales,
)
from ratbench.execution import cells, store
from ratbench.method import Method, MethodConfig
from ratbench.registry import DATASETS, METHODS
from ratbench.types import EVAL_MODES, SPLITS, Batch, DataInfo, EncodedExample, EvalMode, Example, RationaleOutput
from ratbench.versions import source_revision

CUBLAS_WORKSPACE = ":4096:8"  # a fixed cuBLAS workspace: required for deterministic cuBLAS (CUDA >= 10.2)


def seed_everything(seed: int, cpu_threads: int | None = None, device: str | torch.device = "cpu") -> None:
    """The single seeding point of a cell: python, numpy and torch (CPU and CUDA), and torch's
    CPU thread count (part of the cell id: the numbers depend on it).

    On a CUDA ``device`` it also fixes what else decides the numbers (``cuda_settings``): TF32
    off and the deterministic settings. On the CPU nothing else is touched, so CPU numbers stay
    as they were (deterministic mode would also fill every ``torch.empty``, a cost for nothing)."""
    if cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    if torch.device(device).type == "cuda":
        cuda_settings()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cuda_settings() -> None:
    """The settings of a CUDA cell; none needs a GPU to be set (CUDA reads them when it runs).

    * TF32 off (the cell id's ``tf32: False``): cuDNN RNNs and convolutions default to TF32,
      which rounds fp32 inputs to 10 mantissa bits, so "fp32" cells would not be fp32.
    * cuDNN deterministic, no autotuning (``benchmark`` picks kernels by timing, which varies).
    * ``use_deterministic_algorithms(True, warn_only=True)``: deterministic kernels where torch
      has them; ops without one (on CUDA: NLLLoss, float cumsum, ...) warn instead of failing.
    * ``CUBLAS_WORKSPACE_CONFIG``: cuBLAS reads it when it makes its workspace, at the first
      matmul, which comes after this (a value the user set that torch accepts is kept).
    """
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in (CUBLAS_WORKSPACE, ":16:8"):
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def device_versions(device: torch.device) -> dict[str, Any]:
    """What decides a GPU cell's numbers besides the code: the GPU model, the CUDA and cuDNN
    versions (None on the CPU or where there is no cuDNN), for ``metrics.json``'s ``versions``."""
    on_gpu = device.type == "cuda"
    cudnn = torch.backends.cudnn.version() if on_gpu and torch.backends.cudnn.is_available() else None
    return {
        "gpu": torch.cuda.get_device_name(device) if on_gpu else None,
        "cuda": torch.version.cuda if on_gpu else None,
        "cudnn": cudnn,
    }


def cpu_snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``Method.state_dict()`` with the model and optimizer tensors on the CPU.

    The best-epoch copies (up to two, model plus optimizer moments each) would otherwise hold
    GPU memory for the whole cell. ``Method.load_state_dict`` puts them back where they belong:
    ``Module.load_state_dict`` copies into the parameters, ``Optimizer.load_state_dict`` moves
    each state to its parameter's device. The ``attributes`` (small counters) are deep-copied as
    they are, since ``load_state_dict`` sets them back without moving them."""

    def to_cpu(value: Any) -> Any:
        if isinstance(value, torch.Tensor):  # copy=True: on the CPU, .to() would return the live tensor
            return value.detach().to("cpu", copy=True)
        if isinstance(value, dict):
            copied = type(value)((key, to_cpu(item)) for key, item in value.items())
            if hasattr(value, "_metadata"):  # Module.state_dict's per-module versions, read when loading
                copied._metadata = copy.deepcopy(value._metadata)  # type: ignore[attr-defined]  # not on a plain dict
            return copied
        if isinstance(value, list) or type(value) is tuple:
            return type(value)(to_cpu(item) for item in value)
        return copy.deepcopy(value)

    return {key: copy.deepcopy(value) if key == "attributes" else to_cpu(value) for key, value in state.items()}


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; anything else, or a GPU that is not there, is a clear error."""
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", name)
    if match is None:
        raise RatbenchError(f"unknown --device {name!r}: use cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RatbenchError(f"--device {name} requested but no CUDA GPU is visible; use --device cpu")
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        raise RatbenchError(f"--device {name}: there are only {torch.cuda.device_count()} visible GPUs (0-based)")
    return torch.device(name)


@dataclass
class PreparedData:
    """Encoded splits and what the method may know about them."""

    splits: dict[str, list[EncodedExample]]
    info: DataInfo
    pad_to: int | None  # the padding=max_len layout
    bucket: bool  # the padding=bucket layout
    pool_batches: int
    word_rule: str
    stats: dict[str, Any]
    docids: dict[str, str]  # test example id -> document id, where they differ
    label_names: list[str]
    sentences: dict[str, np.ndarray]  # test example id -> sentence of each document word, where known


def prepare_data(spec: cells.CellSpec, data_dir: Path | None = None) -> PreparedData:
    """Read, limit and encode the three splits of the cell's dataset."""
    adapter_cls: type[DatasetAdapter] = DATASETS.get(spec.dataset)
    config = adapter_cls.Config.resolve(spec.dataset_config, owner=spec.dataset)
    adapter = adapter_cls(spec.subset, config, data_dir)
    raw: dict[str, list[Example]] = {split: limit_examples(list(adapter.read(split)), spec.limit) for split in SPLITS}
    for split, examples in raw.items():
        if not examples:
            raise RatbenchError(f"dataset {spec.dataset}.{spec.subset} has no {split} examples")
    if any(ex.rationale is None for ex in raw["test"]):
        raise RatbenchError(f"dataset {spec.dataset}.{spec.subset}: every test example needs a rationale")
    encoder = make_text_encoder(config, adapter.tokens_are_piece_ids)
    encoder.fit(raw)
    splits = {split: [encoder.encode(ex) for ex in examples] for split, examples in raw.items()}
    tokens = sum(len(ex.ids) if ex.selectable is None else int(ex.selectable.sum()) for ex in splits["test"])
    gold = sum(float(ex.gold.sum()) for ex in splits["test"] if ex.gold is not None)  # every one has it (above)
    stats: dict[str, Any] = {f"n_{split}": len(examples) for split, examples in splits.items()}
    stats |= {"n_test_tokens": tokens, "test_gold_sparsity": 100 * safe_div(gold, tokens)}
    if adapter.skipped:
        stats["skipped_lines"] = dict(adapter.skipped)
    info = DataInfo(adapter.num_classes, train=tuple(splits["train"]), **encoder.info())
    pad_to = config.max_len if config.padding == "max_len" else None
    docids = {ex.id: ex.docid for ex in raw["test"] if ex.docid is not None}
    label_names = list(adapter.label_names) or [str(i) for i in range(adapter.num_classes)]
    sentences = {ex.id: np.asarray(ex.sentences) for ex in raw["test"] if ex.sentences is not None}
    return PreparedData(
        splits,
        info,
        pad_to=pad_to,
        bucket=config.padding == "bucket",
        pool_batches=config.bucket_batches,
        word_rule=config.word_rule,
        stats=stats,
        docids=docids,
        label_names=label_names,
        sentences=sentences,
    )


@contextlib.contextmanager
def autocast(device: str, precision: str) -> Iterator[None]:
    """``bf16``: run the block under ``torch.autocast`` to bfloat16 (meant for CUDA; also runs on
    CPU); ``fp32``: unchanged."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
        yield


class NonFiniteError(RatbenchError):
    """Training or evaluation produced NaN or infinity: the cell fails and is never "done"."""


def non_finite(record: dict[str, Any], prefix: str = "") -> list[str]:
    """The (dotted) keys of ``record``, nested dicts included, whose number is NaN or infinite."""
    found = []
    for key, value in record.items():
        if isinstance(value, dict):
            found += non_finite(value, f"{prefix}{key}.")
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(f"{prefix}{key}")
    return found


def run_cell(
    spec: cells.CellSpec,
    results_dir: Path,
    device: str = "cpu",
    data_dir: Path | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> store.CellResult:
    """Train and evaluate one cell; return the content of its ``metrics.json``.

    The run writes into a fresh attempt folder inside the cell folder, which replaces the
    cell's files only once everything is written (``store.commit_attempt``): a failure, a crash
    or Ctrl-C leaves a previous result of the cell complete. A failure keeps the attempt's
    epochs as ``failed_epochs.jsonl``. Call it while holding the cell's claim.
    """
    folder = store.cell_dir(results_dir, spec)
    folder.mkdir(parents=True, exist_ok=True)
    store.discard_attempts(folder)
    store.quarantine_corrupt(folder)
    if store.read_metrics(folder) is None:  # a first run: the folder says which cell it is
        store.atomic_write_json(folder / store.SPEC_FILE, spec.to_json())
    attempt = store.new_attempt(folder)
    release_gpu_memory()  # what a failed cell before this one left (its traceback held its tensors)
    try:
        metrics = _train_and_evaluate(spec, attempt, device, data_dir, on_epoch)
    except Exception:
        if (attempt / store.EPOCHS_FILE).is_file():
            os.replace(attempt / store.EPOCHS_FILE, folder / store.FAILED_EPOCHS_FILE)
        raise
    finally:
        if not (attempt / store.METRICS_FILE).is_file():
            shutil.rmtree(attempt, ignore_errors=True)
        release_gpu_memory()
    store.commit_attempt(attempt)
    return metrics


def release_gpu_memory() -> None:
    """Give the CUDA caching allocator's free blocks back to the driver between cells, where
    CUDA is in use in this process: co-tenant cells (``--cells-per-gpu``, fractional Ray GPUs)
    share the GPU's memory, and nothing else would return what a finished cell cached."""
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


@dataclass
class Best:
    """The epoch kept for one evaluation mode: its dev accuracy and number, and the state to
    restore before the test (None: the method's live state is the kept one)."""

    dev_acc: float = -1.0
    epoch: int | None = None
    state: dict[str, Any] | None = None


@dataclass
class _CellRun:
    """What the steps of one cell's run share: the spec, its data, the method and where it runs."""

    spec: cells.CellSpec
    data: PreparedData
    method_cls: type[Method]
    config: MethodConfig
    method: Method
    device: str  # as given to run_cell (autocast reads its type)
    torch_device: torch.device

    @property
    def post_hoc(self) -> bool:
        """Whether the method scores tokens after the fact (selected on its classifier)."""
        return self.method_cls.kind == "post_hoc"

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The cell's precision (``pipeline.precision``) around a block of model calls."""
        return autocast(self.device, self.spec.pipeline.get("precision", "fp32"))

    def eval_batches(self, split: str, limit: int | None = None) -> Iterator[Batch]:
        """The dev or test split's batches (its first ``limit`` examples), on the device."""
        size = {"dev": self.config.batch_size, "test": self.config.test_batch_size or self.config.batch_size}
        examples = self.data.splits[split][:limit]
        return iter_batches(eval_batches(examples, size[split], self.data.pad_to, self.data.bucket), self.torch_device)


def _train_and_evaluate(
    spec: cells.CellSpec,
    out: Path,
    device: str,
    data_dir: Path | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> store.CellResult:
    """Seed, train and evaluate, writing every file of the cell into ``out`` (metrics.json last).

    Per epoch: train, then dev accuracy in both evaluation modes, then (select-then-predict
    methods) the diagnostics of ``ratbench.evaluation.diagnostics`` on a probe of the test split, which
    change no result. For each mode the epoch with
    the best dev accuracy (strict ``>``: the earliest epoch wins ties) is kept, and at the end
    the kept state (``Method.state_dict``) is evaluated on the annotated test split in that
    mode (``select_epoch="last"``: the last epoch, as references without model selection). A
    post-hoc method is selected on its classifier's full-text dev accuracy and its test
    explanations are computed once and scored in both modes.
    """
    store.atomic_write_json(out / store.SPEC_FILE, spec.to_json())
    started = time.time()
    run = _start(spec, device, data_dir)
    setup_seconds = time.time() - started  # claim-to-first-epoch overhead: data, vocabulary, model
    best, train_seconds = _train(run, out / store.EPOCHS_FILE, on_epoch)
    results, records = _evaluate(run, best)
    _write_rationales(out / store.RATIONALES_FILE, records)
    metrics = _metrics_record(run, results, train_seconds, setup_seconds, started)
    store.atomic_write_json(out / store.METRICS_FILE, metrics)
    return metrics


def _start(spec: cells.CellSpec, device: str, data_dir: Path | None) -> _CellRun:
    """Check the device against the cell id, seed, read the data and build the method."""
    torch_device = resolve_device(device)
    expected = spec.pipeline.get("device", "cpu")  # a spec without a device is a CPU cell
    if torch_device.type != expected:  # the id says where the numbers come from: it must be true
        raise RatbenchError(
            f"cell {spec.cell_id} was expanded for --device {expected} but would run on {torch_device}; "
            f"run it with --device {expected}"
        )
    seed_everything(spec.seed, spec.pipeline.get("cpu_threads"), torch_device)  # no cpu_threads (old cells): as ran
    data = prepare_data(spec, data_dir)
    method_cls = METHODS.get(spec.method)
    config = method_cls.Config.resolve(spec.method_config, owner=spec.method)
    method = method_cls(config, data.info, torch_device)
    return _CellRun(spec, data, method_cls, config, method, device, torch_device)


def _train(
    run: _CellRun, epochs_file: Path, on_epoch: Callable[[dict[str, Any]], None] | None
) -> tuple[dict[EvalMode, Best], float]:
    """The epoch loop: train, check, select, measure and log each epoch to ``epochs_file``.
    Returns the kept epoch of each mode and the seconds spent training."""
    config, data, method = run.config, run.data, run.method
    batch_rng = np.random.default_rng(run.spec.seed)
    diagnostics = (
        None if run.post_hoc else EpochDiagnostics(lambda: run.eval_batches("test", PROBE_EXAMPLES), run.torch_device)
    )
    best = {mode: Best() for mode in EVAL_MODES}
    train_seconds = 0.0
    with open(epochs_file, "w", encoding="utf-8") as epochs_log:
        for epoch in range(1, config.epochs + 1):
            tic = time.perf_counter()
            batches = train_batches(
                data.splits["train"], config.batch_size, batch_rng, data.pad_to, data.pool_batches, data.bucket
            )
            record: dict[str, Any] = {"epoch": epoch}
            with run.autocast():
                record.update(method.train_epoch(iter_batches(batches, run.torch_device)))
            record["train_seconds"] = time.perf_counter() - tic
            train_seconds += record["train_seconds"]
            _check_finite_epoch(epoch, record, epochs_log)
            with run.autocast():
                dev_accs = _dev_accuracies(run)
            record.update({f"dev_acc_{mode}": dev_acc for mode, dev_acc in dev_accs.items()})
            _select(best, dev_accs, epoch, method, keep_last=config.select_epoch == "last")
            if diagnostics is not None:
                with run.autocast():
                    record.update(diagnostics.measure(method))
            epochs_log.write(store.dumps(record) + "\n")
            epochs_log.flush()
            if on_epoch is not None:
                on_epoch(record)
    return best, train_seconds


def _check_finite_epoch(epoch: int, record: dict[str, Any], epochs_log: IO[str]) -> None:
    """Fail the cell when an epoch's training figures hold NaN or infinity, after logging the
    epoch with those values as None and their keys under ``non_finite``."""
    bad = non_finite(record)
    if bad:
        values = ", ".join(f"{key}={record[key]}" for key in bad)
        cleaned = {key: None if key in bad else value for key, value in record.items()}
        epochs_log.write(store.dumps({**cleaned, "non_finite": bad}) + "\n")
        raise NonFiniteError(
            f"epoch {epoch}: training became non-finite ({values}); the cell is not finished: "
            "lower the learning rate, or check the embeddings and the data for NaN/inf"
        )


def _dev_accuracies(run: _CellRun) -> dict[EvalMode, float]:
    """The dev accuracy of each mode: the method's own rule (``Method.dev_accuracy``), else the
    full pipeline's, or a post-hoc method's classifier on the full text (the same for both modes)."""
    dev_accs: dict[EvalMode, float | None] = {}
    if run.post_hoc:
        dev_accs = dict.fromkeys(EVAL_MODES, predictor_accuracy(run.method, run.eval_batches("dev"), "full"))
    else:
        for mode in EVAL_MODES:
            own = run.method.dev_accuracy(run.eval_batches("dev"), mode)  # a method's own rule (MGR)
            dev_accs[mode] = own if own is not None else accuracy(run.method, run.eval_batches("dev"), mode)
    checked: dict[EvalMode, float] = {}
    for mode, dev_acc in dev_accs.items():
        if dev_acc is None:
            raise RatbenchError(f"method {run.spec.method!r} gives neither predictions nor a predictor")
        checked[mode] = dev_acc
    return checked


def _select(
    best: dict[EvalMode, Best], dev_accs: dict[EvalMode, float], epoch: int, method: Method, keep_last: bool
) -> None:
    """Keep ``epoch`` for each mode whose dev accuracy it improves (strict ``>``), or every
    epoch with ``keep_last`` (the final state is evaluated: no copies needed). The modes an
    epoch is best for share one copy of its state."""
    snapshot = None
    for mode, dev_acc in dev_accs.items():
        if keep_last:
            best[mode] = Best(dev_acc, epoch)
        elif dev_acc > best[mode].dev_acc:
            snapshot = snapshot or cpu_snapshot(method.state_dict())
            best[mode] = Best(dev_acc, epoch, snapshot)


def _evaluate(run: _CellRun, best: dict[EvalMode, Best]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each mode's test metrics with its kept epoch (restored first), and the per-example
    records of ``rationales.jsonl.gz``. A post-hoc method's test explanations are computed once
    per kept epoch and scored in both modes."""
    results: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    target = getattr(run.config, "sparsity", None)
    explained: dict[int | None, list[tuple[Batch, RationaleOutput]]] = {}  # post-hoc: per kept epoch
    for mode in EVAL_MODES:
        kept = best[mode]
        if kept.state is not None:
            run.method.load_state_dict(kept.state)
        with run.autocast():
            if not run.post_hoc:
                outputs = rationalize_split(run.method, run.eval_batches("test"), mode)
            elif kept.epoch in explained:
                outputs = explained[kept.epoch]
            else:
                outputs = explained[kept.epoch] = rationalize_split(run.method, run.eval_batches("test"), mode)
            evaluation = score_rationales(run.method, outputs, mode, target, run.data.word_rule, run.data.sentences)
        results[mode] = {"best_epoch": kept.epoch, "dev_acc": kept.dev_acc, **evaluation.metrics}
        records.extend(
            {"mode": mode, "docid": run.data.docids.get(record["id"], record["id"]), **record}
            for record in evaluation.records
        )
    bad = non_finite(results)
    if bad:
        raise NonFiniteError(f"the test metrics are non-finite ({', '.join(bad)}); the cell is not finished")
    return results, records


def _metrics_record(
    run: _CellRun, results: dict[str, Any], train_seconds: float, setup_seconds: float, started: float
) -> store.CellResult:
    """The content of the cell's ``metrics.json``."""
    spec, config = run.spec, run.config
    return {
        "status": "ok",
        "cell_id": spec.cell_id,
        "config_id": spec.config_id,
        "method": spec.method,
        "dataset": spec.dataset,
        "subset": spec.subset,
        "seed": spec.seed,
        "kind": run.method_cls.kind,
        "modes": results,
        "data": run.data.stats,
        "label_names": run.data.label_names,
        "epochs": config.epochs,
        "seconds_per_epoch": train_seconds / max(config.epochs, 1),
        "setup_seconds": setup_seconds,
        "wall_seconds": time.time() - started,
        "device": str(run.torch_device),
        "versions": {
            "ratbench": ratbench.__version__,
            "git": source_revision(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            **device_versions(run.torch_device),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _write_rationales(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(store.dumps(record) + "\n")
    os.replace(tmp, path)
