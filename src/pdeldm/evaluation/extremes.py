"""Extremes: events above and below the training climatology, and the scores on the hottest and coldest times.

Events (per cell and time, thresholds from the *training* period, :mod:`pdeldm.evaluation.climatology`):
``hot`` = the truth above the cell's 99th percentile, ``cold`` = below its 1st. For each model (a
run's seeds pooled) and event, from the per-time sums of :func:`pdeldm.evaluation.calibration.verify_prediction`:
the whole ensemble's mean probability of the event, the Brier score and its fair form, the Brier
skill against the test period's base rate, and the single-member hit rate, false-alarm rate and
SEDI (rare-event robust), with 95% moving-block bootstrap intervals over test days
(:func:`pdeldm.evaluation.paired.block_bootstrap_sums`).

Hottest and coldest times: the ``case_fraction`` of test times with the highest (lowest) domain-mean
truth. On them the per-time scores of ``results/metrics/<model>.csv`` -- the proper physics scores
(twin equation residual, fine-band spectral slope difference and log-spectral distance, |grad T|
Wasserstein distance) and the RMSE -- and the ensemble CRPS are averaged, with bootstrap intervals
of the mean. The case studies (map panels) are the single hottest and coldest of them.

Outputs: ``results/tables/extremes.csv`` (long format: ``model, n_seeds, scope, metric, value,
ci95_low, ci95_high, n_times``; scope ``event:hot``, ``event:cold``, ``times:hottest``,
``times:coldest``, ``times:all``), ``results/tables/extremes.md``, and ``results/extremes/cases.json``
(the hottest and coldest time sets and the two case times).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdeldm.evaluation.calibration import CONTINGENCY, sedi
from pdeldm.evaluation.ensembles import group_by_run, per_day_sums
from pdeldm.evaluation.paired import block_bootstrap_interval, block_bootstrap_sums, per_time
from pdeldm.io import atomic_output, write_json
from pdeldm.logs import stage_logger

PathLike = str | os.PathLike[str]

EVENTS = ("hot", "cold")
#: Per-time scores averaged over the hottest and coldest times (the proper physics scores and the RMSE).
TIME_METRICS = ("rmse", "pde_residual", "spectral_slope_diff", "spectral_lsd", "grad_w1")


def select_cases(domain_mean: pd.Series, fraction: float) -> dict[str, Any]:
    """Hottest and coldest ``fraction`` of the times (by domain-mean truth) and the extreme time of each."""
    if not 0.0 < fraction <= 0.5:
        raise ValueError(f"extremes.case_fraction must lie in (0, 0.5], got {fraction}")
    ordered = domain_mean.sort_values()
    n = max(1, math.ceil(fraction * len(ordered)))
    return {"fraction": fraction, "coldest_times": sorted(ordered.index[:n]), "hottest_times": sorted(ordered.index[-n:]),
            "coldest_case": ordered.index[0], "hottest_case": ordered.index[-1],
            "coldest_case_mean_K": float(ordered.iloc[0]), "hottest_case_mean_K": float(ordered.iloc[-1])}


def event_rows(name: str, n_seeds: int, table: pd.DataFrame, event: str, block_days: int, samples: int,
               rng: np.random.Generator) -> list[dict[str, Any]]:
    """Probability, Brier and contingency scores of one event with bootstrap intervals."""
    columns = ["n_points", f"{event}_events", f"{event}_prob_sum", f"{event}_brier_sum", f"{event}_brier_fair_sum",
               *(f"{event}_{c}" for c in CONTINGENCY)]
    if any(c not in table.columns for c in columns):
        return []
    days = per_day_sums(table, columns)
    total = days.sum(axis=0)

    def ratio(i: int) -> Any:
        return lambda s: s[:, i] / s[:, 0]

    def brier_skill(s: np.ndarray) -> np.ndarray:
        base = s[:, 1] / s[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 - (s[:, 3] / s[:, 0]) / (base * (1 - base))

    def rates(i: int, j: int) -> Any:
        return lambda s: s[:, i] / (s[:, i] + s[:, j])

    hits, misses, false_alarms, negatives = 5, 6, 7, 8
    statistics = {
        "base_rate": ratio(1), "mean_probability": ratio(2), "brier": ratio(3), "brier_fair": ratio(4),
        "brier_skill": brier_skill, "hit_rate": rates(hits, misses), "false_alarm_rate": rates(false_alarms, negatives),
        "sedi": lambda s: sedi(s[:, hits], s[:, misses], s[:, false_alarms], s[:, negatives]),
    }
    rows = []
    for metric, statistic in statistics.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            value = float(np.asarray(statistic(total[None]), dtype=float)[0])
        low, high = block_bootstrap_sums(days, statistic, block_days, samples, rng)
        rows.append({"model": name, "n_seeds": n_seeds, "scope": f"event:{event}", "metric": metric, "value": value,
                     "ci95_low": low, "ci95_high": high, "n_times": int(table["time"].nunique())})
    return rows


def time_rows(name: str, n_seeds: int, values: Mapping[str, pd.Series], times: Mapping[str, Sequence[str]],
              block_days: int, samples: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Mean of each per-time score over each set of times, with a bootstrap interval of the mean."""
    rows = []
    for scope, chosen in times.items():
        for metric, series in values.items():
            part = series[series.index.isin(list(chosen))].dropna()
            if part.empty:
                continue
            part.index = pd.DatetimeIndex(part.index)
            # The hottest (coldest) times are scattered over the period: blocks of their consecutive
            # days, but short enough that a few days still resample.
            n_days = int(pd.DatetimeIndex(part.index).normalize().nunique())
            low, high = block_bootstrap_interval(part, min(block_days, max(1, n_days // 3)), samples, rng)
            rows.append({"model": name, "n_seeds": n_seeds, "scope": f"times:{scope}", "metric": metric,
                         "value": float(part.mean()), "ci95_low": low, "ci95_high": high, "n_times": int(part.size)})
    return rows


def to_markdown(table: pd.DataFrame, labels: Mapping[str, str], cases: Mapping[str, Any]) -> str:
    """Two tables: the events (whole ensemble) and the scores on the hottest and coldest times."""

    def cell(r: pd.Series, fmt: str) -> str:
        if not np.isfinite(r["value"]):
            return "–"
        text = f"{r['value']:{fmt}}"
        if np.isfinite(r["ci95_low"]) and np.isfinite(r["ci95_high"]):
            text += f" [{r['ci95_low']:{fmt}}, {r['ci95_high']:{fmt}}]"
        return text

    def label(model: str, seeds: int) -> str:
        return labels.get(model, model) + (f" [{seeds} seeds]" if seeds > 1 else "")

    lines = ["**Events above the 99th / below the 1st percentile of each cell's training climatology.**", "",
             "| Model | Event | Base rate | Mean probability | Brier (fair) | Brier skill | Hit rate | "
             "False-alarm rate | SEDI |", "|:---|:---|---:|---:|---:|---:|---:|---:|---:|"]
    events = table[table["scope"].str.startswith("event:")]
    for (model, scope), part in events.groupby(["model", "scope"], sort=False):
        r = part.set_index("metric")
        seeds = int(part["n_seeds"].iloc[0])
        fair = r.loc["brier_fair", "value"]
        lines.append(f"| {label(model, seeds)} | {scope.split(':')[1]} | {r.loc['base_rate', 'value']:.4f} | "
                     f"{cell(r.loc['mean_probability'], '.4f')} | {cell(r.loc['brier'], '.4f')} ({fair:.4f}) | "
                     f"{cell(r.loc['brier_skill'], '.2f')} | {cell(r.loc['hit_rate'], '.2f')} | "
                     f"{cell(r.loc['false_alarm_rate'], '.3f')} | {cell(r.loc['sedi'], '.2f')} |")
    timed = table[table["scope"].str.startswith("times:")]
    metrics = [m for m in ("crps", *TIME_METRICS) if m in set(timed["metric"])]
    header = {"crps": "CRPS [K]", "rmse": "RMSE [K]", "pde_residual": "Twin PDE residual [K/h]",
              "spectral_slope_diff": "Fine-band slope diff.", "spectral_lsd": "Fine-band LSD [dB]",
              "grad_w1": "abs(grad T) W1 [K/km]"}
    lines += ["", f"**Scores on the hottest and coldest {cases['fraction']:.0%} of the test times** (by domain-mean "
              "truth; mean [95% interval])", "",
              "| Model | Times | " + " | ".join(header[m] for m in metrics) + " |",
              "|:---|:---|" + "---:|" * len(metrics)]
    for (model, scope), part in timed.groupby(["model", "scope"], sort=False):
        r = part.set_index("metric")
        seeds = int(part["n_seeds"].iloc[0])
        cells = [cell(r.loc[m], ".3f") if m in r.index else "–" for m in metrics]
        lines.append(f"| {label(model, seeds)} | {scope.split(':')[1]} | " + " | ".join(cells) + " |")
    lines += ["", f"Hottest case: {cases['hottest_case']} (domain mean {cases['hottest_case_mean_K']:.1f} K); "
              f"coldest case: {cases['coldest_case']} ({cases['coldest_case_mean_K']:.1f} K). Intervals: moving-block "
              "bootstrap over test days. SEDI, hit and false-alarm rates are those of a single member (the members' "
              "contingency tables pooled); probabilities and Brier scores use the whole ensemble."]
    return "\n".join(lines) + "\n"


def score_extremes(times_csvs: Sequence[PathLike], models: Sequence[str], metric_csvs: Sequence[PathLike],
                   out_csv: PathLike, out_md: PathLike, out_cases: PathLike, case_fraction: float = 0.1,
                   block_days: int = 7, samples: int = 2000, seed: int = 0, log: PathLike | None = None) -> None:
    """Write the extremes table and the case selection (module docstring).

    ``times_csvs``: per-time sums of ``models`` (same order); ``metric_csvs``: per-time metric CSVs of
    any models (the truth's too), matched by their ``model`` column.
    """
    from pdeldm.evaluation.tables import MODEL_LABELS

    logger = stage_logger("extremes", log)
    files = dict(zip(models, times_csvs, strict=True))
    rng = np.random.default_rng([int(seed), 0xE7E3])
    first = pd.read_csv(times_csvs[0])
    cases = select_cases(first.groupby("time")["domain_mean_truth"].first(), case_fraction)
    time_sets = {"hottest": cases["hottest_times"], "coldest": cases["coldest_times"],
                 "all": sorted(first["time"].unique())}
    metrics = pd.concat([pd.read_csv(p) for p in metric_csvs], ignore_index=True)
    metrics["model"] = metrics["model"].astype(str)
    rows: list[dict[str, Any]] = []
    groups = group_by_run(models)
    names = list(dict.fromkeys(["truth", *groups]))
    for name in names:
        seeds = len(groups.get(name, [name]))
        values: dict[str, pd.Series] = {}
        if name in groups:
            table = pd.concat([pd.read_csv(files[m]) for m in groups[name]], ignore_index=True)
            for event in EVENTS:
                rows += event_rows(name, seeds, table, event, block_days, samples, rng)
            crps = table.groupby("time")[["sum_crps", "n_points"]].sum()
            values["crps"] = crps["sum_crps"] / crps["n_points"]
        frame = metrics[metrics["model"] == name]
        for metric in TIME_METRICS:
            if not frame.empty and metric in frame.columns and frame[metric].notna().any():
                values[metric] = per_time(frame, metric)
        rows += time_rows(name, seeds, values, time_sets, block_days, samples, rng)
    table = pd.DataFrame(rows)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(to_markdown(table, MODEL_LABELS, cases))
    write_json(out_cases, cases)
    for name in groups:
        hot = table[(table["model"] == name) & (table["scope"] == "event:hot") & (table["metric"] == "sedi")]
        brier = table[(table["model"] == name) & (table["scope"] == "event:hot") & (table["metric"] == "brier")]
        if not hot.empty:
            logger.info("%s: hot events SEDI %.3f [%.3f, %.3f], Brier %.5f", name, hot["value"].iloc[0],
                        hot["ci95_low"].iloc[0], hot["ci95_high"].iloc[0], brier["value"].iloc[0])
    logger.info("hottest case %s, coldest case %s; wrote %s", cases["hottest_case"], cases["coldest_case"], out_csv)
