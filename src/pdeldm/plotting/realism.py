"""The twin against real COSMO-CLM: band spectra per region and the fine-scale coefficients."""

from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import pandas as pd

from pdeldm.plotting.style import model_color, save_figure, set_style

TWIN_COLOR = "#D55E00"


def plot_realism(spectrum: pd.DataFrame, wide: pd.DataFrame, out_png: str | os.PathLike[str], month: str) -> None:
    """One log-log panel per region (twin and real spectra below two coarse cells) and a panel of
    the lapse-rate and land-sea coefficients, twin against real -> ``out_png``."""
    set_style()
    regions = list(wide["region"]) if len(wide) else []
    n_panels = len(regions) + 1
    n_cols = min(3, n_panels)
    n_rows = math.ceil(n_panels / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.6 * n_rows), squeeze=False)
    flat = list(axes.ravel())
    for ax, region in zip(flat, regions, strict=False):
        for source, color in (("real", model_color("truth")), ("twin", TWIN_COLOR)):
            part = spectrum[(spectrum["region"] == region) & (spectrum["source"] == source)]
            part = part.sort_values("wavelength_km", ascending=False)
            ax.loglog(part["wavelength_km"], part["power"], color=color, linewidth=1.8,
                      label="COSMO-CLM (real)" if source == "real" else "twin")
        ax.invert_xaxis()
        ax.set_title(region)
        ax.set_xlabel("Wavelength [km]")
        ax.set_ylabel("Power [K² per bin]")
        ax.legend(fontsize=9, loc="lower left")
    ax = flat[len(regions)]
    for key, marker, label in (("lapse_rate_K_per_km", "o", "lapse rate [K/km]"),
                               ("land_sea_K", "s", "land-sea [K]")):
        if len(wide):
            color = TWIN_COLOR if key == "land_sea_K" else "#0072B2"
            ax.scatter(wide[f"{key}_real"], wide[f"{key}_twin"], marker=marker, label=label, color=color)
    columns = [f"{key}_{source}" for key in ("lapse_rate_K_per_km", "land_sea_K") for source in ("twin", "real")]
    low = min([-8.0] + ([float(wide[c].min()) for c in columns] if len(wide) else []))
    ax.plot([low, 0], [low, 0], color="#999999", linewidth=1.0, linestyle="--")
    ax.set_xlabel("real coefficient")
    ax.set_ylabel("twin coefficient")
    ax.set_title("Fine-scale regression")
    ax.legend(fontsize=9)
    for extra in flat[n_panels:]:
        extra.set_visible(False)
    fig.suptitle(f"Twin vs real COSMO-CLM, monthly mean {month}: scales below two coarse cells", y=1.01)
    fig.tight_layout()
    save_figure(fig, out_png)
