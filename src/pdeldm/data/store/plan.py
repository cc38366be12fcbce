"""The plan of a store build: everything decided and checked before the heavy work starts.

:func:`plan_store` checks the config, the split, the static file, the ERA5 and COSMO time axes,
the first COSMO file's grid and ERA5's coverage of the domain (metadata only), so that a bad
input fails in seconds rather than after hours of regridding.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdeldm.data.cosmo import cosmo_times, open_cosmo
from pdeldm.data.era5 import era5_times
from pdeldm.data.regrid import TargetGrid
from pdeldm.data.store.config import StoreConfig, store_config
from pdeldm.data.store.inputs import (
    CosmoFile,
    Era5File,
    FileStream,
    check_same_grid,
    file_index,
    probe_era5,
    read_static,
)
from pdeldm.data.store.layout import COSMO_VARIABLE, FILL_VALUES, MEMORY_MB, TIME_CHUNK, WIND_VARS
from pdeldm.data.store.predictors import StoreRemap, store_remap
from pdeldm.data.store.split import parse_blocks, select_times
from pdeldm.errors import InputError


@dataclass(frozen=True, eq=False)
class StorePlan:
    """What a build writes and how: the inputs as streams, the store's times and grid, the remap."""

    cfg: StoreConfig
    grid: TargetGrid
    dx: float
    dy: float
    static: np.ndarray  # (svar, y, x) float32
    times: pd.DatetimeIndex
    splits: dict[str, list[int]]  # block -> [i0, i1) store indices, in time order
    dt: pd.Timedelta
    era5: FileStream
    cosmo: FileStream
    remap: StoreRemap
    block: int  # store times per write: whole zarr chunks

    def close(self) -> None:
        """Close whatever the streams still hold open."""
        self.era5.close()
        self.cosmo.close()


def plan_store(era5_files: Sequence[str | os.PathLike[str]], cosmo_files: Sequence[str | os.PathLike[str]],
               static_path: str | os.PathLike[str], cfg: Mapping[str, Any]) -> StorePlan:
    """Check the inputs against ``cfg`` and decide what to write (interfaces §3).

    Raises:
        InputError: bad config, split not covered by both sources, grid mismatch between COSMO and
        the static file, ERA5 not covering the domain, or a static-file or time-axis check.
    """
    conf = store_config(cfg)
    static_path = Path(static_path)
    era5_paths = sorted(Path(f) for f in era5_files)
    cosmo_paths = sorted(Path(f) for f in cosmo_files)
    if not era5_paths or not cosmo_paths:
        raise InputError(f"build_store: need ERA5 and COSMO files, got {len(era5_paths)} and {len(cosmo_paths)}")
    blocks = parse_blocks(conf.split)
    static_ds, grid, dx, dy = read_static(static_path, conf.static_vars, conf.factor)
    static = np.stack([static_ds[v].squeeze(drop=True).values.astype(np.float32) for v in conf.static_vars])

    # ERA5 lattice from the first file (cheap: one time step); every later file must match it.
    era5_vars = list(dict.fromkeys([*conf.predictors, *WIND_VARS]))
    probe = probe_era5(era5_paths[0], era5_vars)
    era5_lat, era5_lon = probe["latitude"].values.copy(), probe["longitude"].values.copy()
    era5_owner = file_index("ERA5", era5_paths, era5_times)
    cosmo = FileStream(cosmo_paths, file_index("COSMO", cosmo_paths, cosmo_times),
                       CosmoFile(COSMO_VARIABLE, grid, static_path))
    times, splits, dt = select_times(pd.DatetimeIndex(era5_owner.index), cosmo.times, blocks)
    era5 = FileStream(era5_paths, era5_owner,
                      Era5File(era5_vars, FILL_VALUES, _own_step(era5_owner.index), era5_lat, era5_lon, era5_paths[0]))

    # Grid and coverage checks up front (metadata only), so they fail before any heavy work.
    first_path = cosmo.file_of(times[0])
    first_cosmo = open_cosmo([first_path], COSMO_VARIABLE, check_values=False)
    check_same_grid(first_cosmo, grid, str(first_path), static_path)
    first_cosmo.close()
    remap = store_remap(era5_lat, era5_lon, grid, conf.predictors, conf.factor, conf.regrid_method)
    remap.check_coverage(probe)
    return StorePlan(cfg=conf, grid=grid, dx=dx, dy=dy, static=static, times=times, splits=splits, dt=dt,
                     era5=era5, cosmo=cosmo, remap=remap, block=_block_size(grid, len(conf.predictors)))


def _own_step(times: pd.Index) -> str | None:
    # Each ERA5 file is checked for gaps at ERA5's own step (it may be finer than the common one).
    return str(pd.Timedelta(np.median(np.diff(times.values)))) if len(times) > 1 else None


def _block_size(grid: TargetGrid, n_predictors: int) -> int:
    """Store times per write: whole zarr chunks, as many as the memory target allows.

    Small grids get up to a month per step, so per-call overheads do not dominate; paper-scale
    grids one day. The regridders sub-chunk their own working memory.
    """
    ny, nx = grid.shape
    per_step = 8 * ny * nx * (1 + 2 * n_predictors + 6)  # target, fine predictors, winds, float64 temporaries
    return TIME_CHUNK * int(np.clip(MEMORY_MB * 2**20 // (per_step * TIME_CHUNK), 1, 31))
