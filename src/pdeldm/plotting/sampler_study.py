"""Quality against cost of the samplers (``results/sampler_study/sampler_study.csv``)."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import pandas as pd

from pdeldm.io import read_json
from pdeldm.plotting.style import save_figure, set_style

SOLVER_STYLE = {"ddim": ("#009E73", "o", "DDIM"), "dpmpp_2m": ("#D55E00", "s", "DPM-Solver++(2M)"),
                "heun": ("#0072B2", "^", "Heun (EDM)")}


def plot_sampler_study(study_csv: str | os.PathLike[str], summary_json: str | os.PathLike[str],
                       out_png: str | os.PathLike[str]) -> None:
    """CRPS, member RMSE, fine-band LSD and pooled spread/skill against denoiser evaluations (log x),
    one line per solver and grid; the DDIM reference dashed, its CRPS tolerance shaded."""
    set_style()
    table = pd.read_csv(study_csv)
    summary = read_json(summary_json)
    ref = summary["reference"]
    ref_row = table[(table["solver"] == "ddim") & (table["spacing"] == "uniform")
                    & (table["evaluations"] == ref["evaluations"])].iloc[0]
    panels = [("crps", "CRPS [K]"), ("rmse", "RMSE of a member [K]"), ("spectral_lsd", "Fine-band LSD [dB]"),
              ("spread_skill", "Spread/skill, pooled")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 4.3), layout="constrained")
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for (solver, spacing), part in table.groupby(["solver", "spacing"], sort=False):
            color, marker, name = SOLVER_STYLE.get(solver, ("#666666", "x", solver))
            part = part.sort_values("evaluations")
            ax.plot(part["evaluations"], part[metric], color=color, marker=marker, label=f"{name}, {spacing} grid",
                    linestyle="-" if spacing != "uniform" or solver == "ddim" else ":")
        ax.axhline(ref_row[metric], color="black", linestyle="--", linewidth=1.0,
                   label=f"DDIM-{ref['evaluations']} (reference)")
        if metric == "crps":
            tol = summary["crps_tolerance"]
            ax.axhspan(ref_row[metric], ref_row[metric] * (1 + tol), color="grey", alpha=0.25,
                       label=f"within {tol:.0%} of the reference")
        if metric == "spread_skill":
            ax.axhline(1.0, color="grey", linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_xlabel("Denoiser evaluations per sample")
        ax.set_title(label, fontsize=11)
    axes[0].legend(fontsize=7.5)
    fig.suptitle(f"Sampler quality against cost ({summary['model']}, {summary['n_times']} test times × "
                 f"{summary['members']} members, same noise for every configuration)", fontsize=12)
    save_figure(fig, out_png)
