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
import pandas as pd
import scipy.ndimage as ndi
import scipy.sparse as sp
import xarray as xr

from pdeldm.data.formats import make_era5_dataset, write_cosmo_month, write_era5_month
from pdeldm.data.static import (
    geographic_to_rotated,
    grid_north_angle,
    grid_to_geographic_wind,
    load_static,
    pole_of,
    rotated_to_geographic,
)
from pdeldm.errors import InputError
from pdeldm.io import write_json

DEFAULT_PARAMS: dict[str, float] = {
    "kappa": 2000.0,  # m^2/s
    "tau_hours": 3.0,  # relaxation time towards T_bg
    "lapse_rate": 6.5,  # K/km
    "wind_speed": 8.0,  # m/s, mean-flow speed
    "diurnal_amplitude_land": 7.0,  # K peak-to-peak
    "diurnal_amplitude_sea": 1.0,  # K peak-to-peak
    "synoptic_amplitude": 4.0,  # K, std of the travelling synoptic anomaly
    "forcing_amplitude": 0.4,  # K/h, std of xi
    "forcing_length_cells": 1.5,  # Gaussian filter std, fine cells
    "forcing_highpass_cells": 4.0,  # minus the noise smoothed with this std: keeps xi below the coarse cell (0: off)
    "forcing_time_hours": 4.0,  # AR(1) decorrelation time
    "cfl": 1.2,  # advective Courant number bound (SSP-RK3 with centred differences: < sqrt(3))
    "substeps_per_hour": 0,  # 0: from cfl and the diffusion limit
    "spinup_days": 3.0,
    "margin_cells": 8,  # padding integrated around the region (Dirichlet ring at its edge)
    "era5_smoothing_cells": 1.0,  # Gaussian std in lat-lon cells
    "era5_bias": -0.3,  # K
    "era5_elevation_bias": 0.5,  # K per km of cell-mean elevation
    "era5_noise": 0.1,  # K, white-noise std
    "mean_temperature": 285.0,  # K, T0 at lat_ref and sea level
    "seasonal_amplitude": 9.0,  # K, half the January-July difference
    "meridional_gradient": 0.6,  # K per degree latitude (colder northwards)
    "diagnostic_days": 10.0,  # length of the predictability diagnostic run (after spin-up)
}
LAT_REFERENCE = 45.0  # degrees, where T_bg = T0 + seasonal at sea level
EPOCH = np.datetime64("2000-01-01T00:00:00", "s")  # origin of the analytic fields' phases
HOUR = 3600.0
DAY = 86400.0
YEAR_DAYS = 365.2425
N_WIND_MODES = 3
N_SYNOPTIC_MODES = 4
RK3_REAL_AXIS_LIMIT = 2.5  # |lambda dt| bound of SSP-RK3 for a real negative eigenvalue (2.51)


def merged_params(params: Mapping[str, Any] | None) -> dict[str, float]:
    """DEFAULT_PARAMS updated with ``params``; unknown keys and non-positive sizes are InputErrors."""
    merged = dict(DEFAULT_PARAMS)
    for key, value in (params or {}).items():
        if key not in DEFAULT_PARAMS:
            raise InputError(f"twin.params: unknown key '{key}' (known: {sorted(DEFAULT_PARAMS)})")
        try:
            merged[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"twin.params.{key}: {value!r} is not a number") from None
    for key in ("kappa", "tau_hours", "forcing_length_cells", "forcing_time_hours", "cfl", "margin_cells"):
        if merged[key] <= 0:
            raise InputError(f"twin.params.{key} must be > 0, got {merged[key]}")
    for key in ("spinup_days", "substeps_per_hour", "forcing_amplitude", "era5_noise", "era5_smoothing_cells",
                "diagnostic_days", "wind_speed"):
        if merged[key] < 0:
            raise InputError(f"twin.params.{key} must be >= 0, got {merged[key]}")
    return merged


def seconds_since_epoch(times: Any) -> np.ndarray:
    """Float seconds since :data:`EPOCH` for datetime-likes."""
    stamps = pd.DatetimeIndex(np.atleast_1d(np.asarray(times, dtype="datetime64[ns]")))
    return (stamps.values.astype("datetime64[ns]") - EPOCH).astype("timedelta64[ns]").astype(np.float64) * 1e-9


