# Transfer across regions without retuning (experiments.transfer; target `transfer_regions`):
#
#   train_in_region     the models of `transfer.models` (and what they need) trained on another region
#   predict_transfer    a model trained on region A downscales the test period of region B
#   evaluate_transfer   its scores on B (B's twin equation, the identified equation of data.region)
#   transfer_regions    train x test tables, paired intervals, matrix figure, region maps
#
# Paths: results/transfer/{train}/models/{model}/ (checkpoints of other regions) and
# results/transfer/{train}/{test}/{predictions,metrics}/; (data.region, data.region) is the main
# run's own prediction and metrics, never a second job.
import re

TRANSFER = config["experiments"]["transfer"]
TRANSFER_REGIONS = TRANSFER["regions"]


def _with_dependencies(models):
    """`models` and every model they need, dependencies first."""
    ordered = []
    for model in models:
        for needed in [*model_dependencies(model), model]:
            if needed not in ordered:
                ordered.append(needed)
    return ordered


# Trained on every transfer region besides data.region (their dependencies too).
TRANSFER_TRAINED = _with_dependencies(TRANSFER["models"])
# Trained on data.region and evaluated everywhere: base models (interpolation is each region's
# reference), and the named fine-tuning runs at the chosen seeds.
TRANSFER_FROM_MAIN = list(dict.fromkeys(["interpolation", *TRANSFER["evaluate"]])) + [
    f"{run}/seed{seed}" for run in NAMED_RUNS for seed in TRANSFER["seeds"]]


def transfer_cases():
    """(train region, test region, model) of every score the transfer experiment needs."""
    cases = [(REGION, test, model) for test in TRANSFER_REGIONS for model in TRANSFER_FROM_MAIN]
    for train in TRANSFER_REGIONS:
        if train == REGION:
            continue
        cases += [(train, test, model) for test in TRANSFER_REGIONS for model in TRANSFER["models"]]
    return cases


def transfer_metrics_file(train, test, model):
    if train == test == REGION:
        return f"{RESULTS}/metrics/{model}.csv"
    return f"{RESULTS}/transfer/{train}/{test}/metrics/{model}.csv"


def checkpoint_in(region, model):
    """The checkpoint of `model` trained on `region`."""
    if region == REGION:
        return checkpoint(model)
    return f"{RESULTS}/transfer/{region}/models/{model}/model.ckpt"


def transfer_training_inputs(wildcards):
    return {**store_paths(region=wildcards.region),
            **{dep: checkpoint_in(wildcards.region, dep) for dep in model_dependencies(wildcards.model)}}


