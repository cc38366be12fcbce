# Evaluation: predictions on the test period -> per-time metrics -> summary and paired-difference tables.
import re


def prediction_inputs(wildcards):
    return {"ckpt": checkpoint(wildcards.model), **store_paths()}


def prediction_config(wildcards):
    run = model_run(wildcards.model)
    if run is None:
        return config_json(*model_config_sections(wildcards.model), "evaluation")
    subset = json.loads(run_config(run))
    subset["evaluation"] = config["evaluation"]
    return json.dumps(subset, sort_keys=True)


rule predict:
    message:
        "Downscaling the test period with {wildcards.model}"
    wildcard_constraints:
        model="|".join(re.escape(m) for m in MODELS),
    input:
        unpack(prediction_inputs),
    output:
        out=f"{RESULTS}/predictions/{{model}}.nc",
    params:
        config=prediction_config,
        model="{model}",
    resources:
        gpu=lambda wildcards: 0 if wildcards.model == "interpolation" else 1,
        mem_mb=lambda wildcards, attempt: job_request("predict", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("predict", "runtime", attempt),
        shared_cores=shared_cores,
    priority: 1
    threads: 1
    log:
        f"{LOGS}/predict/{{model}}.log",
    benchmark: benchmark_path("predict", "model")
    script:
        STAGE_SCRIPT


def evaluation_inputs(prediction):
    """Store, the identified equation and (twin only) the static file of the exact equation."""

    def inputs(wildcards):
        found = {"prediction": prediction.format(**wildcards), "coefficients": coefficients_file(), **store_paths()}
        if config["data"]["source"] == "twin":
            found["static"] = static_file()
        return found

    return inputs


EVALUATION_SECTIONS = ("evaluation", "data.source", "data.period", "twin")

rule evaluate:
    message:
        "Scoring {wildcards.model} on the test period"
    wildcard_constraints:
        model="|".join(re.escape(m) for m in MODELS),
    input:
        unpack(evaluation_inputs(f"{RESULTS}/predictions/{{model}}.nc")),
    output:
        out_csv=f"{RESULTS}/metrics/{{model}}.csv",
        rank_hist=f"{RESULTS}/metrics/{{model}}_rank_hist.csv",
        extremes=f"{RESULTS}/metrics/{{model}}_extremes.csv",
        rapsd=f"{RESULTS}/metrics/{{model}}_rapsd.csv",
    params:
        config=config_json(*EVALUATION_SECTIONS),
    log:
        f"{LOGS}/evaluate/{{model}}.log",
    benchmark: benchmark_path("evaluate", "model")
    script:
        STAGE_SCRIPT


rule evaluate_truth:
    message:
        "Scoring the truth itself at the test times (the tables' reference row)"
    input:
        unpack(evaluation_inputs(f"{RESULTS}/predictions/interpolation.nc")),
    output:
        out_csv=f"{RESULTS}/metrics/truth.csv",
        rank_hist=f"{RESULTS}/metrics/truth_rank_hist.csv",
        extremes=f"{RESULTS}/metrics/truth_extremes.csv",
        rapsd=f"{RESULTS}/metrics/truth_rapsd.csv",
    params:
        config=config_json(*EVALUATION_SECTIONS),
    log:
        f"{LOGS}/evaluate/truth.log",
    benchmark: benchmark_path("evaluate_truth")
    script:
        STAGE_SCRIPT


def metric_csvs(kind="", models=None, truth=False):
    names = (["truth"] if truth else []) + list(MODELS if models is None else models)
    return [f"{RESULTS}/metrics/{m}{kind}.csv" for m in names]


rule summary_table:
    message:
        "Summarising the metrics of all models"
    input:
        metric_csvs=metric_csvs(models=BASE_MODELS + [m for m in RUN_MODELS if model_run(m) in NAMED_RUNS],
                                truth=True),
    output:
        out_csv=f"{RESULTS}/tables/summary.csv",
        out_md=f"{RESULTS}/tables/summary.md",
        out_tex=f"{RESULTS}/tables/summary.tex",
    log:
        f"{LOGS}/summary_table.log",
    benchmark: benchmark_path("summary_table")
    script:
        STAGE_SCRIPT


rule paired_differences:
    message:
        "Paired differences of the fine-tuning runs (block-bootstrap intervals over test days)"
    input:
        metric_csvs=metric_csvs(models=["ldm"] + [m for m in RUN_MODELS if model_run(m) in NAMED_RUNS]),
    output:
        out_csv=f"{RESULTS}/tables/paired_differences.csv",
        out_md=f"{RESULTS}/tables/paired_differences.md",
    params:
        config=config_json("evaluation", "finetune"),
    log:
        f"{LOGS}/paired_differences.log",
    benchmark: benchmark_path("paired_differences")
    script:
        STAGE_SCRIPT
