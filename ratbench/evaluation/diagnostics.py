"""Per-epoch diagnostics of a select-then-predict method: the quantities behind the VER paper's
Figures 2, 3 and 10, recorded in ``epochs.jsonl`` beside the loss.

On a fixed probe (the first ``PROBE_EXAMPLES`` examples of the annotated test split, in the
evaluator's batches), after every epoch:

* ``diag_gold_acc``, ``diag_gold_ce_mean``, ``diag_gold_ce_median``: the predictor's accuracy
  and cross-entropy on the human rationales (Fig. 3, Fig. 10), read as the reference reads
  them (``evaluate.gold_text``: the gold positions are the text);
* ``diag_selected_acc``, ``diag_selected_ce_mean``, ``diag_selected_ce_median``: the same on the
  rationales the method selects (reference mode: a Gumbel sample);
* ``diag_selection_change``: the share (percent) of the previous epoch's selected positions
  whose selection changed (Fig. 2a; absent after the first epoch);
* ``diag_annotation_F1``: the selection's token F1 against the human rationale (Fig. 2b).

The probe's random draws run on a forked random state, so recording them changes no result:
the same seed trains the same model with and without them. ``diag_seconds`` is their cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ratbench.counts import f1_score, safe_div
from ratbench.evaluation.evaluator import binarize, gold_text, predictor_logits
from ratbench.method import Method
from ratbench.types import Batch

PROBE_EXAMPLES = 256


class EpochDiagnostics:
    """The diagnostics of one cell, epoch after epoch (it remembers the last selection)."""

    def __init__(self, probe: Callable[[], Iterable[Batch]], device: torch.device) -> None:
        self.probe = probe
        self.fork_devices = [device] if device.type == "cuda" else []
        self.previous: dict[str, np.ndarray] = {}

    def measure(self, method: Method) -> dict[str, Any]:
        """The diagnostics of ``method`` now, as epoch-record items."""
        tic = time.perf_counter()
        gold_ce: list[np.ndarray] = []
        selected_ce: list[np.ndarray] = []
        gold_right = selected_right = 0
        changed = previously_selected = true_positive = predicted = gold = 0.0
        current: dict[str, np.ndarray] = {}
        with torch.random.fork_rng(devices=self.fork_devices), torch.no_grad():
            for batch in self.probe():
                if batch.gold is None:
                    raise ValueError("the diagnostics need an annotated probe (batch.gold is None)")
                out = method.rationalize(batch, "reference")
                gold_batch = gold_text(batch)
                gold_logits = predictor_logits(method, gold_batch, gold_batch.mask)
                if out.logits is None or gold_logits is None:
                    return {}
                selection = binarize(out, batch, "reference", None) * batch.selectable
                for logits, losses in ((gold_logits, gold_ce), (out.logits, selected_ce)):
                    losses.append(F.cross_entropy(logits.float(), batch.labels, reduction="none").cpu().numpy())
                gold_right += int((gold_logits.argmax(-1) == batch.labels).sum())
                selected_right += int((out.logits.argmax(-1) == batch.labels).sum())
                true_positive += float((selection * batch.gold).sum())
                predicted += float(selection.sum())
                gold += float(batch.gold.sum())
                for row, example_id in enumerate(batch.example_ids):
                    now = selection[row].cpu().numpy() > 0
                    current[example_id] = now
                    before = self.previous.get(example_id)
                    if before is not None:
                        changed += float((now != before).sum())
                        previously_selected += float(before.sum())
        gold_losses, selected_losses = np.concatenate(gold_ce), np.concatenate(selected_ce)
        n = len(gold_losses)
        record: dict[str, Any] = {
            "diag_gold_acc": 100 * gold_right / n,
            "diag_gold_ce_mean": float(gold_losses.mean()),
            "diag_gold_ce_median": float(np.median(gold_losses)),
            "diag_selected_acc": 100 * selected_right / n,
            "diag_selected_ce_mean": float(selected_losses.mean()),
            "diag_selected_ce_median": float(np.median(selected_losses)),
            "diag_annotation_F1": 100 * f1_score(safe_div(true_positive, predicted), safe_div(true_positive, gold)),
        }
        if self.previous:
            record["diag_selection_change"] = 100 * safe_div(changed, previously_selected)
        self.previous = current
        record = {key: value if math.isfinite(value) else None for key, value in record.items()}  # strict JSON
        record["diag_seconds"] = time.perf_counter() - tic
        return record
