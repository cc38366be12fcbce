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
"""

from __future__ import annotations

import logging
import math
import os
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from pdeldm.data.cosmo import (
    cosmo_times,
    grid_mapping_cf_attrs,
    grid_spacing_m,
    open_cosmo,
    projected_spacing_m,
    rotated_pole_params,
)
from pdeldm.data.era5 import era5_times, normalise_era5, open_era5
from pdeldm.data.regrid import (
    Regridder,
    TargetGrid,
    check_aligned,
    coarsen_to_aligned,
    rotate_wind_to_grid,
    wind_to_grid_matrix,
)
from pdeldm.errors import InputError
from pdeldm.io import atomic_output, write_json

log = logging.getLogger("pdeldm.store")

TIME_CHUNK = 24
STATIC_VARS: tuple[str, ...] = ("HSURF", "FR_LAND", "lat")
WIND_VARS: tuple[str, str] = ("u10", "v10")
ZARR_FORMAT = 2  # v3 has no spec yet for the fixed-length string coords (cvar/svar) and consolidation


# --------------------------------------------------------------------------------------------
# configuration and time split


def _validate_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(cfg)
    for key in ("factor", "predictors", "split"):
        if key not in out:
            raise InputError(f"store config: missing key '{key}' (have {sorted(out)})")
    factor = out["factor"]
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
        raise InputError(f"store config: 'factor' must be a positive integer, got {factor!r}")
    preds = out["predictors"]
    if not isinstance(preds, (list, tuple)) or not preds or len(set(preds)) != len(preds):
        raise InputError(f"store config: 'predictors' must be a non-empty list of distinct ERA5 variables, got {preds!r}")
    out["predictors"] = [str(p) for p in preds]
    method = out.setdefault("regrid_method", "conservative")
    if method not in ("conservative", "bilinear"):
        raise InputError(f"store config: 'regrid_method' must be 'conservative' or 'bilinear', got {method!r}")
    split = out["split"]
    if not isinstance(split, Mapping) or "train" not in split:
        raise InputError(f"store config: 'split' must map block names (train, val, test) to [start, end]; got {split!r}")
    out.setdefault("static_vars", list(STATIC_VARS))
    # ERA5 SST is NaN over land; freezing sea water (271.35 K) is the usual fill, and FR_LAND tells
    # the network where it is meaningless.
    out.setdefault("fill_values", {"sst": 271.35})
    out.setdefault("supersample", 4)
    out.setdefault("wind_frame", "grid")
    if out["wind_frame"] not in ("grid", "geographic"):
        raise InputError(f"store config: 'wind_frame' must be 'grid' or 'geographic', got {out['wind_frame']!r}")
    out.setdefault("cosmo_variable", "T_2M")
    out.setdefault("time_step", None)
    out.setdefault("memory_mb", 512)
    return out


@dataclass(frozen=True)
class _Block:
    name: str
    start: pd.Timestamp
    end_excl: pd.Timestamp  # exclusive bound: a date-only end includes that whole day
    label: tuple[str, str]


def _parse_blocks(split: Mapping[str, Sequence[str]]) -> list[_Block]:
    blocks = []
    for name, bounds in split.items():
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise InputError(f"store config: split '{name}' must be [start, end], got {bounds!r}")
        try:
            start, end = pd.Timestamp(str(bounds[0])), pd.Timestamp(str(bounds[1]))
        except ValueError as exc:
            raise InputError(f"store config: split '{name}' has an unparsable date ({exc})") from None
        date_only = len(str(bounds[1]).strip()) <= 10
        end_excl = end + pd.Timedelta(days=1) if date_only else end + pd.Timedelta(1, "ns")
        if end_excl <= start:
            raise InputError(f"store config: split '{name}' is unordered: end {bounds[1]} is before start {bounds[0]}")
        blocks.append(_Block(str(name), start, end_excl, (str(bounds[0]), str(bounds[1]))))
    ordered = sorted(blocks, key=lambda b: b.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.end_excl:
            raise InputError(
                f"store config: split blocks '{a.name}' {list(a.label)} and '{b.name}' {list(b.label)} overlap; "
                "blocks must be contiguous, non-overlapping periods"
            )
    return ordered


def _select_times(
    era5_t: pd.DatetimeIndex, cosmo_t: pd.DatetimeIndex, blocks: list[_Block], step: str | None
) -> tuple[pd.DatetimeIndex, dict[str, list[int]], pd.Timedelta]:
    """Store times = the ERA5/COSMO intersection within the split blocks, each block fully covered."""
    common = era5_t.intersection(cosmo_t).sort_values()
    if step is not None:
        dt = pd.Timedelta(step)
    elif len(common) > 1:
        dt = pd.Timedelta(np.median(np.diff(common.values)))
    else:
        dt = pd.Timedelta("1h")

    def span(index: pd.DatetimeIndex) -> str:
        return f"{index[0].isoformat()}..{index[-1].isoformat()}" if len(index) else "nothing"

    pieces: list[pd.DatetimeIndex] = []
    splits: dict[str, list[int]] = {}
    n = 0
    for b in blocks:
        sel = common[(common >= b.start) & (common < b.end_excl)]
        if len(sel) == 0:
            raise InputError(
                f"split '{b.name}' {list(b.label)} selects zero times: ERA5 covers {span(era5_t)}, COSMO covers {span(cosmo_t)}"
            )
        k = math.floor((sel[0] - b.start) / dt)
        expected = pd.date_range(sel[0] - k * dt, b.end_excl - pd.Timedelta(1, "ns"), freq=dt)
        missing = expected.difference(sel)
        if len(missing):
            first = missing[0]
            where = [name for name, idx in (("ERA5", era5_t), ("COSMO", cosmo_t)) if first not in idx]
            raise InputError(
                f"split '{b.name}' {list(b.label)} is not covered: {len(missing)} of {len(expected)} expected "
                f"{dt} steps missing, first {first.isoformat()} (absent from {' and '.join(where)} files)"
            )
        pieces.append(sel)
        splits[b.name] = [n, n + len(sel)]
        n += len(sel)
    times = pieces[0].append(pieces[1:]) if len(pieces) > 1 else pieces[0]
    return pd.DatetimeIndex(times), splits, dt


# --------------------------------------------------------------------------------------------
# inputs


def read_static(path: Path, variables: Sequence[str], factor: int) -> tuple[xr.Dataset, TargetGrid, float, float]:
    """The fine-grid static file: dataset, target grid and spacing (m); checks variables, NaNs, FR_LAND."""
    if not path.exists():
        raise InputError(f"{path}: static file does not exist")
    ds = xr.open_dataset(path).load()
    ds.close()
    missing = [v for v in list(variables) + ["lat", "lon"] if v not in ds.variables]
    for c in ("rlat", "rlon"):
        if c not in ds.coords:
            missing.append(c)
    if missing:
        raise InputError(f"{path}: static file lacks {missing}; has {sorted(str(v) for v in ds.variables)}")
    try:
        grid = TargetGrid.from_xarray(ds)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    ny, nx = grid.shape
    if ny % factor or nx % factor:
        raise InputError(f"{path}: fine grid ({ny}, {nx}) is not a multiple of factor {factor}")
    for v in variables:
        arr = ds[v].squeeze(drop=True)
        if arr.dims != ("rlat", "rlon"):
            raise InputError(f"{path}: static variable '{v}' has dims {arr.dims}; expected (rlat, rlon)")
        nan = int(arr.isnull().sum())
        if nan:
            raise InputError(f"{path}: static variable '{v}' has {nan} NaN values")
    if "FR_LAND" in variables and float(ds["FR_LAND"].max()) > 1.0 + 1e-6:
        raise InputError(f"{path}: FR_LAND max {float(ds['FR_LAND'].max()):g} > 1: expected a fraction 0..1 (percent?)")
    if "dx_m" in ds.attrs and "dy_m" in ds.attrs:
        dx, dy = float(ds.attrs["dx_m"]), float(ds.attrs["dy_m"])
    else:
        dx, dy = projected_spacing_m(grid.rlat, grid.rlon, str(path)) if grid.projected else grid_spacing_m(grid.rlat, grid.rlon)
        log.warning("%s has no dx_m/dy_m attributes; computed %.1f, %.1f m from rlat/rlon", path, dx, dy)
    return ds, grid, dx, dy


def _check_same_grid(da: xr.DataArray, grid: TargetGrid, source: str, static_path: Path) -> None:
    shape = (da.sizes["rlat"], da.sizes["rlon"])
    pole = rotated_pole_params(da)
    same = (
        shape == grid.shape
        and np.allclose(da["rlat"].values, grid.rlat, atol=1e-4)
        and np.allclose(da["rlon"].values, grid.rlon, atol=1e-4)
        and all(abs(pole[k] - grid.pole[k]) < 1e-5 for k in grid.pole)
    )
    if not same:
        raise InputError(
            f"grid mismatch: COSMO file {source} has {shape} cells, rlat {float(da.rlat[0]):.4f}..{float(da.rlat[-1]):.4f}, "
            f"rlon {float(da.rlon[0]):.4f}..{float(da.rlon[-1]):.4f}, pole {pole}; static file {static_path} has "
            f"{grid.shape}, rlat {grid.rlat[0]:.4f}..{grid.rlat[-1]:.4f}, rlon {grid.rlon[0]:.4f}..{grid.rlon[-1]:.4f}, pole {grid.pole}"
        )


class _FileStream:
    """Times -> data across many monthly files, opening each file (and checking it) once.

    Files are opened lazily when a requested time first falls in them and closed as soon as the
    requests have moved past them (requests come in ascending time order).
    """

    def __init__(self, kind: str, files: Sequence[Path], times_of: Callable[[Path], pd.DatetimeIndex],
                 opener: Callable[[Path], xr.Dataset | xr.DataArray]) -> None:
        self.kind = kind
        self.files = list(files)
        self.opener = opener
        self._open: dict[int, xr.Dataset | xr.DataArray] = {}
        per_file = [times_of(f) for f in self.files]
        owner = np.concatenate([np.full(len(t), i) for i, t in enumerate(per_file)]) if per_file else np.zeros(0, int)
        index = pd.DatetimeIndex(np.concatenate([t.values for t in per_file])) if per_file else pd.DatetimeIndex([])
        if index.has_duplicates:
            dup = index[index.duplicated()][0]
            holders = [str(f) for f, t in zip(self.files, per_file, strict=True) if dup in t]
            raise InputError(f"duplicate {kind} time {dup.isoformat()} in {holders}; each time must come from one file")
        self.owner = pd.Series(owner, index=index).sort_index()

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.owner.index)

    def get(self, i: int) -> xr.Dataset | xr.DataArray:
        if i not in self._open:
            self._open[i] = self.opener(self.files[i])
        return self._open[i]

    def load(self, times: pd.DatetimeIndex) -> xr.Dataset | xr.DataArray:
        owners = self.owner.loc[times].to_numpy()
        first_needed = int(owners.min())
        for i in [k for k in self._open if k < first_needed]:
            self._open.pop(i).close()
        parts = []
        for i in pd.unique(owners):
            ts = times[owners == i]
            parts.append(self.get(int(i)).sel(time=ts).load())
        return xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]

    def close(self) -> None:
        for obj in self._open.values():
            obj.close()
        self._open.clear()


class _RunningStats:
    """Mean and variance over streamed chunks (Chan et al. parallel merge, float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size == 0:
            return
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta**2 * self.n * n_b / n
        self.n = n

    def result(self) -> dict[str, float]:
        std = math.sqrt(self.m2 / self.n) if self.n else 0.0
        # A constant field (e.g. all-land FR_LAND in a small region) would divide by zero.
        return {"mean": self.mean, "std": std if std > 1e-8 else 1.0}


# --------------------------------------------------------------------------------------------
# ERA5 predictors -> the coarse grid (shared by the store and by downscaling new ERA5 files)


def predictor_regridder(era5_lat: np.ndarray, era5_lon: np.ndarray, grid: TargetGrid, method: str,
                        supersample: int = 4, memory_mb: float = 256) -> Regridder:
    """The regridder that takes ERA5 predictors to the fine grid (``method``: conservative or bilinear)."""
    return Regridder(era5_lat, era5_lon, grid, method, supersample=int(supersample), memory_mb=memory_mb)


def coarse_predictors(era: xr.Dataset, regrid: Regridder, predictors: Sequence[str],
                      factor: int) -> tuple[np.ndarray, xr.Dataset]:
    """ERA5 predictors of some time steps -> the store's ``coarse`` array and the fine-grid fields.

    The predictors are remapped to the fine grid and block-averaged onto the coarse grid aligned
    ``factor``:1 with it; returns ``(coarse (time, cvar, yc, xc) float32 in physical units, fine)``.
    """
    fine = regrid(era[list(predictors)])
    coarse = coarsen_to_aligned(fine, factor)
    return np.stack([coarse[v].values for v in predictors], axis=1).astype(np.float32), fine


# --------------------------------------------------------------------------------------------
# build


def _template(times: pd.DatetimeIndex, grid: TargetGrid, static: np.ndarray, cfg: dict[str, Any],
              dx: float, dy: float) -> xr.Dataset:
    f = cfg["factor"]
    ny, nx = grid.shape
    nyc, nxc = ny // f, nx // f
    nt, nc = len(times), len(cfg["predictors"])
    empty = lambda *shape: dsa.zeros(shape, chunks=(TIME_CHUNK, *shape[1:]), dtype=np.float32)  # noqa: E731
    rlat_c = grid.rlat.reshape(nyc, f).mean(axis=1)
    rlon_c = grid.rlon.reshape(nxc, f).mean(axis=1)
    axis = grid.axis_attrs()
    ds = xr.Dataset(
        {
            "target": (("time", "y", "x"), empty(nt, ny, nx), {"units": "K", "long_name": "COSMO-CLM 2-m temperature"}),
            "coarse": (("time", "cvar", "yc", "xc"), empty(nt, nc, nyc, nxc),
                       {"long_name": f"ERA5 predictors, {cfg['regrid_method']} to the fine grid, {f}x{f} block mean"}),
            "wind": (("time", "wvar", "y", "x"), empty(nt, 2, ny, nx),
                     {"units": "m s-1", "frame": cfg["wind_frame"],
                      "long_name": "ERA5 10-m wind, bilinear to the fine grid"
                      + (", components along +rlon/+rlat" if cfg["wind_frame"] == "grid" else ", eastward/northward")}),
            "static": (("svar", "y", "x"), static.astype(np.float32)),
        },
        coords={
            "time": times.values,
            "rlat": ("y", grid.rlat, axis["rlat"]),
            "rlon": ("x", grid.rlon, axis["rlon"]),
            "rlat_c": ("yc", rlat_c, {"units": axis["rlat"]["units"]}),
            "rlon_c": ("xc", rlon_c, {"units": axis["rlon"]["units"]}),
            "lat": (("y", "x"), grid.lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("y", "x"), grid.lon, {"standard_name": "longitude", "units": "degrees_east"}),
            "cvar": list(cfg["predictors"]),
            "svar": list(cfg["static_vars"]),
            "wvar": list(WIND_VARS),
        },
        attrs={"dx_m": dx, "dy_m": dy, "factor": f, "regrid_method": cfg["regrid_method"],
               **grid_mapping_cf_attrs(grid.pole)},
    )
    return ds


def build_store(
    era5_files: Sequence[str | os.PathLike[str]],
    cosmo_files: Sequence[str | os.PathLike[str]],
    static_path: str | os.PathLike[str],
    store_path: str | os.PathLike[str],
    meta_path: str | os.PathLike[str],
    cfg: Mapping[str, Any],
) -> None:
    """Build the training store and its metadata JSON (interfaces §3).

    ``cfg`` keys: ``factor``, ``predictors``, ``regrid_method``, ``split`` (required as in the
    contract) and optional ``static_vars`` (default HSURF, FR_LAND, lat), ``fill_values`` (NaN
    fills for maskable ERA5 variables; default ``{"sst": 271.35}``), ``supersample``
    (conservative sub-cell points per axis, 4), ``wind_frame`` (``grid`` default, or
    ``geographic``), ``cosmo_variable`` (T_2M; tas is accepted either way), ``time_step``
    (default: inferred from the common times), ``memory_mb`` (working-memory target, 512).

    Raises:
        InputError: bad config, split not covered by both sources, grid mismatch between COSMO and
        the static file, ERA5 not covering the domain, or any reader check (units, NaNs, ...).
    """
    t_start = _time.perf_counter()
    cfg = _validate_cfg(cfg)
    static_path = Path(static_path)
    era5_paths = sorted(Path(f) for f in era5_files)
    cosmo_paths = sorted(Path(f) for f in cosmo_files)
    if not era5_paths or not cosmo_paths:
        raise InputError(f"build_store: need ERA5 and COSMO files, got {len(era5_paths)} and {len(cosmo_paths)}")
    factor = cfg["factor"]
    blocks = _parse_blocks(cfg["split"])
    static_ds, grid, dx, dy = read_static(static_path, cfg["static_vars"], factor)
    static_arr = np.stack([static_ds[v].squeeze(drop=True).values.astype(np.float32) for v in cfg["static_vars"]])

    predictors = cfg["predictors"]
    era5_vars = list(dict.fromkeys([*predictors, *WIND_VARS]))
    step = cfg["time_step"]

    # ERA5 grid from the first file (cheap: one time step); every later file must match it.
    with xr.open_dataset(era5_paths[0]) as raw:
        present = [v for v in era5_vars if v in raw.data_vars]
        tdim = next((d for d in ("valid_time", "time") if d in raw.dims), None)
        probe = normalise_era5(raw[present].isel({tdim: slice(0, 1)}) if tdim else raw[present], era5_paths[0])
        era5_lat, era5_lon = probe["latitude"].values.copy(), probe["longitude"].values.copy()

    def open_era5_file(path: Path) -> xr.Dataset:
        ds = open_era5([path], era5_vars, fill_values=cfg["fill_values"], freq=era5_step)
        for name, ref in (("latitude", era5_lat), ("longitude", era5_lon)):
            if ds.sizes[name] != ref.size or not np.allclose(ds[name].values, ref, atol=1e-6):
                raise InputError(f"{path}: ERA5 {name} grid differs from {era5_paths[0]}")
        return ds

    def open_cosmo_file(path: Path) -> xr.DataArray:
        da = open_cosmo([path], cfg["cosmo_variable"])
        _check_same_grid(da, grid, str(path), static_path)
        return da

    era5_stream = _FileStream("ERA5", era5_paths, era5_times, open_era5_file)
    cosmo_stream = _FileStream("COSMO", cosmo_paths, cosmo_times, open_cosmo_file)
    times, splits, dt = _select_times(era5_stream.times, cosmo_stream.times, blocks, step)
    # Each ERA5 file is checked for gaps at ERA5's own step (it may be finer than the common one).
    era5_t = era5_stream.times
    era5_step = str(pd.Timedelta(np.median(np.diff(era5_t.values)))) if len(era5_t) > 1 else None

    # Grid and coverage checks up front (metadata only), so they fail before any heavy work.
    first_path = cosmo_paths[int(cosmo_stream.owner.loc[times[0]])]
    first_cosmo = open_cosmo([first_path], cfg["cosmo_variable"], check_values=False)
    _check_same_grid(first_cosmo, grid, str(first_path), static_path)
    first_cosmo.close()
    budget = cfg["memory_mb"] / 2
    regrid_pred = predictor_regridder(era5_lat, era5_lon, grid, cfg["regrid_method"], int(cfg["supersample"]), budget)
    regrid_wind = regrid_pred if cfg["regrid_method"] == "bilinear" else Regridder(era5_lat, era5_lon, grid, "bilinear", memory_mb=budget)
    regrid_pred.check_coverage(probe)
    regrid_wind.check_coverage(probe)
    wind_matrix = wind_to_grid_matrix(grid) if cfg["wind_frame"] == "grid" else None

    # Process whole zarr chunks, as many per step as the memory budget allows (small grids: up to a
    # month per step, so per-call overheads do not dominate; paper-scale grids: one day). The
    # regridders sub-chunk their own working memory (``memory_mb`` each).
    ny, nx = grid.shape
    per_step = 8 * ny * nx * (1 + 2 * len(predictors) + 6)  # target, fine predictors, winds, float64 temporaries
    block = TIME_CHUNK * int(np.clip(cfg["memory_mb"] * 2**20 // (per_step * TIME_CHUNK), 1, 31))

    log.info("store: %d times (%s .. %s, step %s), fine grid %s, factor %d, predictors %s, %s",
             len(times), times[0], times[-1], dt, grid.shape, factor, predictors, cfg["regrid_method"])
    train0, train1 = splits["train"]
    stats_target = _RunningStats()
    stats_coarse = {v: _RunningStats() for v in predictors}

    store_path = Path(store_path)
    try:
        with atomic_output(store_path) as tmp:
            template = _template(times, grid, static_arr, cfg, dx, dy)
            template.to_zarr(tmp, mode="w", compute=False, zarr_format=ZARR_FORMAT, consolidated=True)
            group = zarr.open_group(str(tmp), mode="r+", zarr_format=ZARR_FORMAT)
            z_target, z_coarse, z_wind = group["target"], group["coarse"], group["wind"]
            for i0 in range(0, len(times), block):
                i1 = min(i0 + block, len(times))
                chunk_times = times[i0:i1]
                era = era5_stream.load(chunk_times)
                target = cosmo_stream.load(chunk_times).values.astype(np.float32)

                coarse_arr, fine = coarse_predictors(era, regrid_pred, predictors, factor)
                wfine = fine if regrid_wind is regrid_pred and all(w in predictors for w in WIND_VARS) \
                    else regrid_wind(era[list(WIND_VARS)])
                u, v = wfine[WIND_VARS[0]], wfine[WIND_VARS[1]]
                if cfg["wind_frame"] == "grid":
                    u, v = rotate_wind_to_grid(u, v, grid, wind_matrix)
                wind_arr = np.stack([u.values, v.values], axis=1).astype(np.float32)

                z_target[i0:i1] = target
                z_coarse[i0:i1] = coarse_arr
                z_wind[i0:i1] = wind_arr

                # Normalisation statistics: the part of this chunk inside the train block only.
                a, b = max(i0, train0) - i0, min(i1, train1) - i0
                if b > a:
                    stats_target.update(target[a:b])
                    for k, var in enumerate(predictors):
                        stats_coarse[var].update(coarse_arr[a:b, k])
                if (i0 // block) % max(1, 720 // block) == 0:
                    log.info("store: wrote %d/%d times (%s)", i1, len(times), chunk_times[-1])
            zarr.consolidate_metadata(str(tmp), zarr_format=ZARR_FORMAT)

            static_stats = {}
            for k, var in enumerate(cfg["static_vars"]):
                s = _RunningStats()
                s.update(static_arr[k])
                static_stats[var] = s.result()
            nyc, nxc = grid.shape[0] // factor, grid.shape[1] // factor
            check_aligned(grid.shape, (nyc, nxc), factor)
            meta = {
                "factor": factor,
                "dx_m": dx,
                "dy_m": dy,
                "shape": list(grid.shape),
                "coarse_shape": [nyc, nxc],
                "predictors": list(predictors),
                "static_vars": list(cfg["static_vars"]),
                "splits": splits,
                "split_dates": {b.name: [times[splits[b.name][0]].isoformat(), times[splits[b.name][1] - 1].isoformat()]
                                for b in blocks},
                "norm": {
                    "target": stats_target.result(),
                    "coarse": {v: stats_coarse[v].result() for v in predictors},
                    "static": static_stats,
                },
                "n_times": len(times),
                "time_step": str(dt),
                "regrid_method": cfg["regrid_method"],
                "supersample": int(cfg["supersample"]),
                "fill_values": dict(cfg["fill_values"]),
                "wind_frame": cfg["wind_frame"],
                # CF attributes of the grid mapping (rotated pole or LAEA with crs_wkt); stores built
                # before projected grids had the rotated-pole parameters under "rotated_pole".
                "grid_mapping": grid_mapping_cf_attrs(grid.pole),
            }
            write_json(meta_path, meta)
    finally:
        era5_stream.close()
        cosmo_stream.close()
    log.info("store: done in %.1f s -> %s", _time.perf_counter() - t_start, store_path)


def open_store(store_path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a store lazily (dask-backed; nothing is read until used)."""
    path = Path(store_path)
    if not path.is_dir():
        raise InputError(f"{path}: store does not exist (run the 'store' stage)")
    try:
        return xr.open_zarr(path, consolidated=True)
    except Exception as exc:  # pragma: no cover - zarr-specific message
        raise InputError(f"{path}: cannot be opened as a zarr store ({exc})") from exc
