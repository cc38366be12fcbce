"""Reading COSMO-CLM output on its rotated-pole grid or on a projected EPSG:3035 (LAEA) grid.

COSMO-CLM writes fields on a grid that is regular in *rotated* latitude/longitude (``rlat``,
``rlon``): a regular lat-lon grid on a sphere whose north pole has been moved to
(``grid_north_pole_latitude``, ``grid_north_pole_longitude``), so that the domain sits near the
rotated equator and the cells are nearly equal-area. The geographic 2-D ``lat``/``lon`` of the cells
follow from the CF ``rotated_pole`` grid mapping; files produced by CDO (e.g. the CORDEX ``tas``
files) often omit them, so :func:`open_cosmo` computes them with pyproj when absent and checks them
against the grid mapping when present.

The study's targets (VHR-REA_IT remapped to ETRS89-LAEA, EPSG:3035, 2 km) are instead on a
*projected* grid: dims ``(time, y, x)``, ``x``/``y`` in metres, and a CF
``lambert_azimuthal_equal_area`` grid mapping (or a GDAL-style ``crs``/``spatial_ref`` variable that
carries only ``crs_wkt``/``spatial_ref``). :func:`open_cosmo` reads both. **Design:** the package's
spatial dims are always named ``rlat`` (rows, south->north) and ``rlon`` (columns, west->east); on a
projected grid they keep the native *values* (``y``/``x`` in metres, attrs
``standard_name=projection_y/x_coordinate``, ``units=m``), so the store, the datasets and the models,
which only need "the fine grid's row/column dims", work unchanged, and nothing is resampled. The grid
mapping travels as a scalar coordinate (``rotated_pole`` or ``crs``) whose *numeric* parameters
(:func:`grid_mapping_params`) identify the grid and rebuild its CRS (:func:`crs_from_params`).
"""

from __future__ import annotations

import functools
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
#: CF name of the ETRS89-LAEA projection (EPSG:3035) of the study's 2 km grid.
LAEA_GRID_MAPPING_NAME = "lambert_azimuthal_equal_area"
#: Numeric parameters that define a LAEA grid mapping (CF names). ``inverse_flattening`` 0 = sphere.
#: Kept numeric-only so grids compare key by key like the rotated pole's parameters.
LAEA_PARAM_KEYS = (
    "latitude_of_projection_origin",
    "longitude_of_projection_origin",
    "false_easting",
    "false_northing",
    "semi_major_axis",
    "inverse_flattening",
)
#: Name of the scalar grid-mapping coordinate that :func:`open_cosmo` attaches, per kind.
GRID_MAPPING_VARIABLE = {"rotated": "rotated_pole", "laea": "crs"}
_METRES = frozenset({"m", "metre", "metres", "meter", "meters"})
#: Relative tolerance on the regularity of projected x/y (float32 coordinates of ~4e6 m are exact
#: to 0.25 m, far below this on a 2 km grid).
_REGULAR_RTOL = 1e-3
#: Numeric CF keys passed to pyproj when a LAEA mapping is given by attributes rather than WKT.
_CF_NUMERIC_KEYS = (*LAEA_PARAM_KEYS, "semi_minor_axis", "earth_radius", "longitude_of_prime_meridian")


def _mapping_candidates(obj: xr.Dataset | xr.DataArray) -> list[tuple[str, dict[str, object]]]:
    """``(name, attrs)`` of the variables that may hold the grid mapping, most specific first."""
    variables: Mapping[object, xr.Variable | xr.DataArray] = obj.variables if isinstance(obj, xr.Dataset) else obj.coords
    names: list[str] = []
    refs = [v.attrs.get("grid_mapping") or v.encoding.get("grid_mapping")
            for v in (obj.data_vars.values() if isinstance(obj, xr.Dataset) else [obj])]
    for ref in refs:
        if isinstance(ref, str) and ref.split(":")[0].strip() in variables:
            names.append(ref.split(":")[0].strip())
    names += [n for n in ("rotated_pole", "crs", "spatial_ref") if n in variables]
    names += [str(n) for n, v in variables.items()
              if "grid_mapping_name" in v.attrs or "crs_wkt" in v.attrs or "spatial_ref" in v.attrs]
    return [(n, dict(variables[n].attrs)) for n in dict.fromkeys(names)]


