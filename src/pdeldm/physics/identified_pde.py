r"""The identified transport equation of 2-m temperature, evaluated on the scales it can be checked on.

The equation (the twin's own form, :mod:`pdeldm.data.twin`, and a standard model of 2-m
temperature: advection by the 10-m wind, horizontal mixing, relaxation towards a background set by
the surface)::

    dT/dt + u dT/dx + v dT/dy = kappa lap T - T / tau + sum_k s_k X_k + xi

``u, v``: the explicit wind (grid-relative, m/s); ``kappa`` (m^2/s) and ``tau`` (s) constants;
``X_k``: the **source regressors** of :data:`SOURCE_TERMS`, built from the static fields and the
time alone (surface height, land fraction, the local solar cycle and the seasonal cycle over land);
``xi``: what the equation leaves unexplained (the twin's stochastic forcing, real sub-grid physics).

The large-scale background (synoptic anomalies, the seasonal mean, the meridional gradient) is not
known on real data, so every term is **high-passed** before it is compared: ``HP f = f - G_sigma * f``
with a Gaussian of ``highpass_cells`` fine cells (reflecting edges), then a border of
``margin_cells`` is dropped (the filter and the stencils are one-sided there). The equation holds
term by term after a linear filter because its coefficients are constants, so the same
coefficients describe the high-passed equation; scales far above ``sigma`` drop out with the
unknown background. :func:`pdeldm.physics.identification.identify_coefficients` fits ``kappa``,
``tau`` and ``s_k`` on the training targets with exactly these operators.

Two residuals of a field ``T`` at time ``t``:

* :func:`equation_residual` (K/s): ``HP[(T(t+1) - T(t-1)) / 2 dt + u.grad T - kappa lap T + T/tau
  - sum_k s_k X_k]`` with the tendency taken from the neighbouring hours of the *truth*. For the
  truth it is the unexplained part ``HP xi``. It barely separates the truth from a slightly
  smoothed truth: smoothing removes part of the response to ``xi`` together with ``xi``'s
  fingerprint, so a 1-cell Gaussian smoothing of the truth scores only a little worse on average
  and better at some hours (``tests/evaluation/test_physics_ranking.py`` and
  ``tests/physics/test_loss_ranking.py`` bound the margin). Report it beside the truth's own value,
  never as "lower is better".
* :func:`matched_residual` (K/s): ``HP[L(T) - L(T_true)]`` with the spatial operator
  ``L = u.grad - kappa lap + 1/tau``: the difference between the residual the prediction implies
  and the one the truth has, tendency and sources cancelling. Zero exactly for the truth and
  positive for every other field: the loss form whose best answer *is* the truth.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from pdeldm.physics.finite_differences import Spacing, gradient, laplacian

#: Source regressors ``X_k``: name -> how it is built (see :func:`source_fields`).
SOURCE_TERMS: tuple[str, ...] = (
    "HSURF",  # m: the lapse-rate term (s_HSURF = -lapse_rate / tau)
    "FR_LAND",  # land-sea offset
    "cos_solar",  # cos/sin of the local solar phase 2 pi (UTC hour / 24 + lon / 360)
    "sin_solar",
    "FR_LAND_cos_solar",  # land-sea contrast of the diurnal cycle
    "FR_LAND_sin_solar",
    "FR_LAND_cos_season",  # land-sea contrast of the seasonal cycle (continentality)
    "FR_LAND_sin_season",
)
HOUR_S = 3600.0
YEAR_DAYS = 365.25


@dataclass(frozen=True)
class PDECoefficients:
    """Coefficients of the identified equation and the filter they were identified with."""

    kappa: float  # m^2/s
    tau_s: float  # s
    source: dict[str, float]  # s_k in K/s per unit of X_k, keyed by SOURCE_TERMS
    highpass_cells: float
    margin_cells: int
    residual_std: float = math.nan  # K/s: RMS of the truth's equation residual on the training times
    extra: dict[str, Any] = field(default_factory=dict)  # fit diagnostics (not used by the operators)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PDECoefficients:
        unknown = sorted(set(d.get("source", {})) - set(SOURCE_TERMS))
        if unknown:
            raise ValueError(f"unknown source terms {unknown} (known: {', '.join(SOURCE_TERMS)})")
        return cls(kappa=float(d["kappa"]), tau_s=float(d["tau_s"]),
                   source={k: float(v) for k, v in d["source"].items()},
                   highpass_cells=float(d["highpass_cells"]), margin_cells=int(d["margin_cells"]),
                   residual_std=float(d.get("residual_std", math.nan)), extra=dict(d.get("extra") or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_phases(times: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UTC hour of day as a fraction of the day, day of year - 1 as a fraction of the year)."""
    import pandas as pd

    stamps = pd.DatetimeIndex(np.atleast_1d(np.asarray(times, dtype="datetime64[ns]")))
    day_fraction = (stamps.hour + stamps.minute / 60.0) / 24.0
    year_fraction = (stamps.day_of_year - 1 + day_fraction) / YEAR_DAYS
    return np.asarray(day_fraction, dtype=np.float64), np.asarray(year_fraction, dtype=np.float64)


