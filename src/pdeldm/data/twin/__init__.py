r"""The embedded "twin": hourly 2-m temperature from a known advection-diffusion model.

Real ERA5 and COSMO-CLM data cannot be reached from the default pipeline, so it runs on a twin
integrated on REAL COSMO-CLM EUR-11 orography (``HSURF``) and land fraction (``FR_LAND``) and
written in the exact file formats of the two sources (``pdeldm.data.formats``), so that every
downstream stage takes the code path real data take.

Honest scale statement: the fine grid is the EUR-11 grid itself (0.11 degree, about 12 km), so the
twin is a scaled-down stand-in for a 2 km COSMO-CLM target: the ERA5-like predictors are 8x coarser
(0.9 degree, about 100 km) instead of 0.25 degree, keeping the 8:1 ratio of the real problem.

Model
-----
On the region padded by ``margin_cells`` cells, with x, y the grid-relative coordinates in metres
(tangent plane with the region's mean spacing ``dx_m``, ``dy_m``; the <1% variation of the
rotated grid's metric across a region is neglected, so the stated PDE holds exactly in the
coordinates the downstream PDE loss uses)::

    dT/dt + u . grad T = kappa lap T - (T - T_bg) / tau + xi

* ``u = (u, v)``: a KNOWN, divergence-free, synoptic-scale wind from an analytic streamfunction
  ``psi = U(t) (sin th(t) x - cos th(t) y) + sum_m (V_m / k_m) sin(k_m . x - w_m t + p_m)``,
  ``u = -d psi/dy``, ``v = d psi/dx``: a uniform mean flow of speed ``U(t) = wind_speed (1 + 0.3
  sin(...))`` whose direction ``th(t)`` rotates once every 7-14 days (plus a wobble), and three
  travelling modes of wavelength 1200-3000 km with ``V_m = 0.25 wind_speed``.  Speeds are about
  3-16 m/s for the default ``wind_speed`` = 8 m/s.  The wind is grid-relative (along rlon, rlat).
* ``kappa`` (m^2/s) horizontal diffusion; ``tau`` relaxation time.
* ``T_bg = T0 + S(t) - beta (lat - lat_ref) + A_syn(x, y, t) - Gamma HSURF + D(t, lon, FR_LAND)``:
  ``T0`` = ``mean_temperature``; seasonal cycle ``S = -seasonal_amplitude cos(2 pi (day - 15) /
  365.25)``; meridional gradient ``beta`` = ``meridional_gradient`` K/degree; synoptic anomaly
  ``A_syn``: four plane waves of wavelength 1500-4000 km travelling at 4-12 m/s (std
  ``synoptic_amplitude``, scales far above the coarse cell); lapse rate ``Gamma`` = ``lapse_rate``
  K/km; diurnal cycle ``D = A_d/2 cos(2 pi (local solar hour - 15) / 24)`` with peak-to-peak
  ``A_d = diurnal_amplitude_sea + (diurnal_amplitude_land - diurnal_amplitude_sea) FR_LAND``.
* ``xi``: STOCHASTIC small-scale forcing (K/s): white noise Gaussian-filtered with standard
  deviation ``forcing_length_cells`` fine cells minus the same noise filtered with
  ``forcing_highpass_cells`` (a band-pass, so that xi acts below the coarse cell: its 8x8 block
  means keep ~10% of its variance), normalised to std ``forcing_amplitude`` (K/h), AR(1) in time
  at hourly keyframes with decorrelation time ``forcing_time_hours``, linear in time between
  keyframes.  It makes fine-scale variability that coarse + static inputs do not determine: no
  deterministic model reaches zero error (see :func:`predictability_diagnostic`).

Default choices (``DEFAULT_PARAMS``): ``tau`` = 3 h rather than 6 h because the relaxation length
``U tau`` must stay near one coarse cell: at 6 h (170 km at 8 m/s) advection smears the
``Gamma HSURF`` signal of valleys and ridges away, which is neither what 2-m temperature does nor
what makes downscaling worthwhile.  ``forcing_amplitude`` = 0.4 K/h leaves ~80-90% of the
fine-scale variance predictable over the Alps/Italy (RMSE floor ~0.5 K), less over flat regions.
The hourly output under-resolves the advection of the xi response (36 km/h at 10 m/s, 3 cells),
so the centred-in-time PDE residual of the truth is not zero: about 0.12 K/h RMS, against
0.6-1.0 K/h for a bicubic interpolation of the coarse field (0 forcing gives 0.014 K/h).

Numerics: 2nd-order centred differences in space; SSP-RK3 in time with ``substeps_per_hour``
sub-steps (0 = chosen from ``cfl`` for the largest possible wind and from the diffusion and
relaxation limits); Dirichlet ``T = T_bg`` on the outermost ring of the padded domain; the region
(interior) is written.  The run starts ``spinup_days`` before the first output with ``T = T_bg``.
Everything is deterministic given ``seed``: the analytic fields come from
``numpy.random.default_rng([seed, 0])``, the forcing's white noise for day d from
``default_rng([forcing_seed, 1, d])`` (``forcing_seed`` = ``seed`` unless the predictability
diagnostic changes it), the ERA5 noise from ``default_rng([seed, 2, year, month])``.

ERA5-like predictors: a regular lat-lon grid of ``era5_resolution_deg`` (centres at multiples of
the step, as the CDS regrids, hence not aligned with the rotated grid) covering the region's
lat/lon bounding box plus one cell; ``t2m`` is the area-weighted mean of the fine truth (padded
domain) over the fine cells whose centres fall in each lat-lon cell (cells with none take the
nearest filled cell), then "model error": Gaussian smoothing of ``era5_smoothing_cells`` lat-lon
cells, bias ``era5_bias + era5_elevation_bias * (cell-mean HSURF in km)``, and white noise of std
``era5_noise``; ``u10``/``v10`` are the known wind at the lat-lon centres, rotated to geographic
(eastward/northward) components like real ERA5, with the same smoothing.
"""

from __future__ import annotations

import logging
import math
import time as wallclock
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pdeldm.data.twin.diagnostics import (
    block_mean_upsampled,
    predictability_diagnostic,
    run_region,
)
from pdeldm.data.twin.fields import AnalyticFields
from pdeldm.data.twin.forcing import StochasticForcing
from pdeldm.data.twin.model import TwinModel, pde_operator, pde_residual
from pdeldm.data.twin.observation import Era5Grid, era5_month
from pdeldm.data.twin.params import (
    DAY,
    DEFAULT_PARAMS,
    EPOCH,
    HOUR,
    LAT_REFERENCE,
    YEAR_DAYS,
    merged_params,
    seconds_since_epoch,
)
from pdeldm.data.twin.writer import simulate_twin

__all__ = [
    "DAY",
    "DEFAULT_PARAMS",
    "EPOCH",
    "HOUR",
    "LAT_REFERENCE",
    "YEAR_DAYS",
    "AnalyticFields",
    "Era5Grid",
    "StochasticForcing",
    "TwinModel",
    "block_mean_upsampled",
    "era5_month",
    "merged_params",
    "pde_operator",
    "pde_residual",
    "predictability_diagnostic",
    "run_region",
    "seconds_since_epoch",
    "simulate_twin",
]
