"""Shared figure style: model order, labels, colours, metric labels and the atomic PNG writer.

Every figure of the study uses the same model order and colours so that panels can be compared
at a glance; keep all such choices here rather than in the individual plot modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are written by batch jobs, never shown

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

# One model order and one set of display units for figures and tables.
from pdeldm.evaluation.tables import DISPLAY_SCALE, MODEL_ORDER  # noqa: E402
from pdeldm.evaluation.tables import MODEL_LABELS as TABLE_LABELS  # noqa: E402
from pdeldm.io import atomic_output  # noqa: E402

MODEL_LABELS: dict[str, str] = {**TABLE_LABELS, "coarse": "ERA5 (coarse)", "truth": "COSMO-CLM"}

# Colour-blind-safe palette (Okabe-Ito); the truth is black in line plots.
MODEL_COLORS: dict[str, str] = {
    "interpolation": "#999999",
    "unet": "#56B4E9",
    "gan": "#E69F00",
    "ldm": "#009E73",
    "ldm_control": "#CC79A7",
    "pde_ldm_flux": "#D55E00",
    "pde_ldm_adv": "#882255",
    "coarse": "#0072B2",
    "truth": "#000000",
}

#: Axis labels with units for the per-time metrics of ``results/metrics/{model}.csv``.
METRIC_LABELS: dict[str, str] = {
    "rmse": "RMSE [K]",
    "mae": "MAE [K]",
    "bias": "Bias [K]",
    "r2": "R² [-]",
    "pcc": "PCC [-]",
    "ssim": "SSIM [-]",
    "pde_residual": "PDE residual, twin [K/h]",
    "pde_residual_identified": "PDE residual, identified [K/h]",
    "spectral_slope_diff": "Fine-band slope diff. [-]",
    "spectral_lsd": "Fine-band LSD [dB]",
    "grad_w1": "|∇T| W1 [K/km]",
    "study_flux_ratio": "Study FluxRatio [px]",
    "study_spectral_slope_diff": "Study slope diff. [-]",
    "crps": "CRPS [K]",
    "spread_skill": "Spread/skill [-]",
    "rmse_ensmean": "RMSE ens. mean [K]",
    "spread": "Ensemble spread [K]",
}

#: Display-only unit changes (CSV unit -> label unit).
METRIC_DISPLAY_SCALE: dict[str, float] = dict(DISPLAY_SCALE)


def order_models(models: Iterable[str]) -> list[str]:
    """Sort model names into :data:`MODEL_ORDER`; unknown names follow alphabetically."""
    models = list(dict.fromkeys(models))
    known = [m for m in MODEL_ORDER if m in models]
    return known + sorted(m for m in models if m not in MODEL_ORDER)


def model_label(model: str) -> str:
    """Display name of a model."""
    return MODEL_LABELS.get(model, model)


def model_color(model: str) -> str:
    """Colour of a model (a neutral grey for unknown names)."""
    return MODEL_COLORS.get(model, "#666666")


def model_palette(models: Sequence[str]) -> dict[str, str]:
    """Palette mapping for seaborn's ``palette=`` keyed by model name."""
    return {m: model_color(m) for m in models}


def metric_label(metric: str) -> str:
    """Axis label with units for a metric column."""
    return METRIC_LABELS.get(metric, metric)


def set_style() -> None:
    """Apply the study's figure style (readable fonts for a report at ~100 % zoom)."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.25)
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "axes.titlesize": 12,
            "image.origin": "lower",  # rlat runs south->north on disk
        }
    )


def save_figure(fig: matplotlib.figure.Figure, out_png: str | os.PathLike[str]) -> None:
    """Write ``fig`` as PNG atomically and close it."""
    try:
        with atomic_output(out_png) as tmp:
            # The temporary name has no .png suffix, so the format must be explicit.
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
