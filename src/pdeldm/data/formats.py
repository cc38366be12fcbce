"""Writers for the on-disk formats of the two real data sources (``docs/interfaces.md`` section 2).

* ERA5 as the new CDS (2024+) delivers netCDF: one file per month, ``valid_time`` (int64 seconds
  since 1970), ``latitude`` descending, ``longitude``, scalar coord ``number``, per-time string
  coord ``expver``, float32 ``t2m``/``u10``/``v10`` with the cfgrib-style attributes the CDS writes
  (``standard_name="unknown"``, wind units ``"m s**-1"``, a few ``GRIB_*`` keys).
* COSMO-CLM CF output: ``T_2M(time, rlat, rlon)`` float32 K on the rotated grid, with the
  ``rotated_pole`` grid mapping and 2-D ``lat``/``lon``.

The twin and the CDS-protocol test server build their files with these functions, so that every
reader downstream sees the same bytes it would see from the real sources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.data.static import RLAT_ATTRS, RLON_ATTRS, pole_of, rotated_pole_attrs
from pdeldm.errors import InputError
from pdeldm.io import atomic_output

ERA5_VARIABLES: dict[str, dict[str, Any]] = {
    "t2m": {"long_name": "2 metre temperature", "units": "K", "standard_name": "unknown",
            "GRIB_paramId": 167, "GRIB_shortName": "2t", "GRIB_units": "K", "GRIB_name": "2 metre temperature"},
    "u10": {"long_name": "10 metre U wind component", "units": "m s**-1", "standard_name": "unknown",
            "GRIB_paramId": 165, "GRIB_shortName": "10u", "GRIB_units": "m s**-1",
            "GRIB_name": "10 metre U wind component"},
    "v10": {"long_name": "10 metre V wind component", "units": "m s**-1", "standard_name": "unknown",
            "GRIB_paramId": 166, "GRIB_shortName": "10v", "GRIB_units": "m s**-1",
            "GRIB_name": "10 metre V wind component"},
}
ERA5_GLOBAL_ATTRS: dict[str, Any] = {
    "GRIB_centre": "ecmf",
    "GRIB_centreDescription": "European Centre for Medium-Range Weather Forecasts",
    "GRIB_subCentre": 0,
    "Conventions": "CF-1.7",
    "institution": "European Centre for Medium-Range Weather Forecasts",
}
COSMO_TIME_UNITS = "seconds since 1949-12-01 00:00:00"


def make_era5_dataset(times: Sequence[Any] | pd.DatetimeIndex, latitude: np.ndarray, longitude: np.ndarray,
                      fields: Mapping[str, np.ndarray], history: str = "") -> xr.Dataset:
    """Assemble one ERA5 month in the new-CDS netCDF layout.

    ``fields`` maps short names (``t2m``, ``u10``, ``v10``) to arrays (time, latitude, longitude)
    ordered like ``latitude``/``longitude`` as given; latitude is flipped to descending here.
    """
    valid_time = pd.DatetimeIndex(times)
    latitude = np.asarray(latitude, dtype=np.float64)
    longitude = np.asarray(longitude, dtype=np.float64)
    order = np.argsort(-latitude, kind="stable")  # the CDS stores latitude north -> south
    data_vars = {}
    for name, values in fields.items():
        if name not in ERA5_VARIABLES:
            raise InputError(f"make_era5_dataset: unknown ERA5 variable '{name}' (known: {sorted(ERA5_VARIABLES)})")
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (valid_time.size, latitude.size, longitude.size):
            raise InputError(f"make_era5_dataset: '{name}' has shape {values.shape}, expected "
                             f"{(valid_time.size, latitude.size, longitude.size)}")
        data_vars[name] = (("valid_time", "latitude", "longitude"), values[:, order, :], dict(ERA5_VARIABLES[name]))
    ds = xr.Dataset(
        data_vars,
        coords={
            "number": ((), np.int64(0), {"long_name": "ensemble member numerical id", "units": "1",
                                         "standard_name": "realization"}),
            "valid_time": ("valid_time", valid_time.values.astype("datetime64[ns]"),
                           {"long_name": "time", "standard_name": "time"}),
            "latitude": ("latitude", latitude[order], {"units": "degrees_north", "standard_name": "latitude",
                                                      "long_name": "latitude", "stored_direction": "decreasing"}),
            "longitude": ("longitude", longitude, {"units": "degrees_east", "standard_name": "longitude",
                                                  "long_name": "longitude"}),
            "expver": ("valid_time", np.full(valid_time.size, "0001", dtype=object),
                       {"long_name": "Experiment version"}),
        },
        attrs=dict(ERA5_GLOBAL_ATTRS),
    )
    if history:
        ds.attrs["history"] = history
    return ds


def write_era5_month(ds: xr.Dataset, path: str | Path) -> None:
    """Write a dataset from :func:`make_era5_dataset` (atomically, netCDF4, zlib).

    Also accepts the same layout with other variables or a ``pressure_level`` axis.
    """
    ds = ds.copy()  # the encodings set below must not leak into the caller's dataset
    encoding: dict[str, dict[str, Any]] = {
        "valid_time": {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"},
        "latitude": {"_FillValue": np.nan},
        "longitude": {"_FillValue": np.nan},
        "number": {"_FillValue": None},
        "expver": {"dtype": str},
    }
    encoding = {name: enc for name, enc in encoding.items() if name in ds.variables}
    # the attribute cfgrib writes, e.g. "number valid_time latitude longitude expver"
    coordinate_order = ("number", "valid_time", "pressure_level", "latitude", "longitude", "expver")
    for name in ds.data_vars:
        encoding[name] = {"_FillValue": np.float32(np.nan), "zlib": True, "complevel": 1, "shuffle": True}
        ds[name].encoding["coordinates"] = " ".join(c for c in coordinate_order if c in ds.variables)
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


def make_cosmo_dataset(da: xr.DataArray, static: xr.Dataset, history: str = "") -> xr.Dataset:
    """Assemble one COSMO-CLM month: ``T_2M(time, rlat, rlon)`` K with the rotated-pole grid of ``static``.

    ``da`` has dims (time, rlat, rlon) and the same rlat/rlon as ``static`` (a region file of
    :func:`pdeldm.data.static.extract_region`, or anything with ``lat``, ``lon``, ``rotated_pole``).
    """
    if tuple(da.dims) != ("time", "rlat", "rlon"):
        raise InputError(f"make_cosmo_dataset: dims {da.dims}, expected ('time', 'rlat', 'rlon')")
    for axis in ("rlat", "rlon"):
        if da.sizes[axis] != static.sizes[axis] or not np.allclose(da[axis].values, static[axis].values, atol=1e-6):
            raise InputError(f"make_cosmo_dataset: '{axis}' of the data differs from the static grid")
    dims = ("rlat", "rlon")
    ds = xr.Dataset(
        {
            "T_2M": (("time", "rlat", "rlon"), np.asarray(da.values, dtype=np.float32),
                     {"standard_name": "air_temperature", "long_name": "2m temperature", "units": "K",
                      "grid_mapping": "rotated_pole"}),
            "rotated_pole": ((), np.int32(0), rotated_pole_attrs(pole_of(static))),
        },
        coords={
            "time": ("time", pd.DatetimeIndex(da["time"].values).values.astype("datetime64[ns]"),
                     {"standard_name": "time", "long_name": "time", "axis": "T"}),
            "rlat": ("rlat", static["rlat"].values.astype(np.float64), dict(RLAT_ATTRS)),
            "rlon": ("rlon", static["rlon"].values.astype(np.float64), dict(RLON_ATTRS)),
            "lat": (dims, static["lat"].values.astype(np.float64),
                    {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"}),
            "lon": (dims, static["lon"].values.astype(np.float64),
                    {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.4", "title": "COSMO-CLM 2-m temperature, hourly instantaneous",
               "institution": "CLM-Community"},
    )
    if history:
        ds.attrs["history"] = history
    return ds


def write_cosmo_month(da: xr.DataArray, static: xr.Dataset, path: str | Path, history: str = "") -> None:
    """Write one COSMO-CLM-format month (interfaces section 2) atomically."""
    ds = make_cosmo_dataset(da, static, history)
    encoding: dict[str, dict[str, Any]] = {name: {"_FillValue": None} for name in ds.variables}
    encoding["time"].update({"units": COSMO_TIME_UNITS, "calendar": "proleptic_gregorian", "dtype": "float64"})
    encoding["T_2M"].update({"_FillValue": np.float32(-1e20), "zlib": True, "complevel": 1, "shuffle": True})
    # The exact attribute of CCLM files; xarray would otherwise write its own order ("lat lon").
    ds["T_2M"].encoding["coordinates"] = "lon lat"
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
