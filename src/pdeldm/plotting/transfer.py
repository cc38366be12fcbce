"""Figures of the transfer across regions: the train x test matrix, every model on every region, the maps."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.evaluation.transfer import REFERENCE
from pdeldm.plotting.style import metric_label, model_color, model_label, order_models, save_figure, set_style


def _vs_reference(metric: str) -> str:
    return f"{metric}_vs_{REFERENCE}"


def plot_transfer_matrix(table: pd.DataFrame, matrix_models: Sequence[str], metrics: Sequence[str],
                         regions: Sequence[str], out_png: str | os.PathLike[str]) -> None:
    """Per model of the matrix (rows) and score (columns): a train x test heat map of the score
    minus the test region's interpolation (blue = better than interpolation), values written in
    the cells, the diagonal (trained where tested) outlined."""
    set_style()
    models = list(matrix_models) or order_models(table["model"])[:1]
    side = 0.75 * len(regions) + 1.6
    fig, axes = plt.subplots(len(models), len(metrics), figsize=(side * len(metrics), side * len(models) + 0.4),
                             squeeze=False, constrained_layout=True)
    for row, model in enumerate(models):
        part = table[table["model"] == model]
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            grid = part.pivot_table(index="train", columns="test", values=_vs_reference(metric), dropna=False)
            grid = grid.reindex(index=[r for r in regions if r in grid.index], columns=list(regions))
            values = grid.to_numpy(float)
            limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
            image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, origin="upper")
            for (i, j), value in np.ndenumerate(values):
                if np.isfinite(value):
                    ax.text(j, i, f"{value:+.3g}", ha="center", va="center", fontsize=8,
                            color="white" if abs(value) > 0.6 * limit else "black")
                if grid.index[i] == grid.columns[j]:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
            ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=30, ha="right")
            ax.set_yticks(range(len(grid.index)), grid.index)
            ax.set_xlabel("test region")
            if col == 0:
                ax.set_ylabel(f"{model_label(model)}\ntrained on")
            ax.set_title(f"{metric_label(metric)}\nminus interpolation", fontsize=9)
            ax.grid(False)
            fig.colorbar(image, ax=ax, shrink=0.7)
    save_figure(fig, out_png)


def plot_transfer_models(table: pd.DataFrame, main_region: str, metrics: Sequence[str], regions: Sequence[str],
                         out_png: str | os.PathLike[str]) -> None:
    """Per score: every model trained on ``main_region``, on every test region, as its score minus
    that region's interpolation (below 0 = better than interpolation)."""
    set_style()
    part = table[(table["train"] == main_region) & (table["model"] != REFERENCE)]
    models = order_models(part["model"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / max(1, len(models))
    x = np.arange(len(regions))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for k, model in enumerate(models):
            rows = part[part["model"] == model].set_index("test").reindex(list(regions))
            ax.bar(x + (k - (len(models) - 1) / 2) * width, rows[_vs_reference(metric)], width,
                   color=model_color(model), label=model_label(model))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, [f"{r}{' (trained)' if r == main_region else ''}" for r in regions], rotation=20)
        ax.set_title(f"{metric_label(metric)}\nminus interpolation", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.3)
    save_figure(fig, out_png)


def plot_region_maps(statics: Mapping[str, str | os.PathLike[str]], summary: pd.DataFrame,
                     out_png: str | os.PathLike[str]) -> None:
    """Surface height (top) and land fraction (bottom) of every region, with their means in the titles."""
    set_style()
    regions = list(statics)
    fig, axes = plt.subplots(2, len(regions), figsize=(3.2 * len(regions), 6.0), squeeze=False)
    stats = summary.set_index("region")
    for col, region in enumerate(regions):
        with xr.open_dataset(Path(statics[region])) as ds:
            height = ds["HSURF"].to_numpy().astype(float)
            land = ds["FR_LAND"].to_numpy().astype(float)
        top = axes[0, col].imshow(height, origin="lower", cmap="terrain", vmin=0, vmax=max(1.0, np.nanmax(height)))
        axes[0, col].set_title(f"{region}: height\nmean {stats.loc[region, 'height_mean_m']:.0f} m, "
                               f"std {stats.loc[region, 'height_std_m']:.0f} m", fontsize=9)
        fig.colorbar(top, ax=axes[0, col], shrink=0.75, label="m")
        bottom = axes[1, col].imshow(land, origin="lower", cmap="YlGn", vmin=0, vmax=1)
        axes[1, col].set_title(f"land fraction, mean {stats.loc[region, 'land_fraction']:.2f}", fontsize=9)
        fig.colorbar(bottom, ax=axes[1, col], shrink=0.75)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    save_figure(fig, out_png)
