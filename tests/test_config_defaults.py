"""One place for defaults: the schema (workflow/schemas/config.schema.yaml).

The example configs, the schema and the code must agree: every key of a config is a key of the
schema, every value config/config.yaml restates is the schema's default unless it is one of the
deliberate overrides listed here (each with its reason), and the few default tables left in code
equal the schema's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pdeldm.config import fill_defaults, load_config, load_schema, require_section, schema_defaults, section_schema
from pdeldm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["config.yaml", "ci.yaml", "paper.yaml"]

#: Values config/config.yaml sets on purpose to something other than the schema's default. The
#: schema's default is the study's (or a neutral) value; config.yaml is the CPU-sized twin run.
DELIBERATE_OVERRIDES: dict[str, str] = {
    "data.regions": "the region boxes are data of the configuration; the schema has none",
    "models.pde_ldm.trainable_parts": "the twin fine-tunes the denoiser only; the schema's default "
                                      "(and paper.yaml) also trains the decoder, as the study did",
    "models.pde_ldm.training": "4 fine-tuning epochs on the twin (schema: 10)",
    "evaluation.time_stride": "every 73rd test hour (coprime with 24) keeps the CPU run short",
    "evaluation.members": "4 members keep the CPU run short (schema: 8)",
    "experiments.lambdas": "the ablation's curve starts at lambda 0 (the control run), which the "
                           "schema's default leaves out",
    "experiments.transfer.evaluate": "the GAN is left out of the transfer matrix to keep the default "
                                     "run within its time budget (UNet and LDM represent the families)",
}


def _read(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / name).read_text()) or {}


def _child(schema: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    """The subschema of ``key`` under ``schema``; None where the schema does not know it."""
    if path.startswith("models.") and path.endswith(".training"):
        return None  # handled by the caller: a model's `training` takes the keys of `training`
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    return None


def _unknown_keys(value: Any, schema: dict[str, Any], path: str, top: dict[str, Any]) -> list[str]:
    if not isinstance(value, dict):
        return []
    unknown = []
    for key, sub in value.items():
        where = f"{path}.{key}" if path else key
        if where.startswith("models.") and where.count(".") == 2 and key == "training":
            child: dict[str, Any] | None = top["properties"]["training"]
        else:
            child = _child(schema, key, where)
        if child is None:
            unknown.append(where)
            continue
        options = child.get("oneOf")
        if options:  # e.g. an era5 request group: a list or an object
            child = next((o for o in options if o.get("type") == "object"), child) if isinstance(sub, dict) else child
        unknown += _unknown_keys(sub, child, where, top)
    return unknown


@pytest.mark.parametrize("name", CONFIGS)
def test_every_key_of_the_example_configs_is_in_the_schema(name):
    schema = load_schema()
    assert _unknown_keys(_read(name), schema, "", schema) == []


def _restated_differences(value: Any, schema: dict[str, Any], path: str) -> dict[str, tuple[Any, Any]]:
    """Keys of ``value`` whose value differs from the schema's default (leaves of nested blocks)."""
    out: dict[str, tuple[Any, Any]] = {}
    for key, sub in value.items():
        where = f"{path}.{key}" if path else key
        child = (schema.get("properties") or {}).get(key)
        if child is None:
            continue  # maps (regions, runs) have no per-key defaults; unknown keys fail the test above
        if isinstance(sub, dict) and child.get("properties"):
            out.update(_restated_differences(sub, child, where))
        elif "default" in child and sub != child["default"]:
            out[where] = (sub, child["default"])
    return out


def test_what_the_default_config_restates_is_the_schema_default_or_a_listed_override():
    schema = load_schema()
    differ = _restated_differences(_read("config.yaml"), schema, "")
    unlisted = {k: v for k, v in differ.items() if k not in DELIBERATE_OVERRIDES}
    assert unlisted == {}, "config/config.yaml (value, schema default): make them agree or list the override"
    stale = sorted(set(DELIBERATE_OVERRIDES) - set(differ))
    assert stale == [], "listed as overrides but equal to the schema's default: remove them from the list"
    assert all(reason.strip() for reason in DELIBERATE_OVERRIDES.values())


def test_every_schema_description_is_a_whole_sentence_or_label():
    """No description is cut off mid-sentence: each ends with punctuation or a closing bracket."""
    cut = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            text = node.get("description")
            if isinstance(text, str) and not text.rstrip().endswith((".", ")", "]", "}", "?", "!", "`", '"', "'")):
                cut.append(f"{path}: {text!r}")
            for key, sub in node.items():
                walk(sub, f"{path}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}[{i}]")

    walk(load_schema(), "")
    assert cut == []


