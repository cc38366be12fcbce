"""Reading COSMO-CLM output on its rotated-pole grid.

COSMO-CLM writes fields on a grid that is regular in *rotated* latitude/longitude (``rlat``,
``rlon``): a regular lat-lon grid on a sphere whose north pole has been moved to
(``grid_north_pole_latitude``, ``grid_north_pole_longitude``), so that the domain sits near the
rotated equator and the cells are nearly equal-area. The geographic 2-D ``lat``/``lon`` of the cells
follow from the CF ``rotated_pole`` grid mapping; files produced by CDO (e.g. the CORDEX ``tas``
files) often omit them, so :func:`open_cosmo` computes them with pyproj when absent and checks them
against the grid mapping when present.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pyproj
import xarray as xr

from pdeldm.errors import InputError

#: COSMO-CLM's Earth radius (m); the model itself works on this sphere.
EARTH_RADIUS_M = 6371229.0
#: CF name, plus the misspelling that appears in some files (and in older drafts of interfaces.md).
ROTATED_GRID_MAPPING_NAMES = frozenset({"rotated_latitude_longitude", "rotation_latitude_longitude"})
#: Names under which the 2-m temperature appears (COSMO-CLM native and CMOR/CORDEX).
T2M_ALIASES = ("T_2M", "tas")
_KELVIN = frozenset({"k", "kelvin", "degk", "deg_k"})
_CELSIUS = frozenset({"degc", "°c", "c", "deg c", "deg_c", "celsius", "degrees_celsius"})
MIN_PLAUSIBLE_K = 150.0
#: Largest tolerated difference (degrees) between a file's own lat/lon and the grid mapping's.
LATLON_TOLERANCE_DEG = 0.01


def _grid_mapping_attrs(obj: xr.Dataset | xr.DataArray) -> dict[str, object]:
    """Find the rotated-pole grid mapping attributes of a dataset or data array."""
    candidates: list[xr.DataArray] = []
    variables: Mapping[object, xr.DataArray]
    if isinstance(obj, xr.Dataset):
        variables = obj.variables
        for var in obj.data_vars.values():
            ref = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
            if isinstance(ref, str) and ref.split(":")[0].strip() in obj.variables:
                candidates.append(obj[ref.split(":")[0].strip()])
    else:
        variables = obj.coords
        ref = obj.attrs.get("grid_mapping") or obj.encoding.get("grid_mapping")
        if isinstance(ref, str) and ref in obj.coords:
            candidates.append(obj.coords[ref])
    if "rotated_pole" in variables:
        candidates.append(variables["rotated_pole"])  # type: ignore[arg-type]
    candidates.extend(v for v in variables.values() if "grid_mapping_name" in v.attrs)  # type: ignore[union-attr]
    for cand in candidates:
        name = str(cand.attrs.get("grid_mapping_name", ""))
        if name in ROTATED_GRID_MAPPING_NAMES:
            return dict(cand.attrs)
    found = [str(c.attrs.get("grid_mapping_name")) for c in candidates]
    raise InputError(
        f"no rotated-pole grid mapping found (looked for a 'rotated_pole' variable or one named by a "
        f"'grid_mapping' attribute with grid_mapping_name in {sorted(ROTATED_GRID_MAPPING_NAMES)}; found {found})"
    )


def rotated_pole_params(obj: xr.Dataset | xr.DataArray) -> dict[str, float]:
    """``grid_north_pole_latitude``, ``grid_north_pole_longitude``, ``north_pole_grid_longitude``."""
    attrs = _grid_mapping_attrs(obj)
    try:
        return {
            "grid_north_pole_latitude": float(attrs["grid_north_pole_latitude"]),  # type: ignore[arg-type]
            "grid_north_pole_longitude": float(attrs["grid_north_pole_longitude"]),  # type: ignore[arg-type]
            "north_pole_grid_longitude": float(attrs.get("north_pole_grid_longitude", 0.0)),  # type: ignore[arg-type]
        }
    except KeyError as exc:
        raise InputError(f"rotated_pole grid mapping lacks attribute {exc}") from exc


def rotated_pole_crs(obj: xr.Dataset | xr.DataArray) -> pyproj.CRS:
    """The pyproj CRS of the rotated-pole grid (x = rlon, y = rlat, degrees)."""
    params = rotated_pole_params(obj)
    return crs_from_params(params)


def crs_from_params(params: Mapping[str, float]) -> pyproj.CRS:
    """pyproj CRS from rotated-pole parameters (see :func:`rotated_pole_params`)."""
    return pyproj.CRS.from_cf({"grid_mapping_name": "rotated_latitude_longitude", **params})


def rotated_to_geographic(
    rlat: np.ndarray, rlon: np.ndarray, crs: pyproj.CRS
) -> tuple[np.ndarray, np.ndarray]:
    """Geographic ``(lat, lon)`` (degrees, lon in -180..180) of rotated coordinates (any shape)."""
    transformer = pyproj.Transformer.from_crs(crs, pyproj.CRS("EPSG:4326"), always_xy=True)
    lon, lat = transformer.transform(np.asarray(rlon, dtype=np.float64), np.asarray(rlat, dtype=np.float64))
    return np.asarray(lat), np.asarray(lon)


def latlon_2d(rlat: np.ndarray, rlon: np.ndarray, crs: pyproj.CRS) -> tuple[np.ndarray, np.ndarray]:
    """2-D ``(lat, lon)`` arrays of shape ``(len(rlat), len(rlon))`` for a rotated grid."""
    rlon2, rlat2 = np.meshgrid(np.asarray(rlon, np.float64), np.asarray(rlat, np.float64))
    return rotated_to_geographic(rlat2, rlon2, crs)


def grid_spacing_m(rlat: np.ndarray, rlon: np.ndarray, radius: float = EARTH_RADIUS_M) -> tuple[float, float]:
    """Mean grid spacing ``(dx_m, dy_m)`` in metres of a rotated grid.

    The rotated coordinates are a regular lat-lon grid on the rotated sphere, so
    ``dy = R * drlat`` and ``dx = R * cos(rlat) * drlon`` (radians), averaged over the grid.
    """
    rlat = np.asarray(rlat, dtype=np.float64)
    rlon = np.asarray(rlon, dtype=np.float64)
    if rlat.size < 2 or rlon.size < 2:
        raise InputError(f"grid_spacing_m needs at least 2 points per axis, got rlat {rlat.size}, rlon {rlon.size}")
    dy = radius * np.deg2rad(np.mean(np.abs(np.diff(rlat))))
    dx = radius * np.mean(np.cos(np.deg2rad(rlat))) * np.deg2rad(np.mean(np.abs(np.diff(rlon))))
    return float(dx), float(dy)


def _pick_variable(ds: xr.Dataset, variable: str, source: str) -> str:
    names = [variable] + [a for a in T2M_ALIASES if variable in T2M_ALIASES and a != variable]
    for name in names:
        if name in ds.data_vars:
            return name
    present = sorted(str(v) for v in ds.data_vars)
    raise InputError(f"{source}: missing variable '{variable}' (also tried {names[1:]}); variables present: {present}")


def _to_rlat_rlon(da: xr.DataArray, ds: xr.Dataset, source: str) -> xr.DataArray:
    """Rename spatial dims to rlat/rlon (by CF standard_name) and drop singleton extra dims (height)."""
    renames: dict[str, str] = {}
    for dim in da.dims:
        std = ds[dim].attrs.get("standard_name") if dim in ds.variables else None
        if std == "grid_latitude" and dim != "rlat":
            renames[str(dim)] = "rlat"
        elif std == "grid_longitude" and dim != "rlon":
            renames[str(dim)] = "rlon"
    da = da.rename(renames)
    extra = [d for d in da.dims if d not in ("time", "rlat", "rlon")]
    for dim in extra:
        if da.sizes[dim] != 1:
            raise InputError(f"{source}: variable '{da.name}' has unexpected dimension '{dim}' of size {da.sizes[dim]}")
    da = da.squeeze(extra, drop=True) if extra else da
    missing = [d for d in ("time", "rlat", "rlon") if d not in da.dims]
    if missing:
        raise InputError(f"{source}: variable '{da.name}' has dims {da.dims}; expected (time, rlat, rlon)")
    return da.transpose("time", "rlat", "rlon")


def _angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((np.asarray(a, np.float64) - np.asarray(b, np.float64) + 180.0) % 360.0 - 180.0)


def _open_one(path: Path, variable: str, time_chunk: int, check_values: bool) -> xr.DataArray:
    if not path.exists():
        raise InputError(f"{path}: COSMO file does not exist")
    try:
        ds = xr.open_dataset(path)
    except Exception as exc:  # pragma: no cover - backend-specific message
        raise InputError(f"{path}: cannot be opened as netCDF ({exc})") from exc
    name = _pick_variable(ds, variable, str(path))
    da = _to_rlat_rlon(ds[name], ds, str(path))
    if not np.issubdtype(da["time"].dtype, np.datetime64):
        raise InputError(
            f"{path}: time of '{name}' does not decode to datetime64 (calendar "
            f"'{ds['time'].attrs.get('calendar', ds['time'].encoding.get('calendar', '?'))}'); a standard calendar is required"
        )
    try:
        params = rotated_pole_params(ds)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    crs = crs_from_params(params)
    rlat = da["rlat"].values.astype(np.float64)
    rlon = da["rlon"].values.astype(np.float64)
    lat, lon = latlon_2d(rlat, rlon, crs)
    if "lat" in ds.variables and "lon" in ds.variables and ds["lat"].ndim == 2:
        # Cheap guard against a grid mapping that does not belong to the grid (wrong pole).
        flat = ds["lat"].values
        flon = ds["lon"].values
        if flat.shape == lat.shape:
            err = max(float(np.nanmax(np.abs(flat - lat))), float(np.nanmax(_angle_diff(flon, lon))))
            if err > LATLON_TOLERANCE_DEG:
                raise InputError(
                    f"{path}: the file's lat/lon differ by up to {err:.3f} deg from those implied by its "
                    f"rotated_pole grid mapping {params}"
                )

    units = str(da.attrs.get("units", "")).strip()
    if units.lower() in _CELSIUS:
        raise InputError(f"{path}: variable '{name}' has units '{units}': looks like degC, expected K")
    if units and units.lower() not in _KELVIN:
        raise InputError(f"{path}: variable '{name}' has units '{units}'; expected K")

    da = da.drop_vars([c for c in da.coords if c not in ("time", "rlat", "rlon")])
    da = da.chunk({"time": time_chunk, "rlat": -1, "rlon": -1}).astype(np.float32)
    if check_values:
        nan_count, vmin = dask.compute(da.isnull().sum(), da.min())
        if int(nan_count):
            raise InputError(f"{path}: variable '{name}' has {int(nan_count)} NaN values of {da.size}")
        if float(vmin) < MIN_PLAUSIBLE_K:
            raise InputError(f"{path}: variable '{name}' has minimum {float(vmin):.2f} < {MIN_PLAUSIBLE_K:g}: looks like degC, expected K")
    gm_attrs = {"grid_mapping_name": "rotated_latitude_longitude", **params}
    da = da.assign_coords(
        lat=(("rlat", "rlon"), lat, {"standard_name": "latitude", "units": "degrees_north"}),
        lon=(("rlat", "rlon"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        rotated_pole=xr.DataArray(np.int32(0), attrs=gm_attrs),
    )
    da.attrs = {"units": "K", "standard_name": "air_temperature", "grid_mapping": "rotated_pole", "source_file": str(path)}
    return da


def cosmo_times(path: str | os.PathLike[str]) -> pd.DatetimeIndex:
    """The times in a COSMO file (reads only the time coordinate)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: COSMO file does not exist")
    with xr.open_dataset(path) as ds:
        if "time" not in ds.variables:
            raise InputError(f"{path}: no 'time' coordinate")
        values = np.atleast_1d(ds["time"].values)
    if not np.issubdtype(values.dtype, np.datetime64):
        raise InputError(f"{path}: time does not decode to datetime64; a standard calendar is required")
    return pd.DatetimeIndex(values)


