"""Workflow stages of the ensemble, extremes and sampler studies (rules in workflow/rules/ensembles.smk).

Registered in :mod:`pdeldm.stages` (which imports this module), called like every stage with the
rule's named inputs, outputs and params.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pdeldm.logs import stage_logger
from pdeldm.stages import stage


@stage("climatology")
def climatology(store_path: str, meta_path: str, cfg: dict[str, Any], out: str, log: str | None = None) -> None:
    """Per-cell training thresholds: warm (``ensembles.warm_quantile``), hot and cold (``extremes``)."""
    from pdeldm.evaluation.climatology import write_climatology

    quantiles = {"warm": cfg["ensembles"]["warm_quantile"], "hot": cfg["extremes"]["hot_quantile"],
                 "cold": cfg["extremes"]["cold_quantile"]}
    write_climatology(store_path, meta_path, quantiles, out, int(cfg["extremes"]["climatology_time_stride"]), log)


@stage("verify_ensemble")
def verify_ensemble(prediction: str, store_path: str, meta_path: str, climatology: str, cfg: dict[str, Any],
                    out_times: str, out_counts: str, log: str | None = None) -> None:
    """Per-time sums and pooled counts of one model's prediction (calibration and events)."""
    from pdeldm.evaluation.calibration import verify_prediction

    verify_prediction(prediction, store_path, meta_path, climatology, out_times, out_counts, seed=int(cfg["seed"]),
                      log=log)


@stage("diagnose_dispersion")
def diagnose_dispersion(store_path: str, meta_path: str, models: Sequence[str], cfg: dict[str, Any], out_json: str,
                        out_md: str, diagnostics: str | None = None, log: str | None = None, **checkpoints: str) -> None:
    """Residual split, latent calibration, samplers, training and EMA of the configured checkpoints."""
    from pdeldm.evaluation.dispersion import write_dispersion

    settings = cfg["ensembles"]["dispersion"]
    paths = {model: checkpoints[f"ckpt_{i}"] for i, model in enumerate(models)}
    configs = [{"eta": 0.0, "spacing": "uniform", **c} for c in settings["samplers"]]
    write_dispersion(paths, store_path, meta_path, int(settings["times"]), int(settings["members"]), int(cfg["seed"]),
                     out_json, out_md, configs, diagnostics=diagnostics, log=log)


@stage("ensembles_table")
def ensembles_table(times_csvs: Sequence[str], counts_jsons: Sequence[str], models: Sequence[str],
                    cfg: dict[str, Any], out_csv: str, out_md: str, out_json: str, diagnostics: str | None = None,
                    log: str | None = None) -> None:
    """The ensemble comparison table (runs pooled over seeds) and its summaries."""
    from pdeldm.evaluation.ensembles import compare_ensembles

    evaluation = cfg["evaluation"]
    compare_ensembles(times_csvs, counts_jsons, list(models), out_csv, out_md, out_json,
                      block_days=int(evaluation["bootstrap_block_days"]), samples=int(evaluation["bootstrap_samples"]),
                      seed=int(cfg["seed"]), bins=int(cfg["ensembles"]["spread_bins"]), diagnostics=diagnostics,
                      log=log)


@stage("figure_ensembles")
def figure_ensembles(summary_json: str, out_png: str, log: str | None = None) -> None:
    """Rank histograms, spread-error diagram, reliability and pooled scores of the ensembles."""
    from pdeldm.plotting.ensembles import plot_ensembles

    plot_ensembles(summary_json, out_png)
    stage_logger("figures", log).info("wrote %s", out_png)


@stage("extremes_table")
def extremes_table(times_csvs: Sequence[str], metric_csvs: Sequence[str], models: Sequence[str],
                   cfg: dict[str, Any], out_csv: str, out_md: str, out_cases: str, log: str | None = None) -> None:
    """Event scores beyond the training percentiles and scores on the hottest and coldest times."""
    from pdeldm.evaluation.extremes import score_extremes

    evaluation = cfg["evaluation"]
    score_extremes(times_csvs, list(models), metric_csvs, out_csv, out_md, out_cases,
                   case_fraction=float(cfg["extremes"]["case_fraction"]),
                   block_days=int(evaluation["bootstrap_block_days"]), samples=int(evaluation["bootstrap_samples"]),
                   seed=int(cfg["seed"]), log=log)


@stage("figure_extremes")
def figure_extremes(predictions: Sequence[str], store_path: str, climatology: str, cases: str, extremes_csv: str,
                    out_maps: str, out_scores: str, log: str | None = None, **_inputs: Any) -> None:
    """Case-study maps of the hottest and coldest times, and the extreme-score panels."""
    from pdeldm.plotting.extremes import plot_case_maps, plot_extreme_scores

    plot_case_maps(predictions, store_path, climatology, cases, out_maps)
    plot_extreme_scores(extremes_csv, out_scores)
    stage_logger("figures", log).info("wrote %s and %s", out_maps, out_scores)


@stage("run_sampler_study")
def run_sampler_study(ckpt: str, store_path: str, meta_path: str, cfg: dict[str, Any], out_csv: str, out_md: str,
                      out_json: str, log: str | None = None) -> None:
    """Quality against denoiser evaluations of every configured solver on one diffusion checkpoint."""
    from pdeldm.evaluation.sampler_study import run_sampler_study as study

    study(Path(ckpt), Path(store_path), Path(meta_path), cfg["sampler_study"], int(cfg["seed"]), out_csv, out_md,
          out_json, model_name=cfg["sampler_study"]["model"], log=log)


@stage("figure_sampler_study")
def figure_sampler_study(study_csv: str, summary_json: str, out_png: str, log: str | None = None) -> None:
    """CRPS, RMSE, spectral score and spread/skill against denoiser evaluations."""
    from pdeldm.plotting.sampler_study import plot_sampler_study

    plot_sampler_study(study_csv, summary_json, out_png)
    stage_logger("figures", log).info("wrote %s", out_png)
