"""``ratbench table``: a row per method and variant (never a mix of configurations across
columns), labels in words, stale cells hidden, mean (std), [n=k] and N/A."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import fake_metrics

from ratbench.errors import RatbenchError
from ratbench.execution import store
from ratbench.execution.variants import make_variant, variant_key
from ratbench.registry import METHODS
from ratbench.reporting.results import load_results
from ratbench.reporting.tables import TableRequest, render
from ratbench.versions import EVAL_VERSION, PIPELINE_VERSION


def _variant(preset: str = "demo", **method: object) -> str:
    return variant_key(make_variant(preset, method, {}, None))


def _cell(
    method: str,
    subset: str,
    config_id: str,
    seed: int,
    f1: float,
    acc: float | None = 80.0,
    variant: str | None = None,
    finished_at: str = "2026-01-01T00:00:00+0000",
    **versions: str,
) -> dict:
    return {
        "method": method,
        "dataset": "synthetic",
        "subset": subset,
        "config_id": config_id,
        "seed": seed,
        "mode": "reference",
        "kind": "post_hoc" if acc is None else "select_predict",
        "S": 15.0,
        "Acc": acc,
        "P": f1,
        "R": f1,
        "F1": f1,
        "variant": _variant() if variant is None else variant,
        "method_version": versions.get("method_version", METHODS.get(method).version),
        "dataset_version": "1",
        "eval_version": versions.get("eval_version", EVAL_VERSION),
        "pipeline_version": PIPELINE_VERSION,
        "identity": json.dumps({"config": config_id}),
        "finished_at": finished_at,
    }


def _rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    unbold = lambda cell: cell.strip().removeprefix("**").removesuffix("**")  # noqa: E731
    return [[unbold(cell) for cell in line.strip("|").split("|")] for line in lines]


def test_configs_of_different_subsets_share_the_method_row() -> None:
    """Each subset has its own config id (the dataset is part of it); the method still has one row."""
    frame = pd.DataFrame(
        [_cell("rnp", subset, f"c-{subset}", seed, 40.0 + seed) for subset in ("aroma", "palate") for seed in (1, 2, 3)]
        + [_cell("lime", "aroma", "c-l", seed, 20.0, acc=None) for seed in (1, 2, 3)]
    )
    text = render(frame)
    rows = _rows(text)
    assert [row[0] for row in rows] == ["rnp", "lime"]
    assert rows[0][5] == "42.0 (1.0)" and rows[0][10] == "42.0 (1.0)"  # F1 of aroma and of palate
    assert rows[1][2] == "N/A" and rows[1][6:] == ["-"] * 5  # post-hoc Acc; no palate cells
    assert "Run with: rnp, lime: preset=demo." in " ".join(text.split())


def test_two_values_of_a_flag_are_two_rows_labelled_by_the_difference() -> None:
    frame = pd.DataFrame(
        [_cell("ver", "aroma", "c-p3", seed, 50.0, variant=_variant(perturb_rate=0.3)) for seed in (1, 2, 3)]
        + [_cell("ver", "aroma", "c-p5", seed, 60.0, variant=_variant(perturb_rate=0.5)) for seed in (1, 2)]
        + [_cell("rnp", "aroma", "c-r", seed, 40.0) for seed in (1, 2, 3)]
    )
    rows = _rows(render(frame))
    assert [row[0] for row in rows] == ["ver (perturb_rate=0.3)", "ver (perturb_rate=0.5)", "rnp"]
    assert rows[0][5] == "50.0 (0.0)" and rows[1][5] == "60.0 (0.0) [n=2]"


def _write_cell(
    root: Path,
    method: str,
    subset: str,
    config_id: str,
    seed: int,
    f1: float,
    variant: dict,
    pipeline: dict | None = None,
    finished_at: str = "2026-01-01T00:00:00+0000",
) -> None:
    cell_id = f"{method}/synthetic.{subset}/{config_id}/seed{seed}"
    folder = root / "runs" / cell_id
    ids = {"cell_id": cell_id, "config_id": config_id, "method": method, "dataset": "synthetic", "subset": subset}
    metrics = {**fake_metrics(f1=f1), **ids, "seed": seed, "finished_at": finished_at}
    store.atomic_write_json(folder / store.METRICS_FILE, metrics)
    spec = {
        "method": method,
        "method_version": METHODS.get(method).version,
        "method_config": {"perturb_rate": variant["method"].get("perturb_rate", 0.3), "subset": subset},
        "dataset": "synthetic",
        "dataset_version": "1",
        "subset": subset,
        "dataset_config": {},
        "dataset_fingerprint": {},
        "eval_version": EVAL_VERSION,
        "limit": None,
        "seed": seed,
        "pipeline": {"version": PIPELINE_VERSION, **(pipeline or {})},
        "variant": variant,
    }
    store.atomic_write_json(folder / store.SPEC_FILE, spec)


def test_regression_rows_never_mix_flag_values_across_subsets(tmp_path: Path) -> None:
    """The old table numbered a method's configs per column in hash order, so one row could hold
    p = 0.3 on aroma and p = 0.5 on palate. Config ids here sort the other way round on palate."""
    p3, p5 = make_variant("demo", {}, {}, None), make_variant("demo", {"perturb_rate": 0.5}, {}, None)
    ids = {("aroma", 0.3): "c-aaa", ("aroma", 0.5): "c-bbb", ("palate", 0.3): "c-zzz", ("palate", 0.5): "c-ccc"}
    for (subset, rate), config_id in ids.items():
        for seed in (1, 2):
            f1 = (30.0 if rate == 0.3 else 50.0) + (0 if subset == "aroma" else 1)
            _write_cell(tmp_path, "ver", subset, config_id, seed, f1, p3 if rate == 0.3 else p5)
    text = render(load_results(tmp_path))
    rows = {row[0]: row for row in _rows(text)}
    assert set(rows) == {"ver", "ver (perturb_rate=0.5)"}
    assert (rows["ver"][5], rows["ver"][10]) == ("30.0 (0.0)", "31.0 (0.0)")
    assert (rows["ver (perturb_rate=0.5)"][5], rows["ver (perturb_rate=0.5)"][10]) == ("50.0 (0.0)", "51.0 (0.0)")
    assert "ver: preset=demo; ver (perturb_rate=0.5): preset=demo, perturb_rate=0.5." in " ".join(text.split())


def test_stale_cells_are_hidden_with_a_note_and_shown_on_request() -> None:
    """Cells of an older method or evaluator version, or of a superseded configuration of the
    same variant, leave the row; --include-stale shows them as rows of their own."""
    frame = pd.DataFrame(
        [_cell("rnp", "aroma", "c-new", seed, 40.0, finished_at="2026-02-01T00:00:00+0000") for seed in (1, 2)]
        + [_cell("rnp", "aroma", "c-old", seed, 10.0) for seed in (1, 2)]  # same variant, earlier config
        + [_cell("rnp", "palate", "c-v0", 1, 5.0, method_version="0")]
        + [_cell("rnp", "palate", "c-e0", 1, 6.0, eval_version="0")]
    )
    text = render(frame)
    rows = _rows(text)
    assert [row[0] for row in rows] == ["rnp"] and rows[0][1:] == ["15.0 (0.0)", "80.0 (0.0)"] + ["40.0 (0.0)"] * 3
    assert "4 stale cell(s) hidden" in " ".join(text.split()) and "--include-stale" in text

    shown = {row[0]: row for row in _rows(render(frame, TableRequest(include_stale=True)))}
    assert shown["rnp"][5] == "40.0 (0.0)"
    superseded = next(label for label in shown if "superseded" in label)
    assert shown[superseded][5] == "10.0 (0.0)" and "config=c-old" in superseded
    assert shown["rnp [stale: rnp version 0 (now 1)]"][10] == "5.0 [n=1]"
    assert shown[f"rnp [stale: evaluator version 0 (now {EVAL_VERSION})]"][10] == "6.0 [n=1]"


def test_cells_without_a_variant_are_stale() -> None:
    frame = pd.DataFrame([_cell("rnp", "aroma", "c-x", 1, 40.0, variant=None) for _ in range(1)])
    frame["variant"] = None
    with pytest.raises(RatbenchError, match="all 1 finished cells are stale"):
        render(frame)
    assert "rnp [stale: no variant recorded]" in render(frame, TableRequest(include_stale=True))


def test_cpu_threads_cells_are_seeds_of_one_row_and_bf16_cells_a_row_of_their_own(tmp_path: Path) -> None:
    """D5: cells that differ only in --cpu-threads (float rounding) are seeds of one row, never
    "superseded"; a seed run with both keeps its newest run. --precision bf16 is another
    computation: a row of its own, labelled ``precision=bf16``."""
    plain = make_variant("demo", {}, {}, None)
    one, two, bf16 = {"cpu_threads": 1}, {"cpu_threads": 2}, {"precision": "bf16"}
    for seed in (1, 2):
        _write_cell(tmp_path, "rnp", "aroma", "c-one", seed, 40.0 + seed, plain, one)
    _write_cell(tmp_path, "rnp", "aroma", "c-two", 2, 52.0, plain, two, "2026-02-01T00:00:00+0000")  # seed 2 again
    _write_cell(tmp_path, "rnp", "aroma", "c-two", 3, 43.0, plain, two, "2026-02-01T00:00:00+0000")
    _write_cell(tmp_path, "rnp", "aroma", "c-bf16", 1, 60.0, plain, bf16, "2026-03-01T00:00:00+0000")
    text = render(load_results(tmp_path))
    rows = {row[0]: row for row in _rows(text)}
    assert set(rows) == {"rnp", "rnp (precision=bf16)"}
    assert rows["rnp"][5] == "45.3 (5.9)"  # seeds 1 (one thread), 2 and 3 (two threads): 41, 52, 43
    assert rows["rnp (precision=bf16)"][5] == "60.0 [n=1]"
    words = " ".join(text.split())
    assert "1 stale cell(s) hidden" in words and "rnp (1 and 2 threads)" in words
    stale = {row[0] for row in _rows(render(load_results(tmp_path), TableRequest(include_stale=True)))}
    assert "rnp [stale: superseded by a newer run of seed 2 with cpu_threads=2]" in stale


def test_seeds_are_a_list_that_picks_cells_and_sets_the_expected_count() -> None:
    """D24: table --seeds means what it means in run, show and report: these seeds."""
    frame = pd.DataFrame(
        [_cell("rnp", "aroma", "c-r", seed, 40.0 + seed) for seed in (1, 2, 3)]
        + [_cell("ver", "aroma", "c-v", 1, 50.0)]
    )
    rows = {row[0]: row for row in _rows(render(frame, TableRequest(seeds=[1, 2])))}
    assert rows["rnp"][5] == "41.5 (0.7)" and rows["ver"][5] == "50.0 [n=1]"
    with pytest.raises(
        RatbenchError, match=r"--seeds 7-9: no finished cell has these seeds \(the cells have seeds 1-3\)"
    ):
        render(frame, TableRequest(seeds=[7, 8, 9]))


def test_footnotes_say_what_the_shown_rows_count() -> None:
    """D31, D32: word pieces of the word encoder are its words; ``word_rule=first`` rows select
    a word by its first piece."""
    word = pd.DataFrame([_cell("rnp", "aroma", "c-w", 1, 40.0)])
    assert "whose pieces are its words" in " ".join(render(word, TableRequest(level="piece")).split())
    assert "as CR and NIR do" not in render(word, TableRequest(level="piece"))
    hf = {"data.encoder": "hf:minilm"}
    first = variant_key(make_variant("demo", {}, {**hf, "data.word_rule": "first"}, None))
    anyway = variant_key(make_variant("demo", {}, hf, None))
    only_first = " ".join(render(pd.DataFrame([_cell("rnp", "aroma", "c-f", 1, 40.0, variant=first)])).split())
    assert "selected when its first piece is" in only_first and "when a piece of it is" not in only_first
    both = pd.DataFrame(
        [_cell("rnp", "aroma", "c-f", 1, 40.0, variant=first), _cell("rnp", "aroma", "c-a", 1, 4.0, variant=anyway)]
    )
    assert "any of its pieces is; in the rows with data.word_rule=first, when its first piece is" in " ".join(
        render(both).split()
    )


def test_a_request_does_not_change_when_its_lists_do() -> None:
    """A request holds copies of the lists it was given: the table it asks for stays the same."""
    frame = pd.DataFrame([_cell("rnp", "aroma", "c-r", seed, 40.0 + seed) for seed in (1, 2, 3)])
    seeds = [1, 2]
    request = TableRequest(seeds=seeds, metrics=["S", "F1"], fmt="latex")
    before = render(frame, request)
    seeds.append(3)
    assert request.seeds == (1, 2) and request.metrics == ("S", "F1")
    assert render(frame, request) == before
