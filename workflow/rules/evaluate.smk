# Evaluation: predictions on the test period -> per-time metrics -> summary tables.


def prediction_checkpoints(wildcards):
    models = [wildcards.model] + MODEL_DEPENDENCIES[wildcards.model]
    return {m: checkpoint(m) for m in models}


def prediction_config(wildcards):
    return config_json(*model_config_sections(wildcards.model), "evaluation")


rule predict:
    message:
        "Downscaling the test period with {wildcards.model}"
    wildcard_constraints:
        model="|".join(MODELS),
    input:
        unpack(store_paths),
        unpack(prediction_checkpoints),
    output:
        out=f"{RESULTS}/predictions/{{model}}.nc",
    params:
        config=prediction_config,
        model="{model}",
    resources:
        gpu=lambda wildcards: 0 if wildcards.model == "interpolation" else 1,
        mem_mb=lambda wildcards, attempt: job_request("predict", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("predict", "runtime", attempt),
    threads: 1
    log:
        f"{LOGS}/predict/{{model}}.log",
    script:
        STAGE_SCRIPT


rule evaluate:
    message:
        "Scoring {wildcards.model} on the test period"
    wildcard_constraints:
        model="|".join(MODELS),
    input:
        unpack(store_paths),
        prediction=f"{RESULTS}/predictions/{{model}}.nc",
    output:
        # The side files' names follow pdeldm.evaluation.evaluate.side_paths.
        out_csv=f"{RESULTS}/metrics/{{model}}.csv",
        rank_hist=f"{RESULTS}/metrics/{{model}}_rank_hist.csv",
        extremes=f"{RESULTS}/metrics/{{model}}_extremes.csv",
        rapsd=f"{RESULTS}/metrics/{{model}}_rapsd.csv",
    params:
        config=config_json("evaluation"),
    log:
        f"{LOGS}/evaluate/{{model}}.log",
    script:
        STAGE_SCRIPT


rule summary_table:
    message:
        "Summarising the metrics of all models"
    input:
        metric_csvs=expand(f"{RESULTS}/metrics/{{model}}.csv", model=MODELS),
    output:
        out_csv=f"{RESULTS}/tables/summary.csv",
        out_md=f"{RESULTS}/tables/summary.md",
        out_tex=f"{RESULTS}/tables/summary.tex",
    log:
        f"{LOGS}/summary_table.log",
    script:
        STAGE_SCRIPT