# --------------------------------------------------------------------------------------------
# Analytic wind and background
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalyticFields:
    """Random (seeded) constants of the wind and background; evaluated on any set of points.

    Every time-dependent field is ``coefficients(t) @ basis(points)``: the spatial patterns are
    computed once per point set, so an evaluation is one small matrix product.
    """

    params: dict[str, float]
    mean_direction: float  # rad, flow direction at EPOCH (0 = towards +x, i.e. along rlon)
    rotation_period: float  # s, one full turn of the mean-flow direction
    wobble: tuple[float, float, float]  # amplitude (rad), period (s), phase
    speed_modulation: tuple[float, float]  # period (s), phase
    wind_modes: np.ndarray  # (M, 5): kx, ky (1/m), omega (1/s), phase, velocity amplitude (m/s)
    synoptic_modes: np.ndarray  # (M, 5): kx, ky, omega, phase, temperature amplitude (K)

    @classmethod
    def from_seed(cls, seed: int, params: dict[str, float]) -> AnalyticFields:
        """Draw the constants from ``default_rng([seed, 0])``."""
        rng = np.random.default_rng([seed, 0])

        def travelling_modes(count: int, wavelength_km: tuple[float, float], speed: tuple[float, float],
                             amplitude: float) -> np.ndarray:
            wavelength = rng.uniform(*wavelength_km, count) * 1e3
            direction = rng.uniform(0, 2 * np.pi, count)
            k = 2 * np.pi / wavelength
            omega = k * rng.uniform(*speed, count)
            return np.column_stack([k * np.cos(direction), k * np.sin(direction), omega,
                                    rng.uniform(0, 2 * np.pi, count), np.full(count, amplitude)])

        return cls(
            params=params,
            mean_direction=float(rng.uniform(0, 2 * np.pi)),
            rotation_period=float(rng.uniform(7, 14) * DAY * rng.choice([-1, 1])),
            wobble=(0.6, float(rng.uniform(2, 4) * DAY), float(rng.uniform(0, 2 * np.pi))),
            speed_modulation=(float(rng.uniform(3, 6) * DAY), float(rng.uniform(0, 2 * np.pi))),
            wind_modes=travelling_modes(N_WIND_MODES, (1200, 3000), (3, 10), 0.25 * params["wind_speed"]),
            synoptic_modes=travelling_modes(N_SYNOPTIC_MODES, (1500, 4000), (4, 12),
                                            params["synoptic_amplitude"] * math.sqrt(2 / N_SYNOPTIC_MODES)),
        )

    @property
    def max_speed(self) -> float:
        """Upper bound of the wind speed (m/s), for the CFL condition."""
        return 1.3 * self.params["wind_speed"] + float(self.wind_modes[:, 4].sum())

    def basis(self, x: np.ndarray, y: np.ndarray, lat: np.ndarray, lon: np.ndarray,
              hsurf: np.ndarray, fr_land: np.ndarray) -> np.ndarray:
        """Spatial patterns (K, N) at N points; row order matches :meth:`coefficients`."""
        p = self.params
        x, y = x.ravel(), y.ravel()
        rows = [np.ones_like(x)]
        for modes in (self.wind_modes, self.synoptic_modes):
            phase = np.outer(modes[:, 0], x) + np.outer(modes[:, 1], y)
            rows.extend([np.cos(phase), np.sin(phase)])
        sea, land = p["diurnal_amplitude_sea"], p["diurnal_amplitude_land"]
        diurnal = sea + (land - sea) * fr_land.ravel()
        lon_rad = np.deg2rad(lon.ravel())
        static = -p["lapse_rate"] * 1e-3 * hsurf.ravel() - p["meridional_gradient"] * (lat.ravel() - LAT_REFERENCE)
        rows.extend([diurnal * np.cos(lon_rad), diurnal * np.sin(lon_rad), static])
        return np.vstack([np.atleast_2d(r) for r in rows])

    def coefficients(self, t: np.ndarray) -> np.ndarray:
        """Time coefficients (T, 3, K) such that [u, v, T_bg] = coefficients(t) @ basis."""
        p = self.params
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        n_w, n_s = len(self.wind_modes), len(self.synoptic_modes)
        coef = np.zeros((t.size, 3, 1 + 2 * n_w + 2 * n_s + 3))
        amp, period, phase = self.wobble
        direction = (self.mean_direction + 2 * np.pi * t / self.rotation_period
                     + amp * np.sin(2 * np.pi * t / period + phase))
        speed_period, speed_phase = self.speed_modulation
        speed = p["wind_speed"] * (1 + 0.3 * np.sin(2 * np.pi * t / speed_period + speed_phase))
        coef[:, 0, 0] = speed * np.cos(direction)
        coef[:, 1, 0] = speed * np.sin(direction)
        # streamfunction mode (V/k) sin(k.x - w t + p): u = -V ky/k cos(..), v = V kx/k cos(..),
        # cos(k.x - (w t - p)) = cos(k.x) cos(w t - p) + sin(k.x) sin(w t - p)
        kx, ky, omega, mode_phase, vel = self.wind_modes.T
        k = np.hypot(kx, ky)
        arg = np.outer(t, omega) - mode_phase
        cos_t, sin_t = np.cos(arg), np.sin(arg)
        coef[:, 0, 1:1 + n_w] = -vel * ky / k * cos_t
        coef[:, 0, 1 + n_w:1 + 2 * n_w] = -vel * ky / k * sin_t
        coef[:, 1, 1:1 + n_w] = vel * kx / k * cos_t
        coef[:, 1, 1 + n_w:1 + 2 * n_w] = vel * kx / k * sin_t
        # synoptic anomaly a sin(k.x - (w t - p)) = a [sin(k.x) cos(w t - p) - cos(k.x) sin(w t - p)]
        start = 1 + 2 * n_w
        _, _, omega_s, phase_s, amp_s = self.synoptic_modes.T
        arg = np.outer(t, omega_s) - phase_s
        coef[:, 2, start:start + n_s] = -amp_s * np.sin(arg)
        coef[:, 2, start + n_s:start + 2 * n_s] = amp_s * np.cos(arg)
        days = t / DAY
        coef[:, 2, 0] = p["mean_temperature"] - p["seasonal_amplitude"] * np.cos(2 * np.pi * (days - 15.0) / YEAR_DAYS)
        # diurnal A/2 cos(W t + lon - W 15h) = A/2 [cos(lon) cos(W t - W 15h) - sin(lon) sin(W t - W 15h)]
        solar = 2 * np.pi * (t / DAY - 15.0 / 24.0)
        coef[:, 2, -3] = 0.5 * np.cos(solar)
        coef[:, 2, -2] = -0.5 * np.sin(solar)
        coef[:, 2, -1] = 1.0
        return coef


