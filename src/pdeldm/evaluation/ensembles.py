"""The ensemble comparison: one row per model (seeds of a run pooled), and the data of its figure.

Input per model: the per-time sums and counts of :func:`pdeldm.evaluation.calibration.verify_prediction`
(``results/ensembles/<model>_times.csv`` and ``_counts.json``). A fine-tuning run trained with several
seeds is pooled over them: every seed is sampled at the same times, so sums add up.

``results/tables/ensembles.csv`` (one row per model): ``model, n_seeds, members, n_times, crps,
mae_member0, rmse_ensmean, spread, spread_skill, spread_skill_ci95_low/high`` (moving-block
bootstrap over test days), ``spread_skill_mean_of_ratios`` (the biased mean of per-map ratios, for
comparison), ``rank_outer, rank_asymmetry, rank_shape`` and, for the warm event, ``warm_base_rate,
warm_brier, warm_brier_fair, warm_brier_skill``. With the twin, the row ``perfect_model`` gives the
spread a perfect ensemble needs at least: the twin's unpredictable fine-scale standard deviation (its
two-run predictability diagnostic), which is also that ensemble's ensemble-mean RMSE.
``results/ensembles/summary.json``: the full summaries (spread-error groups, reliability tables).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdeldm.evaluation.calibration import merge_counts, pooled_spread_skill, summarise
from pdeldm.evaluation.paired import block_bootstrap_sums
from pdeldm.io import atomic_output, read_json, write_json
from pdeldm.logs import stage_logger

PathLike = str | os.PathLike[str]


def run_name(model: str) -> str:
    """``run/seedN`` -> ``run``; base models unchanged."""
    return model.split("/seed")[0]


def group_by_run(models: Sequence[str]) -> dict[str, list[str]]:
    """Models grouped by run name, in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for model in models:
        groups.setdefault(run_name(model), []).append(model)
    return groups


