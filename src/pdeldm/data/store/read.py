"""Reading a built store: the API that datasets, stages and analyses open it with."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from pdeldm.errors import InputError


def open_store(store_path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a store lazily (dask-backed; nothing is read until used)."""
    path = Path(store_path)
    if not path.is_dir():
        raise InputError(f"{path}: store does not exist (run the 'store' stage)")
    try:
        return xr.open_zarr(path, consolidated=True)
    except Exception as exc:  # pragma: no cover - zarr-specific message
        raise InputError(f"{path}: cannot be opened as a zarr store ({exc})") from exc
