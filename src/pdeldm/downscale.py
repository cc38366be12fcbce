"""Downscale new ERA5 files with a trained checkpoint, outside the workflow (``pdeldm downscale``).

The plan (:func:`plan_downscaling`) checks everything before any sampling:

* the checkpoint carries its data record (:mod:`pdeldm.model_card`): predictors and static fields
  with their normalisation, regrid settings, time step, first store time and fine grid;
* the static file is on the checkpoint's grid (same cells, same grid mapping) and has its static
  fields (:func:`pdeldm.data.store.read_static`, as the store build reads it);
* the ERA5 files have the predictors, in K and m/s, without NaNs beyond the maskable ones and on
  one grid covering the domain (:func:`pdeldm.data.era5.open_era5` and the regridder's coverage
  check, as the store build does);
* the requested period lies inside the files and has no missing time step.

Then, batch by batch (:func:`run`), the predictors are remapped with the store's code
(:func:`pdeldm.data.store.coarse_predictors`), normalised like the training data, sampled and
written to a CF netCDF file ``T_2M(realization, time, rlat, rlon)`` with the grid mapping and 2-D
``lat``/``lon`` (:mod:`pdeldm.prediction_file`).

Reproducibility: the noise of member ``m`` at time ``t`` comes from
:func:`pdeldm.predict.sample_generator` ``(seed, m, index)``, where ``index`` is the number of time
steps from the *time origin* to ``t``. The defaults -- the seed the workflow sampled with and the training
store's first time as origin -- make ``index`` the store's time index, so for the times of the
workflow's test period the fields equal the workflow's predictions (with ``members`` =
``evaluation.members`` of the workflow's config).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pdeldm.data.datasets import time_feature_channels
from pdeldm.errors import InputError
from pdeldm.io import atomic_output
from pdeldm.logs import stage_logger

#: Realizations of a stochastic model when neither ``--members`` nor the checkpoint's recorded
#: config says (the workflow records only the sections a training depends on, not `evaluation`).
#: A default of this command, not of the workflow configuration.
DEFAULT_MEMBERS = 10


@dataclass
class DownscalePlan:
    """Checked inputs of one downscaling run (see the module docstring)."""

    checkpoint: Path
    model: Any
    data: dict[str, Any]
    era5: xr.Dataset
    static: np.ndarray  # normalised, [svar, y, x] float32
    latlon: tuple[np.ndarray, np.ndarray]
    grid: Any
    times: pd.DatetimeIndex
    indices: np.ndarray
    members: int
    steps: int | None
    seed: int
    origin: pd.Timestamp
    regrid: Any = field(repr=False, default=None)


def _grid_summary(rlat: Sequence[float], rlon: Sequence[float], mapping: Mapping[str, Any]) -> str:
    pole = {k: mapping[k] for k in ("grid_north_pole_latitude", "grid_north_pole_longitude") if k in mapping}
    return (f"{len(rlat)} x {len(rlon)} cells, rlat {rlat[0]:.4f}..{rlat[-1]:.4f}, rlon {rlon[0]:.4f}..{rlon[-1]:.4f}, "
            f"{mapping.get('grid_mapping_name', 'no grid mapping')}{' ' + str(pole) if pole else ''}")


def check_static_grid(static_path: Path, data: Mapping[str, Any]) -> tuple[xr.Dataset, Any]:
    """Read the static file as the store does and check it is on the checkpoint's grid."""
    from pdeldm.data.store import read_static

    try:
        ds, grid, _, _ = read_static(static_path, data["static_vars"], int(data["factor"]))
    except InputError as exc:
        raise InputError(f"{exc} (the checkpoint needs the static fields {data['static_vars']} on its grid)") from None
    want = data["grid"]
    rlat, rlon = np.asarray(want["rlat"]), np.asarray(want["rlon"])
    step = float(np.median(np.abs(np.diff(rlat)))) if rlat.size > 1 else 1.0
    same_cells = (grid.shape == (rlat.size, rlon.size) and np.allclose(grid.rlat, rlat, atol=1e-3 * step)
                  and np.allclose(grid.rlon, rlon, atol=1e-3 * step))
    mapping = want.get("grid_mapping") or {}
    same_mapping = all(abs(float(grid.pole[k]) - float(mapping[k])) < 1e-6 for k in grid.pole if k in mapping
                       and isinstance(grid.pole[k], (int, float)))
    if not (same_cells and same_mapping):
        raise InputError(
            f"{static_path}: grid mismatch: the static file's grid is {_grid_summary(grid.rlat, grid.rlon, grid.pole)}, "
            f"the checkpoint was trained on {_grid_summary(rlat, rlon, mapping)}; pass the static file of the "
            "training region (in the workflow: resources/static/<region>.nc)"
        )
    return ds, grid


