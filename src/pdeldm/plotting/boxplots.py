"""The study's main figure: the distribution over test times of every metric, per model."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from pdeldm.evaluation.evaluate import DETERMINISTIC_COLUMNS
from pdeldm.plotting.style import (
    METRIC_DISPLAY_SCALE,
    metric_label,
    model_label,
    model_palette,
    order_models,
    save_figure,
    set_style,
)

#: Panels in this order (those absent from every CSV are skipped).
DEFAULT_METRICS: tuple[str, ...] = DETERMINISTIC_COLUMNS + ("crps",)


def read_metric_csvs(metric_csvs: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenate per-model metric CSVs (interfaces §7)."""
    frames = [pd.read_csv(path) for path in metric_csvs]
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise ValueError(f"no metric rows in {list(map(str, metric_csvs))}")
    data = pd.concat(frames, ignore_index=True)
    data["model"] = data["model"].astype(str)
    return data


def plot_metric_boxplots(
    metric_csvs: Sequence[str | os.PathLike[str]],
    out_png: str | os.PathLike[str],
    metrics: Sequence[str] | None = None,
    ncols: int = 5,
) -> None:
    """One box plot panel per metric (boxes: test-time distribution; diamond: mean) -> ``out_png``."""
    set_style()
    data = read_metric_csvs(metric_csvs)
    wanted = list(metrics) if metrics is not None else list(DEFAULT_METRICS)
    metrics = [m for m in wanted if m in data.columns and data[m].notna().any()]
    if not metrics:
        raise ValueError(f"none of the metrics {wanted} in {list(map(str, metric_csvs))}")
    models = order_models(data["model"])
    ncols = min(ncols, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.4 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        panel = data[["model", metric]].dropna()
        panel[metric] = panel[metric] * METRIC_DISPLAY_SCALE.get(metric, 1.0)
        present = [m for m in models if m in set(panel["model"])]
        sns.boxplot(
            data=panel, x="model", y=metric, hue="model", order=present, hue_order=present,
            palette=model_palette(present), legend=False, ax=ax, width=0.65, linewidth=1.0,
            fliersize=2.0, showmeans=True,
            meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black", "markersize": 4},
        )
        if metric == "bias":
            ax.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_title(metric_label(metric).split(" [")[0])
        ax.set_ylabel(metric_label(metric))
        ax.set_xlabel("")
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels([model_label(m) for m in present], rotation=35, ha="right")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    n_times = data.groupby("model").size()
    counts = f"{n_times.min()}" if n_times.min() == n_times.max() else f"{n_times.min()}–{n_times.max()}"
    fig.suptitle(f"Test-period scores per time step ({counts} times per model; ◇ = mean)", fontsize=13)
    fig.tight_layout()
    save_figure(fig, out_png)
