"""Config resolution, type checking, and the stability of cell ids."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from ratbench.config import Config, canonical_json, stable_hash
from ratbench.errors import RatbenchError
from ratbench.execution.cells import CellSpec


@dataclasses.dataclass(frozen=True)
class Demo(Config):
    lr: float = 1e-4
    epochs: int = 3
    flag: bool = False
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    cap: int | None = None


def test_layers_apply_in_order_and_parse_strings() -> None:
    """Later layers win, and string values (from --set) are parsed to the field types."""
    cfg = Demo.resolve({"lr": 0.5, "epochs": 7}, {"lr": "1e-3", "flag": "true", "mode": "b", "cap": "4"})
    assert cfg == Demo(lr=1e-3, epochs=7, flag=True, mode="b", cap=4)
    assert Demo.resolve({"cap": "none"}).cap is None


def test_unknown_key_names_the_owner_and_suggests() -> None:
    """A typo is an error with a suggestion and the list of keys, never silently ignored."""
    with pytest.raises(RatbenchError, match=r"unknown config key rnp\.lrr \(did you mean 'lr'\?\); known keys"):
        Demo.resolve({"lrr": 1}, owner="rnp")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", "three", "rnp.epochs expects an integer"),
        ("epochs", 2.5, "rnp.epochs expects an integer"),
        ("lr", "fast", "rnp.lr expects a number"),
        ("flag", "maybe", "rnp.flag expects true or false"),
        ("mode", "c", "rnp.mode must be one of 'a', 'b'"),
        ("name", 3, "rnp.name expects a string"),
    ],
)
def test_wrong_types_are_rejected(key: str, value: object, message: str) -> None:
    """Each field type rejects values of another type with a message naming the field."""
    with pytest.raises(RatbenchError, match=message):
        Demo.resolve({key: value}, owner="rnp")


def test_int_is_accepted_for_float_and_bool_is_not_an_int() -> None:
    """An int is a valid float; a bool is not a valid int."""
    assert Demo.resolve({"lr": 1}).lr == 1.0
    with pytest.raises(RatbenchError):
        Demo.resolve({"epochs": True})


def test_canonical_json_is_order_independent() -> None:
    """Key order does not change the canonical form or the hash."""
    assert canonical_json({"b": 1, "a": [1, 2.5]}) == '{"a":[1,2.5],"b":1}'
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


def _spec(**changes: object) -> CellSpec:
    base = {
        "method": "rnp",
        "method_version": "1",
        "method_config": {"lr": 0.0001, "epochs": 300, "batch_size": 128},
        "dataset": "synthetic",
        "dataset_version": "1",
        "subset": "appearance",
        "dataset_config": {"max_len": 256},
        "dataset_fingerprint": {"name": "synthetic", "version": "1", "subset": "appearance"},
        "eval_version": "1",
        "limit": None,
        "seed": 1,
        "pipeline": {"version": "2", "limit_shuffle_seed": 0, "precision": "fp32"},
    }
    base.update(changes)
    return CellSpec(**base)  # type: ignore[arg-type]


def test_config_id_is_pinned() -> None:
    """Golden id: an accidental change to hashing or to the spec layout fails loudly."""
    spec = _spec()
    assert spec.config_id == "c-" + stable_hash(spec.identity())
    assert spec.config_id == "c-c4482aa107"
    assert spec.cell_id == "rnp/synthetic.appearance/c-c4482aa107/seed1"


def test_seed_shares_config_id_but_config_and_versions_do_not() -> None:
    """Seeds of one config share the config id; any config or version change gives a new one."""
    spec = _spec()
    assert _spec(seed=2).config_id == spec.config_id
    assert _spec(seed=2).cell_id != spec.cell_id
    for change in (
        {"method_config": {"lr": 0.001, "epochs": 300, "batch_size": 128}},
        {"method_version": "2"},
        {"dataset_version": "2"},
        {"eval_version": "2"},
        {"dataset_config": {"max_len": 128}},
        {"limit": 10},
        {"pipeline": {"version": "3", "limit_shuffle_seed": 0, "precision": "fp32"}},
        {"pipeline": {"version": "2", "limit_shuffle_seed": 0, "precision": "bf16"}},
        {"pipeline": {"version": "2", "limit_shuffle_seed": 1}},
    ):
        assert _spec(**change).config_id != spec.config_id, change


def test_spec_json_round_trip() -> None:
    """spec.json content rebuilds the same spec (ids are recomputed, not trusted)."""
    spec = _spec()
    data = spec.to_json()
    assert data["config_id"] == spec.config_id
    assert CellSpec.from_json(data) == spec


def test_the_variant_is_stored_but_is_not_part_of_the_identity() -> None:
    """Two requests that resolve to the same configuration are the same cell."""
    spec = _spec(variant={"preset": "demo", "method": {}, "data": {}, "limit": None})
    assert spec.config_id == _spec().config_id
    assert CellSpec.from_json(spec.to_json()).variant == spec.variant


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lr", "0", "rnp.lr must be > 0, got 0.0"),
        ("lr", "-1e-3", "rnp.lr must be > 0, got -0.001"),
        ("lr", "nan", "rnp.lr expects a finite number, got 'nan'"),
        ("lr", "inf", "rnp.lr expects a finite number, got 'inf'"),
        ("sparsity", "0", "rnp.sparsity must be in (0, 1), got 0.0"),
        ("sparsity", "1.5", "rnp.sparsity must be in (0, 1), got 1.5"),
        ("dropout", "1", "rnp.dropout must be in [0, 1), got 1.0"),
        ("sparsity_lambda", "-1", "rnp.sparsity_lambda must be >= 0, got -1.0"),
        ("hidden_dim", "0", "rnp.hidden_dim must be >= 1, got 0"),
    ],
)
def test_impossible_method_values_are_config_errors(key: str, value: str, message: str) -> None:
    """Values that cannot train (or train on NaN) fail at config time, naming owner and key."""
    from ratbench.registry import METHODS

    with pytest.raises(RatbenchError) as info:
        METHODS.get("rnp").Config.resolve({key: value}, owner="rnp")
    assert str(info.value) == message


def test_max_len_below_one_is_a_config_error_for_every_dataset() -> None:
    """The shared DataConfig bound applies to every adapter's config, subclasses included."""
    from ratbench.registry import DATASETS

    for name in ("synthetic", "beer", "hotel", "eraser"):
        with pytest.raises(RatbenchError, match=rf"^{name}.max_len must be >= 1, got 0$"):
            DATASETS.get(name).Config.resolve({"max_len": "0"}, owner=name)


