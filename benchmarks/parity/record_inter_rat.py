"""Record the Inter_RAT parity fixture from the reference code (yuelinan/Codes-of-Inter-RAT).

    python benchmarks/parity/record_inter_rat.py --reference /path/to/Codes-of-Inter-RAT --out tests/golden/parity/

The reference's own ``model.InterRAT`` and ``utils.Data_Process`` (imported from ``--reference``)
run on a tiny data set written here in the reference's file formats (gzip'd score-and-token
lines, ``annotations.json`` lines, a pickled ``(nn.Embedding, word2id)``), with a tiny random
embedding and hidden size 8. The training loop and the evaluation are restated from its
``train.py`` (which parses arguments and trains at import, so it cannot be imported): Adam,
per-step ``CE + infor_loss * sparsity + regular * continuity``, the per-epoch learning-rate
decay with its floor, then dev accuracy at the training batch size and the annotated test set
at batch size 1 with the reference's precision/recall counts, after every epoch.

Every random draw (dropout keep-masks, Gumbel noise) is recorded with ``tests/parity_tape.py``;
``tests/test_parity_inter_rat.py`` replays them through ratbench's ``inter_rat``. The data is
chosen, and ``--seed`` picked, so that the recording covers: a text longer than the 300-token
maximum (truncation; the regularizer uses the untruncated length), a one-token text selected
in a padded batch (the continuity term divides by 1e-8), a row that selects nothing (the
pooling denominator), and a selected last token followed by padding (the jump into padding).
The script refuses to write a fixture that misses one of them.

Needs only torch, numpy and tqdm (the reference's ``utils`` imports it); no GPU, no network.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from parity_tape import DrawTape  # noqa: E402

DEFAULT_COMMIT = "416f63ce570a"  # METHODS.md section 0; used when --reference is not a git checkout
MAX_LEN = 300  # hard-coded in the reference's Data_Process.process_data

# The recorded run: the reference's loss weights and alpha (run.sh), a tiny model, a learning
# rate schedule whose floor is reached after the first epoch (so both branches of the decay run).
CONFIG: dict[str, Any] = {
    "hidden_dim": 8,
    "dropout": 0.2,
    "sparsity": 0.2,
    "sparsity_lambda": 0.05,
    "continuity_lambda": 0.01,
    "lr": 2e-3,
    "lr_decay": 0.5,
    "min_lr": 1.5e-3,
    "batch_size": 3,
    "epochs": 2,
    "tau": 1.0,
    "priors": "reference",
}
EMBED_DIM = 8

_TEXT = (
    "the beer pours a hazy golden color with thin white head great lovely awful poor bland aroma of malt and "
    "hops taste is sweet bitter dark nice ."
)
WORDS = _TEXT.split()  # 28 words; with <pad> and unk_word a 30-word vocabulary
# id 0 is padding (the reference's mask is sign(id)); unknown words map to "unk_word", id 1.
VOCAB = ["<pad>", "unk_word", *WORDS]


def _long_text(n: int, offset: int) -> list[str]:
    """``n`` in-vocabulary tokens, some capitalised (the reference lowercases its lookups)."""
    words = [WORDS[(offset + 7 * i) % len(WORDS)] for i in range(n)]
    return [w.capitalize() if i % 11 == 0 else w for i, w in enumerate(words)]


def _scores(first: float) -> str:
    return " ".join(f"{s:.1f}" for s in (first, 0.3, 0.7, 0.6, 0.5))


def reference_files() -> dict[str, bytes]:
    """The three data files and the embedding pickle, in the reference's formats. Lines mix tabs
    and runs of spaces (``line.split()``), capitals (``word.lower()``) and unknown words."""
    train = [
        f"{_scores(0.9)}\t{' '.join(_long_text(305, 0))}",  # longer than 300: truncated
        f"{_scores(0.8)}\tGreat",  # one token
        f"{_scores(0.2)}\tawful  bland",  # two tokens: may select nothing
        f"{_scores(0.5)}\tthe beer is nice",  # 0.5: dropped
        f"{_scores(0.3)}\tthe aroma of  malt is poor .",
        f"{_scores(0.7)}  The Beer pours a hazy golden color with a zzz white head",  # zzz: unknown
        f"{_scores(0.4)}\tthin and bitter taste with dark malt , bland",  # 0.4: label 0; "," unknown
    ]
    dev = [
        f"{_scores(0.6)}\tlovely golden color and nice head",
        f"{_scores(0.1)}\tpoor thin beer with awful bitter taste and bland aroma .",
        f"{_scores(0.5)}\tthe beer",  # dropped
        f"{_scores(0.8)}\tGreat Hops and sweet malt",
        f"{_scores(0.3)}\tdark and bitter",
        f"{_scores(0.9)}\tnice white head",
    ]
    long_test = _long_text(302, 3)
    annotations = [
        {
            "x": ["a", "hazy", "golden", "color", "with", "nice", "white", "head"],
            "y": [0.8, 0.6, 0.6, 0.6, 0.6],
            "0": [[1, 4]],
        },
        {"x": ["the", "beer", "is", "bland", "and", "thin"], "y": [0.2, 0.4, 0.4, 0.4, 0.4], "0": []},  # empty: kept
        {"x": long_test, "y": [0.9, 0.6, 0.6, 0.6, 0.6], "0": [[2, 5], [297, 302]]},  # span cut at 300
        {"x": ["the", "beer"], "y": [0.5, 0.5, 0.5, 0.5, 0.5], "0": [[0, 1]]},  # 0.5: dropped
        {"x": ["Awful"], "y": [0.0, 0.2, 0.2, 0.2, 0.2], "0": [[0, 1]]},  # one token
        {
            "x": ["The", "Aroma", "of", "Malt", "and", "Hops", "is", "Great", ",", "Lovely", "sweet", "taste"],
            "y": [1.0] * 5,
            "0": [[0, 2], [7, 10]],
        },
    ]
    for record in annotations:
        for aspect in "1234":
            record.setdefault(aspect, [])
    vectors = np.random.default_rng(0).normal(scale=0.5, size=(len(VOCAB), EMBED_DIM)).astype(np.float32)
    vectors[0] = 0.0
    embedding = nn.Embedding(len(VOCAB), EMBED_DIM)
    with torch.no_grad():
        embedding.weight.copy_(torch.from_numpy(vectors))
    word2id = {word: i for i, word in enumerate(VOCAB) if i > 0}
    return {
        "reviews.260k.train.txt.gz": gzip.compress(("\n".join(train) + "\n").encode()),
        "reviews.260k.heldout.txt.gz": gzip.compress(("\n".join(dev) + "\n").encode()),
        "annotations.json": ("\n".join(json.dumps(a) for a in annotations) + "\n").encode(),
        "glove.6B.100d.txt.pickle": pickle.dumps((embedding, word2id)),
    }


def reference_args(seed: int) -> SimpleNamespace:
    """The attributes of train.py's argparse namespace that InterRAT and Data_Process read."""
    return SimpleNamespace(
        aspect=0,
        alpha_rationle=CONFIG["sparsity"],
        class_num=2,
        device=torch.device("cpu"),
        Intervention_type="linear",
        lstm_hidden_dim=CONFIG["hidden_dim"],
        embed_dim=EMBED_DIM,
        lstm_hidden_layer=1,
        abs=1,
        dataset_type="beer",
        infor_loss=CONFIG["sparsity_lambda"],
        regular=CONFIG["continuity_lambda"],
        lr=CONFIG["lr"],
        lr_decay=CONFIG["lr_decay"],
        min_lr=CONFIG["min_lr"],
        weight_decay=0,
        batch_size=CONFIG["batch_size"],
        epochs=CONFIG["epochs"],
        seed=seed,
    )


