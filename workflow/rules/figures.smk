# Figures for results/figures/ and the HTML report (`snakemake --report results/report.html`).


# One seed of each fine-tuning run in the map panels (the other seeds look alike and would crowd them).
MAP_MODELS = BASE_MODELS + [f"{run}/seed{FINETUNE_RUNS[run].seeds[0]}" for run in NAMED_RUNS]
# The main comparison (the ablation has its own figures in experiments.smk).
COMPARED_MODELS = BASE_MODELS + [m for m in RUN_MODELS if model_run(m) in NAMED_RUNS]


rule figure_boxplots:
    message:
        "Plotting metric box plots across models"
    input:
        metric_csvs=metric_csvs(models=COMPARED_MODELS, truth=True),
    output:
        out_png=report(f"{RESULTS}/figures/metric_boxplots.png", caption="../report/metric_boxplots.rst",
                       category="Evaluation", subcategory="Scores"),
    log:
        f"{LOGS}/figures/boxplots.log",
    benchmark: benchmark_path("figure_boxplots")
    script:
        STAGE_SCRIPT


rule figure_maps:
    message:
        "Plotting map panels of a few test times"
    input:
        unpack(store_paths),
        predictions=expand(f"{RESULTS}/predictions/{{model}}.nc", model=MAP_MODELS),
    output:
        out_png=report(f"{RESULTS}/figures/maps.png", caption="../report/maps.rst", category="Evaluation",
                       subcategory="Maps"),
    params:
        config=config_json("evaluation"),
    log:
        f"{LOGS}/figures/maps.log",
    benchmark: benchmark_path("figure_maps")
    script:
        STAGE_SCRIPT


rule figure_spectra:
    message:
        "Plotting radially averaged power spectra"
    input:
        rapsd_csvs=metric_csvs("_rapsd", models=COMPARED_MODELS),
    output:
        out_png=report(f"{RESULTS}/figures/spectra.png", caption="../report/spectra.rst", category="Evaluation",
                       subcategory="Spectra"),
    log:
        f"{LOGS}/figures/spectra.log",
    benchmark: benchmark_path("figure_spectra")
    script:
        STAGE_SCRIPT


rule figure_calibration:
    message:
        "Plotting ensemble calibration (rank histograms, spread-skill)"
    input:
        rank_hist_csvs=metric_csvs("_rank_hist", models=COMPARED_MODELS),
        metric_csvs=metric_csvs(models=COMPARED_MODELS),
    output:
        out_png=report(f"{RESULTS}/figures/calibration.png", caption="../report/calibration.rst",
                       category="Evaluation", subcategory="Calibration"),
    log:
        f"{LOGS}/figures/calibration.log",
    benchmark: benchmark_path("figure_calibration")
    script:
        STAGE_SCRIPT
