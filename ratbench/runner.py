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
from typing import Any

import numpy as np
import torch

import ratbench
from ratbench import cells
from ratbench.batching import eval_batches, train_batches
from ratbench.counts import safe_div
from ratbench.data import DatasetAdapter
from ratbench.diagnostics import PROBE_EXAMPLES, EpochDiagnostics
from ratbench.encoders import make_encoder
from ratbench.errors import RatbenchError
from ratbench.evaluate import accuracy, iter_batches, predictor_accuracy, rationalize_split, score_rationales
from ratbench.method import Method
from ratbench.registry import DATASETS, METHODS
from ratbench.types import EVAL_MODES, SPLITS, DataInfo, EncodedExample, Example
from ratbench.versions import LIMIT_SHUFFLE_SEED, source_revision

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
                copied._metadata = copy.deepcopy(value._metadata)  # type: ignore[attr-defined]
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


def limit_examples(examples: list[Example], limit: int | None) -> list[Example]:
    """At most ``limit`` of ``examples``: the same random subset, in order, for every seed."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(LIMIT_SHUFFLE_SEED).permutation(len(examples))[:limit])
    return [examples[i] for i in keep]


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
    raw = {split: limit_examples(list(adapter.read(split)), spec.limit) for split in SPLITS}
    for split, examples in raw.items():
        if not examples:
            raise RatbenchError(f"dataset {spec.dataset}.{spec.subset} has no {split} examples")
    if any(ex.rationale is None for ex in raw["test"]):
        raise RatbenchError(f"dataset {spec.dataset}.{spec.subset}: every test example needs a rationale")
    encoder = make_encoder(config, adapter.tokens_are_piece_ids)
    encoder.fit(raw)
    splits = {split: [encoder.encode(ex) for ex in examples] for split, examples in raw.items()}
    tokens = sum(len(ex.ids) if ex.selectable is None else int(ex.selectable.sum()) for ex in splits["test"])
    gold = sum(float(ex.gold.sum()) for ex in splits["test"])
    stats = {f"n_{split}": len(examples) for split, examples in splits.items()}
    stats |= {"n_test_tokens": tokens, "test_gold_sparsity": 100 * safe_div(gold, tokens)}
    if adapter.skipped:
        stats["skipped_lines"] = dict(adapter.skipped)
    info = DataInfo(
        adapter.num_classes, dataset=spec.dataset, subset=spec.subset, train=tuple(splits["train"]), **encoder.info()
    )
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
) -> dict[str, Any]:
    """Train and evaluate one cell; return the content of its ``metrics.json``.

    The run writes into a fresh attempt folder inside the cell folder, which replaces the
    cell's files only once everything is written (``cells.commit_attempt``): a failure, a crash
    or Ctrl-C leaves a previous result of the cell complete. A failure keeps the attempt's
    epochs as ``failed_epochs.jsonl``. Call it while holding the cell's claim.
    """
    folder = cells.cell_dir(results_dir, spec)
    folder.mkdir(parents=True, exist_ok=True)
    cells.discard_attempts(folder)
    cells.quarantine_corrupt(folder)
    if cells.read_metrics(folder) is None:  # a first run: the folder says which cell it is
        cells.atomic_write_json(folder / cells.SPEC_FILE, spec.to_json())
    attempt = cells.new_attempt(folder)
    release_gpu_memory()  # what a failed cell before this one left (its traceback held its tensors)
    try:
        metrics = _train_and_evaluate(spec, attempt, device, data_dir, on_epoch)
    except Exception:
        if (attempt / cells.EPOCHS_FILE).is_file():
            os.replace(attempt / cells.EPOCHS_FILE, folder / cells.FAILED_EPOCHS_FILE)
        raise
    finally:
        if not (attempt / cells.METRICS_FILE).is_file():
            shutil.rmtree(attempt, ignore_errors=True)
        release_gpu_memory()
    cells.commit_attempt(attempt)
    return metrics


def release_gpu_memory() -> None:
    """Give the CUDA caching allocator's free blocks back to the driver between cells, where
    CUDA is in use in this process: co-tenant cells (``--cells-per-gpu``, fractional Ray GPUs)
    share the GPU's memory, and nothing else would return what a finished cell cached."""
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _train_and_evaluate(
    spec: cells.CellSpec,
    out: Path,
    device: str,
    data_dir: Path | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """Seed, train and evaluate, writing every file of the cell into ``out`` (metrics.json last).

    Per epoch: train, then dev accuracy in both evaluation modes, then (select-then-predict
    methods) the diagnostics of ``ratbench.diagnostics`` on a probe of the test split, which
    change no result. For each mode the epoch with
    the best dev accuracy (strict ``>``: the earliest epoch wins ties) is kept, and at the end
    the kept state (``Method.state_dict``) is evaluated on the annotated test split in that
    mode (``select_epoch="last"``: the last epoch, as references without model selection). A
    post-hoc method is selected on its classifier's full-text dev accuracy and its test
    explanations are computed once and scored in both modes.
    """
    cells.atomic_write_json(out / cells.SPEC_FILE, spec.to_json())
    started = time.time()

    torch_device = resolve_device(device)
    expected = spec.pipeline.get("device", "cpu")  # a spec without a device is a CPU cell
    if torch_device.type != expected:  # the id says where the numbers come from: it must be true
        raise RatbenchError(
            f"cell {spec.cell_id} was expanded for --device {expected} but would run on {torch_device}; "
            f"run it with --device {expected}"
        )
    seed_everything(spec.seed, spec.pipeline.get("cpu_threads"), torch_device)  # no cpu_threads (old cells): as ran
    data = prepare_data(spec, data_dir)
    method_cls: type[Method] = METHODS.get(spec.method)
    config = method_cls.Config.resolve(spec.method_config, owner=spec.method)
    method = method_cls(config, data.info, torch_device)
    post_hoc = method_cls.kind == "post_hoc"
    batch_rng = np.random.default_rng(spec.seed)
    eval_size = {"dev": config.batch_size, "test": config.test_batch_size or config.batch_size}
    precision = spec.pipeline.get("precision", "fp32")

    def split(name: str, limit: int | None = None) -> Any:
        examples = data.splits[name][:limit]
        return iter_batches(eval_batches(examples, eval_size[name], data.pad_to, data.bucket), torch_device)

    def probe() -> Any:
        return split("test", PROBE_EXAMPLES)

    diagnostics = None if post_hoc else EpochDiagnostics(probe, torch_device)

    best: dict[str, dict[str, Any]] = {mode: {"dev_acc": -1.0, "epoch": None, "state": None} for mode in EVAL_MODES}
    keep_last = config.select_epoch == "last"
    train_seconds = 0.0
    setup_seconds = time.time() - started  # claim-to-first-epoch overhead: data, vocabulary, model
    with open(out / cells.EPOCHS_FILE, "w", encoding="utf-8") as epochs_log:
        for epoch in range(1, config.epochs + 1):
            tic = time.perf_counter()
            batches = train_batches(
                data.splits["train"], config.batch_size, batch_rng, data.pad_to, data.pool_batches, data.bucket
            )
            record: dict[str, Any] = {"epoch": epoch}
            with autocast(device, precision):
                record.update(method.train_epoch(iter_batches(batches, torch_device)))
            record["train_seconds"] = time.perf_counter() - tic
            train_seconds += record["train_seconds"]
            bad = non_finite(record)
            if bad:
                values = ", ".join(f"{key}={record[key]}" for key in bad)
                cleaned = {key: None if key in bad else value for key, value in record.items()}
                epochs_log.write(cells.dumps({**cleaned, "non_finite": bad}) + "\n")
                raise NonFiniteError(
                    f"epoch {epoch}: training became non-finite ({values}); the cell is not finished: "
                    "lower the learning rate, or check the embeddings and the data for NaN/inf"
                )
            with autocast(device, precision):
                if post_hoc:  # the classifier's full-text accuracy, the same for both modes
                    dev_acc = predictor_accuracy(method, split("dev"), "full")
                    dev_accs = dict.fromkeys(EVAL_MODES, dev_acc)
                else:
                    dev_accs = {mode: accuracy(method, split("dev"), mode) for mode in EVAL_MODES}
            snapshot = None  # one copy of the state per epoch, shared by the modes it is best for
            for mode, dev_acc in dev_accs.items():
                if dev_acc is None:
                    raise RatbenchError(f"method {spec.method!r} gives neither predictions nor a predictor")
                record[f"dev_acc_{mode}"] = dev_acc
                if keep_last:  # the final state is evaluated: no copies needed
                    best[mode] = {"dev_acc": dev_acc, "epoch": epoch, "state": None}
                elif dev_acc > best[mode]["dev_acc"]:
                    snapshot = snapshot or cpu_snapshot(method.state_dict())
                    best[mode] = {"dev_acc": dev_acc, "epoch": epoch, "state": snapshot}
            if diagnostics is not None:
                with autocast(device, precision):
                    record.update(diagnostics.measure(method))
            epochs_log.write(cells.dumps(record) + "\n")
            epochs_log.flush()
            if on_epoch is not None:
                on_epoch(record)

    results: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    target = getattr(config, "sparsity", None)
    explained: dict[Any, Any] = {}  # test outputs per (epoch, mode); per epoch only for post-hoc methods
    for mode in EVAL_MODES:
        if best[mode]["state"] is not None:
            method.load_state_dict(best[mode]["state"])
        key = best[mode]["epoch"] if post_hoc else (best[mode]["epoch"], mode)
        with autocast(device, precision):
            if key not in explained:
                explained[key] = rationalize_split(method, split("test"), mode)
            evaluation = score_rationales(method, explained[key], mode, target, data.word_rule, data.sentences)
        results[mode] = {"best_epoch": best[mode]["epoch"], "dev_acc": best[mode]["dev_acc"], **evaluation.metrics}
        records.extend(
            {"mode": mode, "docid": data.docids.get(record["id"], record["id"]), **record}
            for record in evaluation.records
        )
    bad = non_finite(results)
    if bad:
        raise NonFiniteError(f"the test metrics are non-finite ({', '.join(bad)}); the cell is not finished")
    _write_rationales(out / cells.RATIONALES_FILE, records)

    metrics = {
        "status": "ok",
        "cell_id": spec.cell_id,
        "config_id": spec.config_id,
        "method": spec.method,
        "dataset": spec.dataset,
        "subset": spec.subset,
        "seed": spec.seed,
        "kind": method_cls.kind,
        "modes": results,
        "data": data.stats,
        "label_names": data.label_names,
        "epochs": config.epochs,
        "seconds_per_epoch": train_seconds / max(config.epochs, 1),
        "setup_seconds": setup_seconds,
        "wall_seconds": time.time() - started,
        "device": str(torch_device),
        "versions": {
            "ratbench": ratbench.__version__,
            "git": source_revision(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            **device_versions(torch_device),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    cells.atomic_write_json(out / cells.METRICS_FILE, metrics)
    return metrics


def _write_rationales(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(cells.dumps(record) + "\n")
    os.replace(tmp, path)
