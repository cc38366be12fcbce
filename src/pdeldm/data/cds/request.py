"""What is asked of the CDS: one month of ERA5 for one variable group, in today's request style.

* :func:`build_request` writes the request (every day of the month, the hours, the area),
  failing early on a typo instead of after a queue wait; :func:`grid_step` is the lattice the
  answer must lie on;
* :func:`group_spec` reads one variable group of the ``era5`` config block;
* :class:`FetchTarget` names what one fetch is about (dataset, group, month, target file), so
  that every message about it says so.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pdeldm.errors import InputError

ALL_HOURS: tuple[str, ...] = tuple(f"{hour:02d}:00" for hour in range(24))

#: CDS request name -> short name of the variable in the netCDF the new CDS writes.
SHORT_NAMES: dict[str, str] = {
    "2m_temperature": "t2m",
    "2m_dewpoint_temperature": "d2m",
    "mean_sea_level_pressure": "msl",
    "surface_pressure": "sp",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "sea_surface_temperature": "sst",
    "skin_temperature": "skt",
    "snow_depth": "sd",
    "total_precipitation": "tp",
    "surface_solar_radiation_downwards": "ssrd",
    "surface_thermal_radiation_downwards": "strd",
    "total_cloud_cover": "tcc",
    "land_sea_mask": "lsm",
    "geopotential": "z",
    "specific_humidity": "q",
    "relative_humidity": "r",
    "temperature": "t",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
    "vertical_velocity": "w",
}

#: Lattice spacing (degrees) of the datasets' native grids; ERA5 is on a global 0.25-degree
#: lattice (points at whole multiples of 0.25), ERA5-Land on a 0.1-degree one.
NATIVE_GRID_STEP: dict[str, float] = {"reanalysis-era5-land": 0.1}
DEFAULT_GRID_STEP = 0.25


def short_name(variable: str) -> str:
    """Short netCDF name of a CDS variable name (``2m_temperature`` -> ``t2m``)."""
    try:
        return SHORT_NAMES[variable]
    except KeyError:
        raise InputError(
            f"unknown ERA5 variable {variable!r}: pdeldm.data.cds knows {sorted(SHORT_NAMES)}"
        ) from None


def output_names(variables: Sequence[str], pressure_levels: Sequence[str] | None = None) -> list[str]:
    """Variable names in the normalised monthly file.

    Single-level variables keep their short name (``t2m``); pressure-level ones get the level
    appended (``t`` at 850 hPa -> ``t850``) so that one flat file holds every predictor.
    """
    if not pressure_levels:
        return [short_name(v) for v in variables]
    return [f"{short_name(v)}{int(float(p))}" for v in variables for p in pressure_levels]


def _check_area(area: Sequence[float]) -> list[float]:
    if len(area) != 4:
        raise InputError(f"era5 area must be [N, W, S, E], got {list(area)!r}")
    north, west, south, east = (float(a) for a in area)
    if not (-90.0 <= south < north <= 90.0):
        raise InputError(f"era5 area [N, W, S, E] = {list(area)!r}: need -90 <= S < N <= 90")
    if not (-180.0 <= west < east <= 360.0):
        raise InputError(f"era5 area [N, W, S, E] = {list(area)!r}: need W < E (degrees east)")
    return [north, west, south, east]


def build_request(
    variables: Sequence[str],
    year: int,
    month: int,
    area: Sequence[float],
    product_type: str = "reanalysis",
    times: Sequence[str] | None = None,
    pressure_levels: Sequence[str | int] | None = None,
) -> dict[str, Any]:
    """Request for one month of ERA5 in today's CDS style.

    ``area`` is ``[N, W, S, E]`` in degrees; ``times`` defaults to all 24 hours; ``day`` lists
    exactly the days of that month (the CDS rejects or silently drops impossible dates).
    ``pressure_levels`` (hPa) is only for ``reanalysis-era5-pressure-levels``. No ``grid`` is
    asked for: the file comes on the dataset's native lattice (:func:`grid_step`).
    """
    if not variables:
        raise InputError("era5 request: no variables given")
    for variable in variables:
        short_name(variable)  # fail early on a typo, not after a queue wait
    year, month = int(year), int(month)
    if not 1 <= month <= 12:
        raise InputError(f"era5 request: month must be 1..12, got {month}")
    if not 1940 <= year <= 2100:
        raise InputError(f"era5 request: year {year} is outside ERA5 (1940 onwards)")
    hours = list(ALL_HOURS if times is None else times)
    for hour in hours:
        if not re.fullmatch(r"([01]\d|2[0-3]):00", str(hour)):
            raise InputError(f"era5 request: time {hour!r} is not 'HH:00'")
    n_days = calendar.monthrange(year, month)[1]
    request: dict[str, Any] = {
        "product_type": [product_type],
        "variable": list(variables),
        "year": [f"{year:04d}"],
        "month": [f"{month:02d}"],
        "day": [f"{day:02d}" for day in range(1, n_days + 1)],
        "time": [str(h) for h in hours],
        "area": _check_area(area),
        "data_format": "netcdf",
        "download_format": "unarchived",
    }
    if pressure_levels:
        request["pressure_level"] = [str(int(float(p))) for p in pressure_levels]
    return request


def request_times(request: Mapping[str, Any]) -> pd.DatetimeIndex:
    """All valid times a request asks for (days that do not exist in the month are dropped)."""
    stamps = []
    for year in request["year"]:
        for month in request["month"]:
            n_days = calendar.monthrange(int(year), int(month))[1]
            for day in request["day"]:
                if int(day) > n_days:
                    continue
                for hour in request["time"]:
                    stamps.append(f"{int(year):04d}-{int(month):02d}-{int(day):02d}T{hour}")
    return pd.DatetimeIndex(sorted(stamps))

def grid_step(dataset: str, request: Mapping[str, Any]) -> tuple[float, float]:
    """``(dlat, dlon)`` of the lattice the CDS file must lie on: a ``grid`` in the request, else native."""
    if request.get("grid"):
        dlat, dlon = (float(g) for g in request["grid"])
        return dlat, dlon
    step = NATIVE_GRID_STEP.get(dataset, DEFAULT_GRID_STEP)
    return step, step


def group_spec(era5_cfg: Mapping[str, Any], group: str) -> dict[str, Any]:
    """Dataset, variables and pressure levels of one group of the ``era5`` config block.

    A group is either a list of CDS variable names (fetched from ``era5.dataset``) or a mapping
    ``{dataset, variables, pressure_level}``.
    """
    groups = era5_cfg.get("groups") or {}
    if group not in groups:
        raise InputError(f"era5.groups has no group {group!r} (have {sorted(groups)})")
    spec = groups[group]
    if isinstance(spec, Mapping):
        variables = spec.get("variables")
        dataset = spec.get("dataset", era5_cfg.get("dataset"))
        levels = spec.get("pressure_level")
    else:
        variables, dataset, levels = spec, era5_cfg.get("dataset"), None
    if not variables:
        raise InputError(f"era5.groups.{group}: no variables")
    if not dataset:
        raise InputError(f"era5.groups.{group}: no dataset (set era5.dataset or the group's 'dataset')")
    if "pressure-levels" in dataset and not levels:
        raise InputError(f"era5.groups.{group}: {dataset} needs 'pressure_level' (e.g. ['850'])")
    return {
        "dataset": dataset,
        "variables": list(variables),
        "pressure_level": [str(p) for p in levels] if levels else None,
    }


@dataclass(frozen=True)
class FetchTarget:
    """What one fetch is about, for messages: dataset, variable group, month and target file."""

    dataset: str
    year: int
    month: int
    target: Path
    group: str | None = None

    @classmethod
    def of(cls, dataset: str, request: Mapping[str, Any], target: str | os.PathLike[str],
           group: str | None = None) -> FetchTarget:
        return cls(dataset, int(request["year"][0]), int(request["month"][0]), Path(target), group)

    @property
    def month_label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def __str__(self) -> str:
        group = f" group '{self.group}'" if self.group else ""
        return f"ERA5{group} {self.month_label} ({self.dataset}) -> {self.target}"

