# Training: one job per base model, one per (fine-tuning run, seed), and the identification of the
# transport equation that the equation-based PDE losses use. Outputs are the final checkpoint and
# the per-epoch metrics only; the working directory with last.ckpt is deliberately NOT an output,
# because Snakemake deletes the outputs of failed jobs: a killed training resumes from it when the
# rule reruns.


def training_dependencies(wildcards):
    return {dep: checkpoint(dep) for dep in model_dependencies(wildcards.model)}


def training_config(wildcards):
    return config_json(*model_config_sections(wildcards.model))


rule train:
    message:
        "Training {wildcards.model}"
    wildcard_constraints:
        model="|".join(TRAINED),
    input:
        unpack(store_paths),
        unpack(training_dependencies),
    output:
        out_ckpt=f"{RESULTS}/models/{{model}}/model.ckpt",
        out_metrics=f"{RESULTS}/models/{{model}}/training_metrics.csv",
    params:
        config=training_config,
        model="{model}",
        workdir=f"{RESOURCES}/work/{{model}}",
    resources:
        gpu=lambda wildcards: 0 if wildcards.model == "interpolation" else 1,
        mem_mb=lambda wildcards, attempt: job_request("train", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("train", "runtime", attempt),
        shared_cores=shared_cores,
    priority: 2  # the main chain is the run's critical path: before the experiments' side jobs
    threads: 1
    log:
        f"{LOGS}/train/{{model}}.log",
    benchmark: benchmark_path("train", "model")
    script:
        STAGE_SCRIPT


rule identify_pde:
    message:
        "Identifying the transport equation's coefficients on the training targets"
    input:
        unpack(store_paths),
    output:
        out=coefficients_file(),
    params:
        config=config_json("physics"),
    threads: 1
    log:
        f"{LOGS}/identify_pde.log",
    benchmark: benchmark_path("identify_pde")
    script:
        STAGE_SCRIPT


def finetune_inputs(wildcards):
    inputs = {"ldm": checkpoint("ldm"), **store_paths()}
    if run_uses_equation(wildcards.run):  # only the equation forms read the identified coefficients
        inputs["coefficients"] = coefficients_file()
    return inputs


rule finetune:
    message:
        "Fine-tuning the LDM: run {wildcards.run}, seed {wildcards.seed}"
    wildcard_constraints:
        run="|".join(RUNS),
        seed=r"\d+",
    input:
        unpack(finetune_inputs),
    output:
        out_ckpt=f"{RESULTS}/models/{{run}}/seed{{seed}}/model.ckpt",
        out_metrics=f"{RESULTS}/models/{{run}}/seed{{seed}}/training_metrics.csv",
    params:
        config=lambda wildcards: run_config(wildcards.run),
        overrides=lambda wildcards: json.dumps(FINETUNE_RUNS[wildcards.run].overrides, sort_keys=True),
        seed="{seed}",
        workdir=f"{RESOURCES}/work/{{run}}/seed{{seed}}",
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: job_request("train", "mem_mb", attempt),
        runtime=lambda wildcards, attempt: job_request("train", "runtime", attempt),
        shared_cores=shared_cores,
    priority: 2  # the main chain is the run's critical path: before the experiments' side jobs
    threads: 1
    log:
        f"{LOGS}/train/{{run}}_seed{{seed}}.log",
    benchmark: benchmark_path("finetune", "run", "seed")
    script:
        STAGE_SCRIPT