def open_cosmo(
    files: Iterable[str | os.PathLike[str]],
    variable: str = "T_2M",
    time_chunk: int = 24,
    check_values: bool = True,
) -> xr.DataArray:
    """Open COSMO-CLM files of one variable as a lazy ``(time, rlat, rlon)`` DataArray in K.

    Accepts ``tas`` for ``T_2M`` (and vice versa); the result is named ``variable``. Adds 2-D
    ``lat``/``lon`` coordinates (computed from the grid mapping if the file lacks them) and a scalar
    ``rotated_pole`` coordinate carrying the grid-mapping attributes, so :func:`rotated_pole_crs`
    works on the result. Singleton extra dims (``height``) are dropped.

    Raises:
        InputError: missing variable or grid mapping, units not K (degC detected by units or by
        values < 150), NaNs, duplicate times, or files on different grids.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("open_cosmo: no COSMO files given")
    parts = [_open_one(p, variable, time_chunk, check_values) for p in paths]
    ref = parts[0]
    for path, da in zip(paths[1:], parts[1:], strict=True):
        same = da.shape[1:] == ref.shape[1:] and all(
            np.allclose(da[c].values, ref[c].values, atol=1e-5) for c in ("rlat", "rlon")
        )
        if not same or da["rotated_pole"].attrs != ref["rotated_pole"].attrs:
            raise InputError(f"{path}: grid differs from {paths[0]} ({da.shape[1:]} vs {ref.shape[1:]})")
    times = pd.DatetimeIndex(np.concatenate([p["time"].values for p in parts]))
    if times.has_duplicates:
        dup = times[times.duplicated()][0]
        holders = [str(p) for p, da in zip(paths, parts, strict=True) if dup in da.indexes["time"]]
        raise InputError(f"duplicate COSMO time {dup.isoformat()} (in {holders})")
    if len(parts) == 1:
        out = parts[0]
    else:
        out = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override", combine_attrs="drop_conflicts")
    out = out.sortby("time")
    out.name = variable
    out.attrs = {"units": "K", "standard_name": "air_temperature", "grid_mapping": "rotated_pole"}
    return out
