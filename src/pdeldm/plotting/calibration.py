"""Ensemble calibration: rank histograms and spread vs ensemble-mean error (``ldm``, ``pde_ldm``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pdeldm.evaluation.tables import pooled_spread_skill
from pdeldm.plotting.style import model_color, model_label, order_models, save_figure, set_style


def _read_nonempty(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in paths]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    data = pd.concat(frames, ignore_index=True)
    data["model"] = data["model"].astype(str)
    return data


def plot_calibration(
    rank_hist_csvs: Sequence[str | os.PathLike[str]],
    metric_csvs: Sequence[str | os.PathLike[str]],
    out_png: str | os.PathLike[str],
) -> None:
    """Left: rank histograms (relative to flat); right: spread vs RMSE of the ensemble mean.

    Deterministic models have empty rank-histogram files and no ``spread`` column; they are
    skipped. With no ensemble model at all a placeholder figure is written (the rule's output
    must exist).
    """
    set_style()
    ranks = _read_nonempty(rank_hist_csvs)
    metrics = _read_nonempty(metric_csvs)
    if not metrics.empty and {"spread", "rmse_ensmean"} <= set(metrics.columns):
        metrics = metrics.dropna(subset=["spread", "rmse_ensmean"])
    else:
        metrics = pd.DataFrame(columns=["model", "spread", "rmse_ensmean"])
    models = order_models(list(ranks.get("model", [])) + list(metrics["model"]))

    fig, (ax_rank, ax_ss) = plt.subplots(1, 2, figsize=(12.0, 4.8), gridspec_kw={"width_ratios": [1.35, 1.0]})
    if not models:
        for ax in (ax_rank, ax_ss):
            ax.axis("off")
        ax_rank.text(0.5, 0.5, "No ensemble model in this run", ha="center", va="center", fontsize=14,
                     transform=ax_rank.transAxes)
        save_figure(fig, out_png)
        return

    # Rank histograms as frequency x (members + 1): a calibrated ensemble gives 1 everywhere,
    # U-shape = under-dispersive, dome = over-dispersive, slope = bias.
    ranked = [m for m in models if not ranks.empty and m in set(ranks["model"])]
    width = 0.8 / max(len(ranked), 1)
    n_members: dict[str, int] = {}
    top = 1.0
    for j, model in enumerate(ranked):
        # several files per model (training seeds): pool their counts
        part = ranks[ranks["model"] == model].groupby("rank", as_index=False)["count"].sum().sort_values("rank")
        n_bins = len(part)
        n_members[model] = n_bins - 1
        rel = part["count"].to_numpy(float) / part["count"].sum() * n_bins
        top = max(top, float(rel.max()))
        x = part["rank"].to_numpy(float) + (j - (len(ranked) - 1) / 2) * width
        ax_rank.bar(x, rel, width=width, color=model_color(model), label=f"{model_label(model)} ({n_bins - 1} members)",
                    edgecolor="white", linewidth=0.4)
    ax_rank.axhline(1.0, color="black", linestyle="--", linewidth=1.0, label="Perfectly calibrated")
    ax_rank.set_ylim(0, top * 1.3)  # headroom for the legend
    ax_rank.set_xlabel("Rank of the truth among the members [-]")
    ax_rank.set_ylabel("Frequency × (members + 1) [-]")
    ax_rank.set_title("Rank histograms")
    ax_rank.legend(fontsize=10, loc="upper center", ncol=3)

    # Spread-skill: each dot is one test time. The spread is scaled by sqrt((M+1)/M) (finite
    # ensemble of M members), so a calibrated ensemble lies on the 1:1 line.
    hi = 0.0
    for model in [m for m in models if m in set(metrics["model"])]:
        part = metrics[metrics["model"] == model]
        m = n_members.get(model)
        factor = np.sqrt((m + 1) / m) if m else 1.0
        spread = part["spread"].to_numpy(float) * factor
        label = model_label(model)
        if "spread_skill" in part.columns:
            label += f" (spread/skill {pooled_spread_skill(part['spread_skill'], part['rmse_ensmean']):.2f})"
        ax_ss.scatter(part["rmse_ensmean"], spread, s=14, alpha=0.6, color=model_color(model), label=label,
                      edgecolors="none")
        hi = max(hi, float(part["rmse_ensmean"].max()), float(spread.max()))
    hi = hi * 1.05 if hi > 0 else 1.0
    ax_ss.plot([0, hi], [0, hi], color="black", linestyle="--", linewidth=1.0, label="1:1")
    ax_ss.set_xlim(0, hi)
    ax_ss.set_ylim(0, hi)
    ax_ss.set_aspect("equal")
    ax_ss.set_xlabel("RMSE of the ensemble mean [K]")
    ax_ss.set_ylabel("Ensemble spread × √((M+1)/M) [K]")
    ax_ss.set_title("Spread vs skill (one dot per time)")
    ax_ss.legend(fontsize=9, loc="upper left")
    fig.tight_layout()
    save_figure(fig, out_png)
