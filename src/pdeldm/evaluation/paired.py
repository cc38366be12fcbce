"""Paired differences between two models with moving-block bootstrap intervals over test days.

Both models are scored at the same test times with the same sampling noise, so their per-time
scores are paired: ``d_t = score_a(t) - score_b(t)`` (each averaged over the training seeds of a
model that has several). Neighbouring test times are correlated (weather lasts days), so the
interval of the mean difference comes from a **moving-block bootstrap over days**: blocks of
``block_days`` consecutive test days are drawn with replacement until as many days are drawn as the
test period has, and the 2.5 and 97.5 percentiles of the resampled means bound the 95% interval.

Percentile intervals from blocks are narrower than nominal on short, strongly correlated
records (about 87% coverage for a day-to-day correlation of 0.7 over 120 days with 10-day blocks,
``tests/evaluation/test_paired.py``), so a difference just outside its interval is weak evidence.

With fewer test days than two blocks there is no interval (NaN, verdict "n/a"): one block would
hold every day, every resample would be the sample itself and the interval would have no width.

A difference whose interval contains 0 is reported as "no difference". Otherwise the verdict
says whether ``a`` is better or worse than ``b`` by the metric's direction (lower is better,
except R^2, PCC and SSIM; bias by its magnitude; spread/skill by its distance from 1; scores that
are not distances to the truth get no verdict).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdeldm.io import atomic_output
from pdeldm.logs import stage_logger

HIGHER_IS_BETTER = frozenset({"r2", "pcc", "ssim"})
NO_DIRECTION = frozenset({"spread", "pde_residual_identified", "study_flux_ratio", "study_spectral_slope_diff"})


def _comparable(metric: str, values: pd.Series) -> pd.Series:
    """The per-time quantity whose difference has a direction (|bias|, |spread/skill - 1|)."""
    if metric == "bias":
        return values.abs()
    if metric == "spread_skill":
        return (values - 1.0).abs()
    return values


def per_time(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Per-time value of ``metric`` (mean over the seeds of a multi-seed model), indexed by time."""
    values = frame.assign(value=_comparable(metric, frame[metric].astype(float)))
    return values.groupby("time")["value"].mean()


