"""Is a cell's rationale F1 above chance? Compare it with random selections of the same size.

For every finished cell under a results folder (or one cell folder) and each evaluation mode,
this reads ``rationales.jsonl.gz`` and draws ``--draws`` random rationales that select, in each
test example, as many document words as the method did (uniformly among the example's
words). It prints the method's micro F1 over document words, the mean and the 95th percentile
of the random F1s, and the share of random draws at least as good (a permutation p-value).
Selections on padding (reference mode) are left out of both, so the method is compared with
chance at its own in-text sparsity.

    python benchmarks/random_baseline.py RESULTS_OR_CELL [--draws 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np

from ratbench.execution import store


def micro_f1(true_positive: float, predicted: float, gold: float) -> float:
    """F1 from summed counts (0 when nothing is predicted or nothing is gold)."""
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / gold if gold else 0.0
    return 100 * (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def compare(records: list[dict], draws: int, rng: np.random.Generator) -> dict[str, float]:
    """The method's F1 and the random F1 distribution at the same per-example selection sizes."""
    masks = [np.asarray(r["mask"][: r["length"]], dtype=bool) for r in records]
    golds = [np.asarray(r["gold"], dtype=bool) for r in records]
    predicted = sum(int(m.sum()) for m in masks)
    gold = sum(int(g.sum()) for g in golds)
    observed = micro_f1(sum(int((m & g).sum()) for m, g in zip(masks, golds, strict=True)), predicted, gold)
    hits = np.zeros(draws)
    for mask, truth in zip(masks, golds, strict=True):
        k, n, g = int(mask.sum()), len(mask), int(truth.sum())
        if k and g:
            hits += rng.hypergeometric(g, n - g, k, size=draws)  # gold words among k random ones
    random_f1 = np.array([micro_f1(h, predicted, gold) for h in hits])
    return {
        "F1": observed,
        "S": 100 * predicted / max(1, sum(len(m) for m in masks)),
        "random_mean": float(random_f1.mean()),
        "random_p95": float(np.percentile(random_f1, 95)),
        "p": float((random_f1 >= observed).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a results folder or one cell folder")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    folders = (
        [args.path]
        if (args.path / store.METRICS_FILE).is_file()
        else [cell.path for cell in store.finished_cells(store.runs_dir(args.path))]
    )
    print("| cell | mode | S (in text) | F1 | random F1 mean | random F1 95th pct | p |")
    print("|---|---|---|---|---|---|---|")
    for folder in folders:
        with gzip.open(folder / store.RATIONALES_FILE, "rt", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        for mode in ("reference", "clean"):
            result = compare([r for r in records if r["mode"] == mode], args.draws, rng)
            print(
                f"| {folder.name if folder == args.path else folder.relative_to(args.path / 'runs')} | {mode} | "
                f"{result['S']:.1f} | {result['F1']:.1f} | {result['random_mean']:.1f} | {result['random_p95']:.1f} | "
                f"{result['p']:.3f} |"
            )


if __name__ == "__main__":
    main()
