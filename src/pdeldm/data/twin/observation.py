r"""The ERA5-like predictors of the twin: the lat-lon grid and the coarse observation of the truth.

Grid: a regular lat-lon grid of ``era5_resolution_deg`` (centres at multiples of the step, as the
CDS regrids, hence not aligned with the rotated grid) covering the region's lat/lon bounding box
plus one cell.  ``u10``/``v10`` are the known wind at the lat-lon centres, rotated to geographic
(eastward/northward) components like real ERA5, with the same smoothing as t2m.

``t2m`` is an observation of the truth with a documented error model.  It starts from the
area-weighted mean of the fine truth (padded domain) over the fine cells whose centres fall in each
lat-lon cell (cells with none take the nearest filled cell): what a perfect coarse model would
give.  Then, in this order, each component standing for something real ERA5 does and COSMO-CLM
does not:

* **smoothing**, a Gaussian of ``era5_smoothing_cells`` lat-lon cells (default 1): a reanalysis
  resolves less than its grid, its orography and coastlines are smoother than the cell means of the
  real ones, and its effective resolution is several grid lengths (a Gaussian of one cell keeps 29 %
  of a 4-cell wave and 73 % of an 8-cell wave).  It is the largest component: mixing each cell
  with its neighbours warms mountain cells and cools valley and coastal ones in winter, so its error
  is correlated with the cell's height (about 1.0-1.6 K RMS over Italy, correlation with the cell
  height about 0.5);
* **bias** ``era5_bias`` (default -0.3 K): a domain-wide offset of a few tenths of a kelvin, the
  order of reanalysis 2-m temperature biases against regional models and stations;
* **elevation-dependent bias** ``era5_elevation_bias`` K per km of cell-mean surface height
  (default +0.5 K/km, about 0.3 K RMS over Italy): over mountains reanalysis 2-m temperature tends
  to be too warm, the more so the higher the terrain, because its smoothed terrain is lower than the
  real peaks and cannot hold valley cold pools and inversions;
* **noise** of std ``era5_noise`` (default 0.1 K), white in space and time: analysis increments
  and representativeness errors at the grid scale.

These values are plausible choices, not fitted to real ERA5 (which the default pipeline cannot
reach); every one is configurable (``twin.params``).  The store then regrids the lat-lon field
onto the coarse rotated grid, which adds its own interpolation error.  What the choice implies for
the models is measured, not assumed: the workflow scores every model also with a perfect coarse
input (the block mean of the truth, :mod:`pdeldm.data.input_error`), and ``training.robust_input``
trains on a randomised version of this error model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import scipy.sparse as sp

from pdeldm.data.static import geographic_to_rotated, grid_north_angle, grid_to_geographic_wind
from pdeldm.data.twin.model import TwinModel
from pdeldm.data.twin.params import seconds_since_epoch
from pdeldm.errors import InputError


class Era5Grid:
    """The regular lat-lon grid of the ERA5-like predictors and the fine -> coarse binning."""

    def __init__(self, model: TwinModel, resolution_deg: float) -> None:
        if resolution_deg <= 0:
            raise InputError(f"twin.era5_resolution_deg must be > 0, got {resolution_deg}")
        self.resolution = resolution_deg
        lat_region = model.lat_pad[model.interior]
        lon_region = model.lon_pad[model.interior]

        def axis(low: float, high: float) -> np.ndarray:
            # centres at multiples of the step (as the CDS regrids), bounding box plus one cell
            first, last = round(low / resolution_deg) - 1, round(high / resolution_deg) + 1
            return np.round(np.arange(first, last + 1) * resolution_deg, 6)

        self.latitude = axis(float(lat_region.min()), float(lat_region.max()))  # ascending here
        self.longitude = axis(float(lon_region.min()), float(lon_region.max()))
        shape = (self.latitude.size, self.longitude.size)
        # area-weighted bins: fine cell areas scale with cos(rlat)
        i = np.rint(model.lat_pad / resolution_deg).astype(int) - round(self.latitude[0] / resolution_deg)
        j = np.rint(model.lon_pad / resolution_deg).astype(int) - round(self.longitude[0] / resolution_deg)
        inside = (i >= 0) & (i < shape[0]) & (j >= 0) & (j < shape[1])
        weight = np.broadcast_to(np.cos(np.deg2rad(model.rlat_pad))[:, None], model.shape_pad)
        cell = (i * shape[1] + j)[inside]
        columns = np.flatnonzero(inside.ravel())
        matrix = sp.csr_matrix((weight[inside], (cell, columns)), shape=(shape[0] * shape[1], weight.size))
        totals = np.asarray(matrix.sum(axis=1)).ravel()
        filled = totals > 0
        self.binning = sp.diags(np.where(filled, 1.0 / np.where(filled, totals, 1.0), 0.0)) @ matrix
        # empty cells (corners of the bounding box outside the padded domain): nearest filled cell
        _, nearest = ndi.distance_transform_edt(~filled.reshape(shape), return_indices=True)
        self.fill_index = (nearest[0] * shape[1] + nearest[1]).ravel()
        self.shape = shape
        self.empty_cells = int((~filled).sum())
        lat2, lon2 = np.meshgrid(self.latitude, self.longitude, indexing="ij")
        rlon_c, rlat_c = geographic_to_rotated(lon2, lat2, model.pole)
        x_c, y_c = model.to_xy(rlon_c, rlat_c)
        zeros = np.zeros(x_c.size)
        # only the wind rows of this basis are used (background needs no static fields here)
        self.wind_basis = model.fields.basis(x_c, y_c, lat2, lon2, zeros, zeros)
        self.north_angle = grid_north_angle(rlon_c, rlat_c, model.pole)
        self.hsurf = self.aggregate(model.hsurf_pad[None])[0]

    def aggregate(self, fields: np.ndarray) -> np.ndarray:
        """Area-weighted binning of padded fine fields (n, NY, NX) -> (n, nlat, nlon), gaps filled."""
        flat = fields.reshape(fields.shape[0], -1)
        coarse = (self.binning @ flat.T).T
        return coarse[:, self.fill_index].reshape(fields.shape[0], *self.shape)


def era5_month(model: TwinModel, grid: Era5Grid, times: pd.DatetimeIndex, fine_padded: np.ndarray
               ) -> dict[str, np.ndarray]:
    """ERA5-like t2m, u10, v10 (time, lat ascending, lon) for one month of padded truth."""
    p = model.params
    sigma = (0, p["era5_smoothing_cells"], p["era5_smoothing_cells"])

    def smooth(fields: np.ndarray) -> np.ndarray:
        return ndi.gaussian_filter(fields, sigma=sigma, mode="nearest") if p["era5_smoothing_cells"] > 0 else fields

    t2m = smooth(grid.aggregate(fine_padded))
    t2m += p["era5_bias"] + p["era5_elevation_bias"] * grid.hsurf / 1000.0
    rng = np.random.default_rng([model.seed, 2, int(times[0].year), int(times[0].month)])
    t2m += p["era5_noise"] * rng.standard_normal(t2m.shape)
    coef = model.fields.coefficients(seconds_since_epoch(times.values))
    u_grid = (coef[:, 0, :] @ grid.wind_basis).reshape(len(times), *grid.shape)
    v_grid = (coef[:, 1, :] @ grid.wind_basis).reshape(len(times), *grid.shape)
    u10, v10 = grid_to_geographic_wind(u_grid, v_grid, grid.north_angle)
    return {"t2m": t2m, "u10": smooth(u10), "v10": smooth(v10)}

