# Report pages beyond the evaluation figures: training curves, the data, the experiment
# (categories Training, Data and Experiments of `snakemake --report results/report.html`).


rule figure_training:
    message:
        "Plotting the training curves of every network"
    input:
        **{m: f"{RESULTS}/models/{m}/training_metrics.csv" for m in TRAINED},
        # one seed of each fine-tuning run, under the run's name
        **{run: f"{RESULTS}/models/{run}/seed{FINETUNE_RUNS[run].seeds[0]}/training_metrics.csv" for run in NAMED_RUNS},
    output:
        out_png=report(f"{RESULTS}/figures/training.png", caption="../report/training.rst", category="Training"),
    log:
        f"{LOGS}/figures/training.log",
    benchmark: benchmark_path("figure_training")
    script:
        STAGE_SCRIPT


rule data_page:
    message:
        "Writing the report's data page"
    input:
        unpack(store_paths),
        **({"diagnostics": f"{RESULTS}/twin/{REGION}_diagnostics.json"} if config["data"]["source"] == "twin" else {}),
    output:
        out_html=report(f"{RESULTS}/report/data.html", caption="../report/data.rst", category="Data"),
    log:
        f"{LOGS}/report/data_page.log",
    benchmark: benchmark_path("data_page")
    script:
        STAGE_SCRIPT


rule experiment_page:
    message:
        "Writing the report's experiment page (scores, software, configuration)"
    input:
        summary_md=f"{RESULTS}/tables/summary.md",
    output:
        out_html=report(f"{RESULTS}/report/experiment.html", caption="../report/experiment.rst",
                        category="Experiments"),
    params:
        config=json.dumps(config, sort_keys=True),
        repository=workflow.basedir,
    log:
        f"{LOGS}/report/experiment_page.log",
    benchmark: benchmark_path("experiment_page")
    script:
        STAGE_SCRIPT
