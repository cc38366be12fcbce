"""Physics-aware scores of one predicted field, and the study's two physics scores for reproduction.

Proper scores (each ranks the truth first against interpolations, smoothed, noisy and
flux-ratio-optimised versions of it: ``tests/evaluation/test_physics_ranking.py``):

* :meth:`TwinEquation.residual_rms` (K/h, twin only): RMS residual of the twin's *known* equation with its
  explicit wind, background and stochastic forcing, the tendency from the truth's neighbouring
  hours. The truth scores its discretisation floor; any wrong field scores more.
* :func:`fine_scale_spectral_scores`: the spectrum of the plane-detrended, Hann-windowed field (no
  edge leakage on non-periodic fields) over the scales the coarse input cannot resolve
  (wavelengths below ``2 * factor`` cells), as the slope difference and the log-spectral distance
  (dB) to the truth's.
* :func:`gradient_w1` (K/km): Wasserstein-1 distance between the distributions of ``|grad T|`` of
  prediction and truth; a blocky field (too many zeros and jumps) or a smooth one (too few large
  gradients) cannot game it.

Reported beside the truth's own value, never as "lower is better":

* :meth:`IdentifiedEquation.residual_rms` (K/h): the residual of the equation identified on the training
  targets (:mod:`pdeldm.physics.identified_pde`), usable on real data. The truth's value is its
  unexplained forcing; a slightly smoothed truth scores only a little higher on average, and lower
  at some hours (see that module).
* :func:`study_flux_ratio` and :func:`study_spectral_slope_diff`: the study's metrics, exactly as
  its code computes them. Neither ranks the truth first: the flux ratio is measured against the
  coarse input (so interpolations of it score best), the full-range slope on an unwindowed,
  non-periodic field is dominated by edge leakage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import wasserstein_distance

from pdeldm.evaluation import spectra
from pdeldm.physics.identified_pde import PDECoefficients, equation_residual, source_fields, time_phases

HOUR_S = 3600.0


# --------------------------------------------------------------------------------------------
# Equation residuals
# --------------------------------------------------------------------------------------------
class TwinEquation:
    """The twin's exact equation terms at any hour of its run, regenerated from its config.

    Args:
        static_path: the region's static file the twin was integrated on.
        params: ``twin.params`` of the config; seed: the config's seed.
        period_start: ``data.period.start`` (the twin's first output hour; its spin-up precedes it).
    """

    def __init__(self, static_path: str | Path, params: Mapping[str, Any] | None, seed: int,
                 period_start: str) -> None:
        from pdeldm.data.static import load_static
        from pdeldm.data.twin import TwinModel, merged_params

        merged = merged_params(params)
        origin = pd.Timestamp(period_start) - pd.Timedelta(hours=int(round(merged["spinup_days"] * 24)))
        self.model = TwinModel(load_static(Path(static_path)), merged, int(seed), origin)

    def residual_rms(self, T_prev: np.ndarray, T: np.ndarray, T_next: np.ndarray, time: Any) -> float:
        """RMS (K/h) over the interior of the twin equation's residual of ``T`` at ``time``."""
        from pdeldm.data.twin import pde_residual

        return float(np.sqrt(np.mean(pde_residual(T_prev, T, T_next, time, self.model) ** 2)) * HOUR_S)


class IdentifiedEquation:
    """The identified equation on one grid: coefficients, static sources and spacing."""

    def __init__(self, coefficients: PDECoefficients, hsurf: np.ndarray, fr_land: np.ndarray, lon: np.ndarray,
                 dx: float, dy: float) -> None:
        self.coefficients = coefficients
        self.dx, self.dy = float(dx), float(dy)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64))[None, None]

        self.hsurf, self.fr_land, self.lon = t(hsurf), t(fr_land), t(lon)

    def residual(self, T_prev: np.ndarray, T: np.ndarray, T_next: np.ndarray, wind: np.ndarray,
                 time: Any) -> np.ndarray:
        """High-passed residual field (K/s) of ``T`` (``wind`` ``[2, H, W]`` grid-relative u, v)."""
        day, year = time_phases([time])
        sources = source_fields(self.hsurf, self.fr_land, self.lon, torch.from_numpy(day), torch.from_numpy(year))

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64))[None, None]

        w = torch.as_tensor(np.asarray(wind, dtype=np.float64))[None]
        with torch.no_grad():
            r = equation_residual(t(T), t(T_prev), t(T_next), w[:, 0:1], w[:, 1:2], sources, self.dx, self.dy,
                                  self.coefficients)
        return r[0, 0].numpy()

    def residual_rms(self, T_prev: np.ndarray, T: np.ndarray, T_next: np.ndarray, wind: np.ndarray,
                     time: Any) -> float:
        """RMS (K/h) of :meth:`residual`; compare with the truth's own value."""
        return float(np.sqrt(np.mean(self.residual(T_prev, T, T_next, wind, time) ** 2)) * HOUR_S)


# --------------------------------------------------------------------------------------------
# Spectra and gradients
# --------------------------------------------------------------------------------------------
def fine_band(shape: tuple[int, int], factor: int) -> tuple[float, float]:
    """Wavenumber bins (cycles per ``min(H, W)`` cells) of the scales below two coarse cells."""
    side = min(shape)
    return side / (2.0 * factor), side / 2.0 - 1


