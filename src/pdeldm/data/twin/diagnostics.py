"""Diagnostics of the twin: predictability of the fine scales and the PDE residual of the truth."""

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

