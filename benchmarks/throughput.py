"""Training throughput of RNP and VER: length-bucketed batches vs batches padded to 256.

Measures examples per second of ``method.train_epoch`` (forward, backward and Adam step, plus
batch collation and the move to the device) at the paper's size: 100-d frozen embeddings,
BiGRU hidden size 200, maximum length 256, batch size 128. The data is synthetic: random token
ids over a 20k vocabulary with random 100-d vectors, and lengths drawn from a gamma
distribution clipped to [20, 256], shaped like BeerAdvocate (mean about 140 tokens).

Two layouts of the same examples are compared:

* ``bucketed``: ``train_batches(examples, 128, rng)``; each batch is padded to its own longest
  example (examples of similar length are batched together);
* ``padded``: ``train_batches(examples, 128, rng, pad_to=256)``; every batch is 256 wide (the
  reference layout).

For each method, one untimed warm-up pass over the examples is run in each layout, then
``--repeats`` timed passes per layout (the two layouts alternate); the median is reported.

Run from the repository root::

    .venv/bin/python benchmarks/throughput.py
    .venv/bin/python benchmarks/throughput.py --examples 1024 --repeats 5 --methods rnp --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ratbench.data.batching import train_batches
from ratbench.evaluation.evaluator import iter_batches
from ratbench.method import Method
from ratbench.registry import METHODS
from ratbench.types import DataInfo, EncodedExample

EMBEDDING_DIM = 100
HIDDEN_DIM = 200
MAX_LENGTH = 256
MIN_LENGTH = 20
BATCH_SIZE = 128
VOCAB_SIZE = 20_000
# Gamma(shape, scale) clipped to [MIN_LENGTH, MAX_LENGTH]: mean about 140, sd about 60,
# a few percent of the examples at the 256 cap (like truncated long beer reviews).
LENGTH_SHAPE = 4.5
LENGTH_SCALE = 32.0
LAYOUTS: dict[str, int | None] = {"bucketed": None, "padded": MAX_LENGTH}


@dataclass
class LayoutResult:
    """Timings of one method in one layout."""

    method: str
    layout: str
    examples: int
    seconds: list[float]
    median_seconds: float
    examples_per_second: float
    batch_tokens: int  # sum over batches of batch_size x width (what the GRUs actually process)
    peak_memory_mib: float | None = None  # CUDA: peak allocated memory over this layout's passes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2048, help="synthetic training examples (default 2048)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per layout; median reported")
    parser.add_argument("--methods", default="rnp,ver", help="comma-separated method names (default rnp,ver)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the batching and torch")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (CUDA: timings synchronised, peak memory)")
    return parser.parse_args(argv)


def sample_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """Beer-like lengths: a gamma distribution clipped to ``[MIN_LENGTH, MAX_LENGTH]``."""
    lengths = rng.gamma(LENGTH_SHAPE, LENGTH_SCALE, size=n)
    return np.clip(np.round(lengths), MIN_LENGTH, MAX_LENGTH).astype(np.int64)


def make_examples(n: int, rng: np.random.Generator) -> list[EncodedExample]:
    """``n`` examples with random token ids in ``[1, VOCAB_SIZE]`` and random binary labels."""
    lengths = sample_lengths(n, rng)
    labels = rng.integers(0, 2, size=n)
    return [
        EncodedExample(
            id=f"ex{i}",
            ids=rng.integers(1, VOCAB_SIZE + 1, size=int(length), dtype=np.int64),
            label=int(label),
            gold=None,
        )
        for i, (length, label) in enumerate(zip(lengths, labels, strict=True))
    ]


def make_info(rng: np.random.Generator) -> DataInfo:
    """Random ``[VOCAB_SIZE + 1, EMBEDDING_DIM]`` embeddings with a zero padding row."""
    embeddings = rng.normal(0.0, 1.0, size=(VOCAB_SIZE + 1, EMBEDDING_DIM)).astype(np.float32)
    embeddings[0] = 0.0
    return DataInfo(num_classes=2, embeddings=embeddings)


def build_method(name: str, info: DataInfo, device: torch.device) -> Method:
    """The registered method at the paper's hidden size and batch size."""
    cls = METHODS.get(name)
    return cls(cls.Config(hidden_dim=HIDDEN_DIM, batch_size=BATCH_SIZE), info, device)


