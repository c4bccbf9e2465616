"""`ratbench run --sweep KEY=V1,V2,...`: every value is a variant of its own (a table row)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench.cli import main
from ratbench.errors import RatbenchError
from ratbench.execution import grid
from ratbench.execution.variants import row_labels


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


def test_sweep_points_count_towards_max_cells_before_the_product_is_built() -> None:
    """Methods x dataset subsets x seeds x sweep points, a method's own sweep not multiplying the
    grid's other methods; three 200-value sweeps are refused at once, not after minutes (D10)."""
    axes = grid.parse_sweep_axes(["ver.perturb_rate=0,0.3,0.5"])
    request = [(["ver", "rnp"], ["synthetic.appearance"])]
    assert grid.grid_size(request, 2, axes) == 8  # 3 ver configurations + 1 rnp, 2 seeds each
    grid.check_grid_size(request, 2, axes, max_cells=8)
    with pytest.raises(RatbenchError, match=r"the grid has 8 cells .* more than the limit of 7"):
        grid.check_grid_size(request, 2, axes, max_cells=7)
    values = ",".join(str(i) for i in range(1, 201))
    huge = grid.parse_sweep_axes([f"rnp.lr={values}", f"rnp.sparsity={values}", f"rnp.batch_size={values}"])
    with pytest.raises(RatbenchError, match="the grid has 8,000,000 cells"):
        grid.check_grid_size([(["rnp"], ["synthetic.appearance"])], 1, huge)


@pytest.mark.parametrize(
    ("sweep", "sets", "epochs", "message"),
    [
        ("rnp.epochs=1,2", [], 3, "--sweep rnp.epochs is overridden by --epochs 3"),
        ("data.max_len=40,80", ["synthetic.max_len=60"], None, "overridden by --set synthetic.max_len=60"),
    ],
)
def test_a_sweep_that_a_more_specific_setting_would_collapse_is_refused(
    sweep: str, sets: list[str], epochs: int | None, message: str
) -> None:
    """``--epochs`` and ``--set <dataset>.key`` win over the swept key: one point, not a sweep (D6)."""
    axes = grid.parse_sweep_axes([sweep], sets)
    with pytest.raises(RatbenchError, match=message):
        grid.check_sweep_overrides(axes, sets, ["rnp"], ["synthetic.appearance"], epochs, sets)
    # the other way round the sweep is the more specific one, and wins
    grid.check_sweep_overrides(grid.parse_sweep_axes(["synthetic.max_len=40,80"]), ["data.max_len=60"], ["rnp"],
                               ["synthetic.appearance"], None)  # fmt: skip
    grid.check_sweep_overrides(grid.parse_sweep_axes(["rnp.epochs=1,2"]), [], ["rnp"], ["synthetic"], None)


def test_a_transformer_only_key_swept_on_the_word_encoder_is_refused() -> None:
    """``rnp.pooling`` is read by the transformer predictor only: on the word encoder every point
    would train the same model (D21)."""
    assert grid.transformer_only_fields("rnp") == {"mask_mode", "pooling", "freeze_embeddings", "encoder_lr"}
    axes = grid.parse_sweep_axes(["rnp.pooling=max,cls"])
    specs = [
        spec
        for point in grid.sweep_points(axes)
        for spec in grid.expand(["rnp"], ["synthetic.appearance"], [1], "demo", grid.parse_sets(point))
    ]
    with pytest.raises(RatbenchError, match=r"--sweep rnp\.pooling: pooling is a transformer setting"):
        grid.check_sweep_encoders(axes, specs)
    grid.check_sweep_encoders(grid.parse_sweep_axes(["rnp.sparsity=0.1,0.2"]), specs)


def test_cpu_threads_above_the_cores_are_refused_unless_forced(tmp_path: Path) -> None:
    """1,000 threads on 2 cores never finish an epoch; --force-threads allows it (D11)."""
    from ratbench.execution.launch import available_cpus, check_cpu_threads

    cores = available_cpus()
    check_cpu_threads(cores, False, "local", None)
    with pytest.raises(RatbenchError, match=f"--cpu-threads {cores + 1} is more than the {cores} CPU cores"):
        check_cpu_threads(cores + 1, False, "local", None)
    check_cpu_threads(1000, True, "local", None)
    check_cpu_threads(1000, False, "ray", "ray://cluster:10001")  # the cells run on the cluster's nodes
    args = ["run", "--methods", "rnp", "--datasets", "synthetic.appearance", "--preset", "demo", "--dry-run",
            "--results-dir", str(tmp_path), "--cpu-threads", "1000"]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 2
    forced = CliRunner().invoke(main, [*args, "--force-threads"])
    assert forced.exit_code == 0 and forced.stdout.startswith("1 todo"), forced.output