def source_fields(hsurf: torch.Tensor, fr_land: torch.Tensor, lon: torch.Tensor, day_fraction: torch.Tensor,
                  year_fraction: torch.Tensor, terms: Sequence[str] = SOURCE_TERMS) -> torch.Tensor:
    """The regressors ``X_k`` ``[B, K, H, W]``.

    Args:
        hsurf, fr_land, lon: static fields ``[B, 1, H, W]`` (or ``[1, 1, H, W]``) in m, 0..1, degrees east.
        day_fraction, year_fraction: ``[B]`` from :func:`time_phases`.
        terms: which of :data:`SOURCE_TERMS`, in this order.
    """
    b = day_fraction.shape[0]
    shape = (b, 1, *hsurf.shape[-2:])
    solar = 2 * math.pi * (day_fraction.view(-1, 1, 1, 1) + lon / 360.0)
    season = (2 * math.pi * year_fraction).view(-1, 1, 1, 1)
    built = {
        "HSURF": lambda: hsurf,
        "FR_LAND": lambda: fr_land,
        "cos_solar": lambda: torch.cos(solar),
        "sin_solar": lambda: torch.sin(solar),
        "FR_LAND_cos_solar": lambda: fr_land * torch.cos(solar),
        "FR_LAND_sin_solar": lambda: fr_land * torch.sin(solar),
        "FR_LAND_cos_season": lambda: fr_land * torch.cos(season),
        "FR_LAND_sin_season": lambda: fr_land * torch.sin(season),
    }
    return torch.cat([built[name]().expand(shape) for name in terms], dim=1)


@functools.lru_cache(maxsize=32)
def _smoothing_matrix(n: int, sigma: float) -> torch.Tensor:
    """``S`` (n x n, float64) with ``S @ f`` = Gaussian(sigma) * f along one axis, edges reflected
    about the edge sample (``d c b | a b c d``)."""
    radius = max(1, int(math.ceil(4 * sigma)))
    if radius >= n:
        raise ValueError(f"high-pass sigma {sigma} cells needs more than {radius} cells along each axis, got {n}")
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    matrix = np.zeros((n, n))
    rows = np.arange(n)
    for offset, weight in zip(offsets, weights):
        cols = rows + offset
        cols = np.where(cols < 0, -cols, cols)
        cols = np.where(cols > n - 1, 2 * (n - 1) - cols, cols)
        np.add.at(matrix, (rows, cols), weight)
    return torch.from_numpy(matrix)


def highpass(field: torch.Tensor, sigma_cells: float, margin_cells: int) -> torch.Tensor:
    """``field - Gaussian(sigma) * field`` on ``[..., H, W]``, reflecting edges, border of ``margin`` dropped.

    The separable Gaussian is applied as two small matrix products (cheap and differentiable);
    ``sigma_cells`` = 0 skips the filter (only the margin is dropped).
    """
    h, w = field.shape[-2:]
    x = field
    if sigma_cells > 0:
        s_h = _smoothing_matrix(h, float(sigma_cells)).to(device=x.device, dtype=x.dtype)
        s_w = _smoothing_matrix(w, float(sigma_cells)).to(device=x.device, dtype=x.dtype)
        x = x - s_h @ x @ s_w.T
    m = int(margin_cells)
    if m:
        if 2 * m >= min(h, w):
            raise ValueError(f"margin of {m} cells leaves nothing of a {h}x{w} field")
        x = x[..., m:-m, m:-m]
    return x


def spatial_operator(T: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dx: Spacing, dy: Spacing,
                     coefficients: PDECoefficients) -> torch.Tensor:
    """``u dT/dx + v dT/dy - kappa lap T + T / tau`` (K/s), unfiltered, ``[..., H, W]``."""
    dtdx, dtdy = gradient(T, dx, dy)
    return u * dtdx + v * dtdy - coefficients.kappa * laplacian(T, dx, dy) + T / coefficients.tau_s


def source_term(sources: torch.Tensor, coefficients: PDECoefficients,
                terms: Sequence[str] = SOURCE_TERMS) -> torch.Tensor:
    """``sum_k s_k X_k`` ``[B, 1, H, W]`` from :func:`source_fields` output (same ``terms`` order)."""
    weights = torch.tensor([coefficients.source.get(name, 0.0) for name in terms], dtype=sources.dtype,
                           device=sources.device)
    return (sources * weights.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)


def equation_residual(T: torch.Tensor, T_prev: torch.Tensor, T_next: torch.Tensor, u: torch.Tensor,
                      v: torch.Tensor, sources: torch.Tensor, dx: Spacing, dy: Spacing,
                      coefficients: PDECoefficients, dt_s: float = HOUR_S) -> torch.Tensor:
    """High-passed residual of the identified equation for ``T`` ``[B, 1, H, W]`` (K/s).

    ``T_prev``, ``T_next``: the truth ``dt_s`` before and after (centred tendency); ``sources`` from
    :func:`source_fields` with all :data:`SOURCE_TERMS`. See the module docstring for what this
    residual can and cannot tell apart.
    """
    tendency = (T_next - T_prev) / (2 * dt_s)
    full = tendency + spatial_operator(T, u, v, dx, dy, coefficients) - source_term(sources, coefficients)
    return highpass(full, coefficients.highpass_cells, coefficients.margin_cells)


def matched_residual(T: torch.Tensor, T_true: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dx: Spacing,
                     dy: Spacing, coefficients: PDECoefficients) -> torch.Tensor:
    """``HP[L(T - T_true)]`` (K/s): the residual ``T`` implies minus the truth's (module docstring)."""
    error = T - T_true
    return highpass(spatial_operator(error, u, v, dx, dy, coefficients), coefficients.highpass_cells,
                    coefficients.margin_cells)
