"""`ratbench run --sweep KEY=V1,V2,...`: every value is a variant of its own (a table row)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench import grid
from ratbench.cli import main
from ratbench.errors import RatbenchError
from ratbench.variants import row_labels


def test_sweeps_are_a_product_in_the_order_given() -> None:
    points = grid.parse_sweeps(["ver.perturb_rate=0,0.5", "data.max_len=64,128,64"])
    assert points == [
        ["ver.perturb_rate=0", "data.max_len=64"],
        ["ver.perturb_rate=0", "data.max_len=128"],
        ["ver.perturb_rate=0.5", "data.max_len=64"],
        ["ver.perturb_rate=0.5", "data.max_len=128"],
    ]
    assert grid.parse_sweeps([]) == [[]]


@pytest.mark.parametrize(
    ("sweeps", "sets", "message"),
    [
        (["ver.perturb_rate"], [], "malformed --sweep 'ver.perturb_rate'"),
        (["ver.perturb_rate=0,,1"], [], "malformed --sweep"),
        (["ver.lr=1e-3,1e-4", "ver.lr=1e-2"], [], "--sweep ver.lr: the key is swept twice"),
        (["ver.lr=1e-3,1e-4"], ["ver.lr=1e-2"], "also given with --set"),
    ],
)
def test_bad_sweeps(sweeps: list[str], sets: list[str], message: str) -> None:
    with pytest.raises(RatbenchError, match=message):
        grid.parse_sweeps(sweeps, sets)


def test_each_swept_value_is_a_variant_and_other_methods_run_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["run", "--methods", "ver,rnp", "--datasets", "synthetic.appearance", "--seeds", "1-2", "--preset", "demo",
         "--sweep", "ver.perturb_rate=0,0.3,0.5", "--dry-run", "--results-dir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("8 todo")  # 3 ver configurations + 1 rnp, 2 seeds each
    variants = {}
    for point in grid.parse_sweeps(["ver.perturb_rate=0,0.3,0.5"]):
        [spec] = grid.expand(["ver"], ["synthetic.appearance"], [1], "demo", grid.parse_sets(point))
        variants[point[0]] = spec.variant["method"]
    # 0.3 is the preset's value: no difference, the plain `ver` row
    assert variants == {
        "ver.perturb_rate=0": {"perturb_rate": 0.0},
        "ver.perturb_rate=0.3": {},
        "ver.perturb_rate=0.5": {"perturb_rate": 0.5},
    }
    labels = row_labels("ver", [{"preset": "demo", "method": m, "data": {}, "limit": None} for m in variants.values()])
    assert labels == ["ver (perturb_rate=0.0)", "ver", "ver (perturb_rate=0.5)"]
