"""The store's config: which keys a caller gives, their defaults and their checks.

The workflow's ``store`` stage passes ``data.factor``, ``data.predictors``, ``data.static_vars``,
``data.regrid_method`` and ``data.split`` of the validated config, so the schema
(workflow/schemas/config.schema.yaml) has already filled and type-checked them there. The checks
here are for direct callers (tests, notebooks), as are the two defaults, which equal the schema's.
Everything else the build needs is fixed (:mod:`.layout`), not configurable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pdeldm.data.store.layout import STATIC_VARS
from pdeldm.errors import InputError

REQUIRED_KEYS: tuple[str, ...] = ("factor", "predictors", "split")
#: The schema's defaults, for callers that leave these keys out.
DEFAULTS: dict[str, Any] = {"regrid_method": "conservative", "static_vars": list(STATIC_VARS)}
REGRID_METHODS: tuple[str, ...] = ("conservative", "bilinear")


@dataclass(frozen=True)
class StoreConfig:
    """A checked store config (interfaces §3)."""

    factor: int
    predictors: list[str]
    regrid_method: str
    split: Mapping[str, Any]
    static_vars: list[str]


def store_config(cfg: Mapping[str, Any]) -> StoreConfig:
    """Check ``cfg`` and fill the defaults.

    Raises:
        InputError: a missing or unknown key, or a value of the wrong kind.
    """
    for key in REQUIRED_KEYS:
        if key not in cfg:
            raise InputError(f"store config: missing key '{key}' (have {sorted(cfg)})")
    # A key the build does not read would be silently ignored (e.g. the former `wind_frame`).
    unknown = sorted(set(cfg) - set(REQUIRED_KEYS) - set(DEFAULTS))
    if unknown:
        raise InputError(f"store config: unknown key(s) {unknown}; expected {[*REQUIRED_KEYS, *DEFAULTS]}")
    out = {**DEFAULTS, **cfg}
    factor = out["factor"]
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise InputError(f"store config: 'factor' must be a positive integer, got {factor!r}")
    preds = out["predictors"]
    if not isinstance(preds, (list, tuple)) or not preds or len(set(preds)) != len(preds):
        raise InputError(f"store config: 'predictors' must be a non-empty list of distinct ERA5 variables, got {preds!r}")
    method = out["regrid_method"]
    if method not in REGRID_METHODS:
        raise InputError(f"store config: 'regrid_method' must be 'conservative' or 'bilinear', got {method!r}")
    split = out["split"]
    if not isinstance(split, Mapping) or "train" not in split:
        raise InputError(f"store config: 'split' must map block names (train, val, test) to [start, end]; got {split!r}")
    return StoreConfig(factor=factor, predictors=[str(p) for p in preds], regrid_method=method, split=split,
                       static_vars=list(out["static_vars"]))
