"""Regridding ERA5 -> rotated fine grid, fine -> aligned coarse grid, and wind rotation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr

from pdeldm.data.cosmo import crs_from_params, rotated_to_geographic
from pdeldm.data.regrid import (
    Regridder,
    TargetGrid,
    check_aligned,
    coarsen_to_aligned,
    grid_rotation_azimuth,
    regrid_bilinear,
    regrid_conservative,
    rotate_wind_to_grid,
)
from pdeldm.errors import InputError


@pytest.fixture(scope="module")
def grid_and_static(synth):
    grid = synth.make_grid(32, 24)
    return grid, synth.static_dataset(grid)


def _source(values: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> xr.DataArray:
    times = pd.date_range("2001-01-01", periods=values.shape[0], freq="h")
    return xr.DataArray(values.astype(np.float32), dims=("time", "latitude", "longitude"),
                        coords={"time": times, "latitude": lat, "longitude": lon}, name="t2m")


def _area_weights(grid) -> np.ndarray:
    # Fine cells are regular in rotated coordinates: area proportional to cos(rlat).
    return np.cos(np.deg2rad(grid.rlat))[:, None] * np.ones(grid.shape)


def _dense_reference(grid, values, lat, lon, n=16, halo=0.0):
    """Exact cell means of a piecewise-constant source, by dense sampling (n x n points per cell).

    Also returns which fine cells lie, with a ``halo`` (degrees lat/lon) around them, inside a
    single source cell.
    """
    d = 0.11
    off = ((np.arange(n) + 0.5) / n - 0.5) * d
    rl = grid.rlat[:, None, None, None] + off[None, None, :, None]
    ro = grid.rlon[None, :, None, None] + off[None, None, None, :]
    rl, ro = np.broadcast_arrays(rl, ro)
    la, lo = rotated_to_geographic(rl, ro, crs_from_params({"grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0}))
    step = lat[1] - lat[0]
    iy = np.rint((la - lat[0]) / step).astype(int)
    ix = np.rint((lo - lon[0]) / step).astype(int)
    cells = values[:, iy, ix]  # (time, ny, nx, n, n)
    single = np.ones(grid.shape, bool)
    for sy in (-halo, 0.0, halo):
        for sx in (-halo, 0.0, halo):
            jy = np.rint((la + sy - lat[0]) / step).astype(int).reshape(*grid.shape, -1)
            jx = np.rint((lo + sx - lon[0]) / step).astype(int).reshape(*grid.shape, -1)
            single &= (jy == iy.reshape(*grid.shape, -1)[..., :1]).all(-1) & (jx == ix.reshape(*grid.shape, -1)[..., :1]).all(-1)
    return cells.mean(axis=(3, 4)), single


def test_bilinear_reproduces_linear_field(grid_and_static, synth):
    grid, static = grid_and_static
    lat, lon = synth.era5_axes(grid)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    coefs = [(280.0, 0.7, -0.3), (300.0, -1.1, 0.25), (250.0, 0.0, 2.0)]
    values = np.stack([a + b * lat2 + c * lon2 for a, b, c in coefs])
    out = regrid_bilinear(_source(values, lat, lon), static)
    assert out.dims == ("time", "rlat", "rlon") and out.shape == (3, *grid.shape) and out.dtype == np.float32
    expected = np.stack([a + b * grid.lat + c * grid.lon for a, b, c in coefs])
    np.testing.assert_allclose(out.values, expected, atol=1e-4, rtol=0)  # float32 of ~300 K
    np.testing.assert_allclose(out["lat"].values, grid.lat)
    # time chunking does not change the answer
    chunked = Regridder(lat, lon, static, "bilinear")(_source(values, lat, lon), time_chunk=1)
    np.testing.assert_array_equal(chunked.values, out.values)


def test_conservative_constant_and_inside_cells(grid_and_static, synth):
    grid, static = grid_and_static
    lat, lon = synth.era5_axes(grid, margin=0.5)
    const = regrid_conservative(_source(np.full((1, lat.size, lon.size), 287.5), lat, lon), static)
    np.testing.assert_allclose(const.values, 287.5, rtol=1e-6)

    # A coarse (1 deg, like the twin's ERA5) source: fine cells that lie, with a halo of one
    # intermediate cell (<= 0.1 deg here), inside one source cell take exactly its value.
    lat, lon = synth.era5_axes(grid, step=1.0, margin=0.5)
    rng = np.random.default_rng(1)
    values = rng.normal(280.0, 5.0, (2, lat.size, lon.size))
    out = regrid_conservative(_source(values, lat, lon), static).values
    ref, single = _dense_reference(grid, values, lat, lon, halo=0.1)
    assert single.sum() > 50
    np.testing.assert_allclose(out[:, single], ref[:, single], atol=1e-3)
    bil = regrid_bilinear(_source(values, lat, lon), static).values
    assert np.abs(bil[:, single] - ref[:, single]).max() > 0.1


@pytest.mark.parametrize("step", [0.25, 0.04])  # source coarser than the fine grid / finer than it
def test_conservative_preserves_area_weighted_mean(grid_and_static, synth, step):
    grid, static = grid_and_static
    lat, lon = synth.era5_axes(grid, step=step, margin=0.5)
    w = _area_weights(grid)

    # Worst case: white noise per ERA5 cell (std 5 K).
    rng = np.random.default_rng(0)
    values = rng.normal(280.0, 5.0, (4, lat.size, lon.size))
    out = regrid_conservative(_source(values, lat, lon), static).values
    ref, _ = _dense_reference(grid, values, lat, lon)
    mean_out = (out * w).sum(axis=(1, 2)) / w.sum()
    mean_ref = (ref * w).sum(axis=(1, 2)) / w.sum()
    np.testing.assert_allclose(mean_out, mean_ref, atol=0.01 * 5.0)
    assert np.sqrt(np.mean((out - ref) ** 2)) < 0.15 * 5.0  # per cell: first order up to supersampling

    # Realistic case: a smooth field; the area mean is conserved to well below 1 mK.
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    smooth = 285.0 + 3.0 * np.sin(np.deg2rad(40 * lat2)) * np.cos(np.deg2rad(30 * lon2))
    out = regrid_conservative(_source(smooth[None], lat, lon), static).values
    ref, _ = _dense_reference(grid, smooth[None], lat, lon)
    assert abs(float((out * w).sum() / w.sum() - (ref * w).sum() / w.sum())) < 1e-3


def test_dataset_input_and_coverage_error(grid_and_static, synth):
    grid, static = grid_and_static
    lat, lon = synth.era5_axes(grid)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    ds = xr.Dataset({"a": _source((lat2 + 0 * lon2)[None], lat, lon), "b": _source((lon2 + 0 * lat2)[None], lat, lon)})
    out = regrid_conservative(ds, TargetGrid.from_xarray(static))
    assert set(out.data_vars) == {"a", "b"} and out["a"].dims == ("time", "rlat", "rlon")
    np.testing.assert_allclose(out["a"].values[0], grid.lat, atol=0.13)  # cell means of a ramp ~ centre value

    small = _source(np.zeros((1, 5, 5)), lat[:5], lon[:5])
    with pytest.raises(InputError, match="does not cover the fine domain"):
        regrid_bilinear(small, static)
    with pytest.raises(InputError, match="does not cover"):
        regrid_conservative(small, static)
    with pytest.raises(InputError, match="unknown regrid method 'cubic'"):
        Regridder(lat, lon, static, "cubic")


def test_coarsen_to_aligned_block_mean():
    rlat = -1.0 + 0.11 * np.arange(16)
    rlon = 2.0 + 0.11 * np.arange(24)
    values = np.arange(2 * 16 * 24, dtype=np.float64).reshape(2, 16, 24)
    fine = xr.DataArray(values, dims=("time", "rlat", "rlon"), coords={"rlat": rlat, "rlon": rlon})
    fine = fine.assign_coords(lat=(("rlat", "rlon"), np.zeros((16, 24))))
    coarse = coarsen_to_aligned(fine, 8)
    assert coarse.dims == ("time", "rlat_c", "rlon_c") and coarse.shape == (2, 2, 3)
    np.testing.assert_allclose(coarse.values[1, 1, 2], values[1, 8:16, 16:24].mean())
    np.testing.assert_allclose(coarse["rlat_c"].values, [rlat[:8].mean(), rlat[8:].mean()])
    np.testing.assert_allclose(coarse["rlon_c"].values, rlon.reshape(3, 8).mean(axis=1))
    with pytest.raises(InputError, match=r"fine grid \(16, 20\) is not a multiple of factor 8"):
        coarsen_to_aligned(fine.isel(rlon=slice(0, 20)), 8)


def test_check_aligned():
    check_aligned((96, 96), (12, 12), 8)
    check_aligned((2, 96, 64), (2, 12, 8), 8)  # leading dims ignored
    with pytest.raises(InputError, match=r"fine grid \(96, 96\) and coarse grid \(13, 12\) are not 8:1 aligned"):
        check_aligned((96, 96), (13, 12), 8)
    with pytest.raises(InputError, match=r"fine grid \(100, 96\) and coarse grid \(12, 12\) are not 8:1 aligned"):
        check_aligned((100, 96), (12, 12), 8)


def test_wind_rotation_to_grid_axes(grid_and_static):
    grid, static = grid_and_static
    rng = np.random.default_rng(3)
    u = xr.DataArray(rng.normal(0, 5, grid.shape), dims=("rlat", "rlon"))
    v = xr.DataArray(rng.normal(0, 5, grid.shape), dims=("rlat", "rlon"))
    ug, vg = rotate_wind_to_grid(u, v, static)
    np.testing.assert_allclose(np.hypot(ug, vg), np.hypot(u, v), rtol=1e-5)  # a rotation

    # Independent check: step a short way along the geographic wind and see where it lands in
    # rotated coordinates; the grid-relative components must point the same way.
    i, j = 10, 7
    geod = pyproj.Geod(a=6371229.0, b=6371229.0)
    az = np.degrees(np.arctan2(float(u[i, j]), float(v[i, j])))
    lon1, lat1, _ = geod.fwd(grid.lon[i, j], grid.lat[i, j], az, 100.0)
    crs = crs_from_params({"grid_north_pole_latitude": 39.25, "grid_north_pole_longitude": -162.0})
    to_rot = pyproj.Transformer.from_crs(pyproj.CRS("EPSG:4326"), crs, always_xy=True)
    rlon1, rlat1 = to_rot.transform(lon1, lat1)
    dx = (rlon1 - grid.rlon[j]) * np.cos(np.deg2rad(grid.rlat[i]))
    dy = rlat1 - grid.rlat[i]
    assert np.degrees(np.arctan2(dy, dx)) == pytest.approx(np.degrees(np.arctan2(float(vg[i, j]), float(ug[i, j]))), abs=0.01)

    # The rotated x-axis is far from east in this part of EUR-11 (pole at 162 W): rotation matters.
    theta = grid_rotation_azimuth(static)
    assert np.ptp(theta) > 0.5 and np.abs(theta - 90.0).max() > 1.0


def test_composed_conservative_matrix_equals_the_two_stage_remap(grid_and_static, synth):
    """The single sparse matrix gives what xarray-regrid onto the intermediate grid followed by
    the sub-cell averages gives, on a rough (white-noise) field where any weight error would show."""
    from pdeldm.data.regrid import Regridder, _pad_edges

    grid, static = grid_and_static
    lat, lon = synth.era5_axes(grid)
    rng = np.random.default_rng(11)
    src = xr.DataArray(rng.normal(280.0, 5.0, (3, lat.size, lon.size)).astype(np.float32),
                       dims=("time", "latitude", "longitude"),
                       coords={"time": pd.date_range("2001-01-01", periods=3, freq="h"), "latitude": lat, "longitude": lon})
    regridder = Regridder(lat, lon, static, "conservative")
    new = regridder(src).values
    block = _pad_edges(src)
    inter = block.regrid.conservative(regridder._inter_grid, latitude_coord="latitude", skipna=False)
    flat = inter.transpose("time", "latitude", "longitude").values.reshape(3, -1)
    old = np.asarray(regridder._sampler @ flat.T).T.reshape(3, *grid.shape)
    np.testing.assert_allclose(new, old, atol=2e-4)
    assert regridder._matrix.nnz < 8 * grid.shape[0] * grid.shape[1]  # a few ERA5 cells per fine cell
