"""The analytic, seeded wind and background temperature of the twin (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pdeldm.data.twin.params import DAY, LAT_REFERENCE, N_SYNOPTIC_MODES, N_WIND_MODES, YEAR_DAYS


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
        meridional = -p["meridional_gradient"] * (lat.ravel() - LAT_REFERENCE)
        lapse = -p["lapse_rate"] * 1e-3 * hsurf.ravel()
        rows.extend([diurnal * np.cos(lon_rad), diurnal * np.sin(lon_rad), meridional, lapse, fr_land.ravel()])
        return np.vstack([np.atleast_2d(r) for r in rows])

    def background_rows(self) -> dict[str, slice]:
        """Rows of :meth:`basis` (and columns of :meth:`coefficients`) of each term of T_bg."""
        n_w, n_s = len(self.wind_modes), len(self.synoptic_modes)
        start = 1 + 2 * n_w
        end = start + 2 * n_s
        return {"mean_seasonal": slice(0, 1), "synoptic": slice(start, end), "diurnal": slice(end, end + 2),
                "meridional": slice(end + 2, end + 3), "lapse_rate": slice(end + 3, end + 4),
                "continentality": slice(end + 4, end + 5)}

    def coefficients(self, t: np.ndarray) -> np.ndarray:
        """Time coefficients (T, 3, K) such that [u, v, T_bg] = coefficients(t) @ basis."""
        p = self.params
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        n_w, n_s = len(self.wind_modes), len(self.synoptic_modes)
        coef = np.zeros((t.size, 3, 1 + 2 * n_w + 2 * n_s + 5))
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
        coef[:, 2, -5] = 0.5 * np.cos(solar)
        coef[:, 2, -4] = -0.5 * np.sin(solar)
        coef[:, 2, -3:-1] = 1.0  # meridional gradient, lapse rate
        coef[:, 2, -1] = self.land_sea_contrast(t)
        return coef

    def land_sea_contrast(self, t: np.ndarray) -> np.ndarray:
        """Continentality ``C(t)`` (K per unit land fraction): T_bg holds ``C(t) FR_LAND``.

        ``C = -continentality_amplitude cos(2 pi (day - continentality_phase_day) / 365.2425)``:
        land colder than sea in winter, warmer in summer.
        """
        p = self.params
        days = np.asarray(t, dtype=np.float64) / DAY
        return -p["continentality_amplitude"] * np.cos(2 * np.pi * (days - p["continentality_phase_day"]) / YEAR_DAYS)

