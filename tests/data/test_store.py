"""The training store: layout (interfaces §3), train-only statistics, split checks, atomicity."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from pdeldm.data.store import build_store, open_store
from pdeldm.errors import InputError


def test_layout_and_metadata(built_store):
    ds = open_store(built_store.store)
    meta = json.loads(built_store.meta.read_text())
    ny, nx = built_store.inputs.grid.shape
    n = meta["n_times"]
    assert n == (31 + 28) * 24
    assert ds["target"].dims == ("time", "y", "x") and ds["target"].shape == (n, ny, nx)
    assert ds["coarse"].dims == ("time", "cvar", "yc", "xc") and ds["coarse"].shape == (n, 3, ny // 8, nx // 8)
    assert ds["wind"].dims[:2] == ("time", "wvar") and ds["wind"].shape == (n, 2, ny, nx)
    assert ds["static"].dims == ("svar", "y", "x")
    assert all(ds[v].dtype == np.float32 for v in ("target", "coarse", "wind", "static"))
    for v in ("target", "coarse", "wind"):
        assert ds[v].encoding["chunks"][0] == 24 and ds[v].encoding["chunks"][1:] == ds[v].shape[1:]
    assert list(ds["cvar"].values) == ["t2m", "u10", "v10"]
    assert list(ds["svar"].values) == ["HSURF", "FR_LAND", "lat"]
    assert np.issubdtype(ds["time"].dtype, np.datetime64)
    np.testing.assert_allclose(ds["rlat"].values, built_store.inputs.grid.rlat)
    np.testing.assert_allclose(ds["rlat_c"].values, built_store.inputs.grid.rlat.reshape(-1, 8).mean(1))
    np.testing.assert_allclose(ds["rlon_c"].values, built_store.inputs.grid.rlon.reshape(-1, 8).mean(1))
    assert ds.attrs["factor"] == 8 and ds.attrs["dx_m"] == pytest.approx(meta["dx_m"])
    static_attrs = xr.open_dataset(built_store.inputs.static).attrs
    assert meta["dx_m"] == pytest.approx(static_attrs["dx_m"]) and meta["dy_m"] == pytest.approx(static_attrs["dy_m"])

    assert meta["factor"] == 8 and meta["shape"] == [ny, nx] and meta["coarse_shape"] == [ny // 8, nx // 8]
    assert meta["predictors"] == ["t2m", "u10", "v10"] and meta["static_vars"] == ["HSURF", "FR_LAND", "lat"]
    assert set(meta["norm"]) == {"target", "coarse", "static"}
    assert meta["split_dates"]["train"] == ["2001-01-01T00:00:00", "2001-02-09T23:00:00"]
    assert not np.isnan(ds["target"].values).any() and not np.isnan(ds["coarse"].values).any()


def test_split_indices_contiguous_and_disjoint(built_store):
    meta = json.loads(built_store.meta.read_text())
    spans = sorted(meta["splits"].values())
    assert spans[0][0] == 0 and spans[-1][1] == meta["n_times"]
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a0 < a1 == b0 < b1  # contiguous, non-overlapping, non-empty
    times = pd.DatetimeIndex(open_store(built_store.store)["time"].values)
    i0, i1 = meta["splits"]["val"]
    assert times[i0] == pd.Timestamp("2001-02-10") and times[i1 - 1] == pd.Timestamp("2001-02-18T23:00")


def test_values(built_store, synth):
    ds = open_store(built_store.store)
    grid = built_store.inputs.grid
    with xr.open_dataset(built_store.inputs.cosmo[1]) as cosmo:
        expected = cosmo["T_2M"].sel(time="2001-02-03T05:00").values
    np.testing.assert_array_equal(ds["target"].sel(time="2001-02-03T05:00").values, expected)

    # coarse t2m ~ the block mean of the smooth field ERA5 sampled (conservative remap + block mean)
    t = pd.DatetimeIndex(ds["time"].values[[0, 500, 1400]])
    truth = synth.truth_t2m(grid.lat, grid.lon, t)
    block = truth.reshape(3, grid.shape[0] // 8, 8, grid.shape[1] // 8, 8).mean(axis=(2, 4))
    np.testing.assert_allclose(ds["coarse"].sel(cvar="t2m").values[[0, 500, 1400]], block, atol=0.02)

    with xr.open_dataset(built_store.inputs.static) as st:
        np.testing.assert_array_equal(ds["static"].sel(svar="HSURF").values, st["HSURF"].values)
        np.testing.assert_allclose(ds["static"].sel(svar="lat").values, st["lat"].values, rtol=1e-6)

    # wind: rotated to grid axes, so the speed (not the components) equals ERA5's interpolated speed
    w = ds["wind"].values[100]
    speed = np.hypot(w[0], w[1])
    lat2 = grid.lat
    hour = pd.Timestamp(ds["time"].values[100]).hour
    u = 5.0 + 0.2 * (lat2 - 45.0) + np.sin(2 * np.pi * hour / 24)
    v = -2.0 + 0.1 * (grid.lon - 10.0) + 0.1 * np.cos(2 * np.pi * hour / 24)
    np.testing.assert_allclose(speed, np.hypot(u, v), atol=2e-3)  # bilinear of a linear field
    assert np.abs(w[0] - u).max() > 0.05  # the components did rotate


def test_normalisation_uses_train_block_only(built_store):
    ds = open_store(built_store.store)
    meta = json.loads(built_store.meta.read_text())
    i0, i1 = meta["splits"]["train"]
    target = ds["target"].values.astype(np.float64)
    norm = meta["norm"]["target"]
    assert norm["mean"] == pytest.approx(target[i0:i1].mean(), abs=1e-6)
    assert norm["std"] == pytest.approx(target[i0:i1].std(), rel=1e-6)
    assert abs(norm["mean"] - target.mean()) > 0.5  # the synthetic trend makes all-time stats differ
    coarse = ds["coarse"].values.astype(np.float64)
    for k, var in enumerate(meta["predictors"]):
        assert meta["norm"]["coarse"][var]["mean"] == pytest.approx(coarse[i0:i1, k].mean(), abs=1e-6)
        assert meta["norm"]["coarse"][var]["std"] == pytest.approx(coarse[i0:i1, k].std(), rel=1e-5)
    static = ds["static"].values.astype(np.float64)
    assert meta["norm"]["static"]["HSURF"]["mean"] == pytest.approx(static[0].mean())


def test_failure_midway_leaves_no_store(built_store, synth, tmp_path):
    inputs = built_store.inputs
    bad = synth.cosmo_dataset(synth.month_times(2001, 2), inputs.grid)
    bad["T_2M"][100, 3, 3] = np.nan
    bad_path = synth.write_cosmo(tmp_path / "T_2M_200102.nc", bad)
    store, meta = tmp_path / "out" / "store.zarr", tmp_path / "out" / "meta.json"
    with pytest.raises(InputError, match=r"T_2M_200102\.nc: variable 'T_2M' has 1 NaN"):
        build_store(inputs.era5, [inputs.cosmo[0], bad_path], inputs.static, store, meta, built_store.cfg)
    assert not store.exists() and not meta.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary left behind either


def _cfg(base, **split):
    cfg = copy.deepcopy(base)
    cfg["split"] = split
    return cfg


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ({"train": ["2001-01-01", "2001-01-20"], "val": ["2001-01-15", "2001-01-25"]}, r"'train' .* and 'val' .* overlap"),
        ({"train": ["2001-01-10", "2001-01-05"]}, r"split 'train' is unordered"),
        ({"train": ["2001-01-01", "2001-01-20"], "test": ["2002-01-01", "2002-01-31"]}, r"split 'test' .* selects zero times"),
        ({"train": ["2001-01-01", "2001-01-20"], "test": ["2001-02-20", "2001-03-05"]},
         r"split 'test' .* not covered: 120 of 336 .* first 2001-03-01T00:00:00 \(absent from ERA5 and COSMO files\)"),
        ({"val": ["2001-01-01", "2001-01-20"]}, r"'split' must map block names"),
    ],
)
def test_split_errors(built_store, tmp_path, split, message):
    inp = built_store.inputs
    with pytest.raises(InputError, match=message):
        build_store(inp.era5, inp.cosmo, inp.static, tmp_path / "s.zarr", tmp_path / "m.json", _cfg(built_store.cfg, **split))
    assert not (tmp_path / "s.zarr").exists()


def test_grid_mismatch_and_coverage_errors(built_store, synth, tmp_path):
    inp = built_store.inputs
    cfg = _cfg(built_store.cfg, train=["2001-01-01", "2001-01-02"])
    other = synth.static_dataset(synth.make_grid(32, 24, rlat0=-3.0))
    other_path = tmp_path / "static_other.nc"
    other.to_netcdf(other_path)
    with pytest.raises(InputError, match=r"grid mismatch: COSMO file .*T_2M_200101\.nc has \(32, 24\) cells"):
        build_store(inp.era5, inp.cosmo, other_path, tmp_path / "s.zarr", tmp_path / "m.json", cfg)

    lat, lon = synth.era5_axes(inp.grid, margin=-0.5)  # ERA5 area smaller than the domain
    small = synth.write_era5(tmp_path / "era5_2001_01.nc", synth.era5_dataset(synth.month_times(2001, 1), lat, lon))
    with pytest.raises(InputError, match="does not cover"):
        build_store([small], inp.cosmo[:1], inp.static, tmp_path / "s.zarr", tmp_path / "m.json", cfg)

    with pytest.raises(InputError, match="'factor' must be a positive integer"):
        build_store(inp.era5, inp.cosmo, inp.static, tmp_path / "s.zarr", tmp_path / "m.json", dict(cfg, factor=0))
    with pytest.raises(InputError, match=r"fine grid \(32, 24\) is not a multiple of factor 16"):
        build_store(inp.era5, inp.cosmo, inp.static, tmp_path / "s.zarr", tmp_path / "m.json", dict(cfg, factor=16))
    with pytest.raises(InputError, match="store does not exist"):
        open_store(tmp_path / "nothing.zarr")


def test_bilinear_store_and_overwrite(built_store, tmp_path):
    inp = built_store.inputs
    cfg = _cfg(built_store.cfg, train=["2001-01-01", "2001-01-03"], test=["2001-01-04", "2001-01-04"])
    cfg["regrid_method"] = "bilinear"
    store, meta = tmp_path / "s.zarr", tmp_path / "m.json"
    (store / "junk").mkdir(parents=True)  # a stale directory is replaced as a whole
    build_store(inp.era5[:1], inp.cosmo[:1], inp.static, store, meta, cfg)
    assert not (store / "junk").exists()
    ds = open_store(store)
    m = json.loads(meta.read_text())
    assert m["splits"] == {"train": [0, 72], "test": [72, 96]} and ds.sizes["time"] == 96
    assert m["regrid_method"] == "bilinear"
    z = zarr.open_group(str(store), mode="r")
    assert z["coarse"].shape == (96, 3, 4, 3)
    # the conservative and bilinear coarse predictors agree closely for a smooth field
    ref = open_store(built_store.store)["coarse"].values[:96]
    np.testing.assert_allclose(ds["coarse"].values, ref, atol=0.05)


def test_three_hourly_cosmo_with_hourly_era5(built_store, synth, tmp_path):
    inp = built_store.inputs
    t3 = synth.month_times(2001, 1)[::3]
    cosmo = synth.write_cosmo(tmp_path / "T_2M_200101.nc", synth.cosmo_dataset(t3, inp.grid))
    cfg = _cfg(built_store.cfg, train=["2001-01-01", "2001-01-05"], val=["2001-01-06", "2001-01-07"])
    store, meta = tmp_path / "s.zarr", tmp_path / "m.json"
    build_store(inp.era5[:1], [cosmo], inp.static, store, meta, cfg)
    m = json.loads(meta.read_text())
    assert m["time_step"] == str(pd.Timedelta("3h")) and m["splits"] == {"train": [0, 40], "val": [40, 56]}
    assert (np.diff(open_store(store)["time"].values) == np.timedelta64(3, "h")).all()
