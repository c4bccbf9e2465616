"""``ratbench table``: one row per method across datasets, extra rows only for several configs
of one method in the same column, mean (std), [n=k] and N/A."""

from __future__ import annotations

import pandas as pd

from ratbench.tables import render


def _cell(method: str, subset: str, config_id: str, seed: int, f1: float, acc: float | None = 80.0) -> dict:
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
    }


def _rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_configs_of_different_subsets_share_the_method_row() -> None:
    """Each subset has its own config id (the dataset is part of it); the method still has one row."""
    frame = pd.DataFrame(
        [_cell("rnp", subset, f"c-{subset}", seed, 40.0 + seed) for subset in ("aroma", "palate") for seed in (1, 2, 3)]
        + [_cell("lime", "aroma", "c-l", seed, 20.0, acc=None) for seed in (1, 2, 3)]
    )
    rows = _rows(render(frame))
    assert [row[0] for row in rows] == ["rnp", "lime"]
    assert rows[0][5] == "42.0 (1.0)" and rows[0][10] == "42.0 (1.0)"  # F1 of aroma and of palate
    assert rows[1][2] == "N/A" and rows[1][6:] == [""] * 5  # post-hoc Acc; no palate cells


def test_several_configs_in_one_column_get_rows_labelled_by_config() -> None:
    frame = pd.DataFrame(
        [_cell("ver", "aroma", "c-p3", seed, 50.0) for seed in (1, 2, 3)]
        + [_cell("ver", "aroma", "c-p5", seed, 60.0) for seed in (1, 2)]
    )
    rows = _rows(render(frame))
    assert [row[0] for row in rows] == ["ver [c-p3]", "ver [c-p5]"]
    assert rows[0][5] == "50.0 (0.0)" and rows[1][5] == "60.0 (0.0) [n=2]"