UNUSED = ("embs.", "extract_encoder.", "Transformation_first.")  # frozen, or never called in forward


def trained_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The reference parameters that get gradients, by their reference names."""
    return {name: p for name, p in model.named_parameters() if not name.startswith(UNUSED)}


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The tensors concatenated in name order (the fixture's ``parameters`` give names and shapes):
    one stored tensor per step instead of twenty keeps the fixture small."""
    return torch.cat([t.detach().reshape(-1) for t in tensors.values()]).clone()


def record(reference: Path, seed: int) -> dict[str, Any]:
    """Run the reference and return the fixture dict."""
    sys.path.insert(0, str(reference))
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        import model as ref_model  # the reference's own modules, from --reference
        import utils as ref_utils

    args = reference_args(seed)
    files = reference_files()
    cwd = Path.cwd()

    with tempfile.TemporaryDirectory() as tmp, quiet:
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
        os.chdir(tmp)  # Data_Process opens its files by relative paths
        try:
            process = ref_utils.Data_Process(args)
            train_data = process.read_data("train_all")
            dev_data = process.read_data("dev")
            test_data = process.read_data("test")
        finally:
            os.chdir(cwd)

    # train.py: seeds, then the model, Adam and ExponentialLR; DataLoaders as train.py builds them.
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    vectors = process.embedding
    vectors.weight.requires_grad = False
    with quiet:
        model = ref_model.InterRAT(args, vectors)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)
    loader = torch.utils.data.DataLoader(train_data, batch_size=args.batch_size, shuffle=True, drop_last=False)
    dev_loader = torch.utils.data.DataLoader(dev_data, batch_size=args.batch_size, shuffle=False)
    test_loader = torch.utils.data.DataLoader(test_data, batch_size=1, shuffle=False)
    criterion = nn.CrossEntropyLoss()
    parameters = [[name, list(p.shape)] for name, p in trained_parameters(model).items()]
    initial = flat(trained_parameters(model))

    captured: dict[str, torch.Tensor] = {}
    model.x_2_prob_z.register_forward_hook(lambda m, i, o: captured.__setitem__("selector_logits", o.detach().clone()))

    tape = DrawTape()
    steps: list[dict[str, Any]] = []
    train_batches: list[dict[str, torch.Tensor]] = []
    epochs: list[dict[str, Any]] = []
    dev_batches: list[dict[str, torch.Tensor]] = []
    test_examples: list[dict[str, Any]] = []
    with tape.record():
        for epoch in range(1, args.epochs + 1):
            model.train()
            for batch in loader:
                optimizer.zero_grad()
                label, documents, sent_len = process.process_data(batch, types="train_all")
                lr = optimizer.param_groups[0]["lr"]
                output, z, _ = model(documents, sent_len)
                cls = criterion(output, label)
                loss = cls + args.infor_loss * model.infor_loss + args.regular * model.regular
                loss.backward()
                grads = flat({name: p.grad for name, p in trained_parameters(model).items()})
                optimizer.step()
                # ids as int16 (30 words) to keep the fixture small; the test widens them
                train_batches.append({"ids": documents.short(), "lengths": sent_len, "labels": label})
                steps.append(
                    {
                        "epoch": epoch,
                        "lr": lr,
                        "selector_logits": captured["selector_logits"],
                        "z": z.squeeze(-1).detach().clone(),
                        "predictor_logits": output.detach().clone(),
                        "cls_loss": cls.item(),
                        "sparsity_loss": model.infor_loss.item(),
                        "continuity_loss": model.regular.item(),
                        "loss": loss.item(),
                        "grads": grads,
                        "weights": flat(trained_parameters(model)),
                    }
                )
            # train.py: decay while above the floor, then clamp to the floor
            if scheduler.optimizer.param_groups[0]["lr"] > args.min_lr:
                scheduler.step()
            scheduler.optimizer.param_groups[0]["lr"] = max(args.min_lr, scheduler.optimizer.param_groups[0]["lr"])
            epochs.append(
                {
                    "lr": optimizer.param_groups[0]["lr"],
                    **evaluate_dev(model, process, ref_utils, dev_loader, dev_batches if epoch == 1 else None),
                    **evaluate_test(model, process, test_loader, test_examples if epoch == 1 else None),
                }
            )
    return {
        "reference": "yuelinan/Codes-of-Inter-RAT",
        "commit": reference_commit(reference),
        "torch": str(torch.__version__),
        "seed": seed,
        "max_len": MAX_LEN,
        "config": CONFIG,
        "vocab": VOCAB,
        "embeddings": vectors.weight.detach().clone(),
        "raw_files": {
            name: (gzip.decompress(b) if name.endswith(".gz") else b).decode()
            for name, b in files.items()
            if not name.endswith(".pickle")
        },
        "parameters": parameters,
        "initial_weights": initial,
        "train_batches": train_batches,
        "steps": steps,
        "epochs": epochs,
        "dev_batches": dev_batches,
        "test_examples": test_examples,
        "tape": tape.to_state(),  # dropout keep-masks as bool
    }


