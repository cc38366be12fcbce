"""Figures of the experiments: scores against lambda, the RMSE-physics trade-off, PDE forms on a subset."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pdeldm.plotting.style import metric_label, model_color, save_figure, set_style

FORM_LABELS = {"flux_ratio": "study flux ratio", "advection_diffusion": "advection-diffusion",
               "advection_diffusion_matched": "advection-diffusion (matched)"}
FORM_COLORS = {"flux_ratio": model_color("pde_ldm_flux"), "advection_diffusion": "#117733",
               "advection_diffusion_matched": model_color("pde_ldm_adv")}


def _control_x(lambdas: np.ndarray) -> float:
    """Where lambda = 0 is drawn on the log axis: a decade below the smallest non-zero lambda."""
    positive = lambdas[lambdas > 0]
    return float(positive.min()) / 10 if positive.size else 1e-3


def plot_lambda_ablation(table: pd.DataFrame, metrics: Sequence[str], out_png: str | os.PathLike[str]) -> None:
    """One panel per score against lambda (log x): seeds as points, their mean as a line per form;
    lambda = 0 (the control) drawn separately at the left, marked "0"."""
    set_style()
    lambdas = table["lambda"].to_numpy(float)
    x0 = _control_x(lambdas)
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        control = table[(table["lambda"] == 0) & (table["seed"] != "mean")].drop_duplicates(["run", "seed"])
        control_mean = table[(table["lambda"] == 0) & (table["seed"] == "mean")][metric].mean()
        ax.scatter(np.full(len(control), x0), control[metric], color="black", s=16, zorder=3)
        ax.axhline(control_mean, color="black", linestyle=":", linewidth=1.0, label="λ=0 (control)")
        for form, part in table[table["lambda"] > 0].groupby("form"):
            seeds = part[part["seed"] != "mean"]
            means = part[part["seed"] == "mean"].sort_values("lambda")
            color = FORM_COLORS.get(form, "#666666")
            ax.scatter(seeds["lambda"], seeds[metric], color=color, s=16, alpha=0.7, zorder=3)
            ax.plot(np.r_[x0, means["lambda"]], np.r_[control_mean, means[metric]], color=color, marker="o",
                    label=FORM_LABELS.get(form, form))
        ax.set_xscale("log")
        ticks = sorted(set(lambdas[lambdas > 0]))
        ax.set_xticks([x0, *ticks], ["0", *[f"{t:g}" for t in ticks]])
        ax.set_xlabel("λ_PDE")
        ax.set_ylabel(metric_label(metric))
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=9)
    fig.suptitle("Scores against the PDE-loss weight (points: seeds; line: mean over seeds)", fontsize=13)
    save_figure(fig, out_png)


def plot_tradeoff(table: pd.DataFrame, physics_metrics: Sequence[str], out_png: str | os.PathLike[str]) -> None:
    """RMSE against each proper physics score, one curve per form through increasing lambda."""
    set_style()
    means = table[table["seed"] == "mean"]
    fig, axes = plt.subplots(1, len(physics_metrics), figsize=(4.6 * len(physics_metrics), 4.0), squeeze=False)
    control = means[means["lambda"] == 0].iloc[0]
    for ax, metric in zip(axes.flat, physics_metrics, strict=False):
        ax.scatter(control["rmse"], control[metric], color="black", s=40, zorder=4, label="λ=0 (control)")
        for form, part in means[means["lambda"] > 0].groupby("form"):
            part = part.sort_values("lambda")
            color = FORM_COLORS.get(form, "#666666")
            ax.plot(np.r_[control["rmse"], part["rmse"]], np.r_[control[metric], part[metric]], color=color,
                    marker="o", label=FORM_LABELS.get(form, form))
            for _, row in part.iterrows():
                ax.annotate(f"{row['lambda']:g}", (row["rmse"], row[metric]), fontsize=8, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xlabel(metric_label("rmse"))
        ax.set_ylabel(metric_label(metric))
    axes.flat[0].legend(fontsize=9)
    fig.suptitle("Trade-off: RMSE against physics (mean over seeds; labels: λ)", fontsize=13)
    save_figure(fig, out_png)


def plot_form_comparison(comparison: pd.DataFrame, out_png: str | os.PathLike[str]) -> None:
    """Each run minus the control with 95% intervals, on all test times and on the subset."""
    set_style()
    metrics = list(dict.fromkeys(comparison["metric"]))
    runs = list(dict.fromkeys(comparison["model"]))
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    groups = list(dict.fromkeys(comparison["times"]))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        part = comparison[comparison["metric"] == metric]
        for j, run in enumerate(runs):
            for k, group in enumerate(groups):
                row = part[(part["model"] == run) & (part["times"] == group)]
                if row.empty:
                    continue
                row = row.iloc[0]
                y = j + (k - 0.5) * 0.3
                ax.errorbar(row["difference"], y, xerr=[[row["difference"] - row["ci95_low"]],
                                                       [row["ci95_high"] - row["difference"]]],
                            fmt="o" if k == 0 else "s", color=model_color(run), alpha=1.0 if k == 0 else 0.6,
                            label=group if j == 0 else None)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(runs)), runs, fontsize=9)
        ax.set_title(metric, fontsize=11)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="best")
    fig.suptitle("Run minus λ=0 control (95% block-bootstrap intervals): all test times (o) and "
                 "strong-wind, weak-contrast times (s)", fontsize=12)
    save_figure(fig, out_png)
