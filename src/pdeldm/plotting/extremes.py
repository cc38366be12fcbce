"""Extremes: case-study maps of the hottest and coldest test times, and the event and physics scores."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.evaluation.climatology import read_climatology
from pdeldm.io import read_json
from pdeldm.plotting.style import model_color, model_label, order_models, save_figure, set_style
from pdeldm.prediction_file import ENSEMBLE_DIM, open_prediction


def plot_case_maps(predictions: Sequence[str | os.PathLike[str]], store_path: str | os.PathLike[str],
                   climatology: str | os.PathLike[str], cases_json: str | os.PathLike[str],
                   out_png: str | os.PathLike[str]) -> None:
    """For the hottest and the coldest case: fields (truth, member 0 of each model) and below them
    the event (truth beyond the cell's training threshold) and each model's probability of it
    (the share of members in the event; 0 or 1 for a deterministic model)."""
    set_style()
    cases = read_json(cases_json)
    thresholds = read_climatology(climatology)
    shown = [("hot", pd.Timestamp(cases["hottest_case"]), "above"), ("cold", pd.Timestamp(cases["coldest_case"]), "below")]
    stamps = [t for _, t, _ in shown]
    fields: dict[str, np.ndarray] = {}
    for path in predictions:
        ds, da = open_prediction(path)
        with ds:
            name = str(ds.attrs.get("model", Path(path).stem))
            fields[name] = np.asarray(da.sel(time=stamps).transpose("time", ENSEMBLE_DIM, "rlat", "rlon").values, float)
    models = order_models(fields)
    with xr.open_zarr(store_path) as store:
        truth = np.asarray(store["target"].sel(time=stamps).values, dtype=float)

    ncols = 1 + len(models)
    fig, axes = plt.subplots(4, ncols, figsize=(2.5 * ncols + 1.2, 10.5), squeeze=False, layout="constrained")
    for c, (event, stamp, direction) in enumerate(shown):
        threshold = thresholds[event]
        top, bottom = axes[2 * c], axes[2 * c + 1]
        vmin, vmax = np.percentile(truth[c], [1, 99])
        observed = truth[c] > threshold if direction == "above" else truth[c] < threshold
        panels = [("truth", truth[c], observed.astype(float))]
        for m in models:
            members = fields[m][c]
            beyond = members > threshold if direction == "above" else members < threshold
            panels.append((m, members[0], beyond.mean(axis=0)))
        for col, (name, field, prob) in enumerate(panels):
            im = top[col].imshow(field, origin="lower", cmap="RdYlBu_r", vmin=vmin, vmax=vmax, interpolation="nearest")
            top[col].set_title(model_label(name), fontsize=10)
            pm = bottom[col].imshow(prob, origin="lower", cmap="Reds" if event == "hot" else "Blues", vmin=0, vmax=1,
                                    interpolation="nearest")
            members = 1 if name == "truth" else fields[name].shape[1]
            bottom[col].set_title("event" if name == "truth" else f"P(event), {members} member(s)", fontsize=9)
        for ax in (*top, *bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        beyond_word = "above the 99th" if event == "hot" else "below the 1st"
        top[0].set_ylabel(f"{event}: {stamp:%Y-%m-%d %H:%M}", fontsize=10, fontweight="bold")
        bottom[0].set_ylabel(f"{beyond_word}\npercentile", fontsize=9)
        fig.colorbar(im, ax=list(top), shrink=0.9, pad=0.01, label="T_2M [K]")
        fig.colorbar(pm, ax=list(bottom), shrink=0.9, pad=0.01, label="Probability")
    fig.suptitle("Hottest and coldest test times (domain mean): member 0, and the probability of exceeding the "
                 "cell's training percentile", fontsize=12)
    save_figure(fig, out_png)


def plot_extreme_scores(extremes_csv: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> None:
    """SEDI and Brier skill of hot and cold events, and the proper physics scores on the hottest and
    coldest times against all times, with 95% bootstrap intervals."""
    set_style()
    table = pd.read_csv(extremes_csv)
    table["model"] = table["model"].astype(str)
    panels = [("event", "sedi", "SEDI (single member)"), ("event", "brier_skill", "Brier skill (ensemble)"),
              ("times", "crps", "CRPS [K]"), ("times", "spectral_lsd", "Fine-band LSD [dB]"),
              ("times", "grad_w1", "|∇T| W1 [K/km]"), ("times", "pde_residual", "Twin PDE residual [K/h]")]
    panels = [p for p in panels if ((table["metric"] == p[1]) & table["scope"].str.startswith(p[0])).any()]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.9 * max(1, len(panels)), 4.6), squeeze=False,
                             layout="constrained")
    for ax, (kind, metric, title) in zip(axes[0], panels, strict=False):
        part = table[(table["metric"] == metric) & table["scope"].str.startswith(kind)]
        scopes = list(dict.fromkeys(part["scope"]))
        models = order_models(part["model"].unique())
        width = 0.8 / max(1, len(models))
        for j, model in enumerate(models):
            rows = part[part["model"] == model].set_index("scope").reindex(scopes)
            x = np.arange(len(scopes)) + (j - (len(models) - 1) / 2) * width
            value = rows["value"].to_numpy(float)
            err = np.vstack([value - rows["ci95_low"].to_numpy(float), rows["ci95_high"].to_numpy(float) - value])
            ax.bar(x, value, width=width, color=model_color(model), label=model_label(model), edgecolor="white")
            ok = np.isfinite(err).all(axis=0)
            ax.errorbar(x[ok], value[ok], yerr=np.abs(err[:, ok]), fmt="none", color="black", capsize=2, linewidth=0.8)
        ax.set_xticks(np.arange(len(scopes)), [s.split(":")[1] for s in scopes])
        ax.set_title(title, fontsize=10)
    handles: dict[str, object] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(6, len(handles)),
                   fontsize=9)
    fig.suptitle("Extremes: events beyond the training percentiles, and scores on the hottest/coldest times "
                 "(95% block-bootstrap intervals)", fontsize=12)
    save_figure(fig, out_png)