def moving_block_picks(n_days: int, block_days: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``(samples, n_days)`` day indices: blocks of ``block_days`` consecutive days drawn with
    replacement until ``n_days`` days are drawn (one moving-block bootstrap resample per row)."""
    block = max(1, min(int(block_days), n_days))
    n_blocks = math.ceil(n_days / block)
    starts = rng.integers(0, n_days - block + 1, size=(samples, n_blocks))
    return (starts[..., None] + np.arange(block)).reshape(samples, -1)[:, :n_days]


def too_few_days(n_days: int, block_days: int) -> bool:
    """Fewer days than two bootstrap blocks (or than two days): no interval can be drawn."""
    return n_days < max(2, 2 * int(block_days))


def block_bootstrap_interval(values: pd.Series, block_days: int, samples: int, rng: np.random.Generator,
                             level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` (indexed by time) by moving blocks of days
    (NaN with fewer days than two blocks)."""
    days = pd.DatetimeIndex(values.index).normalize()
    unique_days = np.unique(days.values)
    if too_few_days(unique_days.size, block_days) or samples < 1:
        return math.nan, math.nan
    sums = pd.Series(values.to_numpy(float), index=days).groupby(level=0).agg(["sum", "count"])
    sums = sums.reindex(unique_days)
    day_sum, day_count = sums["sum"].to_numpy(), sums["count"].to_numpy()
    picks = moving_block_picks(unique_days.size, block_days, samples, rng)
    means = day_sum[picks].sum(axis=1) / day_count[picks].sum(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def block_bootstrap_sums(day_sums: np.ndarray, statistic: Any, block_days: int, samples: int,
                         rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic`` of sums over the days, by moving blocks of days.

    ``day_sums``: ``(n_days, k)`` per-day sums in day order (e.g. of squared errors, variances
    and counts); ``statistic`` maps the ``(samples, k)`` totals of the resampled days to
    ``samples`` values (e.g. a ratio of pooled sums, a SEDI from contingency counts). NaN where
    there are fewer days than two blocks.
    """
    day_sums = np.asarray(day_sums, dtype=float)
    if too_few_days(day_sums.shape[0], block_days) or samples < 1:
        return math.nan, math.nan
    picks = moving_block_picks(day_sums.shape[0], block_days, samples, rng)
    values = np.asarray(statistic(day_sums[picks].sum(axis=1)), dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def verdict(metric: str, low: float, high: float) -> str:
    """"no difference" if the interval contains 0, else "better"/"worse" for the first model."""
    if metric in NO_DIRECTION or not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    if low <= 0 <= high:
        return "no difference"
    lower = high < 0
    return ("worse" if lower else "better") if metric in HIGHER_IS_BETTER else ("better" if lower else "worse")


def paired_differences(frames: Mapping[str, pd.DataFrame], pairs: Sequence[tuple[str, str]], metrics: Sequence[str],
                       block_days: int, samples: int, seed: int) -> pd.DataFrame:
    """One row per (pair, metric): both means, the mean paired difference and its 95% interval.

    For bias the compared quantity is |bias|, for spread/skill |spread/skill - 1| (so that the
    difference has a direction); the columns say which.
    """
    rng = np.random.default_rng([int(seed), 0xB007])
    rows = []
    for a, b in pairs:
        for metric in metrics:
            if metric not in frames[a].columns or metric not in frames[b].columns:
                continue
            va, vb = per_time(frames[a], metric), per_time(frames[b], metric)
            both = va.index.intersection(vb.index)
            diff = (va[both] - vb[both]).dropna()
            if diff.empty:
                continue
            diff.index = pd.DatetimeIndex(diff.index)
            low, high = block_bootstrap_interval(diff, block_days, samples, rng)
            rows.append({
                "model": a, "reference": b,
                "metric": {"bias": "abs_bias", "spread_skill": "abs_spread_skill_minus_1"}.get(metric, metric),
                "mean_model": float(va.loc[both].mean()),
                "mean_reference": float(vb.loc[both].mean()), "difference": float(diff.mean()),
                "ci95_low": low, "ci95_high": high, "verdict": verdict(metric, low, high),
                "n_times": int(diff.size), "n_days": int(pd.DatetimeIndex(diff.index).normalize().nunique()),
            })
    return pd.DataFrame(rows)


#: Header and alignment of the comparison columns of a Markdown table (see :func:`comparison_cells`).
COMPARISON_HEADER = "Model | Reference | Metric | Model mean | Reference mean | Difference [95% CI] | Verdict"
COMPARISON_ALIGN = ":---|:---|:---|---:|---:|---:|:---"


def comparison_cells(row: Mapping[str, Any], label: Callable[[str], str]) -> str:
    """The comparison columns of one row of :func:`paired_differences`, as Markdown cells."""
    return (f"{label(row['model'])} | {label(row['reference'])} | {row['metric']} | {row['mean_model']:.4g} | "
            f"{row['mean_reference']:.4g} | {row['difference']:+.3g} [{row['ci95_low']:+.3g}, "
            f"{row['ci95_high']:+.3g}] | {row['verdict']}")


def to_markdown(table: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Markdown: one line per comparison and metric, difference [95% interval] and the verdict."""
    lines = [f"| {COMPARISON_HEADER} |", f"|{COMPARISON_ALIGN}|"]
    lines += [f"| {comparison_cells(r, lambda key: labels.get(key, key))} |" for _, r in table.iterrows()]
    n_days = int(table["n_days"].max()) if len(table) else 0
    lines += ["", f"Paired per-time differences (model minus reference; models with several training seeds are "
              f"averaged over them first), mean over the test times, with 95% moving-block bootstrap intervals "
              f"over {n_days} test days. An interval containing 0 is 'no difference'."]
    return "\n".join(lines) + "\n"


def write_paired_differences(metric_csvs: Sequence[str | os.PathLike[str]], pairs: Sequence[tuple[str, str]],
                             metrics: Sequence[str], block_days: int, samples: int, seed: int,
                             out_csv: str | os.PathLike[str], out_md: str | os.PathLike[str],
                             log: str | os.PathLike[str] | None = None) -> None:
    """Read per-time metric CSVs, compare ``pairs`` of models, write CSV and Markdown."""
    from pdeldm.evaluation.tables import MODEL_LABELS

    logger = stage_logger("paired", log)
    data = pd.concat([pd.read_csv(p) for p in metric_csvs], ignore_index=True)
    data["model"] = data["model"].astype(str)
    frames = {m: part for m, part in data.groupby("model")}
    missing = sorted({m for pair in pairs for m in pair} - set(frames))
    if missing:
        raise ValueError(f"paired differences: no metrics for {missing} in {list(map(str, metric_csvs))}")
    table = paired_differences(frames, pairs, metrics, block_days, samples, seed)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(to_markdown(table, MODEL_LABELS))
    logger.info("%d paired comparisons -> %s", len(table), out_csv)