# pyproj's from_cf takes ~0.2 s for a LAEA mapping (it searches the database for the ellipsoid), and
# every monthly file carries the same mapping: parse each distinct one once per process.
@functools.lru_cache(maxsize=16)
def _crs_from_cf(items: tuple[tuple[str, object], ...]) -> pyproj.CRS:
    return pyproj.CRS.from_cf(dict(items))


@functools.lru_cache(maxsize=16)
def _crs_from_wkt(wkt: str) -> pyproj.CRS:
    return pyproj.CRS.from_wkt(wkt)


def _laea_params(attrs: Mapping[str, object]) -> dict[str, float] | None:
    """Canonical LAEA parameters of a grid-mapping variable, or None if it is not a LAEA mapping.

    CF attributes are used when they name the projection; otherwise the WKT (``crs_wkt`` or GDAL's
    ``spatial_ref``) is parsed. Raises InputError for a LAEA mapping whose axes are not in metres.
    """
    name = str(attrs.get("grid_mapping_name", ""))
    wkt = attrs.get("crs_wkt") or attrs.get("spatial_ref")
    try:
        if name == LAEA_GRID_MAPPING_NAME and all(k in attrs for k in LAEA_PARAM_KEYS[:4]):
            cf: list[tuple[str, object]] = [("grid_mapping_name", name)]
            cf += [(k, float(attrs[k])) for k in _CF_NUMERIC_KEYS if k in attrs]  # type: ignore[arg-type]
            if "reference_ellipsoid_name" in attrs:
                cf.append(("reference_ellipsoid_name", str(attrs["reference_ellipsoid_name"])))
            crs = _crs_from_cf(tuple(cf))
        elif isinstance(wkt, str) and wkt.strip():
            crs = _crs_from_wkt(wkt)
        else:
            return None
    except pyproj.exceptions.CRSError as exc:
        raise InputError(f"grid mapping {dict(attrs)} cannot be parsed by pyproj ({exc})") from None
    cf_out = crs.to_cf()
    if cf_out.get("grid_mapping_name") != LAEA_GRID_MAPPING_NAME:
        return None
    units = {a.unit_name for a in crs.axis_info}
    if not units <= _METRES:
        raise InputError(f"{LAEA_GRID_MAPPING_NAME} grid mapping has axis units {sorted(units)}; expected metres")
    params = {k: float(cf_out[k]) for k in LAEA_PARAM_KEYS[:4]}
    params["semi_major_axis"] = float(crs.ellipsoid.semi_major_metre)
    params["inverse_flattening"] = float(crs.ellipsoid.inverse_flattening)  # 0 for a sphere
    return params


def grid_mapping_params(obj: xr.Dataset | xr.DataArray) -> dict[str, float]:
    """Numeric parameters of the grid mapping of a dataset or data array.

    Rotated pole: ``grid_north_pole_latitude``, ``grid_north_pole_longitude``,
    ``north_pole_grid_longitude``. LAEA (EPSG:3035 and the like): :data:`LAEA_PARAM_KEYS`. Only
    floats, so two grids compare key by key; :func:`crs_from_params` rebuilds the CRS.
    """
    candidates = _mapping_candidates(obj)
    for _, attrs in candidates:
        if str(attrs.get("grid_mapping_name", "")) in ROTATED_GRID_MAPPING_NAMES:
            try:
                return {
                    "grid_north_pole_latitude": float(attrs["grid_north_pole_latitude"]),  # type: ignore[arg-type]
                    "grid_north_pole_longitude": float(attrs["grid_north_pole_longitude"]),  # type: ignore[arg-type]
                    "north_pole_grid_longitude": float(attrs.get("north_pole_grid_longitude", 0.0)),  # type: ignore[arg-type]
                }
            except KeyError as exc:
                raise InputError(f"rotated_pole grid mapping lacks attribute {exc}") from exc
        laea = _laea_params(attrs)
        if laea is not None:
            return laea
    found = {name: str(attrs.get("grid_mapping_name", "(WKT only)")) for name, attrs in candidates}
    raise InputError(
        f"no rotated-pole grid mapping or {LAEA_GRID_MAPPING_NAME} projection found (looked for a 'rotated_pole', "
        f"'crs' or 'spatial_ref' variable or one named by a 'grid_mapping' attribute, with grid_mapping_name in "
        f"{sorted(ROTATED_GRID_MAPPING_NAMES | {LAEA_GRID_MAPPING_NAME})} or a LAEA crs_wkt/spatial_ref; found {found})"
    )