def batch_tokens(examples: list[EncodedExample], pad_to: int | None, seed: int) -> int:
    """Padded positions (``rows x width``, summed over batches) of one pass in this layout."""
    rng = np.random.default_rng(seed)
    return sum(batch.ids.numel() for batch in train_batches(examples, BATCH_SIZE, rng, pad_to=pad_to))


def progress(message: str) -> None:
    """One progress line on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def timed_pass(
    method: Method, examples: list[EncodedExample], pad_to: int | None, seed: int, device: torch.device
) -> float:
    """Seconds for one training pass over ``examples`` (collation included)."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    method.train_epoch(iter_batches(train_batches(examples, BATCH_SIZE, rng, pad_to=pad_to), device))
    if device.type == "cuda":  # kernels run asynchronously: wait for them before reading the clock
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def benchmark_method(
    name: str, examples: list[EncodedExample], info: DataInfo, repeats: int, seed: int, device: torch.device
) -> list[LayoutResult]:
    """Warm up once per layout, then time ``repeats`` alternating passes per layout."""
    method = build_method(name, info, device)
    for layout, pad_to in LAYOUTS.items():
        progress(f"{name} {layout} warm-up: {timed_pass(method, examples, pad_to, seed, device):.1f} s")
    seconds: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    peak: dict[str, float | None] = dict.fromkeys(LAYOUTS)
    for repeat in range(repeats):
        for layout, pad_to in LAYOUTS.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds[layout].append(timed_pass(method, examples, pad_to, seed + 1 + repeat, device))
            if device.type == "cuda":
                peak[layout] = max(peak[layout] or 0.0, torch.cuda.max_memory_allocated(device) / 2**20)
            progress(f"{name} {layout} pass {repeat + 1}/{repeats}: {seconds[layout][-1]:.1f} s")
    results = []
    for layout, pad_to in LAYOUTS.items():
        median = statistics.median(seconds[layout])
        results.append(
            LayoutResult(
                method=name,
                layout=layout,
                examples=len(examples),
                seconds=seconds[layout],
                median_seconds=median,
                examples_per_second=len(examples) / median,
                batch_tokens=batch_tokens(examples, pad_to, seed),
                peak_memory_mib=peak[layout],
            )
        )
    return results


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo``, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, str | int]:
    """What the figures depend on besides the code."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
    }


def format_table(results: list[LayoutResult]) -> str:
    """Method, layout, examples/s, seconds per pass, padded positions and the speedup."""
    padded = {r.method: r for r in results if r.layout == "padded"}
    header = f"{'method':<7} {'layout':<9} {'examples/s':>11} {'s/epoch':>8} {'positions':>10} {'speedup':>8}"
    lines = [header, "-" * len(header)]
    for r in results:
        speedup = padded[r.method].median_seconds / r.median_seconds
        lines.append(
            f"{r.method:<7} {r.layout:<9} {r.examples_per_second:>11.1f} {r.median_seconds:>8.2f} "
            f"{r.batch_tokens:>10d} {speedup:>7.2f}x"
            + ("" if r.peak_memory_mib is None else f"  peak {r.peak_memory_mib:.0f} MiB")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print (and optionally save) the results."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)
    info = make_info(rng)
    examples = make_examples(args.examples, rng)
    lengths = np.array([len(ex.ids) for ex in examples])
    env = environment()
    gpu = f", GPU: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"torch {env['torch']}, {env['threads']} threads, CPU: {env['cpu']}{gpu}")
    print(
        f"{len(examples)} examples, lengths mean {lengths.mean():.1f} median {np.median(lengths):.0f} "
        f"min {lengths.min()} max {lengths.max()} ({(lengths == MAX_LENGTH).mean():.1%} at {MAX_LENGTH}); "
        f"batch {BATCH_SIZE}, emb {EMBEDDING_DIM}, hidden {HIDDEN_DIM}; median of {args.repeats} passes"
    )
    results: list[LayoutResult] = []
    for name in (m.strip() for m in args.methods.split(",") if m.strip()):
        results.extend(benchmark_method(name, examples, info, args.repeats, args.seed, device))
    print(format_table(results))
    if args.json is not None:
        payload = {
            "environment": env,
            "settings": {
                "examples": len(examples),
                "repeats": args.repeats,
                "batch_size": BATCH_SIZE,
                "embedding_dim": EMBEDDING_DIM,
                "hidden_dim": HIDDEN_DIM,
                "max_length": MAX_LENGTH,
                "mean_length": float(lengths.mean()),
                "seed": args.seed,
            },
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
