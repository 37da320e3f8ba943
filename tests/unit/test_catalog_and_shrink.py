from pathlib import Path

import pytest

from agents.catalog import CatalogError, ShrinkRules, load_catalog
from agents.shrink import shrink


def test_default_catalog_has_the_reference_scenarios() -> None:
    catalog = load_catalog()
    assert catalog.names() == ["lm", "recsys", "vision"]
    assert catalog.get("recsys").entry == "trainlab.recsys.train:main"  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "expect"), [
    ('[[scenario]]\nname = "a"\nrepo = "r"\nentry = "m:f"\ntimeout_s = -1\n',
     "scenario 'a': field 'timeout_s'"),
    ('[[scenario]]\nname = "b"\nrepo = "r"\nentry = "nocolon"\n', "scenario 'b': field 'entry'"),
    ('[[scenario]]\nname = "c"\nrepo = "r"\nentry = "m:f"\ndevice = "tpu"\n',
     "scenario 'c': field 'device'"),
    ('[[scenario]]\nname = "d"\nrepo = "r"\nentry = "m:f"\nbogus = 1\n',
     "scenario 'd': field 'bogus'"),
    ('[[scenario]]\nname = "e"\nrepo = "r"\n', "scenario 'e'"),
    ("not toml [", "cannot read catalog"),
    ('[[scenario]]\nname = "f"\nrepo = "r"\nentry = "m:f"\nenv = { "A-B" = "1" }\n',
     "scenario 'f': field 'env'"),
    ('[[scenario]]\nname = "g"\nrepo = "r"\nentry = "m:f"\nenv = { TTFB_SDK_FD = "1" }\n',
     "TTFB_ variables are the lab's own"),
])
def test_bad_catalog_names_file_scenario_and_field(tmp_path: Path, body: str,
                                                    expect: str) -> None:
    path = tmp_path / "cat.toml"
    path.write_text(body)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(path) in str(info.value) and expect in str(info.value)


def test_shrink_rules() -> None:
    rules = ShrinkRules(set={"batches": 1}, cap={"*_rows": 100, "widths": 8},
                        scale={"samples": 0.01})
    out = shrink({"batches": 50, "table_rows": 10_000, "widths": [64, 4], "samples": 5000,
                  "flag": True, "name": "x"}, rules)
    assert out == {"batches": 1, "table_rows": 100, "widths": [8, 4], "samples": 50,
                   "flag": True, "name": "x"}


def test_every_reference_scenario_shrinks_to_one_batch() -> None:
    for scenario in load_catalog().scenarios.values():
        small = shrink(scenario.config, scenario.shrink)
        assert small["batches"] == 1 and small["seed"] == 0
        assert set(small) >= set(scenario.config)


def test_a_scripts_arguments_shrink_by_flag() -> None:
    from agents.catalog import ShrinkRules
    from agents.shrink import shrink_args

    rules = ShrinkRules(set={"--epochs": 1, "--workers": 0}, cap={"--batch*": 16},
                        scale={"--lr": 0.5})
    args = ["data/", "--epochs", "90", "--batch-size=256", "--lr", "-0.1", "--amp",
            "--dim", "512"]
    assert shrink_args(args, rules) == ["data/", "--epochs", "1", "--batch-size=16", "--lr",
                                        "-0.05", "--amp", "--dim", "512", "--workers", "0"]
    assert shrink_args(["--batch-size", "8"], rules) == ["--batch-size", "8",
                                                          "--epochs", "1", "--workers", "0"]