def rotated_pole_params(obj: xr.Dataset | xr.DataArray) -> dict[str, float]:
    """The grid mapping's numeric parameters; same as :func:`grid_mapping_params`.

    The name predates projected grids and is kept because the store and the regridder use it as
    "the parameters that identify the grid": for a LAEA grid it returns the projection's parameters.
    """
    return grid_mapping_params(obj)


def is_projected(params: Mapping[str, float]) -> bool:
    """True for LAEA parameters (x/y in metres), False for a rotated pole (rlat/rlon in degrees)."""
    return "longitude_of_projection_origin" in params


def grid_kind(params: Mapping[str, float]) -> str:
    """``"laea"`` or ``"rotated"`` (keys of :data:`GRID_MAPPING_VARIABLE`)."""
    return "laea" if is_projected(params) else "rotated"


def rotated_pole_crs(obj: xr.Dataset | xr.DataArray) -> pyproj.CRS:
    """The pyproj CRS of the grid (x = rlon, y = rlat; degrees on a rotated grid, metres on LAEA)."""
    params = rotated_pole_params(obj)
    return crs_from_params(params)


def crs_from_params(params: Mapping[str, float], unit_m: float | None = None) -> pyproj.CRS:
    """pyproj CRS from grid-mapping parameters (see :func:`grid_mapping_params`).

    ``unit_m`` (projected grids only): length of the CRS's linear unit in metres (PROJ
    ``+to_meter``); default metres.
    """
    if is_projected(params):
        # A PROJ string is exact here and fast (from_cf is slow for LAEA, see _crs_from_cf).
        rf = params["inverse_flattening"]
        shape = f"+a={params['semi_major_axis']!r} +rf={rf!r}" if rf else f"+R={params['semi_major_axis']!r}"
        unit = "+units=m" if unit_m is None else f"+to_meter={float(unit_m)!r}"
        return pyproj.CRS(
            f"+proj=laea +lat_0={params['latitude_of_projection_origin']!r} +lon_0={params['longitude_of_projection_origin']!r} "
            f"+x_0={params['false_easting']!r} +y_0={params['false_northing']!r} {shape} {unit} +no_defs +type=crs"
        )
    if unit_m is not None:
        raise InputError("crs_from_params: unit_m applies to projected grids only")
    return pyproj.CRS.from_cf({"grid_mapping_name": "rotated_latitude_longitude", **params})


def grid_mapping_cf_attrs(params: Mapping[str, float]) -> dict[str, object]:
    """CF attributes of the grid-mapping variable to write for ``params`` (LAEA adds ``crs_wkt``)."""
    if is_projected(params):
        return {"grid_mapping_name": LAEA_GRID_MAPPING_NAME, **params, "crs_wkt": crs_from_params(params).to_wkt()}
    return {"grid_mapping_name": "rotated_latitude_longitude", **params}


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


def projected_spacing_m(y: np.ndarray, x: np.ndarray, source: str = "grid") -> tuple[float, float]:
    """Steps ``(dx_m, dy_m)`` of a regular projected grid, from its x/y coordinates (metres).

    These are projection metres (exactly 2000 on the study's EPSG:3035 grid); LAEA is equal-area,
    not conformal, so the ground distance differs by the local scale factor (up to ~1 % over the
    study's 1344 x 1152 km Italy domain).
    Raises InputError unless both axes are strictly ascending and regular.
    """
    steps = []
    for name, values in (("x", np.asarray(x, np.float64)), ("y", np.asarray(y, np.float64))):
        if values.size < 2:
            raise InputError(f"{source}: projected coordinate '{name}' needs at least 2 points, got {values.size}")
        diffs = np.diff(values)
        step = float(np.median(diffs))
        if step <= 0 or float(np.max(np.abs(diffs - step))) > _REGULAR_RTOL * step:
            raise InputError(
                f"{source}: projected coordinate '{name}' is not a regular ascending axis "
                f"(steps {float(diffs.min()):.3f}..{float(diffs.max()):.3f} m)"
            )
        steps.append(step)
    return steps[0], steps[1]


