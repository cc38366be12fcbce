# Configuration validation and path helpers shared by all rule files.
import glob
import json

from pdeldm.config import months_in_period, validate_config
from pdeldm.errors import ConfigError

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
# Which checkpoints each model's training (and prediction) needs.
MODEL_DEPENDENCIES = {
    "interpolation": [],
    "unet": [],
    "gan": [],
    "autoencoder": ["unet"],
    "ldm": ["unet", "autoencoder"],
}
# Fine-tunings of the LDM (finetune.runs), each trained once per seed: the models "run/seedN".
RUNS = list(config["finetune"]["runs"])
SEEDS = list(config["finetune"]["seeds"])
RUN_MODELS = [f"{run}/seed{seed}" for run in RUNS for seed in SEEDS]
MODELS = BASE_MODELS + RUN_MODELS
MONTHS = months_in_period(config["data"]["period"]["start"], config["data"]["period"]["end"])
STAGE_SCRIPT = "../scripts/stage.py"


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


def static_file():
    return f"{RESOURCES}/static/{REGION}.nc"


def store_paths(wildcards=None):
    return {"store_path": f"{RESOURCES}/store/{REGION}.zarr", "meta_path": f"{RESOURCES}/store/{REGION}.json"}


def coefficients_file():
    return f"{RESULTS}/physics/pde_coefficients.json"


def checkpoint(model):
    """Final checkpoint of a base model or of a fine-tuning run "run/seedN"."""
    return f"{RESULTS}/models/{model}/model.ckpt"


def model_config_sections(model):
    """A model depends on its own block, its dependencies' blocks, `training` and the input layout."""
    models = [model] + MODEL_DEPENDENCIES[model]
    return [f"models.{m}" for m in models] + ["training", "data.time_features"]


def run_config_sections(run):
    """A fine-tuning run depends on the LDM chain, `models.pde_ldm` and its own `finetune.runs` entry."""
    return model_config_sections("ldm") + ["models.pde_ldm", f"finetune.runs.{run}"]


def run_form(run):
    """The physics term of a fine-tuning run (its own form, else models.pde_ldm's)."""
    return config["finetune"]["runs"][run].get("form", config["models"]["pde_ldm"]["pde"]["form"])


def run_uses_equation(run):
    return run_form(run) in ("advection_diffusion", "advection_diffusion_matched")


def final_outputs():
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
    return outputs
