"""Reading and normalising ERA5 single-level files (as the new CDS writes them).

The CDS (2024+) netCDF files differ from the classic ones in ways that bite downstream code:
the time dimension is ``valid_time``, there is an ``expver`` coordinate (``"0001"`` = ERA5,
``"0005"`` = ERA5T, the preliminary near-real-time stream) and a scalar ``number`` coordinate,
latitude is descending and longitude may be 0..360. :func:`normalise_era5` maps all of that to one
layout -- ``(time, latitude, longitude)``, latitude ascending, longitude in -180..180, float32 -- and
:func:`open_era5` adds the value checks (units, NaNs, duplicate or missing hours) with messages
that name the file and the variable.

The download itself lives in ``pdeldm.data.cds``; it calls :func:`check_era5_file` on each file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.errors import InputError

#: Variables stored in K whose values are sanity-checked against a degC mix-up (plus pressure-level
#: temperatures such as ``t850``, see :func:`is_temperature`).
TEMPERATURE_VARS: frozenset[str] = frozenset({"t2m", "d2m", "sst", "skt", "stl1", "t"})
#: Unit strings that mean degrees Celsius.
CELSIUS_UNITS: frozenset[str] = frozenset({"degc", "°c", "c", "deg c", "deg_c", "celsius", "degrees_celsius"})
#: Anything below this (K) cannot be a near-surface temperature on Earth.
MIN_PLAUSIBLE_K = 150.0
#: Spellings of the units the models are trained in (lower case, spaces collapsed), by kind.
KELVIN_UNITS: frozenset[str] = frozenset({"k", "kelvin", "degk", "deg_k", "degrees_kelvin"})
WIND_UNITS: frozenset[str] = frozenset({"m s**-1", "m s-1", "m/s", "m s^-1", "m.s-1", "meter second-1",
                                        "metre second-1", "meters per second", "metres per second"})

_LAT_NAMES = ("latitude", "lat")
_LON_NAMES = ("longitude", "lon")
_TIME_NAMES = ("valid_time", "time")


def is_temperature(var: str) -> bool:
    """True for ERA5 temperature variables (``t2m``, ``d2m``, ``sst``, ..., ``t850``)."""
    return var in TEMPERATURE_VARS or re.fullmatch(r"t\d+", var) is not None


def is_wind(var: str) -> bool:
    """True for ERA5 wind components (``u10``, ``v10``, ``u100``, ``u850``, ...)."""
    return re.fullmatch(r"[uv]\d+", var) is not None


def check_units(var: str, units: str, source: str) -> None:
    """Raise InputError if a temperature is not in K or a wind component not in m/s (by its units attribute)."""
    text = " ".join(str(units).strip().lower().split())
    if not text:
        return  # no attribute: the value checks still catch degC
    if is_temperature(var) and text in CELSIUS_UNITS:
        raise InputError(f"{source}: variable '{var}' has units '{units}': looks like degC, expected K")
    if is_temperature(var) and text not in KELVIN_UNITS:
        raise InputError(f"{source}: variable '{var}' has units '{units}', expected K")
    if is_wind(var) and text not in WIND_UNITS:
        raise InputError(f"{source}: variable '{var}' has units '{units}', expected m s**-1 (m/s)")


def _name(source: str | os.PathLike[str] | None) -> str:
    return "<dataset>" if source is None else str(source)


def _find(ds: xr.Dataset, candidates: Sequence[str], what: str, source: str) -> str:
    for name in candidates:
        if name in ds.dims or name in ds.coords:
            return name
    raise InputError(f"{source}: no {what} dimension (looked for {list(candidates)}); dims are {list(ds.dims)}")


def _merge_expver(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Collapse ``expver`` (ERA5 vs ERA5T) into one field.

    As a per-time coordinate (new CDS) it only labels the stream, so it is dropped. As a dimension
    (old CDS files that straddle the ERA5/ERA5T boundary) each time is valid in exactly one slice
    and NaN in the other, so the first non-NaN value along ``expver`` is the field.
    """
    if "expver" not in ds.variables:
        return ds
    if "expver" in ds.dims:
        merged = ds.isel(expver=0, drop=True)
        for k in range(1, ds.sizes["expver"]):
            merged = merged.fillna(ds.isel(expver=k, drop=True))
        return merged
    return ds.drop_vars("expver")