def test_a_non_finite_float_is_refused_even_without_bounds() -> None:
    with pytest.raises(RatbenchError, match=r"^lr must be a finite number, got nan$"):
        Demo(lr=float("nan"))  # direct construction, not through resolve


# The fields every method config may share by name (``MethodConfig.bounds``): the evaluator's
# ``sparsity`` and the ``*_lambda`` loss weights. Every other bound sits on the class declaring its field.
SHARED_BOUNDS = {"sparsity", "*_lambda"}


def test_each_bound_is_declared_by_the_class_that_declares_its_field() -> None:
    """No config class bounds a field it does not declare itself (``MethodConfig`` does not know
    ``perturb_rate`` or ``temperature``: ``PerturbOptions`` and DMR do)."""
    from ratbench.method import MethodConfig
    from ratbench.registry import DATASETS, METHODS

    configs = [METHODS.get(name).Config for name in METHODS.names()]
    configs += [DATASETS.get(name).Config for name in DATASETS.names()]
    for config in configs:
        for klass in config.__mro__:
            own = set(vars(klass).get("__annotations__", {}))
            for key in vars(klass).get("bounds", {}):
                shared = klass is MethodConfig and key in SHARED_BOUNDS
                assert key in own or shared, f"{klass.__qualname__}.bounds names {key!r}, a field it does not declare"


@pytest.mark.parametrize(
    ("method", "key", "value", "message"),
    [
        ("ver", "perturb_rate", "1.5", "ver.perturb_rate must be in [0, 1], got 1.5"),
        ("nir", "noise_p", "-0.1", "nir.noise_p must be in [0, 1], got -0.1"),
        ("nir_rnp", "noise_p", "2", "nir_rnp.noise_p must be in [0, 1], got 2.0"),
        ("dmr", "temperature", "0", "dmr.temperature must be > 0, got 0.0"),
        ("dmr_ref", "temperature", "0", "dmr_ref.temperature must be > 0, got 0.0"),
        ("inter_rat", "lr_decay", "1.5", "inter_rat.lr_decay must be in (0, 1], got 1.5"),
        ("inter_rat", "min_lr", "-1", "inter_rat.min_lr must be >= 0, got -1.0"),
        ("lime", "eval_batch_size", "0", "lime.eval_batch_size must be >= 1, got 0"),
        ("a2i", "adv_lr_rate", "0", "a2i.adv_lr_rate must be > 0, got 0.0"),
        ("mrd", "pred_lr_rate", "0", "mrd.pred_lr_rate must be > 0, got 0.0"),
        ("rnp", "tau", "0", "rnp.tau must be > 0, got 0.0"),
        ("attention", "lr", "0", "attention.lr must be > 0, got 0.0"),
        ("dmr_ref", "om_lambda", "-1", "dmr_ref.om_lambda must be >= 0, got -1.0"),
    ],
)
def test_the_bounds_of_one_method_still_apply_to_it(method: str, key: str, value: str, message: str) -> None:
    from ratbench.registry import METHODS

    with pytest.raises(RatbenchError) as info:
        METHODS.get(method).Config.resolve({key: value}, owner=method)
    assert str(info.value) == message


