"""Per-cell quantiles of the training targets: the thresholds of warm, hot and cold events.

Thresholds come from the *training* period, never from the test period they score: an event is
"above this cell's 99th percentile of 2001-2002" whatever the test season, as a user of the model
would define it. ``results/ensembles/climatology.nc`` holds one ``(rlat, rlon)`` variable per
threshold, ``threshold_<name>`` in K, with attributes ``quantile`` and ``time_stride``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.io import atomic_output, read_json
from pdeldm.logs import stage_logger

PathLike = str | os.PathLike[str]

#: Bytes of training values sorted at once (cells are processed in blocks of rows within it).
MEMORY_BUDGET = 1 << 30


def training_quantiles(store_path: PathLike, meta_path: PathLike, quantiles: Mapping[str, float],
                       time_stride: int = 1, memory_budget: int = MEMORY_BUDGET) -> dict[str, np.ndarray]:
    """``{name: (ny, nx) K}``: the ``quantiles[name]`` of every cell's training targets.

    Every ``time_stride``-th hour of the training split (``meta["splits"]["train"]``) is used;
    cells are taken in blocks of rows so that at most ``memory_budget`` bytes are held at once.
    """
    for name, q in quantiles.items():
        if not 0.0 < float(q) < 1.0:
            raise InputError(f"climatology quantile {name} must lie in (0, 1), got {q}")
    if int(time_stride) < 1:
        raise InputError(f"climatology time stride must be >= 1, got {time_stride}")
    meta = read_json(meta_path)
    i0, i1 = (int(i) for i in meta["splits"]["train"])
    with xr.open_zarr(store_path) as store:
        target = store["target"].isel(time=slice(i0, i1, int(time_stride)))
        n_times, ny, nx = (int(n) for n in target.shape)
        if n_times < 2:
            raise InputError(f"{store_path}: the training split has {n_times} time(s) at stride {time_stride}")
        rows = max(1, min(ny, memory_budget // max(1, n_times * nx * 8)))
        out = {name: np.empty((ny, nx), dtype=np.float64) for name in quantiles}
        names = list(quantiles)
        levels = [float(quantiles[n]) for n in names]
        for r0 in range(0, ny, rows):
            block = np.asarray(target.isel({target.dims[1]: slice(r0, r0 + rows)}).values, dtype=np.float64)
            if not np.isfinite(block).all():
                raise InputError(f"{store_path}: training targets contain NaN or inf (rows {r0}..{r0 + rows})")
            values = np.quantile(block, levels, axis=0)
            for name, value in zip(names, values, strict=True):
                out[name][r0:r0 + rows] = value
    return out


def write_climatology(store_path: PathLike, meta_path: PathLike, quantiles: Mapping[str, float], out: PathLike,
                      time_stride: int = 1, log: PathLike | None = None) -> None:
    """Write the per-cell training thresholds (module docstring) to ``out``."""
    logger = stage_logger("climatology", log)
    values = training_quantiles(store_path, meta_path, quantiles, time_stride)
    with xr.open_zarr(store_path) as store:
        coords = {name: np.asarray(store[name].values) for name in ("rlat", "rlon")}
    data = {f"threshold_{name}": xr.DataArray(
        values[name].astype(np.float32), dims=("rlat", "rlon"), coords=coords,
        attrs={"units": "K", "quantile": float(q), "time_stride": int(time_stride),
               "long_name": f"{float(q):g} quantile of the training 2-m temperature of the cell"})
        for name, q in quantiles.items()}
    ds = xr.Dataset(data, attrs={"title": "Per-cell thresholds from the training period",
                                 "source": f"pdeldm climatology of {Path(store_path).name}"})
    with atomic_output(out) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4")
    for name, q in quantiles.items():
        logger.info("threshold %s (quantile %g): domain mean %.2f K, range %.2f..%.2f K", name, q,
                    float(values[name].mean()), float(values[name].min()), float(values[name].max()))
    logger.info("wrote %s", out)


def read_climatology(path: PathLike) -> dict[str, np.ndarray]:
    """``{name: (ny, nx) K}`` of a file written by :func:`write_climatology`."""
    with xr.open_dataset(path) as ds:
        found = {str(v)[len("threshold_"):]: np.asarray(ds[v].values, dtype=np.float64)
                 for v in ds.data_vars if str(v).startswith("threshold_")}
    if not found:
        raise InputError(f"{path}: no threshold_<name> variables (written by pdeldm.evaluation.climatology)")
    return found
