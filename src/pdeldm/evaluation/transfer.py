"""Transfer across regions: tables of models trained on one region and scored on another.

A *case* is ``(train region, test region, model)``, ``model`` being a model key (``unet``,
``pde_ldm_adv/seed1``). Each case has one per-time metric CSV. From them:

* :func:`transfer_table`: per (train, test, model) the mean of every score over the test times
  (seeds of a fine-tuning run averaged per time first) and its difference from the test region's
  own interpolation, the reference every region has whatever its climate;
* :func:`transfer_paired`: on each test region, paired per-time differences with moving-block
  bootstrap intervals over test days (:mod:`pdeldm.evaluation.paired`) for the two questions of the
  experiment: does a PDE fine-tuning still differ from its control away from the region it was
  tuned on (run minus control, both trained on the training region), and what does a model lose
  by being trained elsewhere (trained on another region minus trained on the test region itself);
* :func:`region_summary`: what differs between the regions (height, relief, land fraction).

Every number in the tables is a mean of per-time CSV values (tests recompute them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.evaluation.paired import COMPARISON_ALIGN, COMPARISON_HEADER, comparison_cells, paired_differences

#: The reference of every test region.
REFERENCE = "interpolation"


@dataclass(frozen=True)
class TransferCase:
    """One model trained on ``train`` and scored on ``test``."""

    train: str
    test: str
    model: str  # a model key: a base model or "run/seedN"

    @property
    def name(self) -> str:
        """The model's name without its seed (the name in its metric CSV)."""
        return self.model.split("/seed")[0]


def read_cases(cases: Sequence[Sequence[str]], metric_csvs: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """All per-time rows of all cases, with ``train`` and ``test`` columns added.

    ``cases`` and ``metric_csvs`` are parallel lists (the rule passes both in the same order).
    """
    if len(cases) != len(metric_csvs):
        raise ValueError(f"transfer: {len(cases)} cases but {len(metric_csvs)} metric files; the rule's "
                         "`cases` and `metric_csvs` must be built from the same list")
    frames = []
    for case, path in zip(cases, metric_csvs, strict=True):
        case = TransferCase(*case)
        frame = pd.read_csv(path)
        frame["model"] = frame["model"].astype(str)
        if set(frame["model"]) != {case.name}:
            raise ValueError(f"transfer: {path} holds metrics of {sorted(set(frame['model']))}, expected {case.name!r}")
        frames.append(frame.assign(train=case.train, test=case.test))
    return pd.concat(frames, ignore_index=True)


def _per_time_means(data: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per (train, test, model, time): the mean over seeds of every score."""
    present = [m for m in metrics if m in data.columns]
    return data.groupby(["train", "test", "model", "time"], sort=False)[present].mean().reset_index()


def transfer_table(data: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Rows ``train, test, model, n_times, <metric>..., <metric>_vs_interpolation...``.

    ``<metric>`` is the mean over the test times; ``<metric>_vs_interpolation`` subtracts the mean
    of the test region's interpolation (negative = better than interpolation, for scores where
    lower is better). The CRPS of a deterministic model is its mean absolute error (the CRPS of a
    point forecast), so that the interpolation is a CRPS reference too.
    """
    present = [m for m in metrics if m in data.columns]
    if "crps" in present and "mae" in data.columns:  # a point forecast's CRPS is its absolute error
        data = data.assign(crps=data["crps"].fillna(data["mae"]))
    per_time = _per_time_means(data, present)
    table = per_time.groupby(["train", "test", "model"], sort=False)[present].mean().reset_index()
    table.insert(3, "n_times", per_time.groupby(["train", "test", "model"], sort=False).size().to_numpy())
    reference = table[table["model"] == REFERENCE].groupby("test")[present].mean()
    missing = sorted(set(table["test"]) - set(reference.index))
    if missing:
        raise ValueError(f"transfer: no {REFERENCE} scores on test region(s) {missing}: it is each region's reference")
    for metric in present:
        table[f"{metric}_vs_{REFERENCE}"] = table[metric] - table["test"].map(reference[metric])
    return table


def transfer_paired(data: pd.DataFrame, main_region: str, runs: Sequence[str], control: str,
                    matrix_models: Sequence[str], metrics: Sequence[str], block_days: int, samples: int,
                    seed: int) -> pd.DataFrame:
    """Paired differences on each test region, with 95% moving-block bootstrap intervals.

    * ``run`` minus ``control`` (both trained on ``main_region``) for every run of ``runs``;
    * for each model of ``matrix_models``: trained on another region minus trained on the test
      region itself (the cost of transferring instead of training there).
    """
    rows = []
    for test, on_test in data.groupby("test", sort=False):
        frames = {f"{model}@{train}": part for (model, train), part in on_test.groupby(["model", "train"])}
        pairs = [(f"{run}@{main_region}", f"{control}@{main_region}") for run in runs
                 if f"{run}@{main_region}" in frames and f"{control}@{main_region}" in frames]
        for model in matrix_models:
            home = f"{model}@{test}"
            if home in frames:
                pairs += [(key, home) for key in frames if key.startswith(f"{model}@") and key != home]
        if not pairs:
            continue
        table = paired_differences(frames, pairs, metrics, block_days, samples, seed)
        rows.append(table.assign(test=test))
    if not rows:
        return pd.DataFrame(columns=["test", "model", "reference", "metric", "difference", "ci95_low", "ci95_high",
                                     "verdict"])
    table = pd.concat(rows, ignore_index=True)
    return table[["test", *[c for c in table.columns if c != "test"]]]


def paired_markdown(table: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Markdown: one line per (test region, comparison, metric)."""
    def label(key: str) -> str:
        model, _, train = key.partition("@")
        return f"{labels.get(model, model)} (trained on {train})"

    lines = [f"| Test region | {COMPARISON_HEADER} |", f"|:---|{COMPARISON_ALIGN}|"]
    lines += [f"| {r['test']} | {comparison_cells(r, label)} |" for _, r in table.iterrows()]
    lines += ["", "Paired per-time differences (model minus reference) on each test region, seeds averaged per "
              "time, with 95% moving-block bootstrap intervals over test days. An interval containing 0 is "
              "'no difference'."]
    return "\n".join(lines) + "\n"


def region_summary(statics: Mapping[str, str | os.PathLike[str]]) -> pd.DataFrame:
    """Per region: mean and standard deviation of the surface height, land fraction, latitude."""
    rows = []
    for region, path in statics.items():
        with xr.open_dataset(Path(path)) as ds:
            height = ds["HSURF"].to_numpy().astype(float)
            land = ds["FR_LAND"].to_numpy().astype(float)
            lat = ds["lat"].to_numpy().astype(float)
        rows.append({"region": region, "height_mean_m": float(np.nanmean(height)),
                     "height_std_m": float(np.nanstd(height)), "land_fraction": float(np.nanmean(land)),
                     "lat_min": float(np.nanmin(lat)), "lat_max": float(np.nanmax(lat))})
    return pd.DataFrame(rows)


def regions_markdown(summary: pd.DataFrame) -> str:
    """The table of :func:`region_summary` in Markdown (what differs between the regions)."""
    lines = ["| Region | Mean height m | Height std m | Land fraction | Latitudes |", "|:---|---:|---:|---:|:---|"]
    lines += [f"| {r.region} | {r.height_mean_m:.0f} | {r.height_std_m:.0f} | {r.land_fraction:.2f} | "
              f"{r.lat_min:.1f}-{r.lat_max:.1f} N |" for r in summary.itertuples()]
    return "\n".join(lines)
