# Configuration validation and path helpers shared by all rule files.
import glob
import json

from pdeldm.config import months_in_period, validate_config
from pdeldm.costs import job_record_path, records_root
from pdeldm.errors import ConfigError
from pdeldm.experiments import fine_tuning_runs, run_models
from pdeldm.models.registry import model_dependencies

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

RESULTS = config["paths"]["results"]
RESOURCES = config["paths"]["resources"]
LOGS = config["paths"]["logs"]
REGION = config["data"]["region"]
BASE_MODELS = ["interpolation", "unet", "gan", "ldm"]
TRAINED = ["interpolation", "unet", "gan", "autoencoder", "ldm"]
# Which checkpoints each model's training needs: model_dependencies (pdeldm.models.registry, the
# one place the model graph is written down) gives them all, direct or not, in dependency order.
# Fine-tunings of the LDM (finetune.runs and the lambda ablation of `experiments`), each trained
# once per seed: the models "run/seedN".
FINETUNE_RUNS = fine_tuning_runs(config)
RUNS = list(FINETUNE_RUNS)
NAMED_RUNS = [name for name, run in FINETUNE_RUNS.items() if run.named]
RUN_MODELS = run_models(config)
MODELS = BASE_MODELS + RUN_MODELS
MONTHS = months_in_period(config["data"]["period"]["start"], config["data"]["period"]["end"])
STAGE_SCRIPT = "../scripts/stage.py"
# What each job cost (pdeldm.costs): one record per job, collected by rule job_costs.
BENCHMARKS = records_root(LOGS)


def benchmark_path(rule_name, *wildcards):
    """The `benchmark:` file of a job of `rule_name`, named by its `wildcards` (every rule has one)."""
    return job_record_path(BENCHMARKS, rule_name, wildcards)


def shared_cores(wildcards=None):
    """The cores of a local run, which its torch jobs share (pdeldm.cores); 0 where a scheduler allots
    the cores of each job (cluster executors) or the run's cores are unknown."""
    if not workflow.local_exec or workflow.remote_exec:
        return 0
    try:
        return int(workflow.cores)
    except (WorkflowError, TypeError, ValueError):
        return 0


def config_json(*sections):
    """The config sections a job depends on, as canonical JSON (a params rerun trigger).

    Always includes `seed`. Passing only the relevant sections means that touching one model's
    block reruns only that model and what depends on it.
    """
    subset = {"seed": config["seed"]}
    for section in sections:
        node_in, node_out = config, subset
        keys = section.split(".")
        for key in keys[:-1]:
            node_in = node_in[key]
            node_out = node_out.setdefault(key, {})
        node_out[keys[-1]] = node_in[keys[-1]]
    return json.dumps(subset, sort_keys=True)


def job_request(rule_name, resource, attempt=1):
    """What a job asks a scheduler for (`job_resources`), growing with the attempt on retries."""
    return config["job_resources"][rule_name][resource] * attempt


def region_box(name=REGION):
    return config["data"]["regions"][name]


def static_file(region=REGION):
    return f"{RESOURCES}/static/{region}.nc"


def store_paths(wildcards=None, region=REGION):
    """The training store of `region` (default: the region the models are trained on)."""
    return {"store_path": f"{RESOURCES}/store/{region}.zarr", "meta_path": f"{RESOURCES}/store/{region}.json"}


def coefficients_file():
    return f"{RESULTS}/physics/pde_coefficients.json"


def checkpoint(model):
    """Final checkpoint of a base model or of a fine-tuning run "run/seedN"."""
    return f"{RESULTS}/models/{model}/model.ckpt"


def model_config_sections(model):
    """A model depends on its own block, its dependencies' blocks, `training` and the input layout."""
    models = [model] + model_dependencies(model)
    return [f"models.{m}" for m in models] + ["training", "data.time_features"]


def run_config(run):
    """What a fine-tuning run depends on: the LDM chain, `models.pde_ldm` and its own overrides."""
    subset = json.loads(config_json(*model_config_sections("ldm"), "models.pde_ldm"))
    subset["run"] = FINETUNE_RUNS[run].overrides
    return json.dumps(subset, sort_keys=True)


def run_uses_equation(run):
    return FINETUNE_RUNS[run].form in ("advection_diffusion", "advection_diffusion_matched")


def model_run(model):
    """The fine-tuning run of a model key "run/seedN" (None for a base model)."""
    return model.split("/seed")[0] if "/seed" in model else None


def pipeline_outputs():
    """Every result of the default target except the cost records, which are collected after them."""
    outputs = [
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/summary.md",
        f"{RESULTS}/tables/summary.tex",
        f"{RESULTS}/tables/paired_differences.csv",
        f"{RESULTS}/tables/paired_differences.md",
        f"{RESULTS}/figures/metric_boxplots.png",
        f"{RESULTS}/figures/maps.png",
        f"{RESULTS}/figures/spectra.png",
        f"{RESULTS}/figures/calibration.png",
    ]
    if config["data"]["source"] == "twin":
        outputs.append(f"{RESULTS}/twin/{REGION}_diagnostics.json")
    outputs += ensemble_outputs()  # workflow/rules/ensembles.smk
    # The report's other pages (workflow/rules/report.smk).
    outputs += [f"{RESULTS}/figures/training.png", f"{RESULTS}/report/data.html",
                f"{RESULTS}/report/experiment.html"]
    outputs += realism_outputs() + perfect_input_outputs()  # realism.smk, robustness.smk
    return outputs


def cost_outputs():
    """What every job of the run cost, and the report's page on it (workflow/rules/costs.smk)."""
    return [f"{RESULTS}/benchmarks/jobs.csv", f"{RESULTS}/benchmarks/jobs_summary.json",
            f"{RESULTS}/figures/job_costs.png", f"{RESULTS}/report/costs.html"]


def final_outputs():
    return pipeline_outputs() + cost_outputs()
