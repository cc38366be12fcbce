# Training: one job per model. Outputs are the final checkpoint and the per-epoch metrics only;
# the working directory with last.ckpt is deliberately NOT an output, because Snakemake deletes
# the outputs of failed jobs: a killed training resumes from it when the rule reruns.


def training_dependencies(wildcards):
    return {dep: checkpoint(dep) for dep in MODEL_DEPENDENCIES[wildcards.model]}


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
    threads: 1
    log:
        f"{LOGS}/train/{{model}}.log",
    script:
        STAGE_SCRIPT