def normalise_era5(ds: xr.Dataset, source: str | os.PathLike[str] | None = None) -> xr.Dataset:
    """Bring an ERA5 dataset to the canonical layout (no value checks; see :func:`open_era5`).

    - ``valid_time`` -> ``time``; ``expver`` merged (dimension) or dropped (coordinate);
      ``number`` and other scalar coordinates dropped;
    - ``lat``/``lon`` -> ``latitude``/``longitude``; latitude ascending; longitude in -180..180
      and ascending;
    - data variables float32, dims ordered ``(time, latitude, longitude)``.

    ``source`` only names the file in error messages.
    """
    src = _name(source)
    tname = _find(ds, _TIME_NAMES, "time", src)
    latname = _find(ds, _LAT_NAMES, "latitude", src)
    lonname = _find(ds, _LON_NAMES, "longitude", src)
    if tname == "valid_time" and "time" in ds.variables:
        # Old-style forecast files carry a reference 'time' next to 'valid_time'; keep valid_time.
        ds = ds.drop_vars("time")
    ds = ds.rename({tname: "time", latname: "latitude", lonname: "longitude"})
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")

    ds = _merge_expver(ds, src)
    if "number" in ds.dims:
        if ds.sizes["number"] != 1:
            raise InputError(f"{src}: has {ds.sizes['number']} ensemble members ('number'); expected the HRES reanalysis")
        ds = ds.isel(number=0)
    # Scalar leftovers (number, step, surface, heightAboveGround ...) carry no information here.
    scalar = [name for name, c in ds.coords.items() if c.ndim == 0]
    ds = ds.drop_vars(scalar)

    lon = ds["longitude"].values.astype(np.float64)
    if lon.size and (lon.max() > 180.0 or lon.min() < -180.0):
        ds = ds.assign_coords(longitude=((lon + 180.0) % 360.0) - 180.0)
    ds = ds.sortby(["latitude", "longitude"])
    for name in ("latitude", "longitude"):
        idx = ds.indexes[name]
        if idx.has_duplicates:
            raise InputError(f"{src}: duplicate {name} values after wrapping to -180..180 (e.g. {idx[idx.duplicated()][0]})")

    ds = ds.assign({name: ds[name].astype(np.float32) for name in ds.data_vars})
    order = ("time", "latitude", "longitude")
    ds = ds.transpose(*order, ...)
    return ds


def _check_not_zip(path: Path) -> None:
    # The new CDS hands out a zip archive when a request mixes instantaneous and accumulated
    # variables; xarray's error for that ("unknown file format") does not say what happened.
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"PK":
        raise InputError(
            f"{path}: is a zip archive, not netCDF (the CDS zips requests that mix instantaneous and "
            "accumulated variables); request them separately or unzip first"
        )


def _open_raw(path: Path) -> xr.Dataset:
    if not path.exists():
        raise InputError(f"{path}: ERA5 file does not exist")
    _check_not_zip(path)
    try:
        return xr.open_dataset(path)
    except Exception as exc:  # pragma: no cover - message depends on the backend
        raise InputError(f"{path}: cannot be opened as netCDF ({exc})") from exc


def era5_times(path: str | os.PathLike[str]) -> pd.DatetimeIndex:
    """The valid times in an ERA5 file (reads only the time coordinate)."""
    path = Path(path)
    with _open_raw(path) as ds:
        tname = _find(ds, _TIME_NAMES, "time", str(path))
        values = ds[tname].values
    if not np.issubdtype(values.dtype, np.datetime64):
        raise InputError(f"{path}: time coordinate '{tname}' is not decodable to datetimes")
    return pd.DatetimeIndex(np.atleast_1d(values))


def _check_values(
    ds: xr.Dataset, source: str, variables: Sequence[str], fill_values: Mapping[str, float]
) -> xr.Dataset:
    """Units, degC and NaN checks for one file; fills maskable variables. Computes in one pass."""
    for var in variables:
        check_units(var, ds[var].attrs.get("units", ""), source)
    # One dask pass over the file for all reductions (the data is read once here).
    nan_counts = {v: ds[v].isnull().sum() for v in variables}
    means = {v: ds[v].mean() for v in variables if is_temperature(v)}
    nan_counts, means = dask.compute(nan_counts, means)
    for var in variables:
        count = int(nan_counts[var])
        if count and var not in fill_values:
            raise InputError(
                f"{source}: variable '{var}' has {count} NaN values of {ds[var].size}; "
                "NaN is only allowed for maskable variables given in fill_values"
            )
    for var, mean in means.items():
        mean = float(mean)
        if np.isfinite(mean) and mean < MIN_PLAUSIBLE_K:
            raise InputError(f"{source}: variable '{var}' has mean {mean:.2f}: looks like degC, expected K")
    fills = {v: np.float32(fill_values[v]) for v in variables if v in fill_values and int(nan_counts[v])}
    if fills:
        ds = ds.assign({v: ds[v].fillna(val) for v, val in fills.items()})
    return ds


def _check_time_steps(times: pd.DatetimeIndex, freq: str | pd.Timedelta, sources: str) -> None:
    step = pd.Timedelta(freq)
    if len(times) < 2:
        return
    diffs = times[1:] - times[:-1]
    bad = np.flatnonzero(diffs != step)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{sources}: time gap: {times[i].isoformat()} is followed by {times[i + 1].isoformat()} "
            f"(expected steps of {step}); {bad.size} irregular step(s) in total"
        )