def open_predictors(files: Sequence[Path], data: Mapping[str, Any]) -> xr.Dataset:
    """Open the ERA5 files with the store's reader: predictors present, in K and m/s, NaNs only where maskable."""
    from pdeldm.data.era5 import open_era5

    predictors = list(data["predictors"])
    fill = {k: v for k, v in (data.get("fill_values") or {}).items() if k in predictors}
    try:
        return open_era5(files, predictors, fill_values=fill, freq=None)
    except InputError as exc:
        raise InputError(f"{exc} (the checkpoint was trained on the ERA5 predictors {predictors} in K and m s**-1)") from None


def select_times(available: pd.DatetimeIndex, data: Mapping[str, Any], start: str | None, end: str | None,
                 stride: int, files: Sequence[Path]) -> pd.DatetimeIndex:
    """The times to downscale: every ``stride``-th time step of ``[start, end]``, all present in the files."""
    step = pd.Timedelta(data.get("time_step") or "1h")
    first, last = available[0], available[-1]
    span = f"the ERA5 files ({len(files)}) cover {first.isoformat()} .. {last.isoformat()}"
    t0 = pd.Timestamp(start) if start else first
    if end:
        end_stamp = pd.Timestamp(end)
        t1 = end_stamp + pd.Timedelta(days=1) - step if len(str(end).strip()) <= 10 else end_stamp
    else:
        t1 = last
    if t1 < t0:
        raise InputError(f"downscale period: end {end} is before start {start}")
    if t0 < first or t1 > last:
        raise InputError(f"downscale period {t0.isoformat()} .. {t1.isoformat()} is not covered: {span}; "
                         "pass --start/--end inside it or add the missing files")
    wanted = pd.date_range(t0, t1, freq=step)[:: max(1, int(stride))]
    missing = wanted.difference(available)
    if len(missing):
        raise InputError(f"downscale period {t0.isoformat()} .. {t1.isoformat()}: {len(missing)} of {len(wanted)} "
                         f"time steps ({_step_text(step)}) missing from the ERA5 files, first {missing[0].isoformat()}; {span}")
    return wanted


def _step_text(step: pd.Timedelta) -> str:
    hours = step / pd.Timedelta("1h")
    return f"{hours:g} h" if hours >= 1 else f"{step.total_seconds():g} s"


def noise_indices(times: pd.DatetimeIndex, origin: pd.Timestamp, step: pd.Timedelta) -> np.ndarray:
    """Time steps from ``origin`` to each time: the ``index`` of :func:`pdeldm.predict.sample_generator`."""
    offsets = (times - origin) / step
    if (offsets < 0).any():
        raise InputError(f"time {times[int(np.argmax(offsets < 0))].isoformat()} is before the noise time origin "
                         f"{origin.isoformat()}; pass --time-origin at or before the first time to downscale "
                         "(the samples then differ from the workflow's)")
    if not np.allclose(offsets, np.round(offsets)):
        bad = times[int(np.argmax(~np.isclose(offsets, np.round(offsets))))]
        raise InputError(f"time {bad.isoformat()} is not a whole number of {_step_text(step)} steps from the noise "
                         f"time origin {origin.isoformat()}; the checkpoint was trained on {_step_text(step)} data")
    return np.round(offsets).astype(np.int64)


