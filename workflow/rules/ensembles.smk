# Ensembles, extremes and samplers (targets `ensembles`, `extremes`, `sampler_study`):
#
#   climatology       per-cell training thresholds (warm 90th, hot 99th, cold 1st percentile)
#   verify_ensemble   one pass over a model's predictions: per-time sums, rank histogram,
#                     spread-error bins, event reliability (the UNet as the zero-spread reference)
#   ensembles_table   -> tables/ensembles.{csv,md}: pooled spread-skill, CRPS, rank-histogram shape
#   diagnose_dispersion -> tables/dispersion.md: where the spread is lost (residual split, latents,
#                     samplers, training length, EMA, noise schedule)
#   extremes_table    -> tables/extremes.{csv,md}: Brier, SEDI of hot/cold events, physics scores on
#                     the hottest/coldest times, with block-bootstrap intervals over test days
#   run_sampler_study -> sampler_study/: CRPS, RMSE, spectral score per denoiser evaluation
import re

ENSEMBLES_DIR = f"{RESULTS}/ensembles"
# The ensembles compared (the named fine-tuning runs, every seed; not the lambda ablation), and the
# UNet as the deterministic (zero-spread) reference.
ENSEMBLE_MODELS = ["unet", "ldm"] + [f"{run}/seed{seed}" for run in NAMED_RUNS for seed in FINETUNE_RUNS[run].seeds]
# One seed of each run in the case-study maps (as in the other map panels).
CASE_MODELS = ["unet", "ldm"] + [f"{run}/seed{FINETUNE_RUNS[run].seeds[0]}" for run in NAMED_RUNS]
ENSEMBLE_SECTIONS = ("ensembles", "extremes", "evaluation.bootstrap_samples", "evaluation.bootstrap_block_days")


def ensemble_file(model, kind):
    return f"{ENSEMBLES_DIR}/{model}_{kind}"


def ensemble_outputs():
    """What the three targets build (part of the default target)."""
    return [f"{RESULTS}/tables/ensembles.csv", f"{RESULTS}/tables/ensembles.md", f"{RESULTS}/figures/ensembles.png",
            f"{RESULTS}/tables/dispersion.md",
            f"{RESULTS}/tables/extremes.csv", f"{RESULTS}/tables/extremes.md", f"{RESULTS}/figures/extremes_maps.png",
            f"{RESULTS}/figures/extremes_scores.png", f"{RESULTS}/sampler_study/sampler_study.csv",
            f"{RESULTS}/sampler_study/sampler_study.md", f"{RESULTS}/figures/sampler_study.png"]


rule climatology:
    message:
        "Per-cell thresholds of the training period (warm, hot and cold events)"
    input:
        unpack(store_paths),
    output:
        out=f"{ENSEMBLES_DIR}/climatology.nc",
    params:
        config=config_json("ensembles.warm_quantile", "extremes"),
    log:
        f"{LOGS}/ensembles/climatology.log",
    benchmark: benchmark_path("climatology")
    script:
        STAGE_SCRIPT


rule verify_ensemble:
    message:
        "Calibration and event scores of {wildcards.model}"
    wildcard_constraints:
        model="|".join(re.escape(m) for m in ENSEMBLE_MODELS),
    input:
        unpack(store_paths),
        prediction=f"{RESULTS}/predictions/{{model}}.nc",
        climatology=f"{ENSEMBLES_DIR}/climatology.nc",
    output:
        out_times=ensemble_file("{model}", "times.csv"),
        out_counts=ensemble_file("{model}", "counts.json"),
    params:
        config=config_json(),
    log:
        f"{LOGS}/ensembles/{{model}}.log",
    benchmark: benchmark_path("verify_ensemble", "model")
    script:
        STAGE_SCRIPT


def dispersion_checkpoints():
    return {m: checkpoint(m) for m in config["ensembles"]["dispersion"]["models"]}


