"""What a store looks like on disk: the zarr template of its arrays and its metadata JSON.

Both follow docs/interfaces.md §3; the values that fill them come from the build
(:mod:`.build`), the normalisation statistics from :mod:`.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.data.cosmo import grid_mapping_cf_attrs
from pdeldm.data.regrid import TargetGrid, check_aligned

TIME_CHUNK = 24
STATIC_VARS: tuple[str, ...] = ("HSURF", "FR_LAND", "lat")
WIND_VARS: tuple[str, str] = ("u10", "v10")
ZARR_FORMAT = 2  # v3 has no spec yet for the fixed-length string coords (cvar/svar) and consolidation

# Fixed build settings. No config sets them (the schema's `data` section has no such keys); they
# are recorded in every store's metadata so that `pdeldm downscale` repeats them.
#: ERA5 SST is NaN over land; freezing sea water (271.35 K) is the usual fill, and FR_LAND tells
#: the network where it is meaningless.
FILL_VALUES: dict[str, float] = {"sst": 271.35}
SUPERSAMPLE = 4  # conservative remap: sub-cell points per axis
WIND_FRAME = "grid"  # winds are rotated to components along +rlon/+rlat
COSMO_VARIABLE = "T_2M"  # open_cosmo accepts tas for it
MEMORY_MB = 512  # working-memory target of the build


def coarse_axis(fine: np.ndarray, factor: int) -> np.ndarray:
    """Coordinates of the coarse cells: the means of ``factor`` consecutive fine ones."""
    return fine.reshape(fine.size // factor, factor).mean(axis=1)


def template(times: pd.DatetimeIndex, grid: TargetGrid, static: np.ndarray, predictors: Sequence[str],
             static_vars: Sequence[str], factor: int, regrid_method: str, dx: float, dy: float) -> xr.Dataset:
    """The store as a lazy dataset: coordinates, attributes and ``static`` set, data arrays zero.

    Written with ``compute=False`` it lays out the zarr arrays (chunked :data:`TIME_CHUNK` steps in
    time, whole fields in space) that the build then fills chunk by chunk.
    """
    ny, nx = grid.shape
    nt, nc = len(times), len(predictors)
    axis = grid.axis_attrs()
    return xr.Dataset(
        {
            "target": (("time", "y", "x"), _zeros(nt, ny, nx), {"units": "K", "long_name": "COSMO-CLM 2-m temperature"}),
            "coarse": (("time", "cvar", "yc", "xc"), _zeros(nt, nc, ny // factor, nx // factor),
                       {"long_name": f"ERA5 predictors, {regrid_method} to the fine grid, {factor}x{factor} block mean"}),
            "wind": (("time", "wvar", "y", "x"), _zeros(nt, 2, ny, nx),
                     {"units": "m s-1", "frame": WIND_FRAME,
                      "long_name": "ERA5 10-m wind, bilinear to the fine grid, components along +rlon/+rlat"}),
            "static": (("svar", "y", "x"), static.astype(np.float32)),
        },
        coords={
            "time": times.values,
            "rlat": ("y", grid.rlat, axis["rlat"]),
            "rlon": ("x", grid.rlon, axis["rlon"]),
            "rlat_c": ("yc", coarse_axis(grid.rlat, factor), {"units": axis["rlat"]["units"]}),
            "rlon_c": ("xc", coarse_axis(grid.rlon, factor), {"units": axis["rlon"]["units"]}),
            "lat": (("y", "x"), grid.lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("y", "x"), grid.lon, {"standard_name": "longitude", "units": "degrees_east"}),
            "cvar": list(predictors),
            "svar": list(static_vars),
            "wvar": list(WIND_VARS),
        },
        attrs={"dx_m": dx, "dy_m": dy, "factor": factor, "regrid_method": regrid_method,
               **grid_mapping_cf_attrs(grid.pole)},
    )


def _zeros(*shape: int) -> dsa.Array:
    return dsa.zeros(shape, chunks=(TIME_CHUNK, *shape[1:]), dtype=np.float32)


def store_meta(times: pd.DatetimeIndex, splits: Mapping[str, list[int]], dt: pd.Timedelta, grid: TargetGrid,
               predictors: Sequence[str], static_vars: Sequence[str], factor: int, regrid_method: str,
               dx: float, dy: float, norm: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata JSON of a store (interfaces §3); ``splits`` in block order, ``norm`` from the train block."""
    nyc, nxc = grid.shape[0] // factor, grid.shape[1] // factor
    check_aligned(grid.shape, (nyc, nxc), factor)
    return {
        "factor": factor,
        "dx_m": dx,
        "dy_m": dy,
        "shape": list(grid.shape),
        "coarse_shape": [nyc, nxc],
        "predictors": list(predictors),
        "static_vars": list(static_vars),
        "splits": dict(splits),
        "split_dates": {name: [times[i0].isoformat(), times[i1 - 1].isoformat()] for name, (i0, i1) in splits.items()},
        "norm": dict(norm),
        "n_times": len(times),
        "time_step": str(dt),
        "regrid_method": regrid_method,
        "supersample": SUPERSAMPLE,
        "fill_values": dict(FILL_VALUES),
        "wind_frame": WIND_FRAME,
        # CF attributes of the grid mapping (rotated pole or LAEA with crs_wkt); stores built
        # before projected grids had the rotated-pole parameters under "rotated_pole".
        "grid_mapping": grid_mapping_cf_attrs(grid.pole),
    }
