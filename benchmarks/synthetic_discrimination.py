"""Does the synthetic benchmark discriminate? Gold-supervised selector vs plain RNP.

A benchmark for rationalization data is only useful if a good selector can find the planted
rationale while an unsupervised rationalizer does not find it for free. This script trains

1. the RNP selector architecture (frozen embedding, BiGRU, LayerNorm, Linear) WITH token-level
   gold supervision (cross-entropy per real token against the planted rationale of the
   training reviews), and reports its test token F1 with the argmax selector;
2. plain RNP through the normal runner (the same cell a user would run), with the target
   sparsity alpha set to the subset's gold sparsity, and reports its test F1 in both modes.

Run:  .venv/bin/python benchmarks/synthetic_discrimination.py [--subset appearance] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ratbench._plugins.datasets.synthetic import ASPECTS, Synthetic, generate_reviews
from ratbench._plugins.methods._blocks import FrozenEmbedding, Selector
from ratbench.data.batching import eval_batches, train_batches
from ratbench.data.vocab import encode, random_vocab
from ratbench.evaluation.evaluator import RationaleCounts
from ratbench.execution import grid
from ratbench.execution.runner import run_cell, seed_everything
from ratbench.types import Example


def annotated(config: Synthetic.Config, subset: str, split: str) -> list[Example]:
    """Every review of ``split`` with its planted rationale (train included, for supervision)."""
    aspect = ASPECTS.index(subset)
    out = []
    for i, review in enumerate(generate_reviews(config, split)):
        start, end = review.spans[aspect]
        n = len(review.tokens)
        gold = (0,) * start + (1,) * (end - start) + (0,) * (n - end)
        out.append(Example(f"{split}-{i}", review.tokens, review.labels[aspect], gold))
    return out


def supervised_selector_f1(config: Synthetic.Config, subset: str, epochs: int, seed: int) -> dict[str, float]:
    """Train the selector on gold masks; return clean-mode test metrics."""
    seed_everything(seed)
    train, test = annotated(config, subset, "train"), annotated(config, subset, "test")
    vocab = random_vocab(train, config.embedding_dim, config.embedding_seed, config.embedding_norm)
    train_enc = [encode(ex, vocab, config.max_len) for ex in train]
    test_enc = [encode(ex, vocab, config.max_len) for ex in test]
    embed, selector = FrozenEmbedding(vocab.vectors), Selector(config.embedding_dim, 200, 0.2)
    optimizer = torch.optim.Adam(selector.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        selector.train()
        for batch in train_batches(train_enc, 64, rng):
            logits = selector(embed(batch.ids, batch.mask))
            loss = F.cross_entropy(logits.reshape(-1, 2), batch.gold.long().reshape(-1), reduction="none")
            loss = (loss * batch.mask.reshape(-1)).sum() / batch.mask.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    selector.eval()
    counts = RationaleCounts()
    with torch.no_grad():
        for batch in eval_batches(test_enc, 256):
            logits = selector(embed(batch.ids, batch.mask))
            pred = (logits[..., 1] > logits[..., 0]).float() * batch.mask
            counts.update(pred.numpy(), batch.gold.numpy(), batch.mask.numpy(), None, batch.labels.numpy())
    metrics = counts.metrics()
    return {key: metrics[key] for key in ("S", "P", "R", "F1")}


def rnp_f1(subset: str, sparsity: float, epochs: int, lr: float, seed: int) -> dict[str, dict[str, float]]:
    """Plain RNP through the runner, alpha = gold sparsity; metrics per evaluation mode."""
    overrides = {"rnp": {"sparsity": str(sparsity), "lr": str(lr), "batch_size": "64"}}
    [spec] = grid.expand(["rnp"], [f"synthetic.{subset}"], [seed], sets=overrides, epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        metrics = run_cell(spec, Path(tmp))
    keys = ("S", "Acc", "P", "R", "F1", "best_epoch")
    return {mode: {k: metrics["modes"][mode][k] for k in keys} for mode in ("reference", "clean")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", default="appearance", choices=("appearance", "aroma", "palate"))
    parser.add_argument("--supervised-epochs", type=int, default=5)
    parser.add_argument("--rnp-epochs", type=int, default=30)
    parser.add_argument("--rnp-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    config = Synthetic.Config()
    test = annotated(config, args.subset, "test")
    gold_sparsity = sum(sum(ex.rationale) for ex in test) / sum(len(ex.tokens) for ex in test)
    print(f"synthetic.{args.subset}: gold sparsity {100 * gold_sparsity:.1f}% of test tokens")

    tic = time.time()
    supervised = supervised_selector_f1(config, args.subset, args.supervised_epochs, args.seed)
    print(f"gold-supervised selector ({args.supervised_epochs} epochs, {time.time() - tic:.0f}s): {supervised}")

    tic = time.time()
    rnp = rnp_f1(args.subset, round(gold_sparsity, 3), args.rnp_epochs, args.rnp_lr, args.seed)
    print(f"plain RNP (alpha={gold_sparsity:.3f}, {args.rnp_epochs} epochs, {time.time() - tic:.0f}s): {rnp}")
    if args.json:
        result = {"gold_sparsity": gold_sparsity, "supervised": supervised, "rnp": rnp}
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
