"""ERA5 onto the store's grids: predictors to the aligned coarse grid, 10-m winds to the fine one.

:func:`predictor_regridder` and :func:`coarse_predictors` are shared with ``pdeldm downscale``,
so new ERA5 files take exactly the store's path; :class:`StoreRemap` adds the store's winds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from pdeldm.data.regrid import Regridder, TargetGrid, coarsen_to_aligned, rotate_wind_to_grid, wind_to_grid_matrix
from pdeldm.data.store.layout import MEMORY_MB, SUPERSAMPLE, WIND_VARS


def predictor_regridder(era5_lat: np.ndarray, era5_lon: np.ndarray, grid: TargetGrid, method: str,
                        supersample: int = 4, memory_mb: float = 256) -> Regridder:
    """The regridder that takes ERA5 predictors to the fine grid (``method``: conservative or bilinear)."""
    return Regridder(era5_lat, era5_lon, grid, method, supersample=int(supersample), memory_mb=memory_mb)


def coarse_predictors(era: xr.Dataset, regrid: Regridder, predictors: Sequence[str],
                      factor: int) -> tuple[np.ndarray, xr.Dataset]:
    """ERA5 predictors of some time steps -> the store's ``coarse`` array and the fine-grid fields.

    The predictors are remapped to the fine grid and block-averaged onto the coarse grid aligned
    ``factor``:1 with it; returns ``(coarse (time, cvar, yc, xc) float32 in physical units, fine)``.
    """
    fine = regrid(era[list(predictors)])
    coarse = coarsen_to_aligned(fine, factor)
    return np.stack([coarse[v].values for v in predictors], axis=1).astype(np.float32), fine


@dataclass(frozen=True, eq=False)
class StoreRemap:
    """The store's remapping of ERA5: the ``coarse`` and ``wind`` arrays of some time steps."""

    grid: TargetGrid
    predictors: list[str]
    factor: int
    pred: Regridder
    wind: Regridder  # bilinear; the predictors' own regridder when that is bilinear too
    wind_matrix: np.ndarray

    def check_coverage(self, probe: xr.Dataset) -> None:
        """ERA5 (``probe``: its lattice) must cover the domain for both regridders."""
        self.pred.check_coverage(probe)
        self.wind.check_coverage(probe)

    def __call__(self, era: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """``(coarse (time, cvar, yc, xc), wind (time, wvar, y, x))``, float32."""
        coarse, fine = coarse_predictors(era, self.pred, self.predictors, self.factor)
        # The bilinear predictors already hold the winds when they are predictors themselves.
        reuse = self.wind is self.pred and all(w in self.predictors for w in WIND_VARS)
        wfine = fine if reuse else self.wind(era[list(WIND_VARS)])
        u, v = rotate_wind_to_grid(wfine[WIND_VARS[0]], wfine[WIND_VARS[1]], self.grid, self.wind_matrix)
        return coarse, np.stack([u.values, v.values], axis=1).astype(np.float32)


def store_remap(era5_lat: np.ndarray, era5_lon: np.ndarray, grid: TargetGrid, predictors: Sequence[str],
                factor: int, method: str) -> StoreRemap:
    """The store's regridders for ERA5 on the lattice ``era5_lat`` x ``era5_lon``.

    Each regridder sub-chunks its work to half the build's memory target.
    """
    budget = MEMORY_MB / 2
    pred = predictor_regridder(era5_lat, era5_lon, grid, method, SUPERSAMPLE, budget)
    wind = pred if method == "bilinear" else Regridder(era5_lat, era5_lon, grid, "bilinear", memory_mb=budget)
    return StoreRemap(grid=grid, predictors=list(predictors), factor=factor, pred=pred, wind=wind,
                      wind_matrix=wind_to_grid_matrix(grid))
