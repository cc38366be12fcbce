"""Config validation: every shipped config passes; bad keys give a message naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from pdeldm.config import DEFAULT_CONFIG, deep_update, load_config, months_in_period, validate_config
from pdeldm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _default() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


@pytest.mark.parametrize("overlay", [None, "config/ci.yaml", "config/paper.yaml"])
def test_shipped_configs_validate(overlay):
    config = load_config(*([ROOT / overlay] if overlay else []))
    assert config["data"]["factor"] == 8
    assert config["data"]["region"] in config["data"]["regions"]


def test_defaults_are_filled_in():
    config = _default()
    config["paths"].pop("logs")
    validate_config(config)
    assert config["paths"]["logs"] == "logs"


def test_mistyped_key_is_named_with_a_suggestion():
    config = _default()
    config["data"]["predictor"] = ["t2m"]
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.predictor' \(did you mean 'predictors'\?\)"):
        validate_config(config)


def test_unknown_top_level_key_is_named():
    config = _default()
    config["sede"] = 1
    with pytest.raises(ConfigError, match=r"unknown config key 'sede' \(did you mean 'seed'\?\)"):
        validate_config(config)


def test_wrong_type_names_the_key():
    config = _default()
    config["data"]["factor"] = "eight"
    with pytest.raises(ConfigError, match=r"config key 'data\.factor': 'eight' is not of type 'integer'"):
        validate_config(config)


def test_region_not_aligned_with_factor():
    config = _default()
    config["data"]["regions"]["italy"]["ny"] = 100
    with pytest.raises(ConfigError, match=r"data\.regions\.italy\.ny' = 100 is not a multiple of data\.factor = 8"):
        validate_config(config)


def test_overlapping_split_blocks_are_rejected():
    config = _default()
    config["data"]["split"]["val"] = ["2002-06-01", "2003-01-31"]
    with pytest.raises(ConfigError, match=r"data\.split\.val.*before the previous block ends"):
        validate_config(config)


def test_undefined_region_is_rejected():
    config = _default()
    config["data"]["region"] = "atlantis"
    with pytest.raises(ConfigError, match=r"region 'atlantis' is not defined"):
        validate_config(config)


def test_deep_update_merges_like_snakemake():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    deep_update(base, {"a": {"b": 5}})
    assert base == {"a": {"b": 5, "c": 2}, "d": 3}


def test_months_in_period():
    assert months_in_period("2001-11-15", "2002-02-01") == [(2001, 11), (2001, 12), (2002, 1), (2002, 2)]


def test_twin_parameter_defaults_mirror_the_module():
    from pdeldm.config import load_schema
    from pdeldm.data.twin import DEFAULT_PARAMS

    properties = load_schema()["properties"]["twin"]["properties"]["params"]["properties"]
    assert {k: v["default"] for k, v in properties.items()} == DEFAULT_PARAMS


def test_static_vars_must_exist_in_the_static_file():
    paper = load_config(ROOT / "config/paper.yaml")
    assert paper["data"]["static_vars"][:3] == ["HSURF", "FR_LAND", "lat"] and len(paper["data"]["static_vars"]) == 19
    config = _default()
    config["data"]["static_vars"] = ["HSURF", "LC_01"]  # the twin's static file has no land cover
    with pytest.raises(ConfigError, match=r"'data\.static_vars': \['LC_01'\] not in the static file"):
        validate_config(config)


def test_transfer_region_must_be_defined():
    config = _default()
    config["experiments"]["transfer"]["regions"] = ["italy", "atlantis"]
    with pytest.raises(ConfigError, match=r"'experiments\.transfer\.regions': \['atlantis'\] not defined in 'data\.regions'"):
        validate_config(config)


def test_transfer_to_other_regions_needs_the_twin():
    config = load_config(ROOT / "config" / "paper.yaml")
    config["experiments"]["transfer"]["regions"] = ["italy", "alps"]
    with pytest.raises(ConfigError, match=r"needs a twin: with data\.source 'era5' only the COSMO-CLM files' region "
                                          r"exists; set it to \['italy'\]"):
        validate_config(config)


def test_transferred_seeds_must_be_trained():
    config = _default()
    config["experiments"]["transfer"]["seeds"] = [7]
    with pytest.raises(ConfigError, match=r"'experiments\.transfer\.seeds': \[7\] not in finetune\.seeds"):
        validate_config(config)