def plan_downscaling(checkpoint: str | os.PathLike[str], era5_files: Sequence[str | os.PathLike[str]],
                     static: str | os.PathLike[str], *, members: int | None = None, steps: int | None = None,
                     seed: int | None = None, start: str | None = None, end: str | None = None, stride: int = 1,
                     time_origin: str | None = None, log: logging.Logger | None = None) -> DownscalePlan:
    """Load the checkpoint and check the inputs against it (see the module docstring)."""
    from pdeldm.data.store import predictor_regridder
    from pdeldm.model_card import data_of
    from pdeldm.models.registry import load_model, read_checkpoint

    log = log or stage_logger("downscale")
    checkpoint = Path(checkpoint)
    info = read_checkpoint(checkpoint).get("info") or {}
    data = data_of(info, checkpoint)
    model = load_model(checkpoint)
    files = [Path(f) for f in era5_files]
    if not files:
        raise InputError("downscale: no ERA5 files given")

    static_ds, grid = check_static_grid(Path(static), data)
    era5 = open_predictors(files, data)
    regrid = predictor_regridder(era5["latitude"].values, era5["longitude"].values, grid, data["regrid_method"],
                                 int(data["supersample"]))
    try:
        regrid.check_coverage(era5)
    except InputError as exc:
        raise InputError(f"grid mismatch: the ERA5 files {[str(f) for f in files[:3]]} do not cover the checkpoint's "
                         f"grid ({exc})") from None

    times = select_times(era5.indexes["time"], data, start, end, stride, files)
    origin = pd.Timestamp(time_origin) if time_origin else pd.Timestamp(data["time0"])
    indices = noise_indices(times, origin, pd.Timedelta(data.get("time_step") or "1h"))

    config = info.get("config") or {}
    if model.stochastic:
        # the workflow records only the config sections a training depends on (no `evaluation`)
        members = int(members or (config.get("evaluation") or {}).get("members") or DEFAULT_MEMBERS)
    else:
        if members not in (None, 1):
            log.warning("%s is deterministic: writing one realization, not %s", model.name, members)
        members = 1
    if steps is not None and not hasattr(model, "sampler_steps"):
        raise InputError(f"--steps applies to the diffusion models (ldm, pde_ldm), not to {model.name}")
    if members < 1 or (steps is not None and steps < 1):
        raise InputError(f"--members and --steps must be at least 1 (got {members}, {steps})")

    norm = data["norm"]["static"]
    s_mean = np.array([norm[v]["mean"] for v in data["static_vars"]], np.float32)[:, None, None]
    s_std = np.array([norm[v]["std"] for v in data["static_vars"]], np.float32)[:, None, None]
    static_arr = np.stack([static_ds[v].squeeze(drop=True).values.astype(np.float32) for v in data["static_vars"]])
    return DownscalePlan(
        checkpoint=checkpoint, model=model, data=data, era5=era5, static=(static_arr - s_mean) / s_std,
        latlon=(static_ds["lat"].values, static_ds["lon"].values), grid=grid, times=times, indices=indices,
        members=members, steps=steps, seed=int(config.get("sampling_seed", config.get("seed", 0)) if seed is None else seed), origin=origin,
        regrid=regrid,
    )


