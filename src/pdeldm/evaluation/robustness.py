"""Robustness table: every model scored with the store's coarse input and with a perfect one.

The perfect coarse input is the block mean of the truth on the same coarse grid
(:mod:`pdeldm.data.input_error`); its predictions are scored exactly like the default ones
(``results/metrics/perfect_input/{model}.csv``). A model that learned the fine scales does at least
as well with the perfect input as with the store's; one that learned to undo the store input's
particular error (on the twin: the ERA5-like smoothing and elevation-dependent bias) does worse.
The interpolation of the perfect input is the reference a learned model should beat on it.

Output (``results/tables/robustness.{csv,md,html}``), one row per model: the mean over the test
times of RMSE, MAE and (ensembles) CRPS with each input, and the change ``perfect - store``. The
perfect-input ensembles have ``evaluation.perfect_input_members`` members (fewer, to save time);
RMSE and MAE use member 0 like the default scores, and the fair CRPS does not depend on the
ensemble size in expectation, so the columns compare.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pdeldm.evaluation.tables import MODEL_ORDER
from pdeldm.io import atomic_output

#: Scores compared (means over the test times; CRPS only for ensembles).
SCORES: tuple[str, ...] = ("rmse", "mae", "crps")
INPUTS: tuple[str, ...] = ("store", "perfect")


def robustness_table(store_csvs: Sequence[str | os.PathLike[str]],
                     perfect_csvs: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per model: ``<score>_store``, ``<score>_perfect`` and ``<score>_change`` (K)."""
    rows: dict[str, dict[str, float]] = {}
    for source, paths in (("store", store_csvs), ("perfect", perfect_csvs)):
        for path in paths:
            metrics = pd.read_csv(path)
            model = str(metrics["model"].iloc[0]) if len(metrics) else Path(path).stem
            row = rows.setdefault(model, {"model": model})
            for score in SCORES:
                row[f"{score}_{source}"] = float(metrics[score].mean()) if score in metrics else np.nan
            row[f"n_times_{source}"] = len(metrics)
    table = pd.DataFrame(list(rows.values()))
    for score in SCORES:
        table[f"{score}_change"] = table[f"{score}_perfect"] - table[f"{score}_store"]
    order = {m: i for i, m in enumerate(MODEL_ORDER)}
    return table.sort_values("model", key=lambda s: s.map(lambda m: order.get(m, len(order)))).reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown: each score with the store's input, the perfect one and the change."""
    lines = ["Scores with the store's coarse input and with a perfect one (the block mean of the truth), "
             "mean over the test times (K); change = perfect - store.", "",
             "| model | RMSE store | RMSE perfect | change | MAE store | MAE perfect | CRPS store | CRPS perfect |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(value: float) -> str:
        return "–" if not np.isfinite(value) else f"{value:.3f}"

    for r in table.itertuples():
        lines.append(f"| {r.model} | {cell(r.rmse_store)} | {cell(r.rmse_perfect)} | {r.rmse_change:+.3f} "
                     f"| {cell(r.mae_store)} | {cell(r.mae_perfect)} | {cell(r.crps_store)} | {cell(r.crps_perfect)} |")
    return "\n".join(lines) + "\n"


def write_robustness(store_csvs: Sequence[str | os.PathLike[str]], perfect_csvs: Sequence[str | os.PathLike[str]],
                     out_csv: str | os.PathLike[str], out_md: str | os.PathLike[str],
                     out_html: str | os.PathLike[str]) -> pd.DataFrame:
    """Write the robustness table as CSV, Markdown and HTML (for the report); return it."""
    table = robustness_table(store_csvs, perfect_csvs)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    text = markdown(table)
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(text)
    shown = table[["model", *[f"{s}_{i}" for s in SCORES for i in (*INPUTS, "change")]]]
    html = shown.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–", border=1)
    with atomic_output(out_html) as tmp:
        Path(tmp).write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Robustness</title></head>"
                             f"<body><p>{text.splitlines()[0]}</p>{html}</body></html>\n")
    return table
