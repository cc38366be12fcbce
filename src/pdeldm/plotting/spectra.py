"""Radially averaged power spectra of the truth and every model (from ``*_rapsd.csv``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from pdeldm.plotting.style import model_color, model_label, order_models, save_figure, set_style


def read_rapsd_csvs(rapsd_csvs: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenate ``model, k, wavelength_km, power_pred, power_truth`` tables; drop k = 0.

    A model with several files (one per training seed) gets the mean spectrum over them.
    """
    data = pd.concat([pd.read_csv(path) for path in rapsd_csvs], ignore_index=True)
    data["model"] = data["model"].astype(str)
    data = data[(data["k"] > 0) & np.isfinite(data["wavelength_km"])]
    return data.groupby(["model", "k"], as_index=False)[["wavelength_km", "power_pred", "power_truth"]].mean()


def _wavelength_ticks(ax: plt.Axes, wavelengths: pd.Series) -> None:
    """Plain-number major ticks (25, 50, 100 km, ...) inside the plotted range; no minor labels."""
    lo, hi = float(wavelengths.min()), float(wavelengths.max())
    candidates = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
    ticks = [t for t in candidates if lo <= t <= hi] or [round(lo), round(hi)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_spectra(rapsd_csvs: Sequence[str | os.PathLike[str]], out_png: str | os.PathLike[str]) -> None:
    """Log-log spectra vs wavelength (top) and their ratio to the truth's (bottom) -> ``out_png``."""
    set_style()
    data = read_rapsd_csvs(rapsd_csvs)
    models = order_models(data["model"])
    fig, (ax, ax_ratio) = plt.subplots(
        2, 1, figsize=(7.5, 7.0), sharex=True, gridspec_kw={"height_ratios": [2.2, 1.0]}
    )
    # Every file carries the truth spectrum of the same test times; draw it once (first model's).
    first = data[data["model"] == models[0]].sort_values("k")
    ax.loglog(first["wavelength_km"], first["power_truth"], color=model_color("truth"), linewidth=2.4,
              label=model_label("truth"))
    for model in models:
        part = data[data["model"] == model].sort_values("k")
        ax.loglog(part["wavelength_km"], part["power_pred"], color=model_color(model), linewidth=1.6,
                  label=model_label(model))
        ax_ratio.semilogx(part["wavelength_km"], part["power_pred"] / part["power_truth"],
                          color=model_color(model), linewidth=1.6)
    ax_ratio.axhline(1.0, color=model_color("truth"), linewidth=1.0, linestyle="--")
    ax_ratio.set_yscale("log")
    # Large scales left, small scales right (the way wavenumber spectra are usually read).
    ax.invert_xaxis()
    ax.set_ylabel("Power [K² per wavenumber bin]")
    ax.set_title("Radially averaged power spectrum of T_2M (test-period mean)")
    ax.legend(frameon=True, fontsize=10, loc="lower left")
    ax_ratio.set_xlabel("Wavelength [km]")
    ax_ratio.set_ylabel("Power / truth [-]")
    _wavelength_ticks(ax_ratio, data["wavelength_km"])
    fig.tight_layout()
    save_figure(fig, out_png)