def run(plan: DownscalePlan, out: str | os.PathLike[str], *, batch_size: int = 8, progress: bool | None = None,
        device: str | torch.device | None = None, log: logging.Logger | None = None) -> Path:
    """Sample ``plan`` batch by batch and write the CF netCDF ``out`` atomically."""
    from tqdm import tqdm

    from pdeldm.data.store import coarse_predictors
    from pdeldm.predict import sample_generator
    from pdeldm.prediction_file import create_prediction_file, history_line, write_slice

    log = log or stage_logger("downscale")
    data, net = plan.data, plan.model
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = net.to(device)
    predictors, factor = list(data["predictors"]), int(data["factor"])
    norm = data["norm"]["coarse"]
    c_mean = np.array([norm[v]["mean"] for v in predictors], np.float32)[:, None, None]
    c_std = np.array([norm[v]["std"] for v in predictors], np.float32)[:, None, None]
    static = torch.from_numpy(plan.static).to(device)
    grid = data["grid"]
    coords = {"rlat": np.asarray(grid["rlat"]), "rlon": np.asarray(grid["rlon"]), "attrs": grid.get("attrs", {}),
              "grid_mapping": grid.get("grid_mapping", {})}
    name = net.name
    attrs = {
        "Conventions": "CF-1.8",
        "title": f"2-m temperature downscaled from ERA5 by {name}",
        "source": f"pdeldm {name} model, checkpoint {plan.checkpoint}",
        "history": history_line(f"pdeldm downscale --checkpoint {plan.checkpoint} ({len(plan.times)} times, "
                                f"{plan.members} realization(s), seed {plan.seed})"),
        "model": name, "checkpoint": str(plan.checkpoint), "seed": plan.seed, "members": plan.members,
        "noise_time_origin": plan.origin.isoformat(),
        "noise_index": "time steps from noise_time_origin; noise of (realization m, index i) from "
                       "pdeldm.predict.sample_generator(seed, m, i)",
        "era5_files": ", ".join(sorted(str(f) for f in plan.era5.attrs.get("source_files", "").split(", ") if f)),
    }
    if plan.steps is not None:
        attrs["sampler_steps"] = plan.steps
    generate_options = {"steps": plan.steps} if plan.steps is not None else {}
    log.info("downscale %s: %d times %s .. %s, %d realization(s), seed %d, noise origin %s, device %s",
             name, len(plan.times), plan.times[0].isoformat(), plan.times[-1].isoformat(), plan.members, plan.seed,
             plan.origin.isoformat(), device)
    t0 = time.perf_counter()
    out = Path(out)
    with atomic_output(out) as tmp:
        nc = create_prediction_file(tmp, coords, plan.members, name, attrs, ensemble_dim="realization",
                                    latlon=plan.latlon)
        try:
            pos = 0
            # disable=None: a progress bar on a terminal only
            with tqdm(total=len(plan.times), unit="time", desc=f"downscale {name}",
                      disable=None if progress is None else not progress) as bar:
                for b0 in range(0, len(plan.times), int(batch_size)):
                    times = plan.times[b0:b0 + int(batch_size)]
                    index = plan.indices[b0:b0 + int(batch_size)]
                    era = plan.era5.sel(time=times).load()
                    coarse, _ = coarse_predictors(era, plan.regrid, predictors, factor)
                    coarse = (coarse - c_mean[None]) / c_std[None]
                    if net.spec.time_features:  # the data module's time channels, as in training
                        features = time_feature_channels(times.values)[:, :, None, None]
                        coarse = np.concatenate([coarse, np.broadcast_to(features, (*features.shape[:2],
                                                                                    *coarse.shape[-2:]))], axis=1)
                    coarse = torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32)).to(device)
                    inputs = {"coarse": coarse, "static": static.expand(len(times), *static.shape)}
                    gens = [sample_generator(plan.seed, m, int(i)) for m in range(plan.members) for i in index]
                    with torch.inference_mode():
                        fields = net.generate(inputs, members=plan.members, generators=gens, **generate_options)
                    kelvin = net.spec.denormalise(fields.float())[:, :, 0].cpu().numpy().astype(np.float32)
                    pos = write_slice(nc, pos, times.values, kelvin)
                    bar.update(len(times))
        finally:
            nc.close()
    log.info("wrote %s (%d times x %d realization(s)) in %.1f s", out, pos, plan.members, time.perf_counter() - t0)
    return out


def downscale(checkpoint: str | os.PathLike[str], era5_files: Sequence[str | os.PathLike[str]],
              static: str | os.PathLike[str], out: str | os.PathLike[str], *, members: int | None = None,
              steps: int | None = None, seed: int | None = None, start: str | None = None, end: str | None = None,
              stride: int = 1, time_origin: str | None = None, batch_size: int = 8, progress: bool | None = None,
              device: str | None = None, log: str | os.PathLike[str] | logging.Logger | None = None) -> Path:
    """Downscale ``era5_files`` with ``checkpoint`` onto its grid and write ``out`` (see the module docstring).

    Raises:
        InputError: the checkpoint lacks its data record, or the inputs do not match it (variables,
        units, grid, period), with a message saying which file and what to do.
    """
    logger = log if isinstance(log, logging.Logger) else stage_logger("downscale", log)
    plan = plan_downscaling(checkpoint, era5_files, static, members=members, steps=steps, seed=seed, start=start,
                            end=end, stride=stride, time_origin=time_origin, log=logger)
    return run(plan, out, batch_size=batch_size, progress=progress, device=device, log=logger)