@torch.no_grad()
def evaluate_dev(
    model: nn.Module, process: Any, ref_utils: Any, loader: Any, inputs: list[dict[str, torch.Tensor]] | None
) -> dict[str, Any]:
    """train.py's dev pass: predictions at the training batch size (padded batches), the accuracy
    by the reference's ``eval_data_types`` (its micro F1)."""
    model.eval()
    predictions, labels, logits = [], [], []
    for batch in loader:
        label, documents, sent_len = process.process_data(batch, types="dev")
        output, _, _ = model(documents, sent_len)
        if inputs is not None:
            inputs.append({"ids": documents.short(), "lengths": sent_len, "labels": label})
        logits.append(output.clone())
        predictions.extend(output.argmax(dim=1).tolist())
        labels.extend(label.tolist())
    with contextlib.redirect_stdout(io.StringIO()):
        accuracy = ref_utils.eval_data_types(labels, predictions, num_labels=2)[0]
    return {"dev_predictions": predictions, "dev_logits": logits, "dev_acc": float(accuracy)}


@torch.no_grad()
def evaluate_test(model: nn.Module, process: Any, loader: Any, inputs: list[dict[str, Any]] | None) -> dict[str, Any]:
    """train.py's test pass at batch size 1: a Gumbel-sampled rationale per example, and the
    summed counts of selected gold tokens (match), selected tokens and gold tokens."""
    model.eval()
    correct = totalp = totalr = 0.0
    predictions, labels, masks, logits = [], [], [], []
    for batch in loader:
        label, documents, sent_len, spans = process.process_data(batch, types="test")
        output, z, _ = model(documents, sent_len)
        z = z.squeeze(0).squeeze(-1)
        gold = torch.zeros(z.shape)
        for start, end in spans:
            gold[start:end] = 1  # a span past the truncated text is cut, as the slice does
        correct += float((gold * (gold == z)).sum())
        totalp += float(z.sum())
        totalr += float(gold.sum())
        if inputs is not None:
            inputs.append(
                {
                    "ids": documents[0].short(),
                    "length": int(sent_len[0]),
                    "label": int(label[0]),
                    "spans": spans,
                    "gold": gold,
                }
            )
        masks.append(z.clone())
        logits.append(output[0].clone())
        predictions.append(int(output.argmax(dim=1)[0]))
        labels.append(int(label[0]))
    accuracy = sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(labels)
    return {
        "test_predictions": predictions,
        "test_logits": logits,
        "test_masks": masks,
        "test_counts": {"match": correct, "selected": totalp, "gold": totalr},
        "test_precision": correct / (totalp + 1e-9),
        "test_recall": correct / (totalr + 1e-9),
        "test_acc": accuracy,
    }