def per_day_sums(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``(n_days, len(columns))`` sums of ``columns`` per test day (seeds and times of a day added)."""
    days = pd.DatetimeIndex(pd.to_datetime(table["time"])).normalize()
    return table.groupby(days)[list(columns)].sum().sort_index().to_numpy(dtype=float)


def spread_skill_interval(table: pd.DataFrame, members: int, block_days: int, samples: int,
                          rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of the pooled spread-skill by a moving-block bootstrap over test days."""
    sums = per_day_sums(table, ["sum_var", "sum_sqerr"])
    return block_bootstrap_sums(sums, lambda s: pooled_spread_skill(s[:, 0], s[:, 1], members), block_days,
                                samples, rng)


def load_run(paths: Mapping[str, Sequence[PathLike]]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-time sums and pooled counts of one run from its seeds' ``times`` CSVs and ``counts`` JSONs."""
    table = pd.concat([pd.read_csv(p) for p in paths["times"]], ignore_index=True)
    counts = merge_counts([read_json(p) for p in paths["counts"]])
    return table, counts


def summary_row(name: str, n_seeds: int, summary: Mapping[str, Any], interval: tuple[float, float]) -> dict[str, Any]:
    rank = summary.get("rank_histogram") or {}
    warm = (summary.get("events") or {}).get("warm") or {}
    return {
        "model": name, "n_seeds": n_seeds, "members": summary["members"], "n_times": summary["n_times"],
        "crps": summary["crps"], "mae_member0": summary["mae_member0"], "rmse_ensmean": summary["rmse_ensmean"],
        "spread": summary["spread"], "spread_skill": summary["spread_skill"],
        "spread_skill_ci95_low": interval[0], "spread_skill_ci95_high": interval[1],
        "spread_skill_mean_of_ratios": summary["spread_skill_mean_of_ratios"],
        "rank_outer": rank.get("outer", math.nan), "rank_asymmetry": rank.get("asymmetry", math.nan),
        "rank_shape": rank.get("shape", "n/a (one member)"),
        "warm_base_rate": warm.get("base_rate", math.nan), "warm_brier": warm.get("brier", math.nan),
        "warm_brier_fair": warm.get("brier_fair", math.nan), "warm_brier_skill": warm.get("brier_skill", math.nan),
    }


def perfect_model_row(diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """The twin's perfect ensemble: spread = ensemble-mean RMSE = the unpredictable fine-scale std.

    ``rmse_floor_fine_K`` = ``sqrt((1 - predictable share) x fine-scale variance)``: what the twin's
    stochastic forcing leaves undetermined below the coarse cell. A perfect model's members differ
    by at least this much (a lower bound: the coarse input is itself noisy), and so does its mean
    from the truth.
    """
    predictability = diagnostics["predictability"]
    floor = float(predictability["rmse_floor_fine_K"])
    return {"model": "perfect_model", "spread": floor, "rmse_ensmean": floor, "spread_skill": 1.0,
            "rank_shape": "flat (by construction)",
            "predictable_share_fine": float(predictability["predictable_share_fine"]),
            "fine_scale_std_K": float(predictability["fine_scale_std_K"])}


def to_markdown(table: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """The ensemble table for the report (K where a unit applies)."""
    lines = ["| Model | Members | CRPS [K] | RMSE ens. mean [K] | Spread [K] | Spread/skill, pooled [95% CI] | "
             "Mean of per-map ratios | Rank histogram | Warm-event Brier (fair) | Brier skill |",
             "|:---|---:|---:|---:|---:|---:|---:|:---|---:|---:|"]

    def num(value: Any, fmt: str = ".3f") -> str:
        return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:{fmt}}"

    for _, r in table.iterrows():
        seeds = int(r["n_seeds"]) if np.isfinite(r.get("n_seeds", np.nan)) else 1
        label = labels.get(r["model"], r["model"]) + (f" [{seeds} seeds]" if seeds > 1 else "")
        interval = (f" [{num(r['spread_skill_ci95_low'], '.2f')}, {num(r['spread_skill_ci95_high'], '.2f')}]"
                    if np.isfinite(r.get("spread_skill_ci95_low", np.nan)) else "")
        members = int(r["members"]) if np.isfinite(r.get("members", np.nan)) else None
        lines.append(f"| {label} | {members if members else '∞'} | {num(r.get('crps'))} | {num(r['rmse_ensmean'])} | "
                     f"{num(r['spread'])} | {num(r['spread_skill'], '.2f')}{interval} | "
                     f"{num(r.get('spread_skill_mean_of_ratios'), '.2f')} | {r['rank_shape']}"
                     f"{'' if not np.isfinite(r.get('rank_outer', np.nan)) else f' (outer {r.rank_outer:.2f})'} | "
                     f"{num(r.get('warm_brier'), '.4f')} ({num(r.get('warm_brier_fair'), '.4f')}) | "
                     f"{num(r.get('warm_brier_skill'), '.2f')} |")
    lines += ["", "Pooled over every grid point and test time (and the training seeds of a run). Spread = "
              "sqrt((M+1)/M x mean member variance), so a calibrated ensemble has spread/skill 1 whatever M; the "
              "interval is a moving-block bootstrap over test days. The UNet is a zero-spread reference (its CRPS "
              "is its MAE). Rank histogram 'outer' = frequency of the two extreme ranks x (M+1): 1 flat, > 1 "
              "U-shaped (under-dispersive). Warm event: above the cell's 90th percentile of the training period; "
              "Brier skill against the test period's base rate."]
    return "\n".join(lines) + "\n"


def compare_ensembles(times_csvs: Sequence[PathLike], counts_jsons: Sequence[PathLike], models: Sequence[str],
                      out_csv: PathLike, out_md: PathLike, out_json: PathLike, block_days: int = 7,
                      samples: int = 2000, seed: int = 0, bins: int = 10, diagnostics: PathLike | None = None,
                      log: PathLike | None = None) -> None:
    """Write the ensemble table and summaries (module docstring); ``models`` name the files in order."""
    from pdeldm.evaluation.tables import MODEL_LABELS

    logger = stage_logger("ensembles", log)
    if not (len(times_csvs) == len(counts_jsons) == len(models)):
        raise ValueError("one times CSV and one counts JSON per model")
    files = dict(zip(models, zip(times_csvs, counts_jsons, strict=True), strict=True))
    rng = np.random.default_rng([int(seed), 0xE45E])
    rows, summaries = [], {}
    for name, members in group_by_run(models).items():
        table, counts = load_run({"times": [files[m][0] for m in members], "counts": [files[m][1] for m in members]})
        summary = summarise(table, counts, bins)
        interval = (spread_skill_interval(table, summary["members"], block_days, samples, rng)
                    if summary["members"] > 1 else (math.nan, math.nan))
        summary["spread_skill_ci95"] = list(interval)
        summary["n_seeds"] = len(members)
        summaries[name] = summary
        rows.append(summary_row(name, len(members), summary, interval))
        logger.info("%s (%d seed(s)): CRPS %.3f K, spread %.3f K, ensemble-mean RMSE %.3f K, pooled spread-skill "
                    "%.3f [%.3f, %.3f], mean of per-map ratios %.3f, rank histogram %s", name, len(members),
                    summary["crps"], summary["spread"], summary["rmse_ensmean"], summary["spread_skill"], *interval,
                    summary["spread_skill_mean_of_ratios"], rows[-1]["rank_shape"])
    if diagnostics:
        perfect = perfect_model_row(read_json(diagnostics))
        rows.append(perfect)
        summaries["perfect_model"] = perfect
        logger.info("perfect model (twin): spread = ensemble-mean RMSE = %.3f K (predictable fine-scale share %.2f)",
                    perfect["spread"], perfect["predictable_share_fine"])
    table = pd.DataFrame(rows)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(out_md) as tmp:
        Path(tmp).write_text(to_markdown(table, {**MODEL_LABELS, "perfect_model": "Perfect model (twin)"}))
    write_json(out_json, summaries)
    logger.info("wrote %s, %s and %s", out_csv, out_md, out_json)