def grid_spacing_of(obj: xr.Dataset | xr.DataArray) -> tuple[float, float]:
    """``(dx_m, dy_m)`` of anything with ``rlat``/``rlon`` coords and a grid mapping.

    Rotated grids: :func:`grid_spacing_m` (mean spacing on the sphere); LAEA grids: the exact
    projected steps (:func:`projected_spacing_m`).
    """
    params = grid_mapping_params(obj)
    if is_projected(params):
        return projected_spacing_m(obj["rlat"].values, obj["rlon"].values)
    return grid_spacing_m(obj["rlat"].values, obj["rlon"].values)


def _pick_variable(ds: xr.Dataset, variable: str, source: str) -> str:
    names = [variable] + [a for a in T2M_ALIASES if variable in T2M_ALIASES and a != variable]
    for name in names:
        if name in ds.data_vars:
            return name
    present = sorted(str(v) for v in ds.data_vars)
    raise InputError(f"{source}: missing variable '{variable}' (also tried {names[1:]}); variables present: {present}")


#: Per grid kind: CF standard_name of (row, column) coordinates, and the plain names also accepted.
_SPATIAL_NAMES = {
    "rotated": (("grid_latitude", "grid_longitude"), ((), ())),
    "laea": (("projection_y_coordinate", "projection_x_coordinate"), (("y", "Y"), ("x", "X"))),
}
PROJECTED_Y_ATTRS = {"standard_name": "projection_y_coordinate", "long_name": "y coordinate of projection",
                     "units": "m", "axis": "Y"}
PROJECTED_X_ATTRS = {"standard_name": "projection_x_coordinate", "long_name": "x coordinate of projection",
                     "units": "m", "axis": "X"}


def _normalise_dims(ds: xr.Dataset, name: str, kind: str, source: str) -> xr.Dataset:
    """Rename the spatial dims of ``ds[name]`` to rlat/rlon; on a projected grid also check units and sort.

    Projected files often store ``y`` north->south (GDAL's north-up raster order); the package's
    layout is south->north, so both axes are sorted ascending (an index permutation, still lazy).
    """
    (std_y, std_x), (plain_y, plain_x) = _SPATIAL_NAMES[kind]
    renames: dict[str, str] = {}
    for dim in ds[name].dims:
        std = ds[dim].attrs.get("standard_name") if dim in ds.variables else None
        if (std == std_y or (std is None and dim in plain_y)) and dim != "rlat":
            renames[str(dim)] = "rlat"
        elif (std == std_x or (std is None and dim in plain_x)) and dim != "rlon":
            renames[str(dim)] = "rlon"
    if kind == "laea":
        for dim in [*renames, *[d for d in ("rlat", "rlon") if d in ds[name].dims]]:
            units = str(ds[dim].attrs.get("units", "")).strip() if dim in ds.variables else ""
            if units and units.lower() not in _METRES:
                raise InputError(
                    f"{source}: coordinate '{dim}' of variable '{name}' has units '{units}'; expected m "
                    f"(projected {LAEA_GRID_MAPPING_NAME} grid)"
                )
    ds = ds.rename(renames)
    if kind == "laea" and {"rlat", "rlon"} <= set(ds[name].dims):
        ds = ds.sortby(["rlat", "rlon"])
        projected_spacing_m(ds["rlat"].values, ds["rlon"].values, f"{source}: variable '{name}'")
    return ds


def normalise_grid(ds: xr.Dataset, name: str, source: str) -> tuple[xr.Dataset, dict[str, float]]:
    """``ds`` with the spatial dims of ``ds[name]`` renamed to rlat/rlon, and the grid-mapping params.

    The same normalisation :func:`open_cosmo` applies (projected axes sorted ascending and checked
    for metres and regularity), for other readers of fields on a COSMO-CLM grid (static inputs).
    """
    try:
        params = grid_mapping_params(ds)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    return _normalise_dims(ds, name, grid_kind(params), source), params


