"""The twin on one region: grid, integrator and the residual of the stated PDE."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.data.static import pole_of, rotated_to_geographic
from pdeldm.data.twin.fields import AnalyticFields
from pdeldm.data.twin.forcing import StochasticForcing
from pdeldm.data.twin.numerics import RK3_REAL_AXIS_LIMIT, SpatialOperator, StageCoefficients
from pdeldm.data.twin.params import HOUR, merged_params, seconds_since_epoch


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

    def background_terms(self, time: Any) -> dict[str, np.ndarray]:
        """The separate terms of T_bg on the region (ny, nx) at ``time``; they sum to T_bg.

        ``mean_seasonal`` (T0 + S), ``synoptic``, ``diurnal``, ``meridional``, ``lapse_rate``
        (-Gamma HSURF) and ``continentality`` (C(t) FR_LAND), as in the package docstring.
        """
        coef = self.fields.coefficients(float(seconds_since_epoch(time)[0]))[0, 2]
        return {name: (coef[rows] @ self.basis[rows]).reshape(self.shape_pad)[self.interior]
                for name, rows in self.fields.background_rows().items()}

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
        operator = SpatialOperator(self.shape_pad, self.dx, self.dy, p["kappa"], p["tau_hours"] * HOUR,
                                   diffusion_scale=p["numerical_diffusion"])
        inner = operator.inner
        n_sub = self.substeps
        dt = HOUR / n_sub

        def prepare(fields: np.ndarray, keyframes: tuple[np.ndarray, np.ndarray], weight: float
                    ) -> StageCoefficients:
            u, v, background = fields
            xi = keyframes[0] * (1 - weight) + keyframes[1] * weight
            return operator.coefficients(u, v, background, xi)

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
                # SSP-RK3 (Shu-Osher); the frame holds T_bg at each stage's time
                T1[...] = T
                T1[inner] += dt * operator.tendency(T, start)
                operator.set_frame(T1, end.frame)
                T2[...] = T1
                T2[inner] += dt * operator.tendency(T1, end)
                T2 *= 0.25
                T2 += 0.75 * T
                operator.set_frame(T2, middle.frame)
                T3_inner = T2[inner] + dt * operator.tendency(T2, middle)
                T[inner] = (T[inner] + 2.0 * T3_inner) / 3.0
                operator.set_frame(T, end.frame)
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

