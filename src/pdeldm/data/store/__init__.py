"""The training store: ERA5 predictors and COSMO-CLM targets on aligned grids, split in time.

Layout (docs/interfaces.md §3), zarr format 2 with consolidated metadata:

- ``target (time, y, x)``: COSMO-CLM T_2M in K;
- ``coarse (time, cvar, yc, xc)``: ERA5 predictors remapped to the fine grid (``regrid_method``)
  and block-averaged onto the coarse grid aligned ``factor``:1 with it (physical units);
- ``wind (time, wvar, y, x)``: ERA5 u10/v10 bilinearly interpolated to the fine grid and rotated
  to grid-relative components (along +rlon, +rlat), m/s;
- ``static (svar, y, x)``: HSURF (m), FR_LAND (0..1), lat (deg);
- coords ``time``, ``rlat (y)``, ``rlon (x)``, ``rlat_c (yc)``, ``rlon_c (xc)``, ``cvar``, ``svar``,
  ``wvar``, 2-D ``lat``/``lon``; attrs ``dx_m``, ``dy_m``, ``factor`` and the rotated pole.

The build streams: it walks the store's time axis one zarr chunk (24 steps) at a time, opening
each monthly source file when first needed (its value checks run then, one pass per file) and
dropping it when done, so memory is bounded by a chunk, never by the record length. Normalisation
statistics accumulate over the train block only (parallel mean/variance merge in float64). The
store directory is written atomically and the metadata JSON is written before the store is
renamed into place, so a failure anywhere leaves neither a store nor a stale pairing.

One job per module:

* :mod:`.config` -- the keys a caller gives, their defaults and checks;
* :mod:`.layout` -- the zarr template, the metadata JSON and the fixed build settings;
* :mod:`.split` -- the time split: blocks, store times, coverage checks;
* :mod:`.inputs` -- the static file, and the monthly ERA5/COSMO files as lazily opened streams;
* :mod:`.predictors` -- ERA5 to the coarse grid (shared with ``pdeldm downscale``) and the winds;
* :mod:`.stats` -- train-only normalisation statistics over streamed chunks;
* :mod:`.plan` -- the plan of a build: every check before the heavy work;
* :mod:`.build` -- :func:`build_store`: the plan, then its steps, written atomically;
* :mod:`.read` -- :func:`open_store`.
"""

from __future__ import annotations

from pdeldm.data.store.build import build_store
from pdeldm.data.store.inputs import read_static
from pdeldm.data.store.layout import STATIC_VARS, TIME_CHUNK, WIND_VARS, ZARR_FORMAT
from pdeldm.data.store.predictors import coarse_predictors, predictor_regridder
from pdeldm.data.store.read import open_store

__all__ = [
    "STATIC_VARS",
    "TIME_CHUNK",
    "WIND_VARS",
    "ZARR_FORMAT",
    "build_store",
    "coarse_predictors",
    "open_store",
    "predictor_regridder",
    "read_static",
]
