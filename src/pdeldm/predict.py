"""Prediction entry point: downscale the test period with one trained model.

``predict(model, cfg, store, meta, ckpts, out, log)`` (interfaces §5) writes ``out`` as netCDF:
``T_2M(realization, time, rlat, rlon)`` float32 in K for the test split, every
``cfg["evaluation"]["time_stride"]`` hours; ``realization`` (the CF ensemble coordinate) has
``cfg["evaluation"]["members"]`` entries for the stochastic models (``ldm``, ``pde_ldm``) and one
otherwise.

Batched over time (``evaluation.batch_size``); results are written slice by slice into the file,
so memory does not grow with the test period or the ensemble size. Every sample's noise comes
from its own generator seeded by (``seed``, member, time index): the ensemble is reproducible
and independent of the batch size and of the device.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdeldm.config import fill_defaults, require_section
from pdeldm.data.cosmo import LAEA_PARAM_KEYS
from pdeldm.data.input_error import CoarseInput
from pdeldm.errors import InputError
from pdeldm.io import atomic_output, read_json
from pdeldm.logs import stage_logger
from pdeldm.prediction_file import create_prediction_file, history_line, write_slice

#: Store attributes that describe the grid mapping (written by store.build_store).
_GRID_MAPPING_KEYS = frozenset({"grid_mapping_name", "crs_wkt", "grid_north_pole_latitude", "grid_north_pole_longitude",
                                "north_pole_grid_longitude", *LAEA_PARAM_KEYS})


def sample_generator(seed: int, member: int, index: int) -> torch.Generator:
    """CPU generator for one (member, time index) sample."""
    state = np.random.SeedSequence([int(seed), int(member), int(index)]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] % (2 ** 63 - 1)))


def inference_device(cfg: dict[str, Any]) -> torch.device:
    """CUDA if the config's accelerator allows it and one is available, else CPU."""
    accelerator = str(require_section(cfg, "training.accelerator", "inference device"))
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def store_coords(store: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """``time`` (datetime64[ns]), ``rlat``, ``rlon`` of the store, their attrs and the grid mapping."""
    import xarray as xr

    with xr.open_zarr(store, consolidated=None) as ds:
        mapping = {k: v for k, v in ds.attrs.items() if k in _GRID_MAPPING_KEYS}
        if "grid_north_pole_latitude" in mapping:  # a pole without a mapping name is a rotated grid
            mapping.setdefault("grid_mapping_name", "rotated_latitude_longitude")
        return {
            "time": ds["time"].values.astype("datetime64[ns]"),
            "rlat": ds["rlat"].values.astype(np.float64),
            "rlon": ds["rlon"].values.astype(np.float64),
            # units/standard names as in the store (degrees on the rotated grid, metres on a projected one)
            "attrs": {name: {k: v for k, v in ds[name].attrs.items() if isinstance(v, (str, int, float))}
                      for name in ("rlat", "rlon")},
            # CF attributes of the grid mapping (rotated pole, or LAEA with crs_wkt on a projected grid)
            "grid_mapping": mapping,
        }


def _check_spec(model: Any, meta: dict[str, Any], logger: Any) -> None:
    """The checkpoint must have been trained on data normalised like this store's."""
    from pdeldm.models.base import DataSpec

    spec = DataSpec.from_meta(meta, time_features=model.spec.time_features)
    if (spec.factor, spec.n_coarse, spec.n_static) != (model.spec.factor, model.spec.n_coarse, model.spec.n_static):
        raise InputError(f"checkpoint expects factor/predictors/static {model.spec.factor}/{model.spec.predictors}/"
                         f"{model.spec.static_vars}, the store has {spec.factor}/{spec.predictors}/{spec.static_vars}")
    if not np.allclose([spec.target_mean, spec.target_std], [model.spec.target_mean, model.spec.target_std]):
        logger.info("the store's normalisation differs from the checkpoint's (another region or period): "
                    "the inputs are normalised with the checkpoint's training statistics")


def training_norm(ckpt: str | os.PathLike[str]) -> dict[str, Any]:
    """The normalisation statistics of the store a checkpoint was trained on (its data record)."""
    from pdeldm.model_card import data_of
    from pdeldm.models.registry import read_checkpoint

    return data_of(read_checkpoint(ckpt)["info"], ckpt)["norm"]


def predict(model: str, cfg: dict[str, Any], store: str | os.PathLike[str], meta: str | os.PathLike[str],
            ckpts: dict[str, str | os.PathLike[str]], out: str | os.PathLike[str],
            log: str | os.PathLike[str] | None = None, extra_attrs: dict[str, Any] | None = None,
            coarse_input: str = "store") -> None:
    """Downscale the test split with ``model`` (checkpoint ``ckpts[model]``) into ``out``.

    ``extra_attrs``: more global attributes of the file (e.g. the training seed of a fine-tuning run).
    ``coarse_input``: ``store`` (the ERA5 or ERA5-like input) or ``perfect`` (its t2m replaced by
    the block mean of the truth, :mod:`pdeldm.data.input_error`).
    """
    from torch.utils.data import DataLoader

    from pdeldm.cores import adapt_threads
    from pdeldm.data.datasets import DownscalingDataset
    from pdeldm.models.registry import load_model

    logger = stage_logger(f"predict.{model}", log)
    if model not in ckpts:
        raise InputError(f"predict: no checkpoint given for '{model}' (got {sorted(ckpts)})")
    ev = fill_defaults("evaluation", require_section(cfg, "evaluation", f"predict {model}"))
    stride, batch_size = int(ev["time_stride"]), int(ev["batch_size"])
    seed = int(require_section(cfg, "seed", f"predict {model}"))
    meta_dict = read_json(meta)
    if coarse_input not in ("store", "perfect"):
        raise InputError(f"predict: coarse_input must be 'store' or 'perfect', got {coarse_input!r}")
    perfect = CoarseInput.from_meta(meta_dict) if coarse_input == "perfect" else None
    device = inference_device(cfg)
    net = load_model(ckpts[model]).to(device)
    _check_spec(net, meta_dict, logger)
    members = int(ev["members"]) if net.stochastic else 1
    coords = store_coords(store)
    # inputs normalised like the model's training data (its store's statistics, recorded in the
    # checkpoint), whatever store they come from: the output is denormalised with the same
    dataset = DownscalingDataset(store, meta, "test", crop=None, time_stride=stride,
                                 time_features=net.spec.time_features, norm=training_norm(ckpts[model]))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    logger.info("predict %s: %d test times (stride %d h), %d member(s), batch %d, device %s, coarse input %s",
                model, len(dataset), stride, members, batch_size, device, coarse_input)

    t0 = time.perf_counter()
    attrs = {"Conventions": "CF-1.8", "title": f"2-m temperature downscaled by {model} (test period)",
             "source": f"pdeldm {model} model, checkpoint {ckpts[model]}",
             "history": history_line(f"pdeldm predict {model}, {members} member(s), time stride {stride} h, seed {seed}"),
             "model": model, "members": members, "time_stride": stride, "seed": seed, "coarse_input": coarse_input,
             "checkpoint": str(ckpts[model]), **(extra_attrs or {})}
    if net.stochastic:  # how the members were drawn
        attrs.update({"sampler_solver": net.sampler_solver, "sampler_steps": net.sampler_steps,
                      "sampler_eta": net.sampler_eta, "sampler_spacing": net.sampler_spacing})
    out = Path(out)
    with atomic_output(out) as tmp:
        nc = create_prediction_file(tmp, coords, members, model, attrs)
        try:
            pos = 0
            for batch in loader:
                adapt_threads()  # the cores of the local run that no other job holds (pdeldm.cores)
                index = batch["index"].tolist()
                if perfect is not None:
                    batch["coarse"] = perfect.perfect(batch["coarse"], batch["target"])
                inputs = {k: v.to(device) for k, v in batch.items() if k in ("coarse", "static")}
                # Seeded noise for every sample (the GAN's noise channel too: one reproducible member).
                gens = [sample_generator(seed, m, i) for m in range(members) for i in index]
                with torch.inference_mode():
                    fields = net.generate(inputs, members=members, generators=gens)  # [M, B, 1, H, W]
                kelvin = net.spec.denormalise(fields.float())[:, :, 0].cpu().numpy().astype(np.float32)
                pos = write_slice(nc, pos, coords["time"][index], kelvin)
                if pos == len(index) or pos * 10 // len(dataset) != (pos - len(index)) * 10 // len(dataset):
                    logger.info("predicted %d/%d times (%.1f s)", pos, len(dataset), time.perf_counter() - t0)
        finally:
            nc.close()
    logger.info("wrote %s (%d times x %d members) in %.1f s", out, pos, members, time.perf_counter() - t0)
