"""Tiny synthetic files in the exact raw formats of docs/interfaces.md §2 (and the §1 static file).

Independent of ``pdeldm.data.twin``/``formats``: the point is to test the readers against the
format contract, not against another module's writer. The factories are reached through the
``synth`` fixture; ``synthetic_inputs``/``built_store`` are built once per session because the
store build is the expensive part.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr

POLE = {"grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0}
R_EARTH = 6371229.0


@dataclass
class Grid:
    rlat: np.ndarray
    rlon: np.ndarray
    lat: np.ndarray
    lon: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rlat.size, self.rlon.size)


def make_grid(ny: int = 32, nx: int = 24, rlat0: float = -4.0, rlon0: float = -6.0, d: float = 0.11) -> Grid:
    """A EUR-11-like rotated grid (south-west cell centre rlat0/rlon0)."""
    rlat = rlat0 + d * np.arange(ny)
    rlon = rlon0 + d * np.arange(nx)
    crs = pyproj.CRS.from_cf({"grid_mapping_name": "rotated_latitude_longitude", **POLE})
    tr = pyproj.Transformer.from_crs(crs, pyproj.CRS("EPSG:4326"), always_xy=True)
    rlon2, rlat2 = np.meshgrid(rlon, rlat)
    lon, lat = tr.transform(rlon2, rlat2)
    return Grid(rlat, rlon, lat, lon)


def month_times(year: int, month: int, freq: str = "h") -> pd.DatetimeIndex:
    days = calendar.monthrange(year, month)[1]
    return pd.date_range(f"{year}-{month:02d}-01", periods=days * 24, freq=freq)


def truth_t2m(lat: np.ndarray, lon: np.ndarray, times: pd.DatetimeIndex) -> np.ndarray:
    """Smooth field (K) with a diurnal cycle and a warming trend (so train != all-time stats)."""
    hours = ((times - pd.Timestamp("2001-01-01")) / pd.Timedelta("1h")).to_numpy()[:, None, None]
    lat, lon = np.asarray(lat)[None], np.asarray(lon)[None]
    return (
        288.0 - 0.6 * (lat - 45.0) + 0.3 * (lon - 10.0)
        + 4.0 * np.sin(2 * np.pi * (hours % 24) / 24 + np.deg2rad(lon))
        + 0.1 * hours / 24.0
    )


def era5_axes(grid: Grid, step: float = 0.25, margin: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """ERA5-like 1-D axes on the global 0.25 deg lattice covering ``grid`` with a margin."""
    lat0 = np.floor((grid.lat.min() - margin) / step) * step
    lat1 = np.ceil((grid.lat.max() + margin) / step) * step
    lon0 = np.floor((grid.lon.min() - margin) / step) * step
    lon1 = np.ceil((grid.lon.max() + margin) / step) * step
    return np.arange(lat0, lat1 + step / 2, step), np.arange(lon0, lon1 + step / 2, step)


def era5_dataset(
    times: pd.DatetimeIndex,
    lat: np.ndarray,
    lon: np.ndarray,
    variables: tuple[str, ...] = ("t2m", "u10", "v10"),
    t_offset: float = 0.0,
    lon360: bool = False,
) -> xr.Dataset:
    """A dataset laid out as the new CDS writes it (interfaces §2): valid_time, descending latitude,
    scalar ``number``, per-time ``expver`` strings, CF attrs."""
    lat_desc = np.sort(lat)[::-1]
    lon_sorted = np.sort(lon)
    lat2, lon2 = np.meshgrid(lat_desc, lon_sorted, indexing="ij")
    fields = {
        "t2m": truth_t2m(lat2, lon2, times) + t_offset,
        "u10": 5.0 + 0.2 * (lat2 - 45.0) + np.sin(2 * np.pi * times.hour.to_numpy()[:, None, None] / 24),
        "v10": -2.0 + 0.1 * (lon2 - 10.0) + 0.1 * np.cos(2 * np.pi * times.hour.to_numpy()[:, None, None] / 24),
        "d2m": truth_t2m(lat2, lon2, times) - 5.0 + t_offset,
        "sst": truth_t2m(lat2, lon2, times) + 2.0,
    }
    attrs = {
        "t2m": {"units": "K", "long_name": "2 metre temperature", "standard_name": "unknown"},
        "d2m": {"units": "K", "long_name": "2 metre dewpoint temperature", "standard_name": "unknown"},
        "sst": {"units": "K", "long_name": "Sea surface temperature", "standard_name": "unknown"},
        "u10": {"units": "m s**-1", "long_name": "10 metre U wind component", "standard_name": "unknown"},
        "v10": {"units": "m s**-1", "long_name": "10 metre V wind component", "standard_name": "unknown"},
    }
    lon_out = np.where(lon_sorted < 0, lon_sorted + 360.0, lon_sorted) if lon360 else lon_sorted
    ds = xr.Dataset(
        {v: (("valid_time", "latitude", "longitude"), fields[v].astype(np.float32), attrs[v]) for v in variables},
        coords={
            "number": np.int64(0),
            "valid_time": times.values,
            "latitude": ("latitude", lat_desc, {"units": "degrees_north", "standard_name": "latitude"}),
            "longitude": ("longitude", lon_out, {"units": "degrees_east", "standard_name": "longitude"}),
            "expver": ("valid_time", np.array(["0001"] * len(times), dtype=object)),
        },
        attrs={"Conventions": "CF-1.7", "institution": "European Centre for Medium-Range Weather Forecasts"},
    )
    if lon360:
        ds = ds.sortby("longitude")
    return ds


def write_era5(path: Path, ds: xr.Dataset) -> Path:
    enc = {"valid_time": {"units": "seconds since 1970-01-01", "dtype": "int64", "calendar": "proleptic_gregorian"}}
    ds.to_netcdf(path, encoding=enc)
    return path


def cosmo_dataset(
    times: pd.DatetimeIndex,
    grid: Grid,
    field: np.ndarray | None = None,
    variable: str = "T_2M",
    gm_name: str = "rotated_latitude_longitude",
    with_latlon: bool = True,
    units: str = "K",
) -> xr.Dataset:
    """COSMO-CLM monthly file layout (interfaces §2)."""
    if field is None:
        field = truth_t2m(grid.lat, grid.lon, times) + 0.5 * np.sin(grid.rlat[None, :, None] * 7)
    ds = xr.Dataset(
        {
            variable: (("time", "rlat", "rlon"), field.astype(np.float32),
                       {"standard_name": "air_temperature", "units": units, "grid_mapping": "rotated_pole"}),
            "rotated_pole": ((), np.int32(0), {"grid_mapping_name": gm_name, **POLE}),
        },
        coords={
            "time": times.values,
            "rlat": ("rlat", grid.rlat, {"standard_name": "grid_latitude", "units": "degrees", "axis": "Y"}),
            "rlon": ("rlon", grid.rlon, {"standard_name": "grid_longitude", "units": "degrees", "axis": "X"}),
        },
        attrs={"Conventions": "CF-1.4"},
    )
    if with_latlon:
        ds["lat"] = (("rlat", "rlon"), grid.lat, {"standard_name": "latitude", "units": "degrees_north"})
        ds["lon"] = (("rlat", "rlon"), grid.lon, {"standard_name": "longitude", "units": "degrees_east"})
        ds = ds.set_coords(["lat", "lon"])
        ds[variable].encoding["coordinates"] = "lon lat"  # xarray writes the CF attribute from this
    return ds


def write_cosmo(path: Path, ds: xr.Dataset) -> Path:
    enc = {"time": {"units": "hours since 1949-12-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "float64"}}
    ds.to_netcdf(path, encoding=enc)
    return path


def static_dataset(grid: Grid) -> xr.Dataset:
    """Region static file (interfaces §1): HSURF, FR_LAND 0..1, lat/lon, rotated_pole, dx_m/dy_m."""
    rl, rb = np.meshgrid(grid.rlon, grid.rlat)
    hsurf = np.clip(800.0 * np.exp(-((rl - grid.rlon.mean()) ** 2 + (rb - grid.rlat.mean()) ** 2) / 0.5) - 50.0, 0.0, None)
    fr_land = np.clip(0.5 + (rl - grid.rlon.mean()) * 2.0, 0.0, 1.0)
    dy = R_EARTH * np.deg2rad(np.mean(np.diff(grid.rlat)))
    dx = R_EARTH * np.mean(np.cos(np.deg2rad(grid.rlat))) * np.deg2rad(np.mean(np.diff(grid.rlon)))
    return xr.Dataset(
        {
            "HSURF": (("rlat", "rlon"), hsurf.astype(np.float32), {"units": "m", "grid_mapping": "rotated_pole"}),
            "FR_LAND": (("rlat", "rlon"), fr_land.astype(np.float32), {"units": "1", "grid_mapping": "rotated_pole"}),
            "lat": (("rlat", "rlon"), grid.lat, {"units": "degrees_north"}),
            "lon": (("rlat", "rlon"), grid.lon, {"units": "degrees_east"}),
            "rotated_pole": ((), np.int32(0), {"grid_mapping_name": "rotated_latitude_longitude", **POLE}),
        },
        coords={
            "rlat": ("rlat", grid.rlat, {"standard_name": "grid_latitude", "units": "degrees"}),
            "rlon": ("rlon", grid.rlon, {"standard_name": "grid_longitude", "units": "degrees"}),
        },
        attrs={"dx_m": float(dx), "dy_m": float(dy)},
    )


# --- the study's projected target grid: VHR-REA_IT remapped to EPSG:3035 (ETRS89-LAEA), 2 km ---
LAEA_CRS = pyproj.CRS("EPSG:3035")


def make_laea_grid(ny: int = 48, nx: int = 40, y0: float = 2_437_000.0, x0: float = 4_085_000.0,
                   d: float = 2000.0) -> Grid:
    """An EPSG:3035 grid (``rlat`` = y, ``rlon`` = x in metres, ascending; first cell centre y0/x0).

    The default starts at ~45 N, 7 E (western Alps, Po valley to the east); the study's domain is 672 x 576 cells.
    """
    y = y0 + d * np.arange(ny)
    x = x0 + d * np.arange(nx)
    tr = pyproj.Transformer.from_crs(LAEA_CRS, pyproj.CRS("EPSG:4326"), always_xy=True)
    lon, lat = tr.transform(*np.meshgrid(x, y))
    return Grid(y, x, lat, lon)


def cosmo_laea_dataset(
    times: pd.DatetimeIndex,
    grid: Grid,
    field: np.ndarray | None = None,
    variable: str = "T_2M",
    mapping: str = "cf",
    y_descending: bool = True,
    with_latlon: bool = False,
    units: str = "K",
    xy_units: str = "m",
) -> xr.Dataset:
    """A 2-km target file on the EPSG:3035 grid: ``T_2M(time, y, x)``, x/y in metres.

    ``mapping="cf"``: a ``lambert_azimuthal_equal_area`` variable with the CF projection attributes
    (as CDO writes it); ``mapping="wkt"``: a GDAL-style ``crs`` variable carrying only ``crs_wkt`` and
    ``spatial_ref``. ``y_descending`` stores rows north->south (GDAL's raster order).
    ``field`` is given south->north like ``grid``.
    """
    if field is None:
        field = truth_t2m(grid.lat, grid.lon, times)
    if mapping == "cf":
        gm_name = "lambert_azimuthal_equal_area"
        cf = LAEA_CRS.to_cf()
        gm_attrs = {k: cf[k] for k in ("grid_mapping_name", "latitude_of_projection_origin",
                                       "longitude_of_projection_origin", "false_easting", "false_northing",
                                       "semi_major_axis", "inverse_flattening")}
    else:
        gm_name = "crs"
        gm_attrs = {"crs_wkt": LAEA_CRS.to_wkt(), "spatial_ref": LAEA_CRS.to_wkt()}
    ds = xr.Dataset(
        {
            variable: (("time", "y", "x"), field.astype(np.float32),
                       {"standard_name": "air_temperature", "units": units, "grid_mapping": gm_name}),
            gm_name: ((), np.int32(0), gm_attrs),
        },
        coords={
            "time": times.values,
            "y": ("y", grid.rlat, {"standard_name": "projection_y_coordinate", "units": xy_units, "axis": "Y"}),
            "x": ("x", grid.rlon, {"standard_name": "projection_x_coordinate", "units": xy_units, "axis": "X"}),
        },
        attrs={"Conventions": "CF-1.7"},
    )
    if with_latlon:
        ds = ds.assign_coords(lat=(("y", "x"), grid.lat, {"standard_name": "latitude", "units": "degrees_north"}),
                              lon=(("y", "x"), grid.lon, {"standard_name": "longitude", "units": "degrees_east"}))
        ds[variable].encoding["coordinates"] = "lon lat"
    return ds.isel(y=slice(None, None, -1)) if y_descending else ds


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """The factories above, for tests that need custom files."""
    return SimpleNamespace(
        POLE=POLE, make_grid=make_grid, month_times=month_times, truth_t2m=truth_t2m, era5_axes=era5_axes,
        era5_dataset=era5_dataset, write_era5=write_era5, cosmo_dataset=cosmo_dataset, write_cosmo=write_cosmo,
        static_dataset=static_dataset, Grid=Grid, LAEA_CRS=LAEA_CRS, make_laea_grid=make_laea_grid,
        cosmo_laea_dataset=cosmo_laea_dataset,
    )


STORE_CFG = {
    "factor": 8,
    "predictors": ["t2m", "u10", "v10"],
    "regrid_method": "conservative",
    "split": {"train": ["2001-01-01", "2001-02-09"], "val": ["2001-02-10", "2001-02-18"],
              "test": ["2001-02-19", "2001-02-28"]},
}


def write_inputs(root: Path, grid: Grid, months: list[tuple[int, int]]) -> SimpleNamespace:
    root.mkdir(parents=True, exist_ok=True)
    lat, lon = era5_axes(grid)
    era5, cosmo = [], []
    for y, m in months:
        t = month_times(y, m)
        era5.append(write_era5(root / f"era5_{y}_{m:02d}.nc", era5_dataset(t, lat, lon)))
        cosmo.append(write_cosmo(root / f"T_2M_{y}{m:02d}.nc", cosmo_dataset(t, grid)))
    static = root / "static.nc"
    static_dataset(grid).to_netcdf(static)
    return SimpleNamespace(era5=era5, cosmo=cosmo, static=static, grid=grid, root=root)


@pytest.fixture(scope="session")
def synthetic_inputs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Two months (Jan-Feb 2001) of hourly ERA5 + COSMO files on a 32x24 fine grid, and the static file."""
    return write_inputs(tmp_path_factory.mktemp("raw"), make_grid(32, 24), [(2001, 1), (2001, 2)])


@pytest.fixture(scope="session")
def built_store(synthetic_inputs: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The store built once from ``synthetic_inputs`` with :data:`STORE_CFG`."""
    from pdeldm.data.store import build_store

    out = tmp_path_factory.mktemp("store")
    store, meta = out / "store.zarr", out / "meta.json"
    build_store(synthetic_inputs.era5, synthetic_inputs.cosmo, synthetic_inputs.static, store, meta, STORE_CFG)
    return SimpleNamespace(store=store, meta=meta, inputs=synthetic_inputs, cfg=STORE_CFG)
