"""Static fields (surface height, land fraction) on the COSMO-CLM EUR-11 rotated-pole grid.

The committed ``data/static/eur11_static.nc`` holds the whole EUR-11 0.11 degree grid
(see ``data/static/README.md``); :func:`extract_region` cuts a box out of it in the format of
``docs/interfaces.md`` section 1, and :func:`load_static` reads either file back, validated.

Also here: the rotated-pole geometry shared by the twin and the data stages (pyproj transforms,
grid spacing in metres, and the rotation between grid-relative and geographic wind components).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.io import atomic_output

EARTH_RADIUS_M = 6_371_229.0  # the sphere COSMO-CLM uses
GRID_MAPPING_NAME = "rotated_latitude_longitude"  # CF name (as in the source files and real CCLM output)
DEFAULT_FACTOR = 8
RLAT_ATTRS = {"standard_name": "grid_latitude", "long_name": "rotated latitude", "units": "degrees", "axis": "Y"}
RLON_ATTRS = {"standard_name": "grid_longitude", "long_name": "rotated longitude", "units": "degrees", "axis": "X"}

# Example 96 x 96 boxes (south-west cell centres, snapped to the EUR-11 lattice). The workflow
# config holds the boxes actually used; these document what the names mean.
REGIONS: dict[str, dict[str, float | int]] = {
    # Italy with the southern Alps, Corsica/Sardinia and the Adriatic; Sicily's southern tip is cut.
    "italy": {"rlat0": -13.585, "rlon0": -9.455, "ny": 96, "nx": 96},
    # The whole Alpine arc with the Po valley, Swiss plateau, southern Germany and the Ligurian Sea.
    "alps": {"rlat0": -9.845, "rlon0": -10.335, "ny": 96, "nx": 96},
    # Iberian peninsula with the Pyrenees, the Strait of Gibraltar and the Rif coast.
    "iberia": {"rlat0": -12.595, "rlon0": -20.675, "ny": 96, "nx": 96},
    # Southern Norway's mountains, Sweden, Denmark and the Baltic/North Sea coasts.
    "scandinavia": {"rlat0": 4.015, "rlon0": -8.025, "ny": 96, "nx": 96},
    # Great Britain (Highlands vs. the flat south-east), eastern Ireland, the North Sea.
    "britain": {"rlat0": 0.825, "rlon0": -15.505, "ny": 96, "nx": 96},
    # Small Italy box (Alps, Po valley, Ligurian and Adriatic coasts) for CI.
    "italy_ci": {"rlat0": -9.405, "rlon0": -8.245, "ny": 64, "nx": 64},
}


# --------------------------------------------------------------------------------------------
# Rotated-pole geometry
# --------------------------------------------------------------------------------------------
def rotated_pole_crs(pole_latitude: float, pole_longitude: float) -> pyproj.CRS:
    """The CF rotated-pole CRS with the given grid north pole (degrees)."""
    return pyproj.CRS.from_cf({
        "grid_mapping_name": GRID_MAPPING_NAME,
        "grid_north_pole_latitude": float(pole_latitude),
        "grid_north_pole_longitude": float(pole_longitude),
    })


def pole_of(ds: xr.Dataset) -> tuple[float, float]:
    """(grid_north_pole_latitude, grid_north_pole_longitude) of a dataset's ``rotated_pole`` variable."""
    if "rotated_pole" not in ds.variables:
        raise InputError(f"{ds.encoding.get('source', 'dataset')}: no 'rotated_pole' grid-mapping variable")
    attrs = ds["rotated_pole"].attrs
    try:
        return float(attrs["grid_north_pole_latitude"]), float(attrs["grid_north_pole_longitude"])
    except KeyError as err:
        raise InputError(f"{ds.encoding.get('source', 'dataset')}: rotated_pole lacks attribute {err}") from None