def reference_commit(reference: Path) -> str:
    """The checkout's commit, or the documented one when ``--reference`` is not a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return DEFAULT_COMMIT
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else DEFAULT_COMMIT


def coverage(fixture: dict[str, Any]) -> dict[str, bool]:
    """Which of the cases the fixture must exercise it does."""
    found = {"truncated": False, "one_token_selected": False, "empty_row": False, "jump_into_padding": False}
    for batch, step in zip(fixture["train_batches"], fixture["steps"], strict=True):
        z, ids, lengths = step["z"], batch["ids"], batch["lengths"]
        width = ids.shape[1]
        n = (ids > 0).sum(1)
        found["truncated"] |= bool((lengths > width).any())
        found["empty_row"] |= bool((z.sum(1) == 0).any())
        for row in range(len(n)):
            last = int(n[row]) - 1
            if int(n[row]) < width and z[row, last] == 1:
                found["jump_into_padding"] = True
                found["one_token_selected"] |= int(lengths[row]) == 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, type=Path, help="checkout of yuelinan/Codes-of-Inter-RAT")
    parser.add_argument("--out", required=True, type=Path, help="folder of the fixture (inter_rat.pt)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the test runs (the same numbers with 2 threads here, torch 2.13 CPU)
    fixture = record(args.reference.resolve(), args.seed)
    found = coverage(fixture)
    if not all(found.values()):
        sys.exit(f"seed {args.seed} misses {[k for k, v in found.items() if not v]}; try another --seed")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "inter_rat.pt"
    torch.save(fixture, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB), coverage {found}")


if __name__ == "__main__":
    main()
