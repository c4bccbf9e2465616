"""Grid expansion: seeds, dataset names, presets and override precedence."""

from __future__ import annotations

import pytest

from ratbench.errors import RatbenchError
from ratbench.execution import grid
from ratbench.registry import METHODS
from ratbench.types import Example


def test_parse_seeds_accepts_ranges_and_lists() -> None:
    """`1-3,7` and `3,1,3` give sorted distinct seeds."""
    assert grid.parse_seeds("1-3,7") == [1, 2, 3, 7]
    assert grid.parse_seeds("3, 1,3") == [1, 3]
    with pytest.raises(RatbenchError):
        grid.parse_seeds("")


def test_bare_dataset_name_means_all_subsets() -> None:
    """`synthetic` expands to its three subsets; `synthetic.aroma` to one."""
    assert grid.dataset_targets(["synthetic"]) == [
        ("synthetic", "appearance"),
        ("synthetic", "aroma"),
        ("synthetic", "palate"),
    ]
    assert grid.dataset_targets(["synthetic.aroma", "synthetic"])[0] == ("synthetic", "aroma")


def test_paper_preset_has_the_papers_batch_sizes_per_benchmark() -> None:
    """RNP/VER paper preset: lr 1e-4, alpha 0.125, lambdas 11/12, batch 128 beer, 256 hotel."""
    ver = METHODS.get("ver")
    for dataset, batch in (("beer", 128), ("hotel", 256), ("synthetic", 128)):
        layers = grid.preset_layers(ver.presets, "paper", ("*", dataset, f"{dataset}.x"), "method ver")
        cfg = ver.Config.resolve(*layers)
        assert (cfg.batch_size, cfg.lr, cfg.sparsity, cfg.sparsity_lambda, cfg.continuity_lambda) == (
            batch,
            1e-4,
            0.125,
            11.0,
            12.0,
        )
        assert (cfg.perturb_rate, cfg.hidden_dim, cfg.dropout, cfg.tau, cfg.cls_lambda) == (0.3, 200, 0.2, 1.0, 0.9)


def test_override_precedence() -> None:
    """defaults < preset < --set < --epochs; dataset presets and data.* overrides apply too."""
    [spec] = grid.expand(
        ["ver"],
        ["synthetic.aroma"],
        [4],
        preset="demo",
        sets={"ver": {"lr": "0.5", "epochs": "9"}, "data": {"max_len": "64"}, "synthetic": {"n_dev": "7"}},
        epochs=2,
    )
    assert spec.method_config["lr"] == 0.5  # --set beats the demo preset
    assert spec.method_config["hidden_dim"] == 64  # from the demo preset
    assert spec.method_config["epochs"] == 2  # --epochs beats --set
    assert spec.dataset_config["n_train"] == 2000  # synthetic's demo preset
    assert spec.dataset_config["n_dev"] == 7 and spec.dataset_config["max_len"] == 64
    assert spec.seed == 4 and spec.subset == "aroma"


def test_example_rejects_a_rationale_of_the_wrong_length() -> None:
    """An Example's rationale must have one value per token."""
    with pytest.raises(ValueError, match="rationale has 2 values but there are 3 tokens"):
        Example("x", ("a", "b", "c"), 0, (0, 1))


def test_the_variant_is_what_the_user_asked_for_and_the_same_on_every_dataset() -> None:
    """Preset plus the values that differ from it; per-dataset preset values are no difference."""
    specs = grid.expand(
        ["ver"],
        ["synthetic"],
        [1],
        preset="demo",
        sets={"ver": {"perturb_rate": "0.5", "lr": "3e-3"}, "data": {"max_len": "128"}, "synthetic": {"n_test": "50"}},
        epochs=2,
        limit=300,
    )
    assert len(specs) == 3
    expected = {
        "preset": "demo",
        "method": {"epochs": 2, "perturb_rate": 0.5},  # lr 3e-3 is the demo preset's own value
        "data": {"data.max_len": 128, "synthetic.n_test": 50},
        "limit": 300,
    }
    assert all(spec.variant == expected for spec in specs)
    paper = grid.expand(["rnp"], ["synthetic.aroma"], [1])
    assert paper[0].variant == {"preset": "paper", "method": {}, "data": {}, "limit": None}


def test_a_post_hoc_method_without_a_sparsity_field_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluator keeps the top-k of a post-hoc method's scores at its sparsity; no hidden default."""
    import dataclasses

    from ratbench.method import MethodConfig
    from ratbench.registry import METHODS

    lime = METHODS.get("lime")

    @dataclasses.dataclass(frozen=True)
    class NoSparsity(MethodConfig):
        pass

    monkeypatch.setattr(lime, "Config", NoSparsity)
    monkeypatch.setattr(lime, "presets", {})
    with pytest.raises(RatbenchError, match="method lime is post-hoc but its config has no `sparsity` field"):
        grid.expand(["lime"], ["synthetic.aroma"], [1])


@pytest.mark.parametrize(
    ("text", "message"),
    [("0-4294967296", "a seed must be between 0 and 4294967295"), ("1-20001", "gives 20,001 seeds, more than")],
)
def test_seeds_out_of_range_or_too_many_are_refused_before_any_list_is_built(text: str, message: str) -> None:
    with pytest.raises(RatbenchError, match=message):
        grid.parse_seeds(text, max_count=20_000)
    assert grid.parse_seeds("3-5,1,4", max_count=4) == [1, 3, 4, 5]  # overlaps count once


def test_a_grid_request_expands_like_the_keyword_form() -> None:
    """``expand_request(GridRequest(...))`` gives the cells ``expand(...)`` gives for the same
    arguments, in method, dataset, subset, seed order; methods with the same data share one
    fingerprint."""
    request = grid.GridRequest(
        methods=("ver", "rnp"),
        datasets=("synthetic",),
        seeds=(2, 1),
        preset="demo",
        sets={"ver": {"perturb_rate": "0.5"}},
        epochs=2,
        limit=100,
        cpu_threads=2,
    )
    specs = grid.expand_request(request)
    keyword = grid.expand(
        ["ver", "rnp"], ["synthetic"], [2, 1], "demo", {"ver": {"perturb_rate": "0.5"}}, 2, 100, cpu_threads=2
    )
    assert [spec.to_json() for spec in specs] == [spec.to_json() for spec in keyword]
    order = [(spec.method, spec.subset, spec.seed) for spec in specs]
    assert order[:3] == [("ver", "appearance", 2), ("ver", "appearance", 1), ("ver", "aroma", 2)]
    assert len(specs) == 2 * 3 * 2 and all(spec.pipeline["cpu_threads"] == 2 for spec in specs)
    by_subset = {(spec.method, spec.subset): spec.dataset_fingerprint for spec in specs}
    assert by_subset["ver", "aroma"] == by_subset["rnp", "aroma"]
