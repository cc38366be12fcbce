"""Diagnostics of the twin: predictability of the fine scales, the PDE residual of the truth and
grid-scale roughness along the edges of the written region."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import xarray as xr

from pdeldm.data.twin.model import TwinModel, pde_residual
from pdeldm.data.twin.params import HOUR, merged_params

#: Edges of the written region, named by where they lie on the rotated grid.
EDGES = ("south", "north", "west", "east")


def block_mean_upsampled(field: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks of the last two axes, repeated back to full size."""
    *lead, ny, nx = field.shape
    blocks = field.reshape(*lead, ny // factor, factor, nx // factor, factor).mean(axis=(-3, -1))
    return np.repeat(np.repeat(blocks, factor, axis=-2), factor, axis=-1)


def run_region(model: TwinModel, first_output: np.datetime64, n_out: int) -> np.ndarray:
    """Region fields (n_out, ny, nx) at hourly times from ``first_output``."""
    skip = int((first_output - model.origin) / np.timedelta64(1, "h"))
    out = np.empty((n_out, model.ny, model.nx))
    for hour, (_, T) in enumerate(model.run(skip + n_out - 1)):
        if hour >= skip:
            out[hour - skip] = T[model.interior]
    return out


def _lag1_correlation(d2: np.ndarray, axis: int) -> float:
    """Correlation of successive values along ``axis`` (pooled over all other axes)."""
    d2 = np.moveaxis(d2, axis, -1)
    a, b = d2[..., 1:].ravel(), d2[..., :-1].ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(np.sum(a * b) / math.sqrt(float(np.sum(a * a) * np.sum(b * b))))


def edge_roughness(fields: np.ndarray, band: int = 4) -> dict[str, dict[str, float]]:
    """Grid-scale roughness along each edge of ``fields`` (..., ny, nx) and in the interior.

    Across an edge (along rows for ``south``/``north``, along columns for ``west``/``east``) the
    second difference ``d2[i] = T[i+1] - 2 T[i] + T[i-1]`` is taken at the ``band`` cells next to
    the edge (the edge cell itself has no second difference); ``roughness_K`` is its mean absolute
    value and ``lag1`` the correlation of successive second differences (``d2[i]``, ``d2[i+1]``).
    A smooth field has ``lag1`` near +1, white noise -2/3, a 2-cell oscillation -1.  The
    ``interior_rows``/``interior_columns`` entries take the same statistics, in the same direction,
    more than ``band`` cells from every edge; the edge bands leave out the ``band`` cells at either
    end of the edge (the corners).
    """
    fields = np.asarray(fields, dtype=np.float64)
    if fields.ndim == 2:
        fields = fields[None]
    ny, nx = fields.shape[-2:]
    if min(ny, nx) < 4 * band + 3:
        raise ValueError(f"edge_roughness: a {ny}x{nx} field is too small for bands of {band} cells")
    d2_rows = fields[..., 2:, :] - 2 * fields[..., 1:-1, :] + fields[..., :-2, :]  # rows 1 .. ny-2
    d2_cols = fields[..., :, 2:] - 2 * fields[..., :, 1:-1] + fields[..., :, :-2]  # columns 1 .. nx-2
    middle_cols, middle_rows = slice(band, nx - band), slice(band, ny - band)
    # (second differences, axis across the edge); one extra cell so that lag-1 pairs stay in the band
    parts = {
        "south": (d2_rows[..., :band + 1, middle_cols], -2),
        "north": (d2_rows[..., -band - 1:, middle_cols], -2),
        "west": (d2_cols[..., middle_rows, :band + 1], -1),
        "east": (d2_cols[..., middle_rows, -band - 1:], -1),
        "interior_rows": (d2_rows[..., band:ny - 2 - band, middle_cols], -2),
        "interior_columns": (d2_cols[..., middle_rows, band:nx - 2 - band], -1),
    }
    out = {}
    for name, (d2, axis) in parts.items():
        # roughness over the band cells only (the extra cell is for the correlation)
        cells = d2 if name.startswith("interior") else (
            np.take(d2, range(band), axis=axis) if name in ("south", "west") else np.take(d2, range(1, band + 1),
                                                                                        axis=axis))
        out[name] = {"roughness_K": float(np.mean(np.abs(cells))), "lag1": _lag1_correlation(d2, axis)}
    return out


def predictability_diagnostic(static: xr.Dataset, params: Mapping[str, Any] | None, seed: int, start: Any,
                              days: float | None = None, factor: int = 8) -> dict[str, Any]:
    """Share of fine-scale variance that is predictable, from two runs differing only in xi.

    Both runs share static fields, params, seed (wind, background) and spin-up; the second one's
    forcing uses another seed. With ``T'`` = T minus its factor x factor block mean (what the coarse
    grid does not resolve): ``share = 1 - Var(T1' - T2') / (2 Var(T'))`` and the RMSE floor of a
    perfect deterministic model ``sqrt(Var(T1' - T2') / 2)`` (fine-scale; ``total`` on the full T).
    Also reports the PDE residual (RMS, K/h) of the truth vs. a bicubic interpolation of its
    block mean, evaluated with the same operator, and :func:`edge_roughness` of the first run.
    """
    merged = merged_params(params)
    days = merged["diagnostic_days"] if days is None else float(days)
    first = np.datetime64(pd.Timestamp(start).to_datetime64(), "s")
    origin = first - np.timedelta64(int(round(merged["spinup_days"] * 24)), "h")
    n_out = max(3, int(round(days * 24)))
    runs = []
    for forcing_seed in (seed, seed + 1_000_003):
        model = TwinModel(static, merged, seed, origin, forcing_seed=forcing_seed)
        runs.append(run_region(model, first, n_out))
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
        "edge_roughness": edge_roughness(runs[0]),
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

