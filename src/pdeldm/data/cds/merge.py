"""Merge the normalised per-group files of one month into the one file the store reads."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.io import atomic_output
from pdeldm.logs import stage_logger


def merge_groups(files: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 log: logging.Logger | None = None) -> Path:
    """Merge the normalised per-group files of one month into one file (atomically).

    The groups come from different CDS requests (even datasets), so the time axis and the grid
    must agree exactly; a variable may not appear in two groups.
    """
    log = log or stage_logger("cds")
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("merge: no ERA5 group files given")
    parts = [xr.load_dataset(p) for p in paths]
    ref, ref_path = parts[0], paths[0]
    seen: dict[str, Path] = {}
    for path, ds in zip(paths, parts, strict=True):
        for name in ("time", "latitude", "longitude"):
            if name not in ds.coords:
                raise InputError(f"{path}: no '{name}' coordinate; was it written by pdeldm.data.cds?")
            if ds.sizes[name] != ref.sizes[name] or not np.array_equal(ds[name].values, ref[name].values):
                raise InputError(f"{path}: '{name}' differs from {ref_path} (groups must share area and times)")
        for var in ds.data_vars:
            if var in seen:
                raise InputError(f"variable '{var}' is in both {seen[var]} and {path}; list it in one group only")
            seen[str(var)] = path
    merged = xr.merge(parts, join="exact", compat="override", combine_attrs="drop_conflicts")
    merged.attrs.pop("cds_request", None)
    merged.attrs["source_files"] = ", ".join(p.name for p in paths)
    encoding = {name: {"zlib": True, "complevel": 1} for name in merged.data_vars}
    with atomic_output(out) as tmp:
        merged.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    log.info("merged %d group files (%s) into %s", len(paths), ", ".join(sorted(seen)), out)
    return Path(out)
