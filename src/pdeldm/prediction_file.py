"""The netCDF file of downscaled 2-m temperature (workflow predictions and ``pdeldm downscale``).

``T_2M(<ensemble>, time, rlat, rlon)`` float32 K, CF-1.8: ``time`` unlimited in hours since 1970,
``rlat``/``rlon`` with the store's units, the grid mapping (rotated pole, or LAEA with
``crs_wkt``) named by ``T_2M:grid_mapping``, optional 2-D ``lat``/``lon``, and an ensemble
coordinate ``realization`` (``standard_name = realization``, CF section 4.5: the members of an
ensemble), in the workflow's predictions (docs/interfaces.md section 5) and in ``pdeldm downscale``
output alike. Data are written slice by slice, so memory does not grow with the period;
:func:`open_prediction` reads a file back.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pdeldm.data.cosmo import GRID_MAPPING_VARIABLE, LAEA_GRID_MAPPING_NAME

TIME_UNITS = "hours since 1970-01-01 00:00:00"
#: The ensemble dimension (and coordinate) of every prediction file.
ENSEMBLE_DIM = "realization"
PREDICTION_DIMS = (ENSEMBLE_DIM, "time", "rlat", "rlon")


def history_line(what: str) -> str:
    """A CF ``history`` entry: UTC time stamp, who, and what made the file."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown user"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} {user}: {what}"


def create_prediction_file(path: str | os.PathLike[str], coords: Mapping[str, Any], members: int, model: str,
                           attrs: Mapping[str, Any], ensemble_dim: str = ENSEMBLE_DIM,
                           latlon: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
    """Open a new netCDF file with coordinates and an empty ``T_2M``; the caller fills and closes it.

    ``coords``: ``rlat``, ``rlon`` (1-D), ``attrs`` (their attributes), ``grid_mapping`` (CF
    attributes), as :func:`pdeldm.predict.store_coords` returns them. ``latlon``: 2-D latitude and
    longitude (degrees) of the cells, written as auxiliary coordinates.
    """
    import netCDF4

    nc = netCDF4.Dataset(Path(path), "w", format="NETCDF4")
    ny, nx = len(coords["rlat"]), len(coords["rlon"])
    nc.createDimension(ensemble_dim, members)
    nc.createDimension("time", None)
    nc.createDimension("rlat", ny)
    nc.createDimension("rlon", nx)
    v = nc.createVariable(ensemble_dim, "i4", (ensemble_dim,))
    v[:] = np.arange(members)
    v.standard_name = "realization"
    v.long_name = "ensemble member"
    v.units = "1"
    v = nc.createVariable("time", "f8", ("time",))
    v.units = TIME_UNITS
    v.calendar = "proleptic_gregorian"
    v.standard_name = "time"
    v.axis = "T"
    for name, std, axis in (("rlat", "grid_latitude", "Y"), ("rlon", "grid_longitude", "X")):
        v = nc.createVariable(name, "f8", (name,))
        v[:] = coords[name]
        coord_attrs = {"standard_name": std, "units": "degrees", "axis": axis,
                       **coords.get("attrs", {}).get(name, {})}
        for key, value in coord_attrs.items():
            v.setncattr(key, value)
    auxiliary = []
    if latlon is not None:
        for name, values, std, units in (("lat", latlon[0], "latitude", "degrees_north"),
                                         ("lon", latlon[1], "longitude", "degrees_east")):
            v = nc.createVariable(name, "f8", ("rlat", "rlon"))
            v[:] = np.asarray(values, dtype=np.float64)
            v.standard_name, v.long_name, v.units = std, std, units
            auxiliary.append(name)
    mapping = dict(coords.get("grid_mapping") or {})
    mapping_var = None
    if "grid_mapping_name" in mapping:
        kind = "laea" if mapping["grid_mapping_name"] == LAEA_GRID_MAPPING_NAME else "rotated"
        mapping_var = GRID_MAPPING_VARIABLE[kind]
        gm = nc.createVariable(mapping_var, "i4", ())
        for k, val in mapping.items():
            gm.setncattr(k, val)
    t2m = nc.createVariable("T_2M", "f4", (ensemble_dim, "time", "rlat", "rlon"), zlib=True, complevel=1,
                            chunksizes=(1, 1, ny, nx))
    t2m.units = "K"
    t2m.standard_name = "air_temperature"
    t2m.long_name = f"2-m temperature downscaled by {model}"
    if mapping_var is not None:
        t2m.grid_mapping = mapping_var
    if auxiliary:
        t2m.coordinates = " ".join(reversed(auxiliary))  # "lon lat", as COSMO-CLM writes it
    for k, val in attrs.items():
        nc.setncattr(k, val)
    return nc


def write_slice(nc: Any, pos: int, times: np.ndarray, kelvin: np.ndarray) -> int:
    """Write ``kelvin`` ``[members, n, rlat, rlon]`` at time positions ``pos .. pos+n``; returns the next position."""
    hours = (np.asarray(times, dtype="datetime64[ns]") - np.datetime64("1970-01-01T00:00:00", "ns")) / np.timedelta64(1, "h")
    n = len(hours)
    nc["time"][pos:pos + n] = hours
    nc["T_2M"][:, pos:pos + n] = kelvin
    return pos + n


def open_prediction(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """``(dataset, T_2M)`` of a prediction file, ``T_2M`` lazily ordered as :data:`PREDICTION_DIMS`.

    Raises :class:`pdeldm.errors.InputError` naming the file when ``T_2M`` is missing or has other
    dimensions (e.g. the ``member`` dimension of files written before ``realization``). The caller
    closes the dataset.
    """
    import xarray as xr

    from pdeldm.errors import InputError

    path = Path(path)
    ds = xr.open_dataset(path)
    if "T_2M" not in ds:
        ds.close()
        raise InputError(f"{path}: no variable T_2M (docs/interfaces.md section 5)")
    pred = ds["T_2M"]
    if set(pred.dims) != set(PREDICTION_DIMS):
        ds.close()
        raise InputError(f"{path}: T_2M has dims {pred.dims}, expected {PREDICTION_DIMS}; files with a 'member' "
                         "dimension come from an older version: delete them and rerun the prediction")
    return ds, pred.transpose(*PREDICTION_DIMS)