def test_key_settings_merge_over_the_bases_and_keep_only_fields() -> None:
    """``key_fields``: the bases' ``key_settings`` first, then the class's own, each once, and only
    names that are fields (``MethodConfig`` names ``sparsity``, which a config may not have)."""

    class Piece:
        key_settings = ("width", "epochs")

    @dataclasses.dataclass(frozen=True)
    class Base(Config):
        key_settings = ("epochs", "sparsity")
        epochs: int = 1

    @dataclasses.dataclass(frozen=True)
    class Mine(Base, Piece):
        key_settings = ("depth",)
        width: int = 2
        depth: int = 3

    assert Mine.key_fields() == ["width", "epochs", "depth"]
    assert Base.key_fields() == ["epochs"]


def test_every_method_shows_its_training_settings_and_its_own_knob() -> None:
    """``--dry-run`` prints ``key_fields``: every method's epochs and batch size, VER's perturbation
    rate, NIR's noise proportion; every dataset's encoder and max_len."""
    from ratbench.registry import DATASETS, METHODS

    for name in METHODS.names():
        assert {"epochs", "batch_size"} <= set(METHODS.get(name).Config.key_fields()), name
    assert "perturb_rate" in METHODS.get("ver").Config.key_fields()
    assert "noise_p" in METHODS.get("nir").Config.key_fields()
    assert "noise_p" in METHODS.get("nir_rnp").Config.key_fields()
    for name in DATASETS.names():
        assert {"encoder", "max_len"} <= set(DATASETS.get(name).Config.key_fields()), name


@pytest.mark.parametrize(
    ("dataset", "key", "value", "message"),
    [
        ("synthetic", "n_train", "-1", "synthetic.n_train must be >= 0, got -1"),
        ("synthetic", "correlation", "1.5", "synthetic.correlation must be in [0, 1], got 1.5"),
        ("synthetic", "min_review_len", "59", "synthetic.min_review_len must be >= 60, got 59"),
        ("synthetic", "max_review_len", "90", "synthetic.max_review_len must be >= min_review_len + 20 = 100, got 90"),
        (
            "synthetic",
            "mean_review_len",
            "80",
            "synthetic.mean_review_len must lie strictly between min_review_len (80) and max_review_len (250), got 80",
        ),
        ("beer", "neg_threshold", "-0.1", "beer.neg_threshold must be in [0, 1], got -0.1"),
        ("beer", "pos_threshold", "0.3", "beer.pos_threshold must be above neg_threshold (0.4), got 0.3"),
        ("hotel", "annotation_file", "{x}.tsv", "hotel.annotation_file may only contain the placeholder {Aspect}"),
    ],
)
def test_dataset_configs_name_the_setting_that_is_wrong(dataset: str, key: str, value: str, message: str) -> None:
    """Dataset configs bound their fields like method configs; a rule between two fields names
    the one to change (one problem per message, with the dataset as owner)."""
    from ratbench.registry import DATASETS

    with pytest.raises(RatbenchError) as info:
        DATASETS.get(dataset).Config.resolve({key: value}, owner=dataset)
    assert str(info.value).startswith(message)


def test_every_setting_of_every_plugin_has_a_docstring() -> None:
    """`ratbench info NAME` explains each `--set` key from the docstring under its declaration:
    every field of every registered method and dataset config has one."""
    from ratbench.registry import DATASETS, METHODS

    configs = {name: METHODS.get(name).Config for name in METHODS.names()}
    configs |= {name: DATASETS.get(name).Config for name in DATASETS.names()}
    undocumented = [
        f"{owner}.{field.name}"
        for owner, config in configs.items()
        for field in dataclasses.fields(config)
        if not config.field_docs().get(field.name)
    ]
    assert undocumented == []


def test_field_docs_come_from_the_nearest_class_that_documents_the_field() -> None:
    @dataclasses.dataclass(frozen=True)
    class Base(Config):
        width: int = 1
        """How wide."""
        depth: int = 2
        """How deep."""

    @dataclasses.dataclass(frozen=True)
    class Mine(Base):
        width: int = 3  # a new default only: the base's docstring stays
        depth: int = 4
        """Deeper."""

    assert Mine.field_docs() == {"width": "How wide.", "depth": "Deeper."}
