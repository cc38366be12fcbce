"""Model names -> classes, building a model from the config and its dependencies, and the
self-contained final checkpoint format.

Final checkpoint (``results/models/{model}/model.ckpt``, written by :func:`save_model`)::

    {"format": "pdeldm-model-v1", "model": name, "hparams": {...JSON...},
     "state_dict": {...tensors...}, "info": {...JSON...}}

``hparams`` embeds the hyper-parameters (and data spec) of every model this one is built on, so
:func:`load_model` rebuilds the module from this one file. EMA weights are copied into the live
networks before saving: downstream users (prediction, fine-tuning) get the EMA weights.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdeldm.config import require_section
from pdeldm.errors import InputError
from pdeldm.io import atomic_output

if TYPE_CHECKING:
    import torch

    from pdeldm.models.base import BaseModel

FORMAT = "pdeldm-model-v1"

#: Model name -> (module, class). The classes are imported on first use, so that importing this
#: module stays cheap (no torch): the workflow reads the model graph below when it parses its rules.
_CLASS_PATHS: dict[str, tuple[str, str]] = {
    "interpolation": ("pdeldm.models.baselines", "InterpolationModel"),
    "unet": ("pdeldm.models.unet", "UNetModel"),
    "gan": ("pdeldm.models.gan", "GANModel"),
    "autoencoder": ("pdeldm.models.autoencoder", "AutoencoderModel"),
    "ldm": ("pdeldm.models.diffusion", "LDMModel"),
    "pde_ldm": ("pdeldm.models.pde_ldm", "PDELDMModel"),
}

#: The model graph, the one place it is written down: the checkpoints each model is *built* from
#: (its direct dependencies). :func:`model_dependencies` gives the transitive closure, which the
#: workflow passes to a training (e.g. the UNet to the LDM, to check the autoencoder was trained
#: on it) and whose config blocks a training depends on.
DEPENDENCIES: dict[str, list[str]] = {
    "interpolation": [],
    "unet": [],
    "gan": [],
    "autoencoder": ["unet"],
    "ldm": ["autoencoder"],  # the autoencoder checkpoint embeds the UNet it was trained on
    "pde_ldm": ["ldm"],
}


def model_dependencies(name: str) -> list[str]:
    """Every model ``name`` depends on, directly or not, in dependency order (each model after the
    models it depends on; ``name`` itself excluded): ``ldm`` -> ``[unet, autoencoder]``."""
    if name not in DEPENDENCIES:
        raise InputError(f"unknown model '{name}' (known: {', '.join(DEPENDENCIES)})")
    order: list[str] = []

    def visit(model: str, path: tuple[str, ...]) -> None:
        for dep in DEPENDENCIES[model]:
            if dep in path:
                raise InputError(f"model dependency cycle: {' -> '.join((*path, dep))}")
            visit(dep, (*path, dep))
            if dep not in order:
                order.append(dep)

    visit(name, (name,))
    return order


def model_class(name: str) -> type[BaseModel]:
    try:
        module, attribute = _CLASS_PATHS[name]
    except KeyError:
        raise InputError(f"unknown model '{name}' (known: {', '.join(_CLASS_PATHS)})") from None
    return getattr(importlib.import_module(module), attribute)


def __getattr__(name: str) -> Any:
    # ``MODEL_CLASSES`` (name -> class) imports every model: built on first access only.
    if name == "MODEL_CLASSES":
        return {model: model_class(model) for model in _CLASS_PATHS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a final checkpoint written by :func:`save_model` (checks its format)."""
    import torch

    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"{path} is not a pdeldm model checkpoint (format {FORMAT})")
    return ckpt


def build_model(name: str, cfg: dict[str, Any], meta: dict[str, Any],
                deps: dict[str, str | os.PathLike[str]] | None = None) -> BaseModel:
    """A fresh module for training ``name``: config block, data spec from meta, weights of its deps.

    How a model is built on its dependencies is the model class's own business
    (:meth:`~pdeldm.models.base.BaseModel.sub_hparams`, :meth:`~pdeldm.models.base.BaseModel.load_dependencies`).
    """
    from pdeldm.models.base import DataSpec

    cls = model_class(name)
    missing = [d for d in DEPENDENCIES[name] if d not in (deps or {})]
    if missing:
        raise InputError(f"training '{name}' needs the checkpoint(s) of {missing}")
    checkpoints = {dep: {**read_checkpoint(path), "path": str(path)} for dep, path in (deps or {}).items()}
    spec = DataSpec.from_meta(meta, time_features=bool(cfg["data"]["time_features"]))
    hp: dict[str, Any] = {"name": name, "model": dict(require_section(cfg, f"models.{name}", f"building '{name}'")),
                          "spec": spec.to_dict(), "sub": cls.sub_hparams(checkpoints)}
    model = cls(hp)
    model.load_dependencies(checkpoints)
    return model


def nominal_meta(cfg: dict[str, Any], shape: tuple[int, int], dx_m: float) -> dict[str, Any]:
    """A store-metadata stand-in (unit normalisation) for building models of ``cfg`` without data.

    Predictors and static fields come from ``cfg["data"]``; for parameter counts, benchmarks and
    meta-device builds, where only the shapes matter.
    """
    data = cfg["data"]
    factor = int(data["factor"])
    unit = {"mean": 0.0, "std": 1.0}
    return {"factor": factor, "dx_m": float(dx_m), "dy_m": float(dx_m), "shape": list(shape),
            "coarse_shape": [shape[0] // factor, shape[1] // factor],
            "predictors": list(data["predictors"]), "static_vars": list(data["static_vars"]),
            "norm": {"target": {"mean": 285.0, "std": 8.0}, "coarse": {p: dict(unit) for p in data["predictors"]},
                     "static": {v: dict(unit) for v in data["static_vars"]}}}


def config_hparams(name: str, cfg: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` of an untrained ``name`` and its dependencies, straight from the config.

    The same structure :func:`build_model` assembles from the dependencies' checkpoints, so
    ``model_class(name)(config_hparams(...))`` builds the network at the configured size without
    any checkpoint (e.g. on the meta device).
    """
    from pdeldm.models.base import DataSpec

    cls = model_class(name)
    spec = DataSpec.from_meta(meta, time_features=bool(cfg["data"]["time_features"])).to_dict()

    def block(n: str) -> dict[str, Any]:
        return {"model": dict(require_section(cfg, f"models.{n}", f"hyper-parameters of '{name}'")), "spec": spec}

    return {"name": name, **block(name),
            "sub": cls.config_sub_hparams(block, lambda n: config_hparams(n, cfg, meta))}


def save_model(model: BaseModel, path: str | os.PathLike[str], info: dict[str, Any] | None = None) -> None:
    """Write the final checkpoint (EMA weights copied into the live networks), atomically."""
    import torch

    for live, ema in model.ema_pairs():
        ema.copy_to(live)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "model": model.name, "hparams": model.hp, "state_dict": state,
               "info": dict(info or {})}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> BaseModel:
    """Rebuild a module from a final checkpoint (eval mode)."""
    ckpt = read_checkpoint(path)
    model = model_class(ckpt["model"])(ckpt["hparams"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval()
