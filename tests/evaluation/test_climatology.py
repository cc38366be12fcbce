"""Per-cell thresholds of the training period."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.evaluation.climatology import read_climatology, training_quantiles, write_climatology


def _store(tmp: Path, n_times: int = 200, ny: int = 6, nx: int = 5) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(0)
    target = (280 + np.arange(ny * nx).reshape(ny, nx)[None] + rng.normal(0, 2, (n_times, ny, nx))).astype(np.float32)
    ds = xr.Dataset({"target": (("time", "y", "x"), target)},
                    coords={"time": pd.date_range("2001-01-01", periods=n_times, freq="h"),
                            "rlat": ("y", np.linspace(-1, 1, ny)), "rlon": ("x", np.linspace(-2, 2, nx))})
    ds.to_zarr(tmp / "store.zarr", mode="w")
    (tmp / "store.json").write_text(json.dumps({"splits": {"train": [0, 150], "val": [150, 170], "test": [170, 200]}}))
    return tmp / "store.zarr", tmp / "store.json", target


def test_thresholds_are_the_per_cell_quantiles_of_the_training_split_only(tmp_path: Path) -> None:
    store, meta, target = _store(tmp_path)
    target[150:] += 50  # the test period must not leak into the thresholds (it is not read at all)
    quantiles = {"hot": 0.99, "cold": 0.01, "warm": 0.9}
    got = training_quantiles(store, meta, quantiles, memory_budget=150 * 5 * 8 * 2)  # two rows per block
    for name, q in quantiles.items():
        np.testing.assert_allclose(got[name], np.quantile(target[:150].astype(np.float64), q, axis=0), rtol=1e-12)
    strided = training_quantiles(store, meta, {"warm": 0.9}, time_stride=7)
    np.testing.assert_allclose(strided["warm"], np.quantile(target[0:150:7].astype(np.float64), 0.9, axis=0))


def test_written_file_round_trips(tmp_path: Path) -> None:
    store, meta, target = _store(tmp_path)
    write_climatology(store, meta, {"hot": 0.99, "cold": 0.01}, tmp_path / "clim.nc")
    back = read_climatology(tmp_path / "clim.nc")
    assert set(back) == {"hot", "cold"} and back["hot"].shape == (6, 5)
    assert np.all(back["hot"] > back["cold"])
    with xr.open_dataset(tmp_path / "clim.nc") as ds:
        assert ds["threshold_hot"].attrs["quantile"] == 0.99 and ds["threshold_hot"].dims == ("rlat", "rlon")


def test_bad_quantiles_are_refused(tmp_path: Path) -> None:
    store, meta, _ = _store(tmp_path)
    with pytest.raises(InputError, match="quantile hot must lie in"):
        training_quantiles(store, meta, {"hot": 99})
