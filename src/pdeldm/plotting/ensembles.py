"""The ensemble comparison figure: rank histograms, spread-error diagram, warm-event reliability, scores."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from pdeldm.io import read_json
from pdeldm.plotting.style import model_color, model_label, order_models, save_figure, set_style


def plot_ensembles(summary_json: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> None:
    """Top row: one rank histogram per ensemble model. Bottom row: spread against the ensemble-mean
    error in bins of predicted spread, reliability of the warm-event probability, the pooled
    spread/skill with its interval, and the CRPS.

    ``summary_json``: ``results/ensembles/summary.json`` (:mod:`pdeldm.evaluation.ensembles`).
    """
    set_style()
    summaries: Mapping[str, Any] = read_json(summary_json)
    perfect = summaries.get("perfect_model")
    models = order_models([m for m in summaries if m != "perfect_model"])
    ensembles = [m for m in models if summaries[m]["members"] > 1]
    ncols = max(4, len(ensembles))
    fig = plt.figure(figsize=(4.0 * ncols, 8.6), layout="constrained")
    grid = fig.add_gridspec(2, ncols)

    # --- rank histograms ------------------------------------------------------------------
    for j, model in enumerate(ensembles):
        ax = fig.add_subplot(grid[0, j])
        hist = summaries[model]["rank_histogram"]
        freq = np.asarray(hist["frequency"]) * len(hist["frequency"])
        ax.bar(np.arange(freq.size), freq, color=model_color(model), edgecolor="white")
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0)
        ax.set_ylim(0, max(2.0, float(freq.max()) * 1.15))
        ax.set_title(f"{model_label(model)}", fontsize=10)
        ax.set_xlabel(f"Rank of the truth among {summaries[model]['members']} members")
        if j == 0:
            ax.set_ylabel("Frequency × (members + 1)")
        ax.text(0.5, 0.96, f"spread/skill {summaries[model]['spread_skill']:.2f}\n{hist['shape']}",
                transform=ax.transAxes, ha="center", va="top", fontsize=8.5)
    if not ensembles:
        ax = fig.add_subplot(grid[0, :])
        ax.axis("off")
        ax.text(0.5, 0.5, "No ensemble model in this run", ha="center", va="center", fontsize=14)

    # --- spread-error diagram -------------------------------------------------------------
    ax = fig.add_subplot(grid[1, 0])
    top = 0.0
    for model in models:
        groups = [g for g in summaries[model]["spread_error"] if g["count"] > 0]
        spread = np.array([g["spread"] for g in groups])
        rmse = np.array([g["rmse"] for g in groups])
        style = {"marker": "o", "markersize": 4} if summaries[model]["members"] > 1 else {"marker": "s", "markersize": 7}
        ax.plot(spread, rmse, color=model_color(model), label=model_label(model), linewidth=1.5, **style)
        top = max(top, float(spread.max(initial=0)), float(rmse.max(initial=0)))
    if perfect:
        ax.plot([perfect["spread"]], [perfect["rmse_ensmean"]], marker="*", markersize=13, color="black",
                linestyle="none", label="Perfect model (twin), at least")
        top = max(top, perfect["spread"])
    top = top * 1.08 if top > 0 else 1.0
    ax.plot([0, top], [0, top], color="black", linestyle="--", linewidth=1.0)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("Predicted spread √((M+1)/M · var) [K]")
    ax.set_ylabel("RMSE of the ensemble mean [K]")
    ax.set_title("Spread-error diagram", fontsize=11)
    ax.legend(fontsize=7.5, loc="lower right")

    # --- reliability of the warm event -----------------------------------------------------
    ax = fig.add_subplot(grid[1, 1])
    for model in models:
        warm = (summaries[model].get("events") or {}).get("warm")
        if not warm:
            continue
        rel = warm["reliability"]
        prob = np.asarray(rel["probability"], dtype=float)
        observed = np.array([np.nan if v is None else v for v in rel["observed_frequency"]], dtype=float)
        forecasts = np.asarray(rel["forecasts"], dtype=float)
        shown = forecasts > 0
        sizes = 10 + 150 * forecasts[shown] / forecasts.sum()
        ax.plot(prob[shown], observed[shown], color=model_color(model), linewidth=1.2,
                label=f"{model_label(model)} (BS {warm['brier']:.3f})")
        ax.scatter(prob[shown], observed[shown], s=sizes, color=model_color(model), alpha=0.8, edgecolors="none")
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1.0)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("Ensemble probability of a warm event")
    ax.set_ylabel("Observed frequency")
    ax.set_title("Reliability of a warm event", fontsize=11)
    ax.legend(fontsize=7.5, loc="upper left")

    # --- pooled scores --------------------------------------------------------------------
    x = np.arange(len(models))
    colors = [model_color(m) for m in models]
    names = [model_label(m).replace(", ", ",\n") for m in models]
    ax = fig.add_subplot(grid[1, 2])
    ratio = np.array([summaries[m]["spread_skill"] for m in models])
    ci = np.array([summaries[m].get("spread_skill_ci95") or [np.nan, np.nan] for m in models], dtype=float)
    ax.bar(x, ratio, color=colors, edgecolor="black", linewidth=0.5)
    err = np.vstack([ratio - ci[:, 0], ci[:, 1] - ratio])
    ok = np.isfinite(err).all(axis=0)
    ax.errorbar(x[ok], ratio[ok], yerr=np.abs(err[:, ok]), fmt="none", color="black", capsize=3)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.0)
    ax.set_ylim(0, max(1.3, float(np.nanmax(ci[:, 1], initial=1.0)) * 1.1))
    ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    ax.set_title("Spread/skill, pooled [95% CI]", fontsize=11)
    ax = fig.add_subplot(grid[1, 3])
    ax.bar(x, [summaries[m]["crps"] for m in models], color=colors, edgecolor="black", linewidth=0.5)
    ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("CRPS [K]")
    ax.set_title("Fair CRPS (UNet: its MAE)", fontsize=11)
    fig.suptitle("Ensemble calibration on the test period (seeds of a run pooled; the UNet: zero spread)",
                 fontsize=13)
    save_figure(fig, out_png)
