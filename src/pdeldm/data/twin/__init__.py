r"""The embedded "twin": hourly 2-m temperature from a known advection-diffusion model.

Real ERA5 and COSMO-CLM data cannot be reached from the default pipeline, so it runs on a twin
integrated on REAL COSMO-CLM EUR-11 orography (``HSURF``) and land fraction (``FR_LAND``) and
written in the exact file formats of the two sources (``pdeldm.data.formats``), so that every
downstream stage takes the code path real data take.

Honest scale statement: the fine grid is the EUR-11 grid itself (0.11 degree, about 12 km), so the
twin is a scaled-down stand-in for a 2 km COSMO-CLM target: the ERA5-like predictors are 8x coarser
(0.9 degree, about 100 km) instead of 0.25 degree, keeping the 8:1 ratio of the real problem.

Package layout: :mod:`~pdeldm.data.twin.params` (defaults, validation), ``fields`` (wind and
background), ``forcing`` (xi), ``numerics`` (spatial operator), ``model`` (grid, integrator, PDE
residual), ``observation`` (the ERA5-like predictors and their error model), ``diagnostics``,
``writer`` (the workflow stage) and ``realism`` (the comparison with a real COSMO-CLM field).

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
  2-12 m/s for the default ``wind_speed`` = 6 m/s.  The wind is grid-relative (along rlon, rlat).
* ``kappa`` (m^2/s) horizontal diffusion; ``tau`` = ``tau_hours`` relaxation time.
* The background is a sum of separate terms (:meth:`TwinModel.background_terms` returns each)::

      T_bg = T0 + S(t) - beta (lat - lat_ref) + A_syn(x, y, t) - Gamma HSURF
             + D(t, lon, FR_LAND) + C(t) FR_LAND

  ``T0`` = ``mean_temperature`` (annual mean over sea at ``lat_ref`` = 45 N); seasonal cycle over
  sea ``S = -seasonal_amplitude cos(2 pi (day - 15) / 365.2425)`` (``day`` counted from 0 at
  1 January 00 UTC); meridional gradient ``beta`` = ``meridional_gradient`` K/degree; synoptic
  anomaly ``A_syn``: four plane waves of wavelength 1500-4000 km travelling at 4-12 m/s (std
  ``synoptic_amplitude``, scales far above the coarse cell); lapse rate ``Gamma`` = ``lapse_rate``
  K/km; diurnal cycle ``D = A_d/2 cos(2 pi (local solar hour - 15) / 24)`` with peak-to-peak
  ``A_d = diurnal_amplitude_sea + (diurnal_amplitude_land - diurnal_amplitude_sea) FR_LAND``;
  continentality ``C(t) = -continentality_amplitude cos(2 pi (day - continentality_phase_day) /
  365.2425)`` K per unit land fraction.
* ``xi``: STOCHASTIC small-scale forcing (K/s): white noise Gaussian-filtered with standard
  deviation ``forcing_length_cells`` fine cells minus the same noise filtered with
  ``forcing_highpass_cells`` (a band-pass, so that xi acts below the coarse cell: its 8x8 block
  means keep ~10% of its variance), normalised to std ``forcing_amplitude`` (K/h), AR(1) in time
  at hourly keyframes with decorrelation time ``forcing_time_hours``, linear in time between
  keyframes.  It makes fine-scale variability that coarse + static inputs do not determine: no
  deterministic model reaches zero error (see :func:`predictability_diagnostic`).

The continentality term is the seasonal land-sea contrast: land has a small heat capacity and
follows the insolation within weeks, the sea stores heat over months, so in winter land is colder
than the sea at the same latitude and height, in summer warmer (the annual range of 2-m
temperature is about 10-14 K over European seas and 18-24 K inland).  ``C`` adds
``continentality_amplitude`` to the seasonal half-range over land (``seasonal_amplitude`` +
``continentality_amplitude`` = 10 K with the defaults, 6 K over sea); its phase is that of the
seasonal cycle, the strongest contrast falling in mid-January.  It is linear in ``FR_LAND``, so
a coastal cell is a mixture, and it acts on every scale, including the coastlines below the
coarse cell.

Default choices (``DEFAULT_PARAMS``) and what they rest on: the real COSMO-CLM EUR-11 January
mean (``pdeldm.data.twin.realism``, run by the workflow) has, after removing its 8x8 block mean,
lapse-rate coefficients of -4.6 to -6.9 K/km and land-sea coefficients of -2.4 to -3.7 K per unit
land fraction over the configured regions.  The twin's field is ``T_bg`` filtered by advection
over the relaxation length ``U tau``: a fine-scale pattern of wavenumber ``k`` keeps about
``1 / sqrt(1 + (k U tau)^2)`` of its ``T_bg`` amplitude in a mean over wind directions.  With the
former ``tau`` = 3 h and 8 m/s (86 km, about one coarse cell) the twin's January field kept
-2.4 to -3.2 K/km of the 6.5 K/km, half the real signal: 2-m temperature is tied to the surface
below it faster than that.  ``tau`` = 1 h and ``wind_speed`` = 6 m/s (a near-surface wind; 22 km,
two fine cells) keep -5.1 to -5.9 K/km, and ``continentality_amplitude`` = 4 K gives -2.7 to
-3.1 K per unit land fraction.  ``forcing_amplitude`` = 0.8 K/h (doubled with the shorter ``tau``,
whose response to xi is weaker) leaves about 90% of the fine-scale variance predictable over
Italy (RMSE floor ~0.55 K).  ``mean_temperature`` = 288 K, ``seasonal_amplitude`` = 6 K and
``meridional_gradient`` = 0.5 K/degree are climatological values for the European seas; the
region means of the January twin then lie within ~2 K of the real January 2006.

Numerics (:mod:`~pdeldm.data.twin.numerics`): 2nd-order centred differences for advection and
diffusion plus a flow-dependent 6th-order numerical diffusion ``N(T) = sum_i |u_i| dx_i^5 / 60
d^6 T / dx_i^6`` that removes 2-cell waves within ~30 min and leaves scales of 8 cells and more
practically untouched; SSP-RK3 in time with ``substeps_per_hour`` sub-steps (0 = chosen from
``cfl`` for the largest possible wind and from the diffusion and relaxation limits); Dirichlet
``T = T_bg`` on the outer three rings of the padded domain; the region (interior) is written.
The discrete truth thus solves the stated equation plus ``N(T)``: the residual of the stated
equation that :func:`pde_residual` evaluates (2nd-order centred in space and time, hourly) is on
the truth ``N(T)`` plus the time discretisation of the hourly output, which under-resolves the
xi response (over Italy: 0.05 K/h from ``N``, 0.005 K/h from time without xi, about 0.2 K/h
with xi, against 1.4-1.9 K/h for a bicubic interpolation of the coarse field).
The run starts ``spinup_days`` before the first output with ``T = T_bg``.
Everything is deterministic given ``seed``: the analytic fields come from
``numpy.random.default_rng([seed, 0])``, the forcing's white noise for day d from
``default_rng([forcing_seed, 1, d])`` (``forcing_seed`` = ``seed`` unless the predictability
diagnostic changes it), the ERA5 noise from ``default_rng([seed, 2, year, month])``.

ERA5-like predictors: the area mean of the truth on a regular lat-lon grid, with a documented
error model (smoothing, bias, elevation-dependent bias, noise): see
:mod:`~pdeldm.data.twin.observation`.
"""

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
