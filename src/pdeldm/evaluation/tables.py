"""Summary table of the per-time metrics: mean ± std over the test times, per model and metric.

Input: the per-model metric CSVs of :func:`pdeldm.evaluation.evaluate.evaluate_model`
(``results/metrics/{model}.csv``, one row per test time, interfaces §7).
Outputs (``results/tables/summary.{csv,md,tex}``):

* CSV, one row per model: ``model, n_times, n_seeds, <metric>_mean, <metric>_std, ...`` in the
  metric CSVs' units (std is the sample std, ddof=1, across test times and seeds; NaN where a
  model lacks a metric, e.g. ``crps`` for deterministic models). ``spread_skill_mean`` is pooled
  over the times (:func:`pooled_spread_skill`), not the mean of the per-time ratios. A model trained with several
  seeds (a ``seed`` column) is summarised over all its rows: the mean over seeds of each seed's
  mean, as every seed is scored at the same times.
* Markdown and LaTeX: ``mean ± std`` per cell, best model per column in bold; ``decimals``
  places (default 3), more where a whole column is small (e.g. 0.0042). "Best" is the
  lowest mean, except R², PCC, SSIM (highest), bias (smallest magnitude) and the spread/skill
  ratio (closest to 1). Ties at the displayed precision are all bold. Columns that are not
  distances to the truth (the identified-equation residual and the study's two physics scores)
  are never bolded: the ``truth`` row, when present, shows the truth's own value instead, and is
  itself never "best".

The LaTeX is written by hand (not ``DataFrame.to_latex``) so that it needs no jinja2 and the bold
markup and escaping are under our control; it uses ``booktabs`` rules.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pdeldm.evaluation.evaluate import DETERMINISTIC_COLUMNS
from pdeldm.io import atomic_output
from pdeldm.logs import stage_logger

#: Canonical column order; metrics not listed here follow in file order.
METRIC_ORDER: tuple[str, ...] = DETERMINISTIC_COLUMNS + ("crps", "spread_skill", "rmse_ensmean", "spread")
#: Fixed order of the models in every table and figure: the truth as a reference row, the
#: baselines, then the fine-tunings of the LDM (lambda = 0 control and the two PDE-loss forms).
MODEL_ORDER: tuple[str, ...] = ("truth", "interpolation", "unet", "gan", "ldm", "ldm_control", "pde_ldm_flux",
                                "pde_ldm_adv")
REFERENCE_MODELS = frozenset({"truth"})

HIGHER_IS_BETTER = frozenset({"r2", "pcc", "ssim"})
ABS_IS_BETTER = frozenset({"bias"})
ONE_IS_BEST = frozenset({"spread_skill"})

_MD_HEADERS: dict[str, str] = {
    "rmse": "RMSE [K] ↓",
    "mae": "MAE [K] ↓",
    "bias": "Bias [K] →0",
    "r2": "R² ↑",
    "pcc": "PCC ↑",
    "ssim": "SSIM ↑",
    "pde_residual": "PDE residual (twin) [K/h] ↓",
    "pde_residual_identified": "PDE residual (identified) [K/h] vs truth",
    "spectral_slope_diff": "Fine-band slope diff. ↓",
    "spectral_lsd": "Fine-band LSD [dB] ↓",
    "grad_w1": "|∇T| W1 [K/km] ↓",
    "study_flux_ratio": "Study FluxRatio [px] (not ↓)",
    "study_spectral_slope_diff": "Study slope diff. (full range)",
    "crps": "CRPS [K] ↓",
    "spread_skill": "Spread/skill →1",
    "rmse_ensmean": "RMSE ens. mean [K] ↓",
    "spread": "Spread [K]",
}
_TEX_HEADERS: dict[str, str] = {
    "rmse": r"RMSE [K] $\downarrow$",
    "mae": r"MAE [K] $\downarrow$",
    "bias": r"Bias [K] $\to 0$",
    "r2": r"$R^2$ $\uparrow$",
    "pcc": r"PCC $\uparrow$",
    "ssim": r"SSIM $\uparrow$",
    "pde_residual": r"PDE residual (twin) [K/h] $\downarrow$",
    "pde_residual_identified": r"PDE residual (identified) [K/h] vs truth",
    "spectral_slope_diff": r"Fine-band slope diff. $\downarrow$",
    "spectral_lsd": r"Fine-band LSD [dB] $\downarrow$",
    "grad_w1": r"$|\nabla T|$ $W_1$ [K/km] $\downarrow$",
    "study_flux_ratio": r"Study FluxRatio [px] (not $\downarrow$)",
    "study_spectral_slope_diff": r"Study slope diff.\ (full range)",
    "crps": r"CRPS [K] $\downarrow$",
    "spread_skill": r"Spread/skill $\to 1$",
    "rmse_ensmean": r"RMSE ens.\ mean [K] $\downarrow$",
    "spread": r"Spread [K]",
}
MODEL_LABELS: dict[str, str] = {
    "truth": "Truth (COSMO-CLM)",
    "interpolation": "Interpolation",
    "unet": "UNet",
    "gan": "GAN",
    "ldm": "LDM",
    "ldm_control": "LDM fine-tuned, λ=0 (control)",
    "pde_ldm_flux": "PDE-LDM, study flux ratio",
    "pde_ldm_adv": "PDE-LDM, advection-diffusion",
}
#: Display-only unit changes in Markdown/LaTeX (the CSVs keep the metric's own unit).
DISPLAY_SCALE: dict[str, float] = {}
# Metrics with no "lower is better" direction (descriptive, or not a distance to the truth): never bolded.
_NO_BEST = frozenset({"spread", "pde_residual_identified", "study_flux_ratio", "study_spectral_slope_diff"})


def _ordered_models(models: Sequence[str]) -> list[str]:
    models = list(dict.fromkeys(models))
    return [m for m in MODEL_ORDER if m in models] + sorted(m for m in models if m not in MODEL_ORDER)


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    numeric = [c for c in frame.columns if c not in ("time", "model") and pd.api.types.is_numeric_dtype(frame[c])]
    return [m for m in METRIC_ORDER if m in numeric] + [m for m in numeric if m not in METRIC_ORDER]


def summary_frame(frames: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """Per-model mean/std of every metric column; returns (wide table, metric names in order)."""
    data = pd.concat(list(frames), ignore_index=True)
    if "model" not in data.columns:
        raise ValueError("metric CSVs need a 'model' column (interfaces §7)")
    metrics = [m for m in _metric_columns(data) if m != "seed"]
    models = _ordered_models(data["model"].astype(str).tolist())
    rows = []
    for model in models:
        part = data[data["model"].astype(str) == model]
        n_seeds = int(part["seed"].nunique()) if "seed" in part.columns and part["seed"].notna().any() else 1
        row: dict[str, object] = {"model": model, "n_times": int(len(part) // n_seeds), "n_seeds": n_seeds}
        for metric in metrics:
            values = part[metric].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            row[f"{metric}_mean"] = float(values.mean()) if values.size else math.nan
            row[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
        if "spread_skill" in metrics and "rmse_ensmean" in part.columns:
            row["spread_skill_mean"] = pooled_spread_skill(part["spread_skill"], part["rmse_ensmean"])
        rows.append(row)
    return pd.DataFrame(rows), metrics


def pooled_spread_skill(ratios: pd.Series, rmse_ensmean: pd.Series) -> float:
    """Spread/skill pooled over times (Fortin et al. 2014) from the per-time ratios and ensemble-mean RMSEs.

    A time's ratio times its RMSE is its corrected spread, so the pooled ratio is
    ``sqrt(mean((ratio_t rmse_t)^2) / mean(rmse_t^2))``: the mean member variance over the mean
    squared error, not the mean of the per-time ratios (which weights quiet maps like busy ones).
    """
    ok = np.isfinite(ratios.to_numpy(float)) & np.isfinite(rmse_ensmean.to_numpy(float))
    spread = ratios.to_numpy(float)[ok] * rmse_ensmean.to_numpy(float)[ok]
    error = rmse_ensmean.to_numpy(float)[ok]
    if not error.size or not np.any(error > 0):
        return math.nan
    return float(np.sqrt(np.mean(spread**2) / np.mean(error**2)))


def best_models(table: pd.DataFrame, metric: str, decimals: int) -> set[str]:
    """Models whose displayed mean is best for ``metric`` (ties at display precision included)."""
    if metric in _NO_BEST:
        return set()
    means = table.set_index("model")[f"{metric}_mean"].astype(float).round(decimals)
    means = means[np.isfinite(means) & ~means.index.isin(list(REFERENCE_MODELS))]
    if means.empty:
        return set()
    if metric in HIGHER_IS_BETTER:
        score = -means
    elif metric in ABS_IS_BETTER:
        score = means.abs()
    elif metric in ONE_IS_BEST:
        score = (means - 1.0).abs()
    else:
        score = means
    # Compare at display precision so that visually equal values are treated alike.
    score = score.round(decimals)
    return set(score.index[score == score.min()])


def column_decimals(table: pd.DataFrame, metric: str, decimals: int) -> int:
    """``decimals``; more (up to 6) where the column's largest |mean| would show < 2 digits, fewer
    (0-1) for columns of hundreds and more.

    The largest value sets the precision (not the smallest): near-zero entries such as a good
    model's bias would otherwise inflate every cell of the column.
    """
    means = table[f"{metric}_mean"].to_numpy(dtype=float)
    means = np.abs(means[np.isfinite(means) & (means != 0)])
    if means.size == 0:
        return decimals
    largest = float(means.max())
    if largest >= 1000:  # e.g. a flux ratio in metres: decimals would be noise
        return 0
    if largest >= 100:
        return 1
    return int(min(6, max(decimals, 1 - math.floor(math.log10(largest)))))


def _fmt(value: float, decimals: int, tex: bool = False) -> str:
    if not np.isfinite(value):
        return ""
    text = f"{value:.{decimals}f}"
    # A text-mode "-" is a hyphen in LaTeX; typeset a real minus sign.
    return text.replace("-", "$-$", 1) if tex and text.startswith("-") else text


def _cell(table_row: pd.Series, metric: str, decimals: int, bold: bool, tex: bool) -> str:
    mean = float(table_row[f"{metric}_mean"])
    std = float(table_row[f"{metric}_std"])
    if not np.isfinite(mean):
        return "--" if tex else "–"
    text = _fmt(mean, decimals, tex)
    if tex:
        text = rf"\textbf{{{text}}}" if bold else text
        return text + (rf" $\pm$ {_fmt(std, decimals, tex)}" if np.isfinite(std) else "")
    text = f"**{text}**" if bold else text
    return text + (f" ± {_fmt(std, decimals)}" if np.isfinite(std) else "")


def _tex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, repl)
    return text


def _display_units(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for metric, scale in DISPLAY_SCALE.items():
        for stat in ("mean", "std"):
            if f"{metric}_{stat}" in shown.columns:
                shown[f"{metric}_{stat}"] = shown[f"{metric}_{stat}"] * scale
    return shown


def _label(model: str, n_seeds: int) -> str:
    text = MODEL_LABELS.get(model, model)
    return f"{text} [{n_seeds} seeds]" if n_seeds > 1 else text


def to_markdown(table: pd.DataFrame, metrics: Sequence[str], decimals: int = 3) -> str:
    """Markdown table (GitHub pipes), ``mean ± std`` per cell, best per column in bold."""
    table = _display_units(table)
    places = {m: column_decimals(table, m, decimals) for m in metrics}
    best = {m: best_models(table, m, places[m]) for m in metrics}
    header = ["Model"] + [_MD_HEADERS.get(m, m) for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * len(metrics)) + "|"]
    for _, row in table.iterrows():
        cells = [_label(str(row["model"]), int(row.get("n_seeds", 1)))]
        cells += [_cell(row, m, places[m], row["model"] in best[m], tex=False) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    n = int(table["n_times"].max()) if len(table) else 0
    lines.append("")
    lines.append(f"Mean ± standard deviation over the test times (up to {n} per model, and over the seeds where "
                 "there are several); best per column in bold. The truth row is the reference for the columns "
                 "marked 'vs truth' and 'not ↓', which are not distances to the truth and are never bolded.")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, metrics: Sequence[str], decimals: int = 3) -> str:
    """Stand-alone ``tabular`` (booktabs) with the same content as :func:`to_markdown`."""
    table = _display_units(table)
    places = {m: column_decimals(table, m, decimals) for m in metrics}
    best = {m: best_models(table, m, places[m]) for m in metrics}
    lines = [
        r"% Summary of the test-period metrics (generated by pdeldm.evaluation.tables).",
        r"% Requires \usepackage{booktabs}.",
        r"\begin{tabular}{l" + "r" * len(metrics) + "}",
        r"\toprule",
        "Model & " + " & ".join(_TEX_HEADERS.get(m, _tex_escape(m)) for m in metrics) + r" \\",
        r"\midrule",
    ]
    for _, row in table.iterrows():
        cells = [_tex_escape(_label(str(row["model"]), int(row.get("n_seeds", 1))))]
        cells += [_cell(row, m, places[m], row["model"] in best[m], tex=True) for m in metrics]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def summarise(
    metric_csvs: Sequence[str | os.PathLike[str]],
    out_csv: str | os.PathLike[str],
    out_md: str | os.PathLike[str],
    out_tex: str | os.PathLike[str],
    decimals: int = 3,
    log: str | os.PathLike[str] | None = None,
) -> None:
    """Summarise per-time metric CSVs into ``summary.{csv,md,tex}`` (see module docstring)."""
    logger = stage_logger("tables", log)
    frames = []
    for path in metric_csvs:
        frame = pd.read_csv(path)
        if frame.empty:
            logger.warning("%s has no rows; skipped", path)
            continue
        frames.append(frame)
    if not frames:
        raise ValueError(f"no metric rows in {list(map(str, metric_csvs))}")
    table, metrics = summary_frame(frames)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(to_markdown(table, metrics, decimals))
    with atomic_output(out_tex) as tmp:
        Path(tmp).write_text(to_latex(table, metrics, decimals))
    logger.info("summary of %d models x %d metrics -> %s", len(table), len(metrics), out_csv)
