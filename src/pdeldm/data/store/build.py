"""Building a store: the plan (:mod:`.plan`), then its steps, written atomically.

1. :func:`~pdeldm.data.store.plan.plan_store` -- every check that needs no heavy work;
2. the zarr layout from the template (:mod:`.layout`), its arrays still empty;
3. :func:`write_chunks` -- the store's time axis, whole zarr chunks at a time: the inputs of those
   times read from the streams, remapped and written, the train part added to the statistics;
4. :func:`~pdeldm.data.store.layout.store_meta` -- the metadata JSON, written before the store
   directory is renamed into place, so a failure anywhere leaves neither a store nor a stale pairing.
"""

from __future__ import annotations

import logging
import os
import time as _time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from pdeldm.data.store.layout import ZARR_FORMAT, store_meta, template
from pdeldm.data.store.plan import StorePlan, plan_store
from pdeldm.data.store.stats import TrainStats
from pdeldm.io import atomic_output, write_json

log = logging.getLogger("pdeldm.store")


def build_store(
    era5_files: Sequence[str | os.PathLike[str]],
    cosmo_files: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    store_path: str | os.PathLike[str],
    meta_path: str | os.PathLike[str],
    cfg: Mapping[str, Any],
) -> None:
    """Build the training store and its metadata JSON (interfaces §3).

    ``cfg`` keys: ``factor``, ``predictors``, ``split`` (required), ``regrid_method``
    (conservative or bilinear) and ``static_vars`` (default: conservative; HSURF, FR_LAND, lat,
    the config schema's defaults). The rest is fixed (:mod:`pdeldm.data.store.layout`).

    Raises:
        InputError: bad config, split not covered by both sources, grid mismatch between COSMO and
        the static file, ERA5 not covering the domain, or any reader check (units, NaNs, ...).
    """
    t_start = _time.perf_counter()
    plan = plan_store(era5_files, cosmo_files, static_path, cfg)
    conf, times = plan.cfg, plan.times
    log.info("store: %d times (%s .. %s, step %s), fine grid %s, factor %d, predictors %s, %s",
             len(times), times[0], times[-1], plan.dt, plan.grid.shape, conf.factor, conf.predictors,
             conf.regrid_method)
    store_path = Path(store_path)
    try:
        with atomic_output(store_path) as tmp:
            template(times, plan.grid, plan.static, conf.predictors, conf.static_vars, conf.factor,
                     conf.regrid_method, plan.dx, plan.dy).to_zarr(
                tmp, mode="w", compute=False, zarr_format=ZARR_FORMAT, consolidated=True)
            stats = TrainStats(conf.predictors, plan.splits["train"])
            write_chunks(plan, zarr.open_group(str(tmp), mode="r+", zarr_format=ZARR_FORMAT), stats)
            zarr.consolidate_metadata(str(tmp), zarr_format=ZARR_FORMAT)
            meta = store_meta(times, plan.splits, plan.dt, plan.grid, conf.predictors, conf.static_vars,
                              conf.factor, conf.regrid_method, plan.dx, plan.dy,
                              stats.result(plan.static, conf.static_vars))
            write_json(meta_path, meta)
    finally:
        plan.close()
    log.info("store: done in %.1f s -> %s", _time.perf_counter() - t_start, store_path)


def write_chunks(plan: StorePlan, group: zarr.Group, stats: TrainStats) -> None:
    """Fill the ``target``, ``coarse`` and ``wind`` arrays of ``group``, ``plan.block`` times at a time."""
    times, block = plan.times, plan.block
    z_target, z_coarse, z_wind = group["target"], group["coarse"], group["wind"]
    for i0 in range(0, len(times), block):
        i1 = min(i0 + block, len(times))
        chunk_times = times[i0:i1]
        era = plan.era5.load(chunk_times)
        target = plan.cosmo.load(chunk_times).values.astype(np.float32)
        coarse, wind = plan.remap(era)
        z_target[i0:i1] = target
        z_coarse[i0:i1] = coarse
        z_wind[i0:i1] = wind
        stats.update(i0, i1, target, coarse)
        if (i0 // block) % max(1, 720 // block) == 0:
            log.info("store: wrote %d/%d times (%s)", i1, len(times), chunk_times[-1])
