"""Map panels for a few test times: ERA5 input, COSMO-CLM truth, each model, and their errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.evaluation.evaluate import coarse_channel
from pdeldm.io import read_json
from pdeldm.prediction_file import ENSEMBLE_DIM, open_prediction
from pdeldm.plotting.style import model_label, order_models, save_figure, set_style


def select_times(available: pd.DatetimeIndex, times: Sequence[str | int] | None, n_times: int) -> pd.DatetimeIndex:
    """Times to show: explicit ISO strings or indices into ``available``, else ``n_times`` evenly spaced."""
    if times:
        chosen = []
        for t in times:
            if isinstance(t, (int, np.integer)):
                chosen.append(available[int(t)])
            else:
                stamp = pd.Timestamp(t)
                if stamp not in available:
                    raise InputError(f"map time {t} is not a prediction time")
                chosen.append(stamp)
        return pd.DatetimeIndex(chosen)
    n = max(1, min(n_times, len(available)))
    # Evenly spread across the test period (the middle of each of n equal parts) to show seasons.
    idx = ((np.arange(n) + 0.5) * len(available) / n).astype(int)
    return available[idx]


def plot_maps(
    pred_paths: Sequence[str | os.PathLike[str]],
    store_path: str | os.PathLike[str],
    meta_path: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    times: Sequence[str | int] | None = None,
    n_times: int = 3,
    member: int = 0,
) -> None:
    """Two rows per time: fields (shared K scale) and errors vs truth (diverging, shared scale).

    Columns: ERA5 t2m on its coarse grid, COSMO-CLM truth, then each model's member ``member``.
    The error row shows ERA5 (nearest-upsampled) − truth under the input and model − truth
    under each model.
    """
    set_style()
    meta = read_json(meta_path)
    # First pass: names and times only; then load just the shown times (files can be GBs).
    names: dict[str, Path] = {}
    time_sets = []
    for path in pred_paths:
        with xr.open_dataset(path) as ds:
            names[str(ds["T_2M"].attrs.get("model", ds.attrs.get("model", Path(path).stem)))] = Path(path)
            time_sets.append(set(pd.DatetimeIndex(ds["time"].values)))
    models = order_models(names)
    common = pd.DatetimeIndex(sorted(set.intersection(*time_sets)))
    if common.empty:
        raise InputError("the predictions share no time")
    shown = select_times(common, times, n_times)
    preds: dict[str, xr.DataArray] = {}
    for model in models:
        ds, da = open_prediction(names[model])
        with ds:
            preds[model] = da.isel({ENSEMBLE_DIM: member}).sel(time=shown).load()

    store = xr.open_zarr(store_path).sel(time=shown)
    truth = np.asarray(store["target"].values, dtype=float)
    coarse = coarse_channel(store, meta, "t2m", store_path).astype(float)
    factor = int(meta["factor"])
    rlat = np.asarray(preds[models[0]]["rlat"].values, dtype=float)
    rlon = np.asarray(preds[models[0]]["rlon"].values, dtype=float)
    # Cell-edge extent so that coarse and fine fields cover exactly the same area.
    dlat, dlon = np.diff(rlat).mean(), np.diff(rlon).mean()
    extent = (rlon[0] - dlon / 2, rlon[-1] + dlon / 2, rlat[0] - dlat / 2, rlat[-1] + dlat / 2)

    ncols = 2 + len(models)
    fig, axes = plt.subplots(2 * len(shown), ncols, figsize=(2.45 * ncols + 1.0, 2.5 * 2 * len(shown)),
                             squeeze=False, layout="constrained")
    for row, stamp in enumerate(shown):
        fields = {m: np.asarray(preds[m].sel(time=stamp).values, dtype=float) for m in models}
        coarse_fine = np.repeat(np.repeat(coarse[row], factor, axis=0), factor, axis=1)
        errors = {m: fields[m] - truth[row] for m in models}
        errors["coarse"] = coarse_fine - truth[row]
        # Shared scales per time: the truth's 1-99 % range (plus the input's) keeps outliers of a
        # poor model from washing out the others; the error scale is the 99th |error| percentile.
        stack = np.concatenate([truth[row].ravel(), coarse[row].ravel()])
        vmin, vmax = np.percentile(stack, [1, 99])
        emax = max(float(np.percentile(np.abs(np.concatenate([e.ravel() for e in errors.values()])), 99)), 1e-3)
        top, bottom = axes[2 * row], axes[2 * row + 1]
        panels = [("coarse", coarse[row], errors["coarse"]), ("truth", truth[row], None)]
        panels += [(m, fields[m], errors[m]) for m in models]
        for col, (name, field, error) in enumerate(panels):
            im = top[col].imshow(field, extent=extent, origin="lower", cmap="RdYlBu_r", vmin=vmin, vmax=vmax,
                                 interpolation="nearest")
            top[col].set_title(model_label(name), fontsize=11)
            if error is None:
                bottom[col].axis("off")
            else:
                em = bottom[col].imshow(error, extent=extent, origin="lower", cmap="RdBu_r", vmin=-emax,
                                        vmax=emax, interpolation="nearest")
                rmse = float(np.sqrt(np.mean(error**2)))
                bottom[col].set_title(f"− truth (RMSE {rmse:.2f} K)", fontsize=9)
        for ax in (*top, *bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        top[0].set_ylabel(stamp.strftime("%Y-%m-%d %H:%M"), fontsize=11, fontweight="bold")
        bottom[0].set_ylabel("error", fontsize=11)
        fig.colorbar(im, ax=list(top), shrink=0.9, pad=0.01, label="T_2M [K]")
        fig.colorbar(em, ax=list(bottom), shrink=0.9, pad=0.01, label="Error [K]")
    fig.suptitle(f"T_2M on test days (models: member {member}); rows: field, error vs COSMO-CLM", fontsize=13)
    save_figure(fig, out_png)