def test_every_key_has_a_default_unless_documented_optional():
    """Each key of the config has a default, except the few the schema documents as optional
    (``leave out``/``unset``) and the fields of list items and map entries."""
    missing = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, sub in (node.get("properties") or {}).items():
            where = f"{path}.{key}" if path else key
            optional = any(word in sub.get("description", "") for word in ("leave out", "unset", "null = none"))
            required = key in node.get("required", ())  # required when its block is given
            if "default" not in sub and not optional and not required and where not in ("seed", "paths", "data"):
                missing.append(where)
                continue  # the fields of a block without a default are required when it is given
            walk(sub, where)

    walk(load_schema(), "")
    # static_inputs' files are the paper's inputs (no default path); models.pde_ldm.sampler's keys
    # are overrides of the LDM's sampler: absent = the LDM's value
    assert sorted(missing) == ["models.pde_ldm.sampler.eta", "models.pde_ldm.sampler.solver",
                               "models.pde_ldm.sampler.spacing", "models.pde_ldm.sampler.steps",
                               "static_inputs.land_fraction", "static_inputs.orography"]


def test_schema_defaults_are_what_validation_fills_in():
    empty = load_config()
    for section in ("training", "evaluation", "physics", "ensembles", "extremes", "sampler_study",
                    "job_resources", "twin.params", "models.ldm", "models.autoencoder"):
        defaults = schema_defaults(section)
        node: Any = empty
        for key in section.split("."):
            node = node[key]
        assert set(defaults) <= set(node), section
    assert schema_defaults("models.ldm")["sampler"] == {"solver": "dpmpp_2m", "steps": 10, "eta": 0.0,
                                                         "spacing": "logsnr"}
    # fill_defaults keeps given values and run-time keys, fills nested blocks
    filled = fill_defaults("models.pde_ldm", {"pde": {"lambda": 0.0, "coefficients": {"kappa": 1.0}}})
    assert filled["pde"]["lambda"] == 0.0 and filled["pde"]["coefficients"] == {"kappa": 1.0}
    assert filled["pde"]["form"] == "flux_ratio" and filled["optimizer"]["lr"] == 1.0e-4


def test_unknown_sections_and_missing_sections_are_clear_errors():
    with pytest.raises(ConfigError, match=r"'models\.nope' is not in the schema.*known: .*unet"):
        section_schema("models.nope")
    with pytest.raises(ConfigError, match=r"predict ldm: the config has no section 'evaluation'.*load_config"):
        require_section({"seed": 1}, "evaluation", "predict ldm")


def test_training_options_are_the_schema_defaults_under_the_config():
    """Replaces the old check of a code-side training table: with an empty `training` block the
    options are exactly the schema's defaults, which are exactly what the shipped config trains with
    (no exception left: `crop` and `robust_input` now come from the schema too); a config without a
    `training` section is an error, not a silent fallback."""
    from pdeldm.train import training_options

    defaults = schema_defaults("training")
    assert training_options({"training": {}, "models": {}}, "unet") == defaults
    assert load_config(ROOT / "config" / "config.yaml")["training"] == defaults
    assert training_options({"training": {"crop": None}, "models": {"unet": {"training": {"max_epochs": 1}}}},
                            "unet") == {**defaults, "crop": None, "max_epochs": 1}
    with pytest.raises(ConfigError, match=r"no section 'training'"):
        training_options({"models": {}}, "unet")


def test_code_side_default_tables_equal_the_schema():
    """The default tables code keeps (modules that run on their own, outside the workflow) are the
    schema's defaults."""
    from pdeldm.data.cds.cli import CLIENT_DEFAULTS
    from pdeldm.data.static_inputs import DEFAULTS as STATIC_INPUT_DEFAULTS
    from pdeldm.data.twin import DEFAULT_PARAMS

    assert DEFAULT_PARAMS == schema_defaults("twin.params")
    era5 = schema_defaults("era5")
    assert CLIENT_DEFAULTS == {key: era5[key] for key in CLIENT_DEFAULTS}
    static_inputs = schema_defaults("static_inputs")
    assert STATIC_INPUT_DEFAULTS == {key: static_inputs[key] for key in STATIC_INPUT_DEFAULTS}