rule train_in_region:
    message:
        "Training {wildcards.model} on region {wildcards.region} (transfer experiment)"
    wildcard_constraints:
        model="|".join(TRANSFER_TRAINED) or "(?!)",  # (?!) matches nothing: no model to train
    input:
        unpack(transfer_training_inputs),
    output:
        out_ckpt=f"{RESULTS}/transfer/{{region}}/models/{{model}}/model.ckpt",
        out_metrics=f"{RESULTS}/transfer/{{region}}/models/{{model}}/training_metrics.csv",
    params:
        stage="train",
        config=training_config,
        model="{model}",
        workdir=f"{RESOURCES}/work/transfer/{{region}}/{{model}}",
    resources:
        gpu=lambda wildcards: 0 if wildcards.model == "interpolation" else 1,
        mem_mb=lambda wildcards, attempt: job_request("train", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("train", "runtime", attempt),
        shared_cores=shared_cores,
    threads: 1
    priority: 2  # a long training that heads its region's chain: not left for the end
    log:
        f"{LOGS}/train/transfer/{{region}}/{{model}}.log",
    benchmark: benchmark_path("train_in_region", "region", "model")
    script:
        STAGE_SCRIPT


TRANSFER_MODEL_PATTERN = "|".join(re.escape(m) for m in dict.fromkeys(TRANSFER_FROM_MAIN + TRANSFER["models"]))


def transfer_prediction_inputs(wildcards):
    return {"ckpt": checkpoint_in(wildcards.train, wildcards.model), **store_paths(region=wildcards.test)}


rule predict_transfer:
    message:
        "Downscaling region {wildcards.test} with {wildcards.model} trained on {wildcards.train}"
    wildcard_constraints:
        train="|".join(TRANSFER_REGIONS),
        test="|".join(TRANSFER_REGIONS),
        model=TRANSFER_MODEL_PATTERN,
    input:
        unpack(transfer_prediction_inputs),
    output:
        out=f"{RESULTS}/transfer/{{train}}/{{test}}/predictions/{{model}}.nc",
    params:
        stage="predict",
        config=prediction_config,
        model="{model}",
    resources:
        gpu=lambda wildcards: 0 if wildcards.model == "interpolation" else 1,
        mem_mb=lambda wildcards, attempt: job_request("predict", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("predict", "runtime", attempt),
        shared_cores=shared_cores,
    threads: 1
    priority: 1
    log:
        f"{LOGS}/predict/transfer/{{train}}/{{test}}/{{model}}.log",
    benchmark: benchmark_path("predict_transfer", "train", "test", "model")
    script:
        STAGE_SCRIPT


def transfer_evaluation_inputs(wildcards):
    found = {"prediction": f"{RESULTS}/transfer/{wildcards.train}/{wildcards.test}/predictions/{wildcards.model}.nc",
             "coefficients": coefficients_file(), **store_paths(region=wildcards.test)}
    if config["data"]["source"] == "twin":
        found["static"] = static_file(wildcards.test)
    return found


rule evaluate_transfer:
    message:
        "Scoring {wildcards.model} trained on {wildcards.train} on region {wildcards.test}"
    wildcard_constraints:
        train="|".join(TRANSFER_REGIONS),
        test="|".join(TRANSFER_REGIONS),
        model=TRANSFER_MODEL_PATTERN,
    input:
        unpack(transfer_evaluation_inputs),
    output:
        out_csv=f"{RESULTS}/transfer/{{train}}/{{test}}/metrics/{{model}}.csv",
        rank_hist=f"{RESULTS}/transfer/{{train}}/{{test}}/metrics/{{model}}_rank_hist.csv",
        extremes=f"{RESULTS}/transfer/{{train}}/{{test}}/metrics/{{model}}_extremes.csv",
        rapsd=f"{RESULTS}/transfer/{{train}}/{{test}}/metrics/{{model}}_rapsd.csv",
    params:
        stage="evaluate",
        config=config_json(*EVALUATION_SECTIONS),
    log:
        f"{LOGS}/evaluate/transfer/{{train}}/{{test}}/{{model}}.log",
    benchmark: benchmark_path("evaluate_transfer", "train", "test", "model")
    script:
        STAGE_SCRIPT


rule transfer_regions:
    message:
        "Transfer across regions: train x test tables, paired intervals, figures and region maps"
    input:
        metric_csvs=[transfer_metrics_file(*case) for case in transfer_cases()],
        statics=[static_file(region) for region in TRANSFER_REGIONS],
    output:
        out_csv=f"{RESULTS}/tables/transfer_regions.csv",
        out_md=f"{RESULTS}/tables/transfer_regions.md",
        out_tex=f"{RESULTS}/tables/transfer_regions.tex",
        out_paired_csv=f"{RESULTS}/tables/transfer_paired.csv",
        out_paired_md=f"{RESULTS}/tables/transfer_paired.md",
        out_matrix=report(f"{RESULTS}/figures/transfer_matrix.png", caption="../report/transfer_matrix.rst",
                          category="Experiments"),
        out_models=report(f"{RESULTS}/figures/transfer_models.png", caption="../report/transfer_models.rst",
                          category="Experiments"),
        out_maps=report(f"{RESULTS}/figures/transfer_region_maps.png", caption="../report/transfer_region_maps.rst",
                        category="Experiments"),
    params:
        config=config_json("experiments.transfer", "data.region", "finetune", "evaluation"),
        cases=json.dumps(transfer_cases()),
    log:
        f"{LOGS}/experiments/transfer_regions.log",
    benchmark: benchmark_path("transfer_regions")
    script:
        STAGE_SCRIPT


def transfer_outputs():
    return [f"{RESULTS}/tables/transfer_regions.csv", f"{RESULTS}/tables/transfer_paired.csv",
            f"{RESULTS}/figures/transfer_matrix.png", f"{RESULTS}/figures/transfer_models.png",
            f"{RESULTS}/figures/transfer_region_maps.png"]
