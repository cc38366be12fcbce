"""The lambda ablation and the PDE-form comparison: tables from the per-time metric CSVs.

* :func:`ablation_table`: for every (form, lambda) of the ablation and every score, the mean over
  test times of each seed and the mean over seeds (lambda = 0 is the control run).
* :func:`wind_contrast_conditions`: per test time, the domain-mean 10-m wind speed and the
  domain-mean gradient of the coarse t2m, and whether the time belongs to the *strong-wind,
  weak-thermal-contrast* subset (wind above its ``wind_quantile`` and coarse gradient below its
  ``gradient_quantile`` over the training times), where approximating advection from temperature
  gradients (the study's flux ratio) is expected to fail.
* :func:`form_comparison`: every run minus the control on all test times and on that subset, with
  the paired moving-block bootstrap intervals of :mod:`pdeldm.evaluation.paired`.

Every number in these tables is a mean of the per-time CSV values (tests recompute them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pdeldm.evaluation.paired import paired_differences
from pdeldm.io import atomic_output, read_json


def read_metrics(metric_csvs: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenate per-time metric CSVs (a ``seed`` column where a run has one)."""
    data = pd.concat([pd.read_csv(p) for p in metric_csvs], ignore_index=True)
    data["model"] = data["model"].astype(str)
    return data


def ablation_table(data: pd.DataFrame, points: Sequence[tuple[str, float, str]], metrics: Sequence[str]
                   ) -> pd.DataFrame:
    """Rows ``form, lambda, run, seed, <metric>...``: per-seed means over the test times, plus a
    ``seed = "mean"`` row per (form, lambda) with the mean over seeds.

    ``points``: ``(form, lambda, run)`` for every point of the ablation (the control at lambda 0
    appears once per form, so each form's curve starts from it).
    """
    rows = []
    for form, lam, run in points:
        part = data[data["model"] == run]
        if part.empty:
            raise ValueError(f"no metrics of run {run!r} (form {form}, lambda {lam:g})")
        seeds = part.groupby("seed") if "seed" in part.columns and part["seed"].notna().any() else [(0, part)]
        per_seed = []
        for seed, rows_of_seed in seeds:
            means = {m: float(rows_of_seed[m].mean()) for m in metrics if m in rows_of_seed.columns}
            per_seed.append(means)
            rows.append({"form": form, "lambda": lam, "run": run, "seed": str(int(seed)), **means})
        rows.append({"form": form, "lambda": lam, "run": run, "seed": "mean",
                     **{m: float(np.mean([s[m] for s in per_seed])) for m in per_seed[0]}})
    return pd.DataFrame(rows)


def wind_contrast_conditions(store_path: str | os.PathLike[str], meta_path: str | os.PathLike[str],
                             times: Sequence[str], wind_quantile: float, gradient_quantile: float,
                             train_stride: int = 5) -> pd.DataFrame:
    """Per test time: wind speed, coarse |grad T| (K/100 km), and the subset flags (module docstring)."""
    import xarray as xr

    meta = read_json(meta_path)
    factor, dx, dy = int(meta["factor"]), float(meta["dx_m"]), float(meta["dy_m"])
    t2m = list(meta["predictors"]).index("t2m")
    with xr.open_zarr(store_path) as store:
        all_times = pd.DatetimeIndex(store["time"].values)
        i0, i1 = meta["splits"]["train"]
        train = np.arange(i0, i1, train_stride)
        test = all_times.get_indexer(pd.DatetimeIndex(times))
        if (test < 0).any():
            raise ValueError(f"{store_path}: {(test < 0).sum()} test times not in the store")

        def measures(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            sub = store.isel(time=index)
            wind = np.hypot(sub["wind"].isel(wvar=0).values, sub["wind"].isel(wvar=1).values).mean(axis=(1, 2))
            coarse = sub["coarse"].isel(cvar=t2m).values.astype(np.float64)
            gy, gx = np.gradient(coarse, dy * factor, dx * factor, axis=(1, 2))
            return wind, np.hypot(gx, gy).mean(axis=(1, 2)) * 1e5

        train_wind, train_gradient = measures(train)
        wind, gradient = measures(test)
    wind_threshold = float(np.quantile(train_wind, wind_quantile))
    gradient_threshold = float(np.quantile(train_gradient, gradient_quantile))
    frame = pd.DataFrame({"time": list(times), "wind_speed_m_s": wind, "coarse_gradient_K_per_100km": gradient})
    frame["strong_wind"] = frame["wind_speed_m_s"] > wind_threshold
    frame["weak_contrast"] = frame["coarse_gradient_K_per_100km"] < gradient_threshold
    frame["subset"] = frame["strong_wind"] & frame["weak_contrast"]
    frame.attrs.update(wind_threshold=wind_threshold, gradient_threshold=gradient_threshold)
    return frame


def form_comparison(data: pd.DataFrame, conditions: pd.DataFrame, runs: Mapping[str, str], control: str,
                    metrics: Sequence[str], block_days: int, samples: int, seed: int) -> pd.DataFrame:
    """Each run (``runs``: label -> run) minus the control, on all test times and on the subset."""
    subset_times = set(conditions.loc[conditions["subset"], "time"].astype(str))
    frames = {name: part for name, part in data.groupby("model")}
    tables = []
    for which, keep in (("all", None), ("strong wind, weak contrast", subset_times)):
        selected = {m: (f if keep is None else f[f["time"].astype(str).isin(keep)]) for m, f in frames.items()}
        pairs = [(run, control) for run in runs.values() if run != control]
        table = paired_differences(selected, pairs, metrics, block_days, samples, seed)
        table.insert(0, "times", which)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def write_table(table: pd.DataFrame, out_csv: str | os.PathLike[str], out_md: str | os.PathLike[str],
                out_tex: str | os.PathLike[str] | None = None, caption: str = "") -> None:
    """CSV, Markdown (and LaTeX) of a plain table, atomically."""
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(_markdown(table) + ("\n" + caption + "\n" if caption else ""))
    if out_tex is not None:
        with atomic_output(out_tex) as tmp:
            Path(tmp).write_text(_latex(table))


def _format(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _latex(table: pd.DataFrame) -> str:
    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    lines = [r"\begin{tabular}{" + "l" * len(table.columns) + "}", r"\toprule",
             " & ".join(esc(str(c)) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_format(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
