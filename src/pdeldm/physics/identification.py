r"""Identify the coefficients of the transport equation from the training targets (least squares).

The equation and its high-pass are those of :mod:`pdeldm.physics.identified_pde`. Written as a
regression on sampled training times ``t`` (every grid point of the filtered interior a row)::

    y = HP[(T(t+1) - T(t-1)) / 2 dt + u.grad T]      (known: targets and the store's ERA5 wind)
      = kappa HP[lap T] + a HP[T] + sum_k s_k HP[X_k] + HP[xi],      a = -1 / tau

Ordinary least squares is biased here: the unexplained forcing ``xi`` is correlated in time
(hours), and ``T`` has already responded to it, so the regressors ``T`` and ``lap T`` are correlated
with the error. The fit is therefore **two-stage least squares**: ``HP[T]`` and ``HP[lap T]`` are
instrumented by the same fields ``instrument_lags_hours`` earlier (a day or more: far longer than the
forcing's memory, still strongly tied to ``T`` through the surface-driven pattern), the exogenous
``X_k`` instrument themselves. The ordinary least-squares estimate is reported beside it.

Uncertainty: a moving-block bootstrap over days (``bootstrap_block_days`` consecutive days per
block) of the per-day cross-products gives 95% intervals of every coefficient and of the derived
physical quantities (relaxation time, lapse rate, land-sea diurnal and seasonal amplitudes).

Only the train split is used. Columns are scaled by their standard deviation on the first sampled
time before the cross-products are accumulated, so the normal equations stay well conditioned
(the Laplacian is ~1e-8 K/m^2, the temperature ~300 K).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import zarr

from pdeldm.errors import InputError
from pdeldm.data.store import open_store
from pdeldm.io import read_json
from pdeldm.physics.finite_differences import gradient, laplacian
from pdeldm.physics.identified_pde import HOUR_S, SOURCE_TERMS, PDECoefficients, highpass, source_fields, time_phases

log = logging.getLogger("pdeldm.identification")

ENDOGENOUS = ("lap_T", "T")
COLUMNS = (*ENDOGENOUS, *SOURCE_TERMS)


class _ChunkCache:
    """Reads single times of a time-chunked zarr array, keeping the last few chunks."""

    def __init__(self, array: zarr.Array, keep: int = 8) -> None:
        self.array = array
        self.chunk = int(array.chunks[0])
        self.keep = keep
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getitem__(self, index: int) -> np.ndarray:
        c = index // self.chunk
        if c not in self._chunks:
            self._chunks[c] = np.asarray(self.array[c * self.chunk:(c + 1) * self.chunk], dtype=np.float64)
            while len(self._chunks) > self.keep:
                self._chunks.popitem(last=False)
        self._chunks.move_to_end(c)
        return self._chunks[c][index - c * self.chunk]


def sample_times(times: pd.DatetimeIndex, split: Sequence[int], lags: Sequence[int], stride: int,
                 max_times: int) -> list[int]:
    """Store indices of the fit: every ``stride``-th hour of the train split that has its neighbours
    (t +- 1 h) and its instruments (t - lag) inside the split at the right distance; at most
    ``max_times``, evenly spread."""
    i0, i1 = int(split[0]), int(split[1])
    first = i0 + max(lags)
    chosen = []
    for i in range(first, i1 - 1, stride):
        hours = [(times[i + d] - times[i]) / pd.Timedelta(hours=1) for d in (-1, 1)]
        lagged = [(times[i] - times[i - lag]) / pd.Timedelta(hours=1) for lag in lags]
        if hours == [-1.0, 1.0] and lagged == [float(lag) for lag in lags]:
            chosen.append(i)
    if len(chosen) > max_times:
        pick = np.linspace(0, len(chosen) - 1, max_times).round().astype(int)
        chosen = [chosen[k] for k in np.unique(pick)]
    return chosen


def _static_field(names: list[str], static: np.ndarray, name: str, where: str) -> torch.Tensor:
    if name not in names:
        raise InputError(f"{where}: the store has no static field {name!r} (has {names}); the equation's "
                         f"sources need HSURF and FR_LAND: add them to data.static_vars")
    return torch.from_numpy(static[names.index(name)].astype(np.float64))[None, None]


def identify_coefficients(store_path: str | Path, meta_path: str | Path, cfg: Mapping[str, Any],
                          logger: logging.Logger | None = None) -> dict[str, Any]:
    """Fit the equation on the train split (module docstring); returns a JSON-able result.

    ``cfg``: the config's ``physics`` block (``highpass_cells``, ``margin_cells``,
    ``instrument_lags_hours``, ``time_stride_hours``, ``max_times``, ``bootstrap_samples``,
    ``bootstrap_block_days``) and ``seed``.
    """
    logger = logger or log
    meta = read_json(meta_path)
    group = zarr.open_group(str(store_path), mode="r")
    with open_store(store_path) as ds:
        times = pd.DatetimeIndex(ds["time"].values)
        lon = torch.from_numpy(np.asarray(ds["lon"].values, dtype=np.float64))[None, None]
    if "train" not in meta["splits"]:
        raise InputError(f"{meta_path}: no train split")
    lags = [int(x) for x in cfg["instrument_lags_hours"]]
    chosen = sample_times(times, meta["splits"]["train"], lags, int(cfg["time_stride_hours"]), int(cfg["max_times"]))
    if len(chosen) < 10:
        raise InputError(f"{store_path}: only {len(chosen)} training times have hourly neighbours and "
                         f"{max(lags)} h of history; the fit needs at least 10 (longer train split, or "
                         f"smaller physics.instrument_lags_hours / physics.time_stride_hours)")
    dx, dy = float(meta["dx_m"]), float(meta["dy_m"])
    sigma, margin = float(cfg["highpass_cells"]), int(cfg["margin_cells"])
    static_names = [str(s) for s in meta["static_vars"]]
    static = np.asarray(group["static"][:], dtype=np.float64)
    hsurf = _static_field(static_names, static, "HSURF", str(store_path))
    fr_land = _static_field(static_names, static, "FR_LAND", str(store_path))
    target = _ChunkCache(group["target"])
    wind = _ChunkCache(group["wind"], keep=2)

    def field(index: int) -> torch.Tensor:
        return torch.from_numpy(target[index])[None, None]

    def columns(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        T = field(i)
        u_v = torch.from_numpy(wind[i])[None]
        dtdx, dtdy = gradient(T, dx, dy)
        tendency = (field(i + 1) - field(i - 1)) / (2 * HOUR_S)  # sample_times checked the 1-hour spacing
        y = tendency + u_v[:, 0:1] * dtdx + u_v[:, 1:2] * dtdy
        day, year = time_phases([times[i]])
        sources = source_fields(hsurf, fr_land, lon, torch.from_numpy(day), torch.from_numpy(year))
        x_cols = torch.cat([laplacian(T, dx, dy), T, sources], dim=1)
        z_cols = [x_cols[:, 2:]]
        for lag in lags:
            T_lag = field(i - lag)
            z_cols.insert(0, torch.cat([laplacian(T_lag, dx, dy), T_lag], dim=1))
        z_all = torch.cat(z_cols, dim=1)

        def flat(a: torch.Tensor) -> np.ndarray:
            return highpass(a, sigma, margin).reshape(a.shape[1], -1).T.numpy()

        return flat(x_cols), flat(z_all), flat(y)[:, 0]

    days = pd.DatetimeIndex(times[chosen]).normalize()
    day_keys, day_of_sample = np.unique(days.values, return_inverse=True)
    n_x, n_z = len(COLUMNS), 2 * len(lags) + len(SOURCE_TERMS)
    sums = {"ZZ": np.zeros((len(day_keys), n_z, n_z)), "ZX": np.zeros((len(day_keys), n_z, n_x)),
            "Zy": np.zeros((len(day_keys), n_z)), "XX": np.zeros((len(day_keys), n_x, n_x)),
            "Xy": np.zeros((len(day_keys), n_x)), "yy": np.zeros(len(day_keys)), "n": np.zeros(len(day_keys))}
    x_scale = z_scale = None
    for count, (i, d) in enumerate(zip(chosen, day_of_sample)):
        X, Z, y = columns(i)
        if x_scale is None:
            x_scale = np.where(X.std(0) > 0, X.std(0), 1.0)
            z_scale = np.where(Z.std(0) > 0, Z.std(0), 1.0)
        X, Z = X / x_scale, Z / z_scale
        sums["ZZ"][d] += Z.T @ Z
        sums["ZX"][d] += Z.T @ X
        sums["Zy"][d] += Z.T @ y
        sums["XX"][d] += X.T @ X
        sums["Xy"][d] += X.T @ y
        sums["yy"][d] += y @ y
        sums["n"][d] += y.size
        if (count + 1) % max(1, len(chosen) // 5) == 0:
            logger.info("identification: %d/%d training times accumulated", count + 1, len(chosen))

    total = {k: v.sum(axis=0) for k, v in sums.items()}
    beta_iv = _two_stage(total) / x_scale
    beta_ols = np.linalg.solve(total["XX"], total["Xy"]) / x_scale
    residual_std = _residual_std(total, beta_iv * x_scale)
    rng = np.random.default_rng([int(cfg["seed"]), 0x1D])
    boot = _block_bootstrap(sums, int(cfg["bootstrap_samples"]), int(cfg["bootstrap_block_days"]), rng)
    boot_derived = [derived_quantities(b / x_scale) for b in boot]
    derived = derived_quantities(beta_iv)
    intervals = {k: [float(np.percentile([b[k] for b in boot_derived], 2.5)),
                     float(np.percentile([b[k] for b in boot_derived], 97.5))] for k in derived} if boot_derived else {}
    coefficients = PDECoefficients(
        kappa=float(beta_iv[0]), tau_s=float(-1.0 / beta_iv[1]),
        source={name: float(b) for name, b in zip(SOURCE_TERMS, beta_iv[2:])},
        highpass_cells=sigma, margin_cells=margin, residual_std=residual_std,
    )
    logger.info("identification: kappa %.0f m2/s, tau %.2f h, lapse rate %.2f K/km, land-sea diurnal range %.2f K, "
                "residual %.3f K/h (OLS: tau %.2f h, lapse rate %.2f K/km)", coefficients.kappa,
                derived["tau_hours"], derived["lapse_rate_K_per_km"], derived["diurnal_range_land_minus_sea_K"],
                residual_std * 3600, derived_quantities(beta_ols)["tau_hours"],
                derived_quantities(beta_ols)["lapse_rate_K_per_km"])
    return {
        "coefficients": coefficients.to_dict(),
        "derived": derived,
        "derived_95ci": intervals,
        "ols": {"coefficients": dict(zip(COLUMNS, map(float, beta_ols))), "derived": derived_quantities(beta_ols)},
        "method": {
            "estimator": "two-stage least squares",
            "instruments": [f"{c}(t-{lag}h)" for lag in lags for c in ENDOGENOUS] + list(SOURCE_TERMS),
            "highpass_cells": sigma, "margin_cells": margin, "time_stride_hours": int(cfg["time_stride_hours"]),
            "bootstrap_samples": int(cfg["bootstrap_samples"]), "bootstrap_block_days": int(cfg["bootstrap_block_days"]),
        },
        "n_times": len(chosen),
        "n_days": len(day_keys),
        "n_points": int(total["n"]),
        "first_time": str(times[chosen[0]]),
        "last_time": str(times[chosen[-1]]),
    }


def _two_stage(s: Mapping[str, np.ndarray]) -> np.ndarray:
    """2SLS from cross-products: ``(A' W A)^-1 A' W Z'y`` with ``A = Z'X``, ``W = (Z'Z)^-1``."""
    w_a = np.linalg.solve(s["ZZ"], s["ZX"])
    w_y = np.linalg.solve(s["ZZ"], s["Zy"])
    return np.linalg.solve(s["ZX"].T @ w_a, s["ZX"].T @ w_y)


def _residual_std(s: Mapping[str, np.ndarray], beta_scaled: np.ndarray) -> float:
    sse = s["yy"] - 2 * beta_scaled @ s["Xy"] + beta_scaled @ s["XX"] @ beta_scaled
    return float(math.sqrt(max(sse, 0.0) / s["n"]))


def _block_bootstrap(sums: Mapping[str, np.ndarray], samples: int, block: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """2SLS coefficients (scaled columns) of ``samples`` moving-block resamplings of the days."""
    n_days = sums["n"].shape[0]
    block = max(1, min(block, n_days))
    starts = n_days - block + 1
    n_blocks = math.ceil(n_days / block)
    out = []
    for _ in range(samples):
        picks = np.concatenate([np.arange(s, s + block) for s in rng.integers(0, starts, n_blocks)])[:n_days]
        resampled = {k: v[picks].sum(axis=0) for k, v in sums.items()}
        try:
            out.append(_two_stage(resampled))
        except np.linalg.LinAlgError:
            continue
    return out


def derived_quantities(beta: np.ndarray) -> dict[str, float]:
    """Physical quantities from the coefficients ``[kappa, a, s_k...]`` (unscaled, SI)."""
    coef = dict(zip(COLUMNS, map(float, beta)))
    tau = -1.0 / coef["T"] if coef["T"] != 0 else math.inf
    return {
        "kappa_m2_s": coef["lap_T"],
        "tau_hours": tau / 3600.0,
        # T_bg = -Gamma HSURF enters as -Gamma HSURF / tau
        "lapse_rate_K_per_km": -coef["HSURF"] * tau * 1000.0,
        # land minus sea peak-to-peak of the diurnal cycle of T_bg
        "diurnal_range_land_minus_sea_K": 2.0 * tau * math.hypot(coef["FR_LAND_cos_solar"], coef["FR_LAND_sin_solar"]),
        "diurnal_peak_hour_land_local_solar": (math.degrees(math.atan2(coef["FR_LAND_sin_solar"],
                                                                       coef["FR_LAND_cos_solar"])) / 15.0) % 24.0,
        # land minus sea amplitude of the seasonal cycle of T_bg (half the summer-winter swing)
        "seasonal_amplitude_land_minus_sea_K": tau * math.hypot(coef["FR_LAND_cos_season"], coef["FR_LAND_sin_season"]),
    }