# --------------------------------------------------------------------------------------------
# Stochastic forcing
# --------------------------------------------------------------------------------------------
class StochasticForcing:
    """Hourly keyframes of the small-scale forcing xi (K/s) on the padded grid.

    Keyframe k is at ``origin + k`` hours.  AR(1) in time on white noise, then the Gaussian filter
    (filtering commutes with the linear recursion, so whole days are filtered at once).  Random
    numbers for day d come from ``default_rng([seed, 1, d])``, so a keyframe is regenerated by
    replaying the recursion from the origin; the last two days are cached for sequential access.
    """

    def __init__(self, shape: tuple[int, int], params: dict[str, float], seed: int) -> None:
        self.shape = shape
        self.seed = seed
        self.sigma = params["forcing_length_cells"]
        self.sigma_large = params["forcing_highpass_cells"]
        self.decay = math.exp(-1.0 / params["forcing_time_hours"])
        impulse = np.zeros((int(8 * max(self.sigma, self.sigma_large)) * 2 + 1,) * 2)
        impulse[impulse.shape[0] // 2, impulse.shape[1] // 2] = 1.0
        kernel_norm = float(np.sqrt((self._filter(impulse, mode="constant") ** 2).sum()))
        self.scale = params["forcing_amplitude"] / HOUR / kernel_norm  # unit-variance filtered noise * amplitude
        self._day = -1  # last generated day
        self._state: np.ndarray | None = None  # AR(1) state at the last hour of that day
        self._blocks: dict[int, np.ndarray] = {}  # the last two days (an hour's keyframes may straddle them)

    def day_block(self, day: int) -> np.ndarray:
        """Keyframes 24 day .. 24 day + 23, shape (ny, nx) each, K/s."""
        if day < 0:
            raise ValueError("forcing keyframes start at the origin (day 0)")
        if day in self._blocks:
            return self._blocks[day]
        if day < self._day:  # replay from the origin
            self._day, self._state, self._blocks = -1, None, {}
        while self._day < day:
            self._advance()
        return self._blocks[day]

    def keyframe(self, k: int) -> np.ndarray:
        """Keyframe ``k`` (K/s)."""
        return self.day_block(k // 24)[k % 24]

    def _advance(self) -> None:
        day = self._day + 1
        white = np.random.default_rng([self.seed, 1, day]).standard_normal((24, *self.shape))
        innovation = math.sqrt(1.0 - self.decay**2)
        eta = np.empty_like(white)
        eta[0] = white[0] if self._state is None else self.decay * self._state + innovation * white[0]
        for hour in range(1, 24):
            eta[hour] = self.decay * eta[hour - 1] + innovation * white[hour]
        self._state = eta[-1].copy()
        self._blocks = {d: b for d, b in self._blocks.items() if d == day - 1}
        self._blocks[day] = self._filter(eta, mode="reflect") * self.scale
        self._day = day

    def _filter(self, noise: np.ndarray, mode: str) -> np.ndarray:
        """Band-pass over the last two axes: Gaussian(sigma) minus Gaussian(sigma_large)."""
        lead = (0,) * (noise.ndim - 2)
        smooth = ndi.gaussian_filter(noise, sigma=(*lead, self.sigma, self.sigma), mode=mode)
        if self.sigma_large > 0:
            smooth -= ndi.gaussian_filter(noise, sigma=(*lead, self.sigma_large, self.sigma_large), mode=mode)
        return smooth


# --------------------------------------------------------------------------------------------
# The model on the padded grid
# --------------------------------------------------------------------------------------------
def _padded_axis(axis: np.ndarray, margin: int) -> np.ndarray:
    step = float(np.mean(np.diff(axis)))
    return np.round(axis[0] + step * np.arange(-margin, axis.size + margin), 6)


class TwinModel:
    """The twin on one region: grid, analytic fields, forcing and the SSP-RK3 integrator.

    ``origin`` is the start of the spin-up (first forcing keyframe); the PDE residual of a given
    hour is reproducible only with the same ``static``, ``params``, ``seed`` and ``origin``.
    """

    def __init__(self, static: xr.Dataset, params: Mapping[str, Any] | None, seed: int, origin: Any,
                 forcing_seed: int | None = None) -> None:
        self.params = merged_params(params)
        self.seed = int(seed)
        self.forcing_seed = self.seed if forcing_seed is None else int(forcing_seed)
        self.origin = np.datetime64(pd.Timestamp(origin).to_datetime64(), "s")
        self.static = static
        self.pole = pole_of(static)
        self.margin = int(self.params["margin_cells"])
        self.ny, self.nx = static.sizes["rlat"], static.sizes["rlon"]
        self.dx, self.dy = float(static.attrs["dx_m"]), float(static.attrs["dy_m"])
        rlat, rlon = static["rlat"].values, static["rlon"].values
        self.rlat_step = float(np.mean(np.diff(rlat)))
        self.rlon_step = float(np.mean(np.diff(rlon)))
        self.rlat_ref, self.rlon_ref = float(rlat[0]), float(rlon[0])
        self.rlat_pad = _padded_axis(rlat, self.margin)
        self.rlon_pad = _padded_axis(rlon, self.margin)
        rlon2, rlat2 = np.meshgrid(self.rlon_pad, self.rlat_pad)
        self.lon_pad, self.lat_pad = rotated_to_geographic(rlon2, rlat2, self.pole)
        # Outside the region the twin's world mirrors the region's edge strip: a buffer only.
        pad = ((self.margin, self.margin), (self.margin, self.margin))
        self.hsurf_pad = np.pad(static["HSURF"].values.astype(np.float64), pad, mode="reflect")
        self.fr_land_pad = np.pad(static["FR_LAND"].values.astype(np.float64), pad, mode="reflect")
        self.x_pad, self.y_pad = self.to_xy(rlon2, rlat2)
        self.fields = AnalyticFields.from_seed(self.seed, self.params)
        self.basis = self.fields.basis(self.x_pad, self.y_pad, self.lat_pad, self.lon_pad,
                                       self.hsurf_pad, self.fr_land_pad)
        self.shape_pad = self.x_pad.shape
        self.forcing = StochasticForcing(self.shape_pad, self.params, self.forcing_seed)
        self.substeps = self._substeps()
        self.interior = (slice(self.margin, self.margin + self.ny), slice(self.margin, self.margin + self.nx))

    # -- geometry -----------------------------------------------------------------------------
    def to_xy(self, rlon: np.ndarray, rlat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotated degrees -> tangent-plane metres (origin at the region's south-west centre)."""
        x = (np.asarray(rlon) - self.rlon_ref) / self.rlon_step * self.dx
        y = (np.asarray(rlat) - self.rlat_ref) / self.rlat_step * self.dy
        return x, y

    def _substeps(self) -> int:
        if self.params["substeps_per_hour"] > 0:
            return int(self.params["substeps_per_hour"])
        # |u|/dx + |v|/dy <= |V| sqrt(1/dx^2 + 1/dy^2) for any direction
        advective = self.fields.max_speed * math.hypot(1 / self.dx, 1 / self.dy) * HOUR / self.params["cfl"]
        kappa, tau = self.params["kappa"], self.params["tau_hours"] * HOUR
        damping = (4 * kappa / self.dx**2 + 4 * kappa / self.dy**2 + 1 / tau) * HOUR / (0.8 * RK3_REAL_AXIS_LIMIT)
        return max(1, math.ceil(advective), math.ceil(damping))

    # -- forcing fields -----------------------------------------------------------------------
    def wind_background(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, T_bg) on the padded grid at ``t`` seconds since EPOCH."""
        fields = (self.fields.coefficients(t)[0] @ self.basis).reshape(3, *self.shape_pad)
        return fields[0], fields[1], fields[2]

    def forcing_at(self, t: float) -> np.ndarray:
        """xi (K/s) on the padded grid, linear between hourly keyframes."""
        hours = (t - float(seconds_since_epoch(self.origin)[0])) / HOUR
        k = int(math.floor(hours + 1e-9))
        weight = hours - k
        if weight < 1e-9:
            return self.forcing.keyframe(k)
        return (1 - weight) * self.forcing.keyframe(k) + weight * self.forcing.keyframe(k + 1)

    # -- integration --------------------------------------------------------------------------
    def run(self, n_hours: int) -> Iterator[tuple[np.datetime64, np.ndarray]]:
        """Integrate from the origin; yield (time, T on the padded grid) at every hour 0 .. n_hours.

        The yielded array is reused; copy what you keep.
        """
        p = self.params
        t0 = float(seconds_since_epoch(self.origin)[0])
        kappa_x, kappa_y = p["kappa"] / self.dx**2, p["kappa"] / self.dy**2
        inv_tau = 1.0 / (p["tau_hours"] * HOUR)
        centre = 2 * kappa_x + 2 * kappa_y + inv_tau
        n_sub = self.substeps
        dt = HOUR / n_sub
        inner = (slice(1, -1), slice(1, -1))
        shape_in = (self.shape_pad[0] - 2, self.shape_pad[1] - 2)
        work = np.empty(shape_in)  # tendency buffer, reused by every stage

        def prepare(fields: np.ndarray, keyframes: tuple[np.ndarray, np.ndarray], weight: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            """Stencil coefficients, source term and the ring value from [u, v, T_bg] at one time."""
            u, v, background = fields
            a = u[inner] * (-0.5 / self.dx)
            b = v[inner] * (-0.5 / self.dy)
            xi = keyframes[0][inner] * (1 - weight) + keyframes[1][inner] * weight
            return (kappa_x + a, kappa_x - a, kappa_y + b, kappa_y - b,
                    background[inner] * inv_tau + xi, background)

        def tendency(T: np.ndarray, coeffs: tuple[np.ndarray, ...]) -> np.ndarray:
            ce, cw, cn, cs, src, _ = coeffs
            tend = work
            np.multiply(ce, T[1:-1, 2:], out=tend)
            tend += cw * T[1:-1, :-2]
            tend += cn * T[2:, 1:-1]
            tend += cs * T[:-2, 1:-1]
            tend -= centre * T[1:-1, 1:-1]
            tend += src
            return tend

        def set_ring(T: np.ndarray, background: np.ndarray) -> None:
            T[0, :], T[-1, :] = background[0, :], background[-1, :]
            T[:, 0], T[:, -1] = background[:, 0], background[:, -1]

        _, _, T = self.wind_background(t0)
        T = T.copy()
        T1, T2 = np.empty_like(T), np.empty_like(T)
        yield self.origin, T
        n_basis = self.basis.shape[0]
        for hour in range(n_hours):
            keyframes = (self.forcing.keyframe(hour), self.forcing.keyframe(hour + 1))
            # all stage times of this hour (every half sub-step) in one matrix product
            fractions = np.arange(2 * n_sub + 1) / (2 * n_sub)
            coef = self.fields.coefficients(t0 + (hour + fractions) * HOUR).reshape(-1, n_basis)
            fields = (coef @ self.basis).reshape(fractions.size, 3, *self.shape_pad)
            start = prepare(fields[0], keyframes, 0.0)
            for sub in range(n_sub):
                end = prepare(fields[2 * sub + 2], keyframes, fractions[2 * sub + 2])
                middle = prepare(fields[2 * sub + 1], keyframes, fractions[2 * sub + 1])
                # SSP-RK3 (Shu-Osher); the ring holds T_bg at each stage's time
                T1[...] = T
                T1[inner] += dt * tendency(T, start)
                set_ring(T1, end[5])
                T2[...] = T1
                T2[inner] += dt * tendency(T1, end)
                T2 *= 0.25
                T2 += 0.75 * T
                set_ring(T2, middle[5])
                T3_inner = T2[inner] + dt * tendency(T2, middle)
                T[inner] = (T[inner] + 2.0 * T3_inner) / 3.0
                set_ring(T, end[5])
                start = end
            yield self.origin + np.timedelta64((hour + 1) * 3600, "s"), T

    # -- PDE residual -------------------------------------------------------------------------
    def residual_terms(self, time: Any) -> dict[str, np.ndarray]:
        """Known u, v, T_bg and xi on the region (ny, nx) at an hourly ``time`` (regenerated)."""
        t = float(seconds_since_epoch(time)[0])
        u, v, background = self.wind_background(t)
        xi = self.forcing_at(t)
        return {name: field[self.interior] for name, field in
                (("u", u), ("v", v), ("background", background), ("forcing", xi))}


def pde_operator(T_prev: np.ndarray, T_now: np.ndarray, T_next: np.ndarray, u: np.ndarray, v: np.ndarray,
                 background: np.ndarray, forcing: np.ndarray, dx: float, dy: float, kappa: float, tau_s: float,
                 dt_s: float = HOUR) -> np.ndarray:
    """Residual of the twin's PDE on the interior (ny-2, nx-2) of (ny, nx) fields (K/s).

    ``(T_next - T_prev) / (2 dt) + u dT/dx + v dT/dy - kappa lap T + (T - T_bg) / tau - xi``,
    centred in time and space; ``u``, ``v``, ``background``, ``forcing`` at the time of ``T_now``.
    """
    c = (slice(1, -1), slice(1, -1))
    d_dt = (T_next[c] - T_prev[c]) / (2 * dt_s)
    d_dx = (T_now[1:-1, 2:] - T_now[1:-1, :-2]) / (2 * dx)
    d_dy = (T_now[2:, 1:-1] - T_now[:-2, 1:-1]) / (2 * dy)
    lap = ((T_now[1:-1, 2:] - 2 * T_now[c] + T_now[1:-1, :-2]) / dx**2
           + (T_now[2:, 1:-1] - 2 * T_now[c] + T_now[:-2, 1:-1]) / dy**2)
    return (d_dt + u[c] * d_dx + v[c] * d_dy - kappa * lap + (T_now[c] - background[c]) / tau_s - forcing[c])


def pde_residual(T_prev: np.ndarray, T_now: np.ndarray, T_next: np.ndarray, time_now: Any,
                 model: TwinModel) -> np.ndarray:
    """Residual (K/s) of the stated PDE for three consecutive hourly region fields.

    The wind, background and stochastic forcing at ``time_now`` are regenerated from the model's
    seed (``model`` = a :class:`TwinModel` with the run's static fields, params, seed and origin).
    """
    terms = model.residual_terms(time_now)
    return pde_operator(T_prev, T_now, T_next, terms["u"], terms["v"], terms["background"], terms["forcing"],
                        model.dx, model.dy, model.params["kappa"], model.params["tau_hours"] * HOUR)


# --------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------
def block_mean_upsampled(field: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks of the last two axes, repeated back to full size."""
    *lead, ny, nx = field.shape
    blocks = field.reshape(*lead, ny // factor, factor, nx // factor, factor).mean(axis=(-3, -1))
    return np.repeat(np.repeat(blocks, factor, axis=-2), factor, axis=-1)


def _run_region(model: TwinModel, first_output: np.datetime64, n_out: int) -> np.ndarray:
    """Region fields (n_out, ny, nx) at hourly times from ``first_output``."""
    skip = int((first_output - model.origin) / np.timedelta64(1, "h"))
    out = np.empty((n_out, model.ny, model.nx))
    for hour, (_, T) in enumerate(model.run(skip + n_out - 1)):
        if hour >= skip:
            out[hour - skip] = T[model.interior]
    return out


def predictability_diagnostic(static: xr.Dataset, params: Mapping[str, Any] | None, seed: int, start: Any,
                              days: float | None = None, factor: int = 8) -> dict[str, Any]:
    """Share of fine-scale variance that is predictable, from two runs differing only in xi.

    Both runs share static fields, params, seed (wind, background) and spin-up; the second one's
    forcing uses another seed. With ``T'`` = T minus its factor x factor block mean (what the coarse
    grid does not resolve): ``share = 1 - Var(T1' - T2') / (2 Var(T'))`` and the RMSE floor of a
    perfect deterministic model ``sqrt(Var(T1' - T2') / 2)`` (fine-scale; ``total`` on the full T).
    Also reports the PDE residual (RMS, K/h) of the truth vs. a bicubic interpolation of its
    block mean, evaluated with the same operator.
    """
    merged = merged_params(params)
    days = merged["diagnostic_days"] if days is None else float(days)
    first = np.datetime64(pd.Timestamp(start).to_datetime64(), "s")
    origin = first - np.timedelta64(int(round(merged["spinup_days"] * 24)), "h")
    n_out = max(3, int(round(days * 24)))
    runs = []
    for forcing_seed in (seed, seed + 1_000_003):
        model = TwinModel(static, merged, seed, origin, forcing_seed=forcing_seed)
        runs.append(_run_region(model, first, n_out))
    fine = [T - block_mean_upsampled(T, factor) for T in runs]
    var_fine = 0.5 * float(np.mean(fine[0] ** 2) + np.mean(fine[1] ** 2))
    var_diff = float(np.mean((fine[0] - fine[1]) ** 2))
    var_total = 0.5 * float(np.var(runs[0]) + np.var(runs[1]))
    var_diff_total = float(np.mean((runs[0] - runs[1]) ** 2))
    truth_res, interp_res = _residual_comparison(model, runs[1], first, factor)
    return {
        "start": str(first),
        "days": days,
        "factor": factor,
        "fine_scale_std_K": math.sqrt(var_fine),
        "predictable_share_fine": 1.0 - var_diff / (2 * var_fine),
        "rmse_floor_fine_K": math.sqrt(var_diff / 2),
        "predictable_share_total": 1.0 - var_diff_total / (2 * var_total),
        "rmse_floor_total_K": math.sqrt(var_diff_total / 2),
        "pde_residual_rms_truth_K_per_h": truth_res,
        "pde_residual_rms_interpolated_K_per_h": interp_res,
    }


def _residual_comparison(model: TwinModel, fields: np.ndarray, first: np.datetime64, factor: int,
                         every: int = 6) -> tuple[float, float]:
    """RMS PDE residual (K/h) of the truth and of the bicubic-interpolated block mean."""
    blocks = fields.reshape(fields.shape[0], model.ny // factor, factor, model.nx // factor, factor).mean(axis=(2, 4))
    smooth = np.stack([ndi.zoom(b, factor, order=3, mode="nearest", grid_mode=True) for b in blocks])
    truth_sq, interp_sq, count = 0.0, 0.0, 0
    for i in range(1, fields.shape[0] - 1, every):
        time_now = first + np.timedelta64(i * 3600, "s")
        truth_sq += float(np.mean(pde_residual(fields[i - 1], fields[i], fields[i + 1], time_now, model) ** 2))
        interp_sq += float(np.mean(pde_residual(smooth[i - 1], smooth[i], smooth[i + 1], time_now, model) ** 2))
        count += 1
    return math.sqrt(truth_sq / count) * HOUR, math.sqrt(interp_sq / count) * HOUR


# --------------------------------------------------------------------------------------------
# ERA5-like predictors
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------
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
