# Robustness to the coarse input's error: every model also downscales the test period from a
# perfect coarse input (t2m = the block mean of the truth, pdeldm.data.input_error), is scored
# like the default predictions, and both appear side by side in results/tables/robustness.*.


def perfect_input_outputs():
    return [f"{RESULTS}/tables/robustness.{ext}" for ext in ("csv", "md", "html")]


# The main comparison, one seed per fine-tuning run: the robustness check is about the input, not the seed.
ROBUSTNESS_MODELS = BASE_MODELS + [f"{run}/seed{FINETUNE_RUNS[run].seeds[0]}" for run in NAMED_RUNS]


rule predict_perfect_input:
    message:
        "Downscaling the test period with {wildcards.model} from a perfect coarse input"
    wildcard_constraints:
        model="|".join(re.escape(m) for m in ROBUSTNESS_MODELS),
    input:
        unpack(prediction_inputs),
    output:
        out=f"{RESULTS}/predictions/perfect_input/{{model}}.nc",
    params:
        config=prediction_config,
        model="{model}",
        coarse_input="perfect",
        stage="predict",
    resources:
        gpu=lambda wildcards: 0 if wildcards.model == "interpolation" else 1,
        mem_mb=lambda wildcards, attempt: job_request("predict", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("predict", "runtime", attempt),
        shared_cores=shared_cores,
    threads: 1
    log:
        f"{LOGS}/predict_perfect_input/{{model}}.log",
    benchmark: benchmark_path("predict_perfect_input", "model")
    script:
        STAGE_SCRIPT


rule evaluate_perfect_input:
    message:
        "Scoring {wildcards.model} on the test period, perfect coarse input"
    wildcard_constraints:
        model="|".join(re.escape(m) for m in ROBUSTNESS_MODELS),
    input:
        unpack(evaluation_inputs(f"{RESULTS}/predictions/perfect_input/{{model}}.nc")),
    output:
        out_csv=f"{RESULTS}/metrics/perfect_input/{{model}}.csv",
        rank_hist=f"{RESULTS}/metrics/perfect_input/{{model}}_rank_hist.csv",
        extremes=f"{RESULTS}/metrics/perfect_input/{{model}}_extremes.csv",
        rapsd=f"{RESULTS}/metrics/perfect_input/{{model}}_rapsd.csv",
    params:
        config=config_json(*EVALUATION_SECTIONS),
        stage="evaluate",
    log:
        f"{LOGS}/evaluate_perfect_input/{{model}}.log",
    benchmark: benchmark_path("evaluate_perfect_input", "model")
    script:
        STAGE_SCRIPT


rule robustness_table:
    message:
        "Tabulating every model's scores with the store's and with a perfect coarse input"
    input:
        store_csvs=expand(f"{RESULTS}/metrics/{{model}}.csv", model=ROBUSTNESS_MODELS),
        perfect_csvs=expand(f"{RESULTS}/metrics/perfect_input/{{model}}.csv", model=ROBUSTNESS_MODELS),
    output:
        out_csv=f"{RESULTS}/tables/robustness.csv",
        out_md=f"{RESULTS}/tables/robustness.md",
        out_html=report(f"{RESULTS}/tables/robustness.html", caption="../report/robustness.rst", category="Scores"),
    log:
        f"{LOGS}/robustness_table.log",
    benchmark: benchmark_path("robustness_table")
    script:
        STAGE_SCRIPT
