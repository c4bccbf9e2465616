"""Training throughput of RNP on a transformer (default: MiniLM, ``hf:minilm``).

Random word-piece ids of the model's vocabulary at ``--max-len`` (256) in batches of
``--batch-size`` (16), the selector and the predictor both copies of the transformer, as in
``data.encoder=hf:...``: the median over ``--repeats`` timed passes of ``--batches`` batches
(forward, backward, Adam step) after one untimed warm-up pass, in training examples per second.
``--device cuda`` and ``--precision bf16`` time the GPU path (autocast to bfloat16).

    .venv/bin/python benchmarks/transformer_throughput.py
    .venv/bin/python benchmarks/transformer_throughput.py --device cuda --precision bf16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ratbench.data.batching import collate
from ratbench.data.encoders import resolve_model
from ratbench.execution.runner import autocast
from ratbench.registry import METHODS
from ratbench.types import DataInfo, EncodedExample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm", help="an hf: name, folder or alias")
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = resolve_model(args.model)
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(path, local_files_only=True).vocab_size
    rng = np.random.default_rng(0)
    examples = [
        EncodedExample(str(i), rng.integers(1000, vocab, size=args.max_len), i % 2, None)
        for i in range(args.batch_size * args.batches)
    ]
    batches = [
        collate(examples[i : i + args.batch_size]).to(args.device) for i in range(0, len(examples), args.batch_size)
    ]
    info = DataInfo(2, None, encoder="hf", model_path=str(path), pad_id=0)
    rnp = METHODS.get("rnp")
    method = rnp(rnp.Config(hidden_dim=200, batch_size=args.batch_size, lr=1e-5), info, torch.device(args.device))
    times = []
    for repeat in range(args.repeats + 1):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        tic = time.perf_counter()
        with autocast(args.device, args.precision):
            method.train_epoch(batches)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if repeat:  # the first pass warms up
            times.append(time.perf_counter() - tic)
    per_second = len(examples) / statistics.median(times)
    result = {
        "model": str(args.model),
        "max_len": args.max_len,
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "examples_per_second": round(per_second, 2),
        "seconds_per_pass": [round(t, 2) for t in times],
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
