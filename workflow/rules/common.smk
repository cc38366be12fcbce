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
MODELS = ["interpolation", "unet", "gan", "ldm", "pde_ldm"]
TRAINED = ["interpolation", "unet", "gan", "autoencoder", "ldm", "pde_ldm"]
# Which checkpoints each model's training (and prediction) needs.
MODEL_DEPENDENCIES = {
    "interpolation": [],
    "unet": [],
    "gan": [],
    "autoencoder": ["unet"],
    "ldm": ["unet", "autoencoder"],
    "pde_ldm": ["unet", "autoencoder", "ldm"],
}
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


def region_box(name=REGION):
    return config["data"]["regions"][name]


def static_file():
    return f"{RESOURCES}/static/{REGION}.nc"


def store_paths(wildcards=None):
    return {"store_path": f"{RESOURCES}/store/{REGION}.zarr", "meta_path": f"{RESOURCES}/store/{REGION}.json"}


def checkpoint(model):
    return f"{RESULTS}/models/{model}/model.ckpt"


def model_config_sections(model):
    """A model depends on its own block, its dependencies' blocks and `training` (data: via the store)."""
    models = [model] + MODEL_DEPENDENCIES[model]
    return [f"models.{m}" for m in models] + ["training"]


def final_outputs():
    outputs = [
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/summary.md",
        f"{RESULTS}/tables/summary.tex",
        f"{RESULTS}/figures/metric_boxplots.png",
        f"{RESULTS}/figures/maps.png",
        f"{RESULTS}/figures/spectra.png",
        f"{RESULTS}/figures/calibration.png",
    ]
    if config["data"]["source"] == "twin":
        outputs.append(f"{RESULTS}/twin/{REGION}_diagnostics.json")
    outputs += realism_outputs() + perfect_input_outputs()  # realism.smk, robustness.smk
    return outputs
