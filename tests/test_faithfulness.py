"""What ratbench says about its own faithfulness is true and the same everywhere: every built-in
method records its reference, the tests that prove it exist, `ratbench info` prints it, and the
README's faithfulness table names the same reference and tests."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratbench.cli import main
from ratbench.data.adapter import DataConfig
from ratbench.registry import METHODS

REPO = Path(__file__).resolve().parents[1]
BUILT_IN = sorted(name for name, info in METHODS.infos().items() if info.origin.startswith("builtin:"))


def _readme_rows() -> dict[str, str]:
    section = REPO.joinpath("README.md").read_text(encoding="utf-8").split("## How faithful is each method")[1]
    section = section.split("\n## ")[0]
    return {match[0]: match[1] for match in re.findall(r"^\| `(\w+)` \|(.*)$", section, flags=re.MULTILINE)}


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_method_records_its_provenance(name: str) -> None:
    provenance = METHODS.get(name).provenance
    assert provenance is not None, f"{name} has no provenance"
    assert provenance.proven_by and provenance.layout
    for test_file in re.findall(r"tests/test_\w+\.py", provenance.proven_by):
        assert (REPO / test_file).is_file(), f"{name}: {test_file} does not exist"
    for deviation in provenance.deviations:
        flag = re.fullmatch(r"([\w.]+) \((.+?)\)", deviation.split(":")[0])
        if flag is None or flag.group(2) == "no flag":  # a note on something that is not a setting
            continue
        key = flag.group(1)
        fields = DataConfig.field_types() if key.startswith("data.") else METHODS.get(name).Config.field_types()
        assert key.removeprefix("data.") in fields, f"{name}: deviation flag {key} is no config key"


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_readme_table_names_the_same_reference_and_tests(name: str) -> None:
    rows = _readme_rows()
    assert name in rows, f"README's faithfulness table has no row for {name}"
    provenance = METHODS.get(name).provenance
    if not provenance.reference or provenance.reference.startswith("none"):
        assert "none" in rows[name].lower()
    else:
        assert provenance.reference.split(" (")[0] in rows[name]  # repository @ commit
    for test_file in re.findall(r"tests/test_\w+\.py", provenance.proven_by):
        assert test_file in rows[name], (name, test_file)


def test_ratbench_info_prints_reference_proof_and_flags() -> None:
    result = CliRunner().invoke(main, ["info", "ver"])
    assert result.exit_code == 0, result.output
    assert "jugechengzi/Rationalization-VER @ bc1c435" in result.output
    assert "tests/test_parity_jugechengzi.py" in result.output
    assert "short_rows (reference)" in result.output
    assert "padded to data.max_len" in result.output
    unknown = CliRunner().invoke(main, ["info", "vre"])
    assert unknown.exit_code == 2 and "ver" in unknown.output


def test_ratbench_info_prints_every_setting_with_its_default_range_meaning_and_presets() -> None:
    """Each `--set` key of VER under `settings`: default, type, range and the docstring under
    its declaration (VER's own for `perturb_rate`, the piece's for `tau`); then the presets."""
    result = CliRunner().invoke(main, ["info", "ver"])
    assert result.exit_code == 0, result.output
    settings = result.output.split("  settings (--set ver.KEY=VALUE)")[1].split("  presets")[0]
    assert "    perturb_rate = 0.3  (float, in [0, 1])\n        p: probability of flipping" in settings
    assert "    tau = 1.0  (float, > 0)\n        Gumbel-softmax temperature.\n" in settings
    assert "    short_rows = 'reference'  (one of 'reference', 'clamp')\n" in settings
    assert "    test_batch_size = None  (int or None, >= 1)\n" in settings
    entries = re.findall(r"^    (\w+) = ", settings, flags=re.MULTILINE)
    assert entries == [field.name for field in dataclasses.fields(METHODS.get("ver").Config)]
    assert "    demo   *: epochs=10, batch_size=32, hidden_dim=64, lr=0.003" in result.output  # aligned under paper
    assert "    demo   *: data.padding='bucket'\n" in result.output  # the data config of its cells


def test_ratbench_info_describes_a_dataset_and_names_both_kinds_when_unknown() -> None:
    result = CliRunner().invoke(main, ["info", "synthetic"])
    assert result.exit_code == 0, result.output
    assert "  subsets: appearance, aroma, palate" in result.output
    assert "    correlation = 0.6  (float, in [0, 1])\n        Loading rho" in result.output
    assert "    demo  *: n_train=2000, n_dev=500, n_test=500" in result.output
    shared = CliRunner().invoke(main, ["info", "data"])  # the --set scope of every dataset
    assert shared.exit_code == 0 and "    max_len = 256  (int, >= 1)\n" in shared.output
    unknown = CliRunner().invoke(main, ["info", "synthtic"])
    assert unknown.exit_code == 2
    assert (
        unknown.output
        == "error: unknown method or dataset 'synthtic' (did you mean 'synthetic'?); `ratbench ls` lists them\n"
    )
