"""The twin stage: integrate over a period and write the monthly ERA5- and COSMO-CLM-format files."""

from __future__ import annotations

import logging
import time as wallclock
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.data.formats import make_era5_dataset, write_cosmo_month, write_era5_month
from pdeldm.data.static import load_static
from pdeldm.data.twin.diagnostics import predictability_diagnostic
from pdeldm.data.twin.model import TwinModel
from pdeldm.data.twin.observation import Era5Grid, era5_month
from pdeldm.data.twin.params import YEAR_DAYS, merged_params
from pdeldm.errors import InputError
from pdeldm.io import write_json


def _output_times(start: str, end: str) -> pd.DatetimeIndex:
    first = pd.Timestamp(start)
    last = pd.Timestamp(end)
    if last == last.normalize() and len(str(end)) <= 10:  # a date: include its 24 hours
        last = last + pd.Timedelta(hours=23)
    if last < first:
        raise InputError(f"twin: end {end} before start {start}")
    return pd.date_range(first, last, freq="h")


def simulate_twin(static_path: Path, start: str, end: str, seed: int, params: Mapping[str, Any] | None,
                  era5_dir: Path, cosmo_dir: Path, diagnostics_path: Path | None,
                  era5_resolution_deg: float = 0.9, log: logging.Logger | None = None) -> list[Path]:
    """Integrate the twin over [start, end] (inclusive dates) and write the monthly files.

    Writes ``cosmo_dir/T_2M_{YYYY}{MM}.nc`` and ``era5_dir/era5_{YYYY}_{MM}.nc`` as each month is
    complete, and (if given) ``diagnostics_path`` JSON with the integration time, parameters, grids
    and :func:`predictability_diagnostic`. Returns the written paths.
    """
    log = log or logging.getLogger("pdeldm.twin")
    static = load_static(static_path)
    merged = merged_params(params)
    times = _output_times(start, end)
    spinup = int(round(merged["spinup_days"] * 24))
    origin = times[0] - pd.Timedelta(hours=spinup)
    model = TwinModel(static, merged, seed, origin)
    grid = Era5Grid(model, era5_resolution_deg)
    log.info("twin: region %dx%d (+%d margin), dx=%.0f m dy=%.0f m, %d sub-steps/h, %d h spin-up, %d output hours",
             model.ny, model.nx, model.margin, model.dx, model.dy, model.substeps, spinup, len(times))
    log.info("twin: ERA5-like grid %d lat x %d lon at %.3g deg (lat %.2f..%.2f, lon %.2f..%.2f), %d empty cells filled",
             *grid.shape, era5_resolution_deg, grid.latitude[0], grid.latitude[-1], grid.longitude[0],
             grid.longitude[-1], grid.empty_cells)
    written: list[Path] = []
    month_keys = times.to_period("M")
    month_buffer: list[np.ndarray] = []
    month_times: list[pd.Timestamp] = []
    integration_seconds = 0.0
    clock = wallclock.perf_counter()
    history = f"pdeldm twin, seed {seed}"
    for hour, (_, T) in enumerate(model.run(spinup + len(times) - 1)):
        if hour < spinup:
            continue
        index = hour - spinup
        month_buffer.append(T.astype(np.float32))
        month_times.append(times[index])
        if index + 1 < len(times) and month_keys[index + 1] == month_keys[index]:
            continue
        integration_seconds += wallclock.perf_counter() - clock
        stamp = pd.DatetimeIndex(month_times)
        padded = np.stack(month_buffer)
        region = xr.DataArray(padded[(slice(None), *model.interior)], dims=("time", "rlat", "rlon"),
                              coords={"time": stamp, "rlat": static["rlat"].values, "rlon": static["rlon"].values})
        cosmo_path = Path(cosmo_dir) / f"T_2M_{stamp[0].year:04d}{stamp[0].month:02d}.nc"
        write_cosmo_month(region, static, cosmo_path, history=history)
        era5_path = Path(era5_dir) / f"era5_{stamp[0].year:04d}_{stamp[0].month:02d}.nc"
        fields = era5_month(model, grid, stamp, padded)
        write_era5_month(make_era5_dataset(stamp, grid.latitude, grid.longitude, fields, history=history), era5_path)
        written += [cosmo_path, era5_path]
        log.info("twin: wrote %s and %s (T_2M %.1f..%.1f K; integration so far %.1f s)", cosmo_path.name,
                 era5_path.name, float(region.min()), float(region.max()), integration_seconds)
        month_buffer, month_times = [], []
        clock = wallclock.perf_counter()
    if diagnostics_path is not None:
        clock = wallclock.perf_counter()
        predictability = predictability_diagnostic(static, merged, seed, times[0])
        log.info("twin: predictable share of fine-scale variance %.3f, RMSE floor %.3f K (diagnostic %.1f s)",
                 predictability["predictable_share_fine"], predictability["rmse_floor_fine_K"],
                 wallclock.perf_counter() - clock)
        hours_total = spinup + len(times) - 1
        write_json(diagnostics_path, {
            "seed": seed,
            "start": str(times[0]),
            "end": str(times[-1]),
            "params": merged,
            "integration_seconds": integration_seconds,
            "integrated_hours": hours_total,
            "seconds_per_simulated_year": integration_seconds / hours_total * 24 * YEAR_DAYS,
            "substeps_per_hour": model.substeps,
            "max_wind_speed_bound_m_s": model.fields.max_speed,
            "fine_grid": {"ny": model.ny, "nx": model.nx, "margin_cells": model.margin, "dx_m": model.dx,
                          "dy_m": model.dy, "rlat0": float(static["rlat"][0]), "rlon0": float(static["rlon"][0]),
                          "lat_range": [float(static["lat"].min()), float(static["lat"].max())],
                          "lon_range": [float(static["lon"].min()), float(static["lon"].max())]},
            "era5_grid": {"resolution_deg": era5_resolution_deg, "nlat": grid.shape[0], "nlon": grid.shape[1],
                          "latitude": [float(grid.latitude[0]), float(grid.latitude[-1])],
                          "longitude": [float(grid.longitude[0]), float(grid.longitude[-1])],
                          "empty_cells_filled": grid.empty_cells},
            "predictability": predictability,
        })
        written.append(Path(diagnostics_path))
    return written
