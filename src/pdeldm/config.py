"""Load and validate the workflow configuration against ``workflow/schemas/config.schema.yaml``.

The schema is the single source of truth for every key: its ``description`` documents the key
and its ``default`` fills it in. Unknown keys are errors (``additionalProperties: false``), and
the error message names the key path and, for a likely typo, the key that was meant.
Checks that JSON Schema cannot express (time-blocked split order, 8:1 alignment of the region)
follow in :func:`check_consistency`.
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml

from pdeldm.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO_ROOT / "config" / "config.yaml"


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Read the JSON Schema (YAML syntax)."""
    return yaml.safe_load(Path(path).read_text())


@functools.lru_cache(maxsize=1)
def _shipped_schema() -> dict[str, Any]:
    return load_schema()


def section_schema(section: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The subschema of a dotted config section (``"training"``, ``"models.ldm.sampler"``).

    Raises:
        ConfigError: if the schema has no such section.
    """
    node: Mapping[str, Any] = _shipped_schema() if schema is None else schema
    for i, key in enumerate(section.split(".")):
        properties = node.get("properties") or {}
        if key not in properties:
            where = ".".join(section.split(".")[:i]) or "the top level"
            raise ConfigError(f"config section '{section}' is not in the schema ({SCHEMA_PATH.name}): no key "
                              f"'{key}' under {where} (known: {', '.join(sorted(properties))})")
        node = properties[key]
    return dict(node)


def _fill_defaults(schema: Mapping[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    out = dict(block)
    for name, sub in (schema.get("properties") or {}).items():
        if name not in out and "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        if isinstance(out.get(name), dict):
            out[name] = _fill_defaults(sub, out[name])
    return out


def fill_defaults(section: str, block: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``block`` (a part of the config at ``section``) with the schema's defaults for
    every key it lacks, nested blocks included: what :func:`validate_config` fills in, for code
    that receives one section on its own (a model's hyper-parameters, a checkpoint's config).

    Values present in ``block`` are kept as they are (no validation: run-time keys such as
    ``models.pde_ldm.pde.coefficients`` pass through).
    """
    return _fill_defaults(section_schema(section), copy.deepcopy(dict(block or {})))


def schema_defaults(section: str) -> dict[str, Any]:
    """The defaults of a dotted config section, from the schema (the only place defaults live)."""
    return fill_defaults(section, {})


def require_section(config: Mapping[str, Any], section: str, caller: str) -> Any:
    """``config``'s dotted ``section``; a missing one is a :class:`ConfigError` saying what to do.

    Code that reads the configuration expects it validated (:func:`load_config` or
    :func:`validate_config`, which fill every default): a missing section means a caller built
    the dict by hand, and silently falling back to other values would hide that.
    """
    node: Any = config
    for i, key in enumerate(section.split(".")):
        if not isinstance(node, Mapping) or key not in node:
            missing = ".".join(section.split(".")[: i + 1])
            raise ConfigError(
                f"{caller}: the config has no section '{missing}' (needed: '{section}'). Pass a config "
                "loaded by pdeldm.config.load_config or checked by validate_config, which fill every "
                f"default, or add the section (defaults: pdeldm.config.schema_defaults('{missing}'))"
            )
        node = node[key]
    return node


def deep_update(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into ``base`` (in place), as Snakemake merges config files."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Load the default config, overlay ``paths`` in order, then validate and fill defaults."""
    config: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}
    for path in paths:
        overlay = yaml.safe_load(Path(path).read_text()) or {}
        deep_update(config, overlay)
    return validate_config(config)


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that ``default`` values are filled into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def _allowed_keys(error: jsonschema.ValidationError) -> list[str]:
    return sorted(error.schema.get("properties", {}).keys()) if isinstance(error.schema, dict) else []


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = _allowed_keys(error)
        unknown = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in unknown:
            full = f"{where}.{key}" if where != "<top level>" else key
            guess = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            parts.append(f"unknown config key '{full}'{hint}")
        return "; ".join(parts) + f". Allowed keys here: {', '.join(allowed)}"
    return f"config key '{where}': {error.message}"


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``config`` in place against the schema, fill defaults, run consistency checks.

    Raises:
        ConfigError: naming every offending key (unknown keys, wrong types, bad values).
    """
    schema = load_schema() if schema is None else schema
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("Invalid configuration: " + " | ".join(_describe(e) for e in errors))
    check_consistency(config)
    return config


def _parse_date(value: str, key: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config key '{key}': '{value}' is not a date (use YYYY-MM-DD)") from exc


def check_consistency(config: dict[str, Any]) -> None:
    """Cross-key checks: split blocks ordered, inside the period; region sizes divisible by factor."""
    data = config["data"]
    factor = data["factor"]
    region_name = data["region"]
    if region_name not in data["regions"]:
        raise ConfigError(
            f"config key 'data.region': region '{region_name}' is not defined in 'data.regions' "
            f"(defined: {', '.join(sorted(data['regions']))})"
        )
    for name, region in data["regions"].items():
        for dim in ("ny", "nx"):
            if region[dim] % factor:
                raise ConfigError(
                    f"config key 'data.regions.{name}.{dim}' = {region[dim]} is not a multiple of "
                    f"data.factor = {factor}: fine and coarse grids would not be {factor}:1 aligned"
                )
    unknown_regions = [name for name in config["twin"]["realism"]["regions"] if name not in data["regions"]]
    if unknown_regions:
        raise ConfigError(f"config key 'twin.realism.regions': {unknown_regions} not defined in 'data.regions' "
                          f"(defined: {', '.join(sorted(data['regions']))})")
    _check_transfer(config)
    period_start = _parse_date(data["period"]["start"], "data.period.start")
    period_end = _parse_date(data["period"]["end"], "data.period.end")
    if period_end < period_start:
        raise ConfigError("config key 'data.period': end is before start")
    previous_end = None
    for block in ("train", "val", "test"):
        start, end = (_parse_date(v, f"data.split.{block}") for v in data["split"][block])
        if end < start:
            raise ConfigError(f"config key 'data.split.{block}': end {end.date()} is before start {start.date()}")
        if start < period_start or end > period_end + pd.Timedelta(hours=23):
            raise ConfigError(
                f"config key 'data.split.{block}': {start.date()}..{end.date()} lies outside "
                f"data.period {period_start.date()}..{period_end.date()}"
            )
        if previous_end is not None and start <= previous_end:
            raise ConfigError(
                f"config key 'data.split.{block}': starts {start.date()}, before the previous block ends "
                f"({previous_end.date()}); blocks must be contiguous periods in the order train, val, test"
            )
        previous_end = end
    _check_static_vars(config)
    finetune = config["finetune"]
    if finetune["control"] not in finetune["runs"]:
        raise ConfigError(f"config key 'finetune.control': run '{finetune['control']}' is not in finetune.runs "
                          f"(runs: {', '.join(finetune['runs'])})")
    clashes = sorted(set(finetune["runs"]) & {"interpolation", "unet", "gan", "autoencoder", "ldm", "pde_ldm", "truth"})
    if clashes:
        raise ConfigError(f"config key 'finetune.runs': {clashes} would clash with a base model's name; rename the run")


def _check_transfer(config: dict[str, Any]) -> None:
    """The transfer experiment's regions exist (and, on real data, are the one region there is)."""
    data, transfer = config["data"], config["experiments"]["transfer"]
    unknown = [name for name in transfer["regions"] if name not in data["regions"]]
    if unknown:
        raise ConfigError(f"config key 'experiments.transfer.regions': {unknown} not defined in 'data.regions' "
                          f"(defined: {', '.join(sorted(data['regions']))})")
    if data["source"] != "twin" and transfer["regions"] != [data["region"]]:
        raise ConfigError(f"config key 'experiments.transfer.regions': {transfer['regions']} needs a twin: with "
                          f"data.source '{data['source']}' only the COSMO-CLM files' region exists; set it to "
                          f"['{data['region']}']")
    unknown_seeds = sorted(set(transfer["seeds"]) - set(config["finetune"]["seeds"]))
    if unknown_seeds:
        raise ConfigError(f"config key 'experiments.transfer.seeds': {unknown_seeds} not in finetune.seeds "
                          f"{config['finetune']['seeds']}: only trained seeds can be transferred")


#: Fields every region static file has (twin subset and static_inputs output alike).
_BASE_STATIC_VARS = ("HSURF", "FR_LAND", "lat", "lon")


def _check_static_vars(config: dict[str, Any]) -> None:
    """``data.static_vars`` must name fields the static file will have."""
    available = list(_BASE_STATIC_VARS)
    land_cover = (config.get("static_inputs") or {}).get("land_cover")
    if config["data"].get("source") == "era5" and land_cover:
        from pdeldm.data.static_inputs import land_cover_names

        classes = land_cover["classes"]
        available += land_cover_names(classes if isinstance(classes, int) else len(classes))
    unknown = [v for v in config["data"]["static_vars"] if v not in available]
    if unknown:
        raise ConfigError(f"config key 'data.static_vars': {unknown} not in the static file of this configuration "
                          f"(available: {', '.join(available)})")


def months_in_period(start: str, end: str) -> list[tuple[int, int]]:
    """All (year, month) pairs touched by the inclusive period ``start``..``end``."""
    months = pd.period_range(pd.Timestamp(start).to_period("M"), pd.Timestamp(end).to_period("M"), freq="M")
    return [(p.year, p.month) for p in months]