rule diagnose_dispersion:
    message:
        "Diagnosing where the ensembles lose spread (residual split, latents, samplers, training)"
    input:
        unpack(store_paths),
        unpack(lambda wildcards: {f"ckpt_{i}": path for i, path in enumerate(dispersion_checkpoints().values())}),
        **({"diagnostics": f"{RESULTS}/twin/{REGION}_diagnostics.json"} if config["data"]["source"] == "twin" else {}),
    output:
        out_json=f"{ENSEMBLES_DIR}/dispersion.json",
        out_md=f"{RESULTS}/tables/dispersion.md",
    params:
        models=list(config["ensembles"]["dispersion"]["models"]),
        config=config_json("ensembles.dispersion"),
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: job_request("predict", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("predict", "runtime", attempt),
        shared_cores=shared_cores,
    threads: 1
    log:
        f"{LOGS}/ensembles/dispersion.log",
    benchmark: benchmark_path("diagnose_dispersion")
    script:
        STAGE_SCRIPT


rule ensembles_table:
    message:
        "Comparing the ensembles (pooled spread-skill, CRPS, rank histograms, reliability)"
    input:
        times_csvs=[ensemble_file(m, "times.csv") for m in ENSEMBLE_MODELS],
        counts_jsons=[ensemble_file(m, "counts.json") for m in ENSEMBLE_MODELS],
        **({"diagnostics": f"{RESULTS}/twin/{REGION}_diagnostics.json"} if config["data"]["source"] == "twin" else {}),
    output:
        out_csv=f"{RESULTS}/tables/ensembles.csv",
        out_md=f"{RESULTS}/tables/ensembles.md",
        out_json=f"{ENSEMBLES_DIR}/summary.json",
    params:
        models=ENSEMBLE_MODELS,
        config=config_json(*ENSEMBLE_SECTIONS),
    log:
        f"{LOGS}/ensembles/table.log",
    benchmark: benchmark_path("ensembles_table")
    script:
        STAGE_SCRIPT


rule figure_ensembles:
    message:
        "Plotting the ensemble calibration side by side"
    input:
        summary_json=f"{ENSEMBLES_DIR}/summary.json",
    output:
        out_png=report(f"{RESULTS}/figures/ensembles.png", caption="../report/ensembles.rst", category="Evaluation",
                       subcategory="Ensembles"),
    log:
        f"{LOGS}/figures/ensembles.log",
    benchmark: benchmark_path("figure_ensembles")
    script:
        STAGE_SCRIPT


rule extremes_table:
    message:
        "Scoring hot and cold events and the hottest and coldest test times"
    input:
        times_csvs=[ensemble_file(m, "times.csv") for m in ENSEMBLE_MODELS],
        metric_csvs=metric_csvs(models=ENSEMBLE_MODELS, truth=True),
    output:
        out_csv=f"{RESULTS}/tables/extremes.csv",
        out_md=f"{RESULTS}/tables/extremes.md",
        out_cases=f"{RESULTS}/extremes/cases.json",
    params:
        models=ENSEMBLE_MODELS,
        config=config_json(*ENSEMBLE_SECTIONS),
    log:
        f"{LOGS}/extremes/table.log",
    benchmark: benchmark_path("extremes_table")
    script:
        STAGE_SCRIPT


rule figure_extremes:
    message:
        "Plotting the extreme cases and scores"
    input:
        unpack(store_paths),
        predictions=[f"{RESULTS}/predictions/{m}.nc" for m in CASE_MODELS],
        climatology=f"{ENSEMBLES_DIR}/climatology.nc",
        cases=f"{RESULTS}/extremes/cases.json",
        extremes_csv=f"{RESULTS}/tables/extremes.csv",
    output:
        out_maps=report(f"{RESULTS}/figures/extremes_maps.png", caption="../report/extremes_maps.rst",
                        category="Evaluation", subcategory="Extremes"),
        out_scores=report(f"{RESULTS}/figures/extremes_scores.png", caption="../report/extremes_scores.rst",
                          category="Evaluation", subcategory="Extremes"),
    log:
        f"{LOGS}/figures/extremes.log",
    benchmark: benchmark_path("figure_extremes")
    script:
        STAGE_SCRIPT


rule run_sampler_study:
    message:
        "Sampler quality against cost on {config[sampler_study][model]}"
    input:
        unpack(store_paths),
        ckpt=checkpoint(config["sampler_study"]["model"]),
    output:
        out_csv=f"{RESULTS}/sampler_study/sampler_study.csv",
        out_md=f"{RESULTS}/sampler_study/sampler_study.md",
        out_json=f"{RESULTS}/sampler_study/summary.json",
    params:
        config=config_json("sampler_study"),
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: job_request("predict", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("predict", "runtime", attempt),
        shared_cores=shared_cores,
    threads: 1
    log:
        f"{LOGS}/sampler_study.log",
    benchmark: benchmark_path("run_sampler_study")
    script:
        STAGE_SCRIPT


rule figure_sampler_study:
    message:
        "Plotting the sampler study"
    input:
        study_csv=f"{RESULTS}/sampler_study/sampler_study.csv",
        summary_json=f"{RESULTS}/sampler_study/summary.json",
    output:
        out_png=report(f"{RESULTS}/figures/sampler_study.png", caption="../report/sampler_study.rst",
                       category="Evaluation", subcategory="Samplers"),
    log:
        f"{LOGS}/figures/sampler_study.log",
    benchmark: benchmark_path("figure_sampler_study")
    script:
        STAGE_SCRIPT


rule ensembles:
    localrule: True
    message:
        "Ensemble calibration: tables, figure and the dispersion diagnosis"
    input:
        f"{RESULTS}/tables/ensembles.md",
        f"{RESULTS}/figures/ensembles.png",
        f"{RESULTS}/tables/dispersion.md",


rule extremes:
    localrule: True
    message:
        "Extremes: tables, case-study maps and scores"
    input:
        f"{RESULTS}/tables/extremes.md",
        f"{RESULTS}/figures/extremes_maps.png",
        f"{RESULTS}/figures/extremes_scores.png",


rule sampler_study:
    localrule: True
    message:
        "Sampler quality against cost: table and figure"
    input:
        f"{RESULTS}/sampler_study/sampler_study.md",
        f"{RESULTS}/figures/sampler_study.png",