def fine_scale_spectral_scores(pred: np.ndarray, truth: np.ndarray, factor: int) -> dict[str, float]:
    """Slope difference and log-spectral distance (dB) over the fine band (windowed spectra)."""
    k_min, k_max = fine_band(pred.shape, factor)
    p = spectra.windowed_spectral_fit(pred, k_min, k_max)
    t = spectra.windowed_spectral_fit(truth, k_min, k_max)
    return {
        "spectral_slope_diff": abs(p.slope - t.slope),
        "spectral_lsd": float(np.sqrt(np.mean((10 * np.log10(p.power / t.power)) ** 2))),
    }


def gradient_magnitude(field: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``|grad T|`` (K/km) on the interior, central differences."""
    gx = (field[1:-1, 2:] - field[1:-1, :-2]) / (2 * dx)
    gy = (field[2:, 1:-1] - field[:-2, 1:-1]) / (2 * dy)
    return np.hypot(gx, gy) * 1000.0


def gradient_w1(pred: np.ndarray, truth: np.ndarray, dx: float, dy: float) -> float:
    """Wasserstein-1 distance (K/km) between the |grad T| distributions of ``pred`` and ``truth``."""
    return float(wasserstein_distance(gradient_magnitude(pred, dx, dy).ravel(),
                                      gradient_magnitude(truth, dx, dy).ravel()))


# --------------------------------------------------------------------------------------------
# The study's scores
# --------------------------------------------------------------------------------------------
STUDY_FLUX_CELL = 16
STUDY_FLUX_EPS = 1e-6


def _study_gradients(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The study's gradients in grid units: central inside, first-order one-sided on the border."""
    gx, gy = np.zeros_like(T), np.zeros_like(T)
    gx[:, 1:-1] = (T[:, 2:] - T[:, :-2]) / 2.0
    gy[1:-1, :] = (T[2:, :] - T[:-2, :]) / 2.0
    gx[:, 0], gx[:, -1] = T[:, 1] - T[:, 0], T[:, -1] - T[:, -2]
    gy[0, :], gy[-1, :] = T[1, :] - T[0, :], T[-1, :] - T[-2, :]
    return gx, gy


def study_flux_ratio_cells(T: np.ndarray, cell: int = STUDY_FLUX_CELL, eps: float = STUDY_FLUX_EPS) -> np.ndarray:
    """The study's per-cell flux ratio ``[H // cell, W // cell]`` (grid units, field in K).

    Gradients of the whole field (:func:`_study_gradients`); in each ``cell x cell`` block the first
    and last rows (every column, normals -y and +y in index space) and the first and last columns
    (rows 1..cell-2, normals -x and +x): ``4 cell - 4`` samples of ``adv = T g.n / (|g| + eps)`` and
    ``diff = |g|``; ``R = mean(adv) / (mean(diff) + eps)``.
    """
    T = np.asarray(T, dtype=np.float64)
    gx, gy = _study_gradients(T)
    nv, nh = T.shape[0] // cell, T.shape[1] // cell

    def blocks(a: np.ndarray) -> np.ndarray:  # (nv, nh, cell, cell)
        return a[: nv * cell, : nh * cell].reshape(nv, cell, nh, cell).transpose(0, 2, 1, 3)

    t, bx, by = blocks(T), blocks(gx), blocks(gy)
    norm = np.sqrt(bx**2 + by**2)
    gxh, gyh = bx / (norm + eps), by / (norm + eps)
    inner = slice(1, cell - 1)
    adv = [t[..., 0, :] * -gyh[..., 0, :], t[..., -1, :] * gyh[..., -1, :],
           t[..., inner, 0] * -gxh[..., inner, 0], t[..., inner, -1] * gxh[..., inner, -1]]
    diff = [norm[..., 0, :], norm[..., -1, :], norm[..., inner, 0], norm[..., inner, -1]]
    adv_mean = np.concatenate(adv, axis=-1).mean(axis=-1)
    diff_mean = np.concatenate(diff, axis=-1).mean(axis=-1)
    return adv_mean / (diff_mean + eps)


def study_flux_ratio(pred: np.ndarray, coarse_nearest: np.ndarray) -> float:
    """The study's FluxRatio: ``mean |R(pred) - R(ERA5 nearest-upsampled)|`` (grid units, fields in K).

    It measures agreement with the *coarse input*, not with the truth: interpolations of the
    coarse field score better than the truth (tests/evaluation/test_physics_ranking.py).
    """
    return float(np.mean(np.abs(study_flux_ratio_cells(pred) - study_flux_ratio_cells(coarse_nearest))))


def study_spectral_slope_diff(pred: np.ndarray, truth: np.ndarray) -> float:
    """The study's SpectralSlopeDiff: full-range slope of the unwindowed spectrum, absolute difference.

    Dominated by edge leakage on non-periodic fields: smoothing the truth hardly changes it.
    """
    return float(spectra.spectral_slope_diff(pred, truth))