def _squeeze_to_grid(da: xr.DataArray, source: str) -> xr.DataArray:
    """Drop singleton extra dims (height) and order the dims (time, rlat, rlon)."""
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
    ds, params = normalise_grid(ds, name, str(path))
    kind = grid_kind(params)
    da = _squeeze_to_grid(ds[name], str(path))
    if not np.issubdtype(da["time"].dtype, np.datetime64):
        raise InputError(
            f"{path}: time of '{name}' does not decode to datetime64 (calendar "
            f"'{ds['time'].attrs.get('calendar', ds['time'].encoding.get('calendar', '?'))}'); a standard calendar is required"
        )
    crs = crs_from_params(params)
    rlat = da["rlat"].values.astype(np.float64)
    rlon = da["rlon"].values.astype(np.float64)
    lat, lon = latlon_2d(rlat, rlon, crs)
    if "lat" in ds.variables and "lon" in ds.variables and ds["lat"].ndim == 2:
        # Cheap guard against a grid mapping that does not belong to the grid (wrong pole/projection).
        flat, flon = ds["lat"], ds["lon"]
        if set(flat.dims) == {"rlat", "rlon"} and set(flon.dims) == {"rlat", "rlon"}:
            flat, flon = flat.transpose("rlat", "rlon"), flon.transpose("rlat", "rlon")
        if flat.shape == lat.shape and flon.shape == lon.shape:
            err = max(float(np.nanmax(np.abs(flat.values - lat))), float(np.nanmax(_angle_diff(flon.values, lon))))
            if err > LATLON_TOLERANCE_DEG:
                raise InputError(
                    f"{path}: the file's lat/lon differ by up to {err:.3f} deg from those implied by its "
                    f"{'rotated_pole grid mapping' if kind == 'rotated' else LAEA_GRID_MAPPING_NAME + ' projection'} {params}"
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
    gm_name = GRID_MAPPING_VARIABLE[kind]
    da = da.assign_coords({
        "lat": (("rlat", "rlon"), lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": (("rlat", "rlon"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        gm_name: xr.DataArray(np.int32(0), attrs=grid_mapping_cf_attrs(params)),
    })
    if kind == "laea":
        # Native metres under the package's dim names (see the module docstring).
        da = da.assign_coords(rlat=("rlat", rlat, dict(PROJECTED_Y_ATTRS)), rlon=("rlon", rlon, dict(PROJECTED_X_ATTRS)))
        dx, dy = projected_spacing_m(rlat, rlon, str(path))
    else:
        dx, dy = grid_spacing_m(rlat, rlon)
    da.attrs = {"units": "K", "standard_name": "air_temperature", "grid_mapping": gm_name, "source_file": str(path),
                "dx_m": dx, "dy_m": dy}
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
    grid-mapping coordinate carrying its CF attributes (``rotated_pole``, or ``crs`` for a LAEA
    grid), so :func:`rotated_pole_crs`/:func:`grid_mapping_params` work on the result. Singleton extra
    dims (``height``) are dropped. Attrs ``dx_m``/``dy_m`` give the grid spacing.

    Projected EPSG:3035 files (dims ``(time, y, x)``, metres, ``lambert_azimuthal_equal_area`` mapping
    or a ``crs_wkt``/``spatial_ref`` variable) come back on dims ``(time, rlat, rlon)`` holding the
    native y/x values in metres, both ascending (see the module docstring).

    Raises:
        InputError: missing variable or grid mapping, units not K (degC detected by units or by
        values < 150), NaNs, duplicate times, files on different grids, and on projected grids x/y
        not in metres or not regular.
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
        if not same or grid_mapping_params(da) != grid_mapping_params(ref):
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
    out.attrs = {"units": "K", "standard_name": "air_temperature", "grid_mapping": ref.attrs["grid_mapping"],
                 "dx_m": ref.attrs["dx_m"], "dy_m": ref.attrs["dy_m"]}
    return out
