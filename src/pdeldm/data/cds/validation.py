"""Is the downloaded file what was asked for? Open it, check it, normalise it.

A size check alone does not prove that a file holds what was requested. :func:`validated_month`
opens the download (a zip of several netCDFs is merged), flattens pressure levels into one
variable per level, and checks, with messages that name the dataset, group, month and target:

* variables, units, time steps and area (:func:`pdeldm.data.era5.check_era5_file`);
* the grid: every latitude and longitude on the lattice the request implies (0.25 degree for
  ERA5), at that spacing -- a grid shifted by less than half a cell passes an area check;
* missing values: a variable may only be NaN where it is NaN at every time step (the land mask of
  SST); NaNs that move between time steps are corrupt data, not a mask.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pdeldm.data.cds.errors import PermanentCDSError
from pdeldm.errors import InputError

#: Maskable variables (NaN where undefined, e.g. SST over land) and the fill the store uses.
MASKABLE: dict[str, float] = {"sst": 271.35}
#: How far (degrees) a coordinate may sit from the lattice (the CDS writes float64 multiples).
LATTICE_TOLERANCE = 1e-4

WHAT_TO_DO = ("not retried automatically (the same request would most likely get the same file) and "
              "nothing was written to the target: check the dataset's CDS page for known problems, run "
              "the fetch again later, and report it to the CDS if it persists")


def open_download(raw: Path, workdir: Path) -> xr.Dataset:
    """Open the downloaded file; a zip (the CDS zips several netCDFs, e.g. instant + accum) is merged.

    Raises:
        InputError: not a readable netCDF (or a zip without netCDF files).
    """
    try:
        if zipfile.is_zipfile(raw):
            with zipfile.ZipFile(raw) as archive:
                members = [m for m in archive.namelist() if m.endswith(".nc")]
                if not members:
                    raise InputError(f"the CDS sent a zip without netCDF files: {archive.namelist()}")
                parts = []
                for i, member in enumerate(sorted(members)):
                    part = workdir / f"part{i}.nc"
                    with archive.open(member) as src, open(part, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    parts.append(xr.load_dataset(part))
            return xr.merge(parts, compat="override", join="exact", combine_attrs="override")
        return xr.load_dataset(raw)
    except InputError:
        raise
    except Exception as exc:  # netCDF/HDF5 errors come in many types
        head = raw.read_bytes()[:64] if raw.exists() else b""
        first_line = (str(exc).splitlines() or [""])[0]
        raise InputError(
            f"the downloaded file is not a readable netCDF ({type(exc).__name__}: {first_line}); "
            f"first bytes: {head!r}"
        ) from exc


def flatten_levels(ds: xr.Dataset) -> xr.Dataset:
    """Turn pressure-level variables into one variable per level (``t`` -> ``t850``)."""
    level_dim = next((d for d in ("pressure_level", "level", "isobaricInhPa") if d in ds.dims), None)
    if level_dim is None:
        return ds
    out = ds.drop_vars([v for v in ds.data_vars if level_dim in ds[v].dims])
    for name, var in ds.data_vars.items():
        if level_dim not in var.dims:
            continue
        for level in ds[level_dim].values:
            flat = var.sel({level_dim: level}).drop_vars(level_dim)
            flat.attrs = {**var.attrs, "pressure_level_hPa": float(level)}
            out[f"{name}{int(float(level))}"] = flat
    return out.drop_vars(level_dim, errors="ignore")


def check_lattice(ds: xr.Dataset, step: tuple[float, float]) -> None:
    """Every latitude/longitude is a whole multiple of ``step`` (dlat, dlon) and neighbours are one step apart.

    Raises:
        InputError: naming the axis, the worst offset and the spacing found.
    """
    for axis, names, d in (("latitude", ("latitude", "lat"), step[0]), ("longitude", ("longitude", "lon"), step[1])):
        name = next((n for n in names if n in ds.coords), None)
        if name is None:
            raise InputError(f"no {axis} coordinate (looked for {list(names)})")
        values = np.asarray(ds[name].values, dtype=np.float64)
        offset = values / d - np.round(values / d)
        worst = int(np.argmax(np.abs(offset)))
        if abs(offset[worst]) * d > LATTICE_TOLERANCE:
            raise InputError(
                f"the {axis} axis is off the requested {d:g}-degree lattice: {values[worst]:.4f} is "
                f"{abs(offset[worst]) * d:.4f} degrees from the nearest lattice point "
                f"({values.size} values from {values.min():.4f} to {values.max():.4f})"
            )
        if values.size > 1:
            spacing = np.abs(np.diff(np.sort(values)))
            if np.any(np.abs(spacing - d) > LATTICE_TOLERANCE):
                raise InputError(
                    f"the {axis} spacing is {float(np.median(spacing)):.4f} degrees (from "
                    f"{spacing.min():.4f} to {spacing.max():.4f}), not the requested {d:g}"
                )


def check_nan_pattern(ds: xr.Dataset, variables: Sequence[str]) -> None:
    """A variable with NaNs must have them at the same cells at every time step (a fixed mask).

    Raises:
        InputError: naming the variable, the first time step whose NaNs differ and by how many cells.
    """
    tdim = next((d for d in ("valid_time", "time") if d in ds.dims), None)
    for name in variables:
        if name not in ds.data_vars or tdim is None or tdim not in ds[name].dims:
            continue
        missing = np.isnan(ds[name].transpose(tdim, ...).values)
        if not missing.any():
            continue
        differs = (missing != missing[:1]).reshape(missing.shape[0], -1).sum(axis=1)
        if differs.any():
            first = int(np.flatnonzero(differs)[0])
            stamp = np.datetime_as_string(ds[tdim].values[first], unit="m")
            raise InputError(
                f"variable '{name}' has missing values that move between time steps: at {stamp} "
                f"{int(differs[first])} cell(s) differ from the first time step's mask "
                f"({int(np.count_nonzero(differs))} of {missing.shape[0]} time steps differ); a land "
                "mask is the same at every time step, so the values are corrupt"
            )


def validated_month(
    raw: Path,
    scratch: Path,
    *,
    expected: Sequence[str],
    times: Any,
    area: Sequence[float] | None,
    step: tuple[float, float],
    label: str,
    source: Mapping[str, str],
) -> xr.Dataset:
    """Open, check and normalise one downloaded month (see the module docstring).

    ``scratch`` is a folder for temporary files; ``source`` becomes global attributes of the result.

    Raises:
        PermanentCDSError: the file is not what was asked for; the message names ``label`` and
        says what to do.
    """
    from pdeldm.data import era5  # the sibling module that owns the ERA5 format rules

    try:
        ds = flatten_levels(open_download(raw, scratch))
        checked = scratch / "checked.nc"  # what check_era5_file reads (zips merged, levels flat)
        ds.to_netcdf(checked)
        # ERA5 SST is NaN over land; allow that in the check (the file keeps the NaNs)
        maskable = {name: fill for name, fill in MASKABLE.items() if name in expected}
        era5.check_era5_file(checked, list(expected), times=times, area=area, fill_values=maskable)
        check_lattice(ds, step)
        check_nan_pattern(ds, list(maskable))
    except InputError as exc:
        # the messages of the checks name the scratch file; the user needs the target instead
        detail = str(exc).replace(f"{checked}: ", "") if "checked" in locals() else str(exc)
        raise PermanentCDSError(
            f"{label}: the CDS sent a file that does not match the request: {detail}; {WHAT_TO_DO}"
        ) from None
    normalised = era5.normalise_era5(ds)
    normalised.attrs.update(source)
    return normalised