def open_era5(
    files: Iterable[str | os.PathLike[str]],
    variables: Sequence[str],
    fill_values: Mapping[str, float] | None = None,
    freq: str | None = "1h",
    time_chunk: int = 24,
) -> xr.Dataset:
    """Open, normalise and check ERA5 files; concatenate them along time.

    Args:
        files: netCDF files (any order; typically one per month).
        variables: variables to keep; each must be in every file.
        fill_values: maskable variables (e.g. ``{"sst": 271.35}``) whose NaNs are allowed and
            replaced by the given value. NaN in any other variable is an error.
        freq: expected time step (``None`` skips the gap check).
        time_chunk: dask chunk length along time; the result is lazy (dask-backed), so callers
            load it piece by piece. The checks read every file once.

    Returns:
        Dataset ``(time, latitude, longitude)`` float32, time sorted and unique.

    Raises:
        InputError: missing variable, degC-looking temperatures, NaNs, duplicate times, time gaps,
        or files on different grids.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("open_era5: no ERA5 files given")
    variables = list(variables)
    fill_values = dict(fill_values or {})
    parts: list[xr.Dataset] = []
    for path in paths:
        raw = _open_raw(path)
        missing = [v for v in variables if v not in raw.data_vars]
        if missing:
            present = sorted(str(v) for v in raw.data_vars)
            raw.close()
            raise InputError(f"{path}: missing variable(s) {missing}; variables present: {present}")
        ds = normalise_era5(raw[variables], source=path)
        ds = ds.chunk({"time": time_chunk, "latitude": -1, "longitude": -1})
        ds = _check_values(ds, str(path), variables, fill_values)
        ds.attrs["source_files"] = str(path)
        parts.append(ds)

    ref = parts[0]
    for path, ds in zip(paths[1:], parts[1:], strict=True):
        for name in ("latitude", "longitude"):
            if ds.sizes[name] != ref.sizes[name] or not np.allclose(ds[name].values, ref[name].values, atol=1e-6):
                raise InputError(f"{path}: {name} grid differs from {paths[0]}")

    # Duplicate hours across files usually mean an ERA5T and a final ERA5 download of the same month.
    all_times = pd.DatetimeIndex(np.concatenate([p["time"].values for p in parts]))
    if all_times.has_duplicates:
        dup = all_times[all_times.duplicated()][0]
        holders = [str(path) for path, p in zip(paths, parts, strict=True) if dup in p.indexes["time"]]
        raise InputError(f"duplicate ERA5 time {dup.isoformat()} (in {holders}); each hour must come from exactly one file")

    ds = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override",
                   combine_attrs="drop") if len(parts) > 1 else parts[0]
    ds = ds.sortby("time")
    if freq is not None:
        _check_time_steps(ds.indexes["time"], freq, ", ".join(str(p) for p in paths) if len(paths) <= 3 else f"{len(paths)} ERA5 files")
    ds.attrs = {"source_files": ", ".join(p.name for p in paths)}
    return ds


def check_era5_file(
    path: str | os.PathLike[str],
    variables: Sequence[str],
    times: Iterable[object] | None = None,
    area: Sequence[float] | None = None,
    fill_values: Mapping[str, float] | None = None,
) -> None:
    """Check a downloaded ERA5 file: opens, has ``variables`` (values checked as in
    :func:`open_era5`), contains every time in ``times`` and covers ``area``.

    Args:
        area: CDS order ``[north, west, south, east]`` in degrees (longitudes in either
            -180..180 or 0..360). Coverage allows half a grid step at each edge, since the
            CDS snaps the area to the grid.

    Raises:
        InputError naming the file and what is wrong.
    """
    path = Path(path)
    ds = open_era5([path], variables, fill_values=fill_values, freq=None)
    if times is not None:
        wanted = pd.DatetimeIndex(pd.to_datetime(list(times)))
        missing = wanted.difference(ds.indexes["time"])
        if len(missing):
            raise InputError(
                f"{path}: {len(missing)} of {len(wanted)} requested times missing, first {missing[0].isoformat()}; "
                f"file has {ds.sizes['time']} times from {ds.indexes['time'][0].isoformat()} to {ds.indexes['time'][-1].isoformat()}"
            )
    if area is not None:
        north, west, south, east = (float(a) for a in area)
        west, east = (((x + 180.0) % 360.0) - 180.0 for x in (west, east))
        lat = ds["latitude"].values
        lon = ds["longitude"].values
        dlat = float(np.median(np.diff(lat))) if lat.size > 1 else 0.0
        dlon = float(np.median(np.diff(lon))) if lon.size > 1 else 0.0
        tol_lat, tol_lon = dlat / 2 + 1e-6, dlon / 2 + 1e-6
        if lat.min() > south + tol_lat or lat.max() < north - tol_lat or lon.min() > west + tol_lon or lon.max() < east - tol_lon:
            raise InputError(
                f"{path}: does not cover the area N{north} W{west} S{south} E{east}; file spans latitude "
                f"{lat.min():.3f}..{lat.max():.3f}, longitude {lon.min():.3f}..{lon.max():.3f}"
            )
    ds.close()
