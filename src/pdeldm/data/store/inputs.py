"""Reading the store's inputs: the static file, and the monthly ERA5 and COSMO files as streams.

The monthly files are opened lazily, one at a time, when the build first needs one of their times
(their value checks run then, one pass per file), and dropped once it has moved past them, so
memory is bounded by a chunk, never by the record length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.data.cosmo import grid_spacing_m, open_cosmo, projected_spacing_m, rotated_pole_params
from pdeldm.data.era5 import normalise_era5, open_era5
from pdeldm.data.regrid import TargetGrid
from pdeldm.errors import InputError

log = logging.getLogger("pdeldm.store")


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


def check_same_grid(da: xr.DataArray, grid: TargetGrid, source: str, static_path: Path) -> None:
    """A COSMO field must lie on the static file's grid (shape, axes and pole)."""
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


def probe_era5(path: Path, variables: Sequence[str]) -> xr.Dataset:
    """The first time step of an ERA5 file, normalised: its lattice, cheaply (one step is read)."""
    with xr.open_dataset(path) as raw:
        present = [v for v in variables if v in raw.data_vars]
        tdim = next((d for d in ("valid_time", "time") if d in raw.dims), None)
        return normalise_era5(raw[present].isel({tdim: slice(0, 1)}) if tdim else raw[present], path)


@dataclass(frozen=True, eq=False)
class Era5File:
    """Opens one monthly ERA5 file for the build; its lattice must be the first file's."""

    variables: list[str]
    fill_values: Mapping[str, float]
    freq: str | None  # ERA5's own step (it may be finer than the common one): each file's gap check
    lat: np.ndarray
    lon: np.ndarray
    reference: Path

    def __call__(self, path: Path) -> xr.Dataset:
        ds = open_era5([path], self.variables, fill_values=self.fill_values, freq=self.freq)
        for name, ref in (("latitude", self.lat), ("longitude", self.lon)):
            if ds.sizes[name] != ref.size or not np.allclose(ds[name].values, ref, atol=1e-6):
                raise InputError(f"{path}: ERA5 {name} grid differs from {self.reference}")
        return ds


@dataclass(frozen=True, eq=False)
class CosmoFile:
    """Opens one monthly COSMO-CLM file for the build; it must lie on the static file's grid."""

    variable: str
    grid: TargetGrid
    static_path: Path

    def __call__(self, path: Path) -> xr.DataArray:
        da = open_cosmo([path], self.variable)
        check_same_grid(da, self.grid, str(path), self.static_path)
        return da


def file_index(kind: str, files: Sequence[Path], times_of: Callable[[Path], pd.DatetimeIndex]) -> pd.Series:
    """Time -> the number of the file holding it, sorted by time (reads the time axes only).

    Raises:
        InputError: a time found in two files.
    """
    per_file = [times_of(f) for f in files]
    owner = np.concatenate([np.full(len(t), i) for i, t in enumerate(per_file)]) if per_file else np.zeros(0, int)
    index = pd.DatetimeIndex(np.concatenate([t.values for t in per_file])) if per_file else pd.DatetimeIndex([])
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        holders = [str(f) for f, t in zip(files, per_file, strict=True) if dup in t]
        raise InputError(f"duplicate {kind} time {dup.isoformat()} in {holders}; each time must come from one file")
    return pd.Series(owner, index=index).sort_index()


class FileStream:
    """Times -> data across many monthly files, opening each file (and checking it) once.

    Files are opened lazily when a requested time first falls in them and closed as soon as the
    requests have moved past them (requests come in ascending time order).
    """

    def __init__(self, files: Sequence[Path], owner: pd.Series,
                 opener: Callable[[Path], xr.Dataset | xr.DataArray]) -> None:
        self.files = list(files)
        self.owner = owner  # from file_index
        self.opener = opener
        self._open: dict[int, xr.Dataset | xr.DataArray] = {}

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.owner.index)

    def file_of(self, time: pd.Timestamp) -> Path:
        """The file that holds ``time``."""
        return self.files[int(self.owner.loc[time])]

    def get(self, i: int) -> xr.Dataset | xr.DataArray:
        if i not in self._open:
            self._open[i] = self.opener(self.files[i])
        return self._open[i]

    def load(self, times: pd.DatetimeIndex) -> xr.Dataset | xr.DataArray:
        """The data at ``times`` (ascending, later than any earlier request), loaded into memory."""
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