def rotated_to_geographic(rlon: np.ndarray, rlat: np.ndarray,
                          pole: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Rotated (rlon, rlat) degrees -> geographic (lon, lat) degrees (arrays broadcast)."""
    transformer = pyproj.Transformer.from_crs(rotated_pole_crs(*pole), "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(np.asarray(rlon, dtype=np.float64), np.asarray(rlat, dtype=np.float64))
    return np.asarray(lon), np.asarray(lat)


def geographic_to_rotated(lon: np.ndarray, lat: np.ndarray,
                          pole: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Geographic (lon, lat) degrees -> rotated (rlon, rlat) degrees (arrays broadcast)."""
    transformer = pyproj.Transformer.from_crs("EPSG:4326", rotated_pole_crs(*pole), always_xy=True)
    rlon, rlat = transformer.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.asarray(rlon), np.asarray(rlat)


def grid_spacing_m(rlat: np.ndarray, rlon: np.ndarray) -> tuple[float, float]:
    """Mean (dx, dy) in metres of a regular rotated grid: dx shrinks with cos(rlat), dy is constant."""
    dlat = float(np.mean(np.diff(rlat)))
    dlon = float(np.mean(np.diff(rlon)))
    dy = EARTH_RADIUS_M * np.deg2rad(dlat)
    dx = EARTH_RADIUS_M * np.deg2rad(dlon) * float(np.mean(np.cos(np.deg2rad(rlat))))
    return dx, dy


def grid_north_angle(rlon: np.ndarray, rlat: np.ndarray, pole: tuple[float, float]) -> np.ndarray:
    """Angle (radians, clockwise from true north) of the grid's north direction at each point."""
    step = 1e-3  # degrees; a finite difference is plenty accurate for wind rotation
    lon0, lat0 = rotated_to_geographic(rlon, np.asarray(rlat) - step, pole)
    lon1, lat1 = rotated_to_geographic(rlon, np.asarray(rlat) + step, pole)
    dlon = (lon1 - lon0 + 180.0) % 360.0 - 180.0
    east = dlon * np.cos(np.deg2rad(0.5 * (lat0 + lat1)))
    return np.arctan2(east, lat1 - lat0)


def grid_to_geographic_wind(u_grid: np.ndarray, v_grid: np.ndarray,
                            angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid-relative (along rlon, along rlat) wind -> geographic (eastward, northward) wind.

    ``angle`` from :func:`grid_north_angle` at the same points.
    """
    cos, sin = np.cos(angle), np.sin(angle)
    return u_grid * cos + v_grid * sin, -u_grid * sin + v_grid * cos


def geographic_to_grid_wind(u_east: np.ndarray, v_north: np.ndarray,
                            angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`grid_to_geographic_wind` (what the PDE loss needs from ERA5 u10/v10)."""
    cos, sin = np.cos(angle), np.sin(angle)
    return u_east * cos - v_north * sin, u_east * sin + v_north * cos


# --------------------------------------------------------------------------------------------
# Reading and cutting
# --------------------------------------------------------------------------------------------
def load_static(path: str | Path) -> xr.Dataset:
    """Open a static file (whole EUR-11 or a region) and return it validated.

    Returns ``HSURF`` (m) and ``FR_LAND`` (0..1) as float32 on (rlat, rlon), 2-D ``lat``/``lon``
    (recomputed from the rotated pole when missing), the ``rotated_pole`` variable, and attrs
    ``dx_m``/``dy_m`` (computed when missing). Raises :class:`InputError` on missing variables,
    wrong units, NaNs or a land fraction outside [0, 1] (e.g. given in percent).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: static file not found")
    with xr.open_dataset(path) as opened:
        ds = opened.load()
    for name in ("HSURF", "FR_LAND", "rlat", "rlon"):
        if name not in ds.variables:
            raise InputError(f"{path}: variable '{name}' missing")
    pole = pole_of(ds)
    if ds["HSURF"].attrs.get("units") not in ("m", "meters", "metre", "metres"):
        raise InputError(f"{path}: HSURF units {ds['HSURF'].attrs.get('units')!r}, expected 'm'")
    hsurf = ds["HSURF"].squeeze(drop=True).transpose("rlat", "rlon")
    fr_land = ds["FR_LAND"].squeeze(drop=True).transpose("rlat", "rlon")
    for name, field in (("HSURF", hsurf), ("FR_LAND", fr_land)):
        if bool(np.isnan(field).any()):
            raise InputError(f"{path}: {name} contains NaNs")
    if float(fr_land.min()) < 0.0 or float(fr_land.max()) > 1.0 + 1e-6:
        raise InputError(f"{path}: FR_LAND outside [0, 1] (max {float(fr_land.max()):.3g}; percent?)")
    if float(hsurf.min()) < -500.0 or float(hsurf.max()) > 9000.0:
        raise InputError(f"{path}: HSURF outside [-500, 9000] m; wrong units?")
    rlat = ds["rlat"].values.astype(np.float64)
    rlon = ds["rlon"].values.astype(np.float64)
    if "lat" in ds.variables and "lon" in ds.variables:
        lat, lon = ds["lat"].values.astype(np.float64), ds["lon"].values.astype(np.float64)
    else:
        rlon2, rlat2 = np.meshgrid(rlon, rlat)
        lon, lat = rotated_to_geographic(rlon2, rlat2, pole)
    dx_m, dy_m = grid_spacing_m(rlat, rlon)
    out = _static_dataset(rlat, rlon, hsurf.values, fr_land.values, lat, lon, pole)
    out.attrs.update({k: v for k, v in ds.attrs.items() if k not in ("dx_m", "dy_m")})
    out.attrs["dx_m"] = float(ds.attrs.get("dx_m", dx_m))
    out.attrs["dy_m"] = float(ds.attrs.get("dy_m", dy_m))
    return out


def _static_dataset(rlat: np.ndarray, rlon: np.ndarray, hsurf: np.ndarray, fr_land: np.ndarray,
                    lat: np.ndarray, lon: np.ndarray, pole: tuple[float, float]) -> xr.Dataset:
    """Assemble the CF static dataset of interfaces section 1 (float32 fields)."""
    dims = ("rlat", "rlon")
    return xr.Dataset(
        {
            "HSURF": (dims, np.asarray(hsurf, dtype=np.float32),
                      {"standard_name": "surface_altitude", "long_name": "surface height", "units": "m",
                       "grid_mapping": "rotated_pole", "coordinates": "lon lat"}),
            "FR_LAND": (dims, np.asarray(fr_land, dtype=np.float32),
                        {"standard_name": "land_area_fraction", "long_name": "land-sea fraction", "units": "1",
                         "grid_mapping": "rotated_pole", "coordinates": "lon lat"}),
            "rotated_pole": ((), np.int32(0), rotated_pole_attrs(pole)),
        },
        coords={
            "rlat": ("rlat", np.asarray(rlat, dtype=np.float64), dict(RLAT_ATTRS)),
            "rlon": ("rlon", np.asarray(rlon, dtype=np.float64), dict(RLON_ATTRS)),
            "lat": (dims, np.asarray(lat, dtype=np.float64),
                    {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}),
            "lon": (dims, np.asarray(lon, dtype=np.float64),
                    {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}),
        },
    )


def rotated_pole_attrs(pole: tuple[float, float]) -> dict[str, Any]:
    """CF attributes of the ``rotated_pole`` grid-mapping variable."""
    return {
        "long_name": "coordinates of the rotated North Pole",
        "grid_mapping_name": GRID_MAPPING_NAME,
        "grid_north_pole_latitude": float(pole[0]),
        "grid_north_pole_longitude": float(pole[1]),
    }


def _validated_region(region: Mapping[str, Any]) -> tuple[float, float, int, int, int]:
    """(rlat0, rlon0, ny, nx, factor) from a region dict, or InputError naming the bad key."""
    missing = [key for key in ("rlat0", "rlon0", "ny", "nx") if key not in region]
    if missing:
        raise InputError(f"region {dict(region)}: missing key(s) {missing}")
    unknown = set(region) - {"rlat0", "rlon0", "ny", "nx", "factor"}
    if unknown:
        raise InputError(f"region {dict(region)}: unknown key(s) {sorted(unknown)}")
    factor = int(region.get("factor", DEFAULT_FACTOR))
    ny, nx = int(region["ny"]), int(region["nx"])
    for key, size in (("ny", ny), ("nx", nx)):
        if size != region[key] or size <= 0 or size % factor:
            raise InputError(f"region: '{key}'={region[key]} must be a positive multiple of factor {factor}")
    return float(region["rlat0"]), float(region["rlon0"]), ny, nx, factor


def _start_index(axis: np.ndarray, value: float, size: int, key: str) -> int:
    """Index of the cell whose centre is nearest ``value``; the box must fit in the axis."""
    step = float(np.mean(np.diff(axis)))
    index = int(np.argmin(np.abs(axis - value)))
    if abs(axis[index] - value) > 0.5 * step + 1e-9:
        raise InputError(f"region: '{key}'={value} lies outside the grid ({axis[0]:.3f} .. {axis[-1]:.3f})")
    if index + size > axis.size:
        raise InputError(f"region: {size} cells from '{key}'={value} run past the grid edge {axis[-1]:.3f}")
    return index


def region_static(source: str | Path, region: Mapping[str, Any]) -> xr.Dataset:
    """The static fields of ``region`` (interfaces section 1) cut out of ``source``, in memory.

    ``region`` = ``{"rlat0", "rlon0", "ny", "nx"}`` (+ optional ``"factor"``, default 8): the
    south-west cell centre in rotated degrees (snapped to the nearest cell centre) and the size in
    cells. ``lat``/``lon`` are recomputed exactly from the rotated pole (the committed file stores
    them packed to 1e-5 degrees).
    """
    rlat0, rlon0, ny, nx, _ = _validated_region(region)
    full = load_static(source)
    i0 = _start_index(full["rlat"].values, rlat0, ny, "rlat0")
    j0 = _start_index(full["rlon"].values, rlon0, nx, "rlon0")
    box = full.isel(rlat=slice(i0, i0 + ny), rlon=slice(j0, j0 + nx))
    rlat, rlon = box["rlat"].values, box["rlon"].values
    pole = pole_of(full)
    lon, lat = rotated_to_geographic(*np.meshgrid(rlon, rlat), pole)
    ds = _static_dataset(rlat, rlon, box["HSURF"].values, box["FR_LAND"].values, lat, lon, pole)
    dx_m, dy_m = grid_spacing_m(rlat, rlon)
    region_text = f"rlat0={rlat[0]:.3f} rlon0={rlon[0]:.3f} ny={ny} nx={nx}"
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": "COSMO-CLM EUR-11 static fields of one region",
        "source": f"{Path(source).name} (libncarg-data, BSD-4-clause, UCAR)",
        # no time stamp: the same region gives the same bytes (reruns stay no-ops)
        "history": f"pdeldm.data.static.extract_region: {region_text} cut out of {Path(source).name}",
        "region": region_text,
        "dx_m": dx_m,
        "dy_m": dy_m,
    }
    return ds


def extract_region(source: str | Path, region: Mapping[str, Any], out: str | Path) -> None:
    """Write the static fields of ``region`` cut out of ``source`` (see :func:`region_static`)."""
    write_static(region_static(source, region), out)


def write_static(ds: xr.Dataset, out: str | Path) -> None:
    """Write a static dataset as netCDF4 (atomically)."""
    encoding: dict[str, dict[str, Any]] = {name: {"_FillValue": None} for name in ds.variables}
    for name in ("HSURF", "FR_LAND", "lat", "lon"):
        encoding[name].update({"zlib": True, "complevel": 4})
    with atomic_output(out) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
