"""The training store on the study's projected target grid (EPSG:3035 LAEA, 2 km, x/y in metres).

The store, the regridder and the wind rotation take the same code path as on the rotated EUR-11
grid; here the grid mapping must survive into the store and the predictions, conservative
remapping must size its sub-cells from metres, and winds must be turned by the projection's own
meridian convergence (about -2 deg at 7 E for EPSG:3035's 10 E origin), not by a rotated-pole formula.
"""

from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import xarray as xr

from pdeldm.data.cosmo import LAEA_GRID_MAPPING_NAME, grid_mapping_cf_attrs, grid_mapping_params
from pdeldm.data.regrid import TargetGrid, rotate_wind_to_grid, wind_to_grid_matrix
from pdeldm.data.store import build_store, open_store
from pdeldm.errors import InputError

CFG = {
    "factor": 8,
    "predictors": ["t2m", "u10", "v10"],
    "regrid_method": "conservative",
    "split": {"train": ["2001-01-01", "2001-01-06"], "val": ["2001-01-07", "2001-01-08"],
              "test": ["2001-01-09", "2001-01-10"]},
}


def _static_file(path, grid, crs_source):
    """A region static file (interfaces §1) on the LAEA grid, with its ``crs`` grid mapping."""
    params = grid_mapping_params(crs_source)
    rl, rb = np.meshgrid(grid.rlon, grid.rlat)
    hsurf = 300.0 + 0.01 * (rl - rl.mean()) + 0.005 * (rb - rb.mean())
    ds = xr.Dataset(
        {
            "HSURF": (("rlat", "rlon"), hsurf.astype(np.float32), {"units": "m", "grid_mapping": "crs"}),
            "FR_LAND": (("rlat", "rlon"), np.ones(grid.shape, np.float32), {"units": "1", "grid_mapping": "crs"}),
            "lat": (("rlat", "rlon"), grid.lat, {"units": "degrees_north"}),
            "lon": (("rlat", "rlon"), grid.lon, {"units": "degrees_east"}),
            "crs": ((), np.int32(0), grid_mapping_cf_attrs(params)),
        },
        coords={"rlat": ("rlat", grid.rlat, {"units": "m"}), "rlon": ("rlon", grid.rlon, {"units": "m"})},
        attrs={"dx_m": 2000.0, "dy_m": 2000.0},
    )
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def laea_store(tmp_path_factory, synth):
    root = tmp_path_factory.mktemp("laea")
    grid = synth.make_laea_grid(32, 24)  # 64 x 48 km at ~45 N, 7 E
    times = synth.month_times(2001, 1)[: 10 * 24]
    lat, lon = synth.era5_axes(grid)
    era5 = synth.write_era5(root / "era5_2001_01.nc", synth.era5_dataset(times, lat, lon))
    cosmo_ds = synth.cosmo_laea_dataset(times, grid)
    cosmo = synth.write_cosmo(root / "T_2M_200101.nc", cosmo_ds)
    static = _static_file(root / "static.nc", grid, cosmo_ds)
    store, meta = root / "store.zarr", root / "meta.json"
    build_store([era5], [cosmo], static, store, meta, CFG)
    return grid, times, store, meta


def test_grid_mapping_and_units_survive(laea_store, synth):
    grid, _, store, meta_path = laea_store
    ds = open_store(store)
    meta = json.loads(meta_path.read_text())
    assert ds.attrs["grid_mapping_name"] == LAEA_GRID_MAPPING_NAME
    assert meta["grid_mapping"]["grid_mapping_name"] == LAEA_GRID_MAPPING_NAME
    # The stored WKT is EPSG:3035: it maps cell centres to the same lat/lon as the EPSG code does.
    tr = pyproj.Transformer.from_crs(pyproj.CRS(ds.attrs["crs_wkt"]), "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(*np.meshgrid(grid.rlon, grid.rlat))
    np.testing.assert_allclose(lat, grid.lat, atol=1e-9)
    np.testing.assert_allclose(lon, grid.lon, atol=1e-9)
    assert ds["rlat"].attrs["units"] == "m" and ds["rlon"].attrs["standard_name"] == "projection_x_coordinate"
    assert ds["rlat_c"].attrs["units"] == "m"
    assert (meta["dx_m"], meta["dy_m"]) == (2000.0, 2000.0)
    np.testing.assert_allclose(ds["lat"].values, grid.lat, atol=1e-9)


def test_conservative_coarse_block_means(laea_store, synth):
    """Coarse t2m = the area mean over each 16-km block of the piecewise-constant ERA5 field.

    The blocks are smaller than an ERA5 cell (0.25 deg ~ 20-28 km), so the expected value is the
    area-weighted mix of the ERA5 cells a block overlaps, found here by dense sampling in metres.
    """
    grid, times, store, _ = laea_store
    ds = open_store(store)
    idx = [0, 77, 200]
    n = 64  # samples per block side
    ny, nx = grid.shape[0] // 8, grid.shape[1] // 8
    step = 2000.0 * 8 / n
    ys = grid.rlat[0] - 1000.0 + step * (np.arange(ny * n) + 0.5)
    xs = grid.rlon[0] - 1000.0 + step * (np.arange(nx * n) + 0.5)
    tr = pyproj.Transformer.from_crs("EPSG:3035", "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(*np.meshgrid(xs, ys))
    cell_lat, cell_lon = np.round(lat / 0.25) * 0.25, np.round(lon / 0.25) * 0.25  # ERA5 cell centres
    values = synth.truth_t2m(cell_lat, cell_lon, times[idx])
    expected = values.reshape(len(idx), ny, n, nx, n).mean(axis=(2, 4))
    np.testing.assert_allclose(ds["coarse"].sel(cvar="t2m").values[idx], expected, atol=0.004)
    # and not merely the smooth field's block mean (what a bilinear remap would give, roughly)
    smooth = synth.truth_t2m(lat, lon, times[idx]).reshape(len(idx), ny, n, nx, n).mean(axis=(2, 4))
    assert np.abs(smooth - expected).max() > 0.02


def _grid_velocity(lat, lon, u, v):
    """Rate of change of EPSG:3035 x/y (m/s) of a parcel moving at (u east, v north) m/s on the ground.

    Independent of the code under test: a 1-m geodesic step along the wind, projected with the EPSG code.
    """
    geod = pyproj.Geod(ellps="GRS80")
    lon1, lat1, _ = geod.fwd(lon, lat, np.rad2deg(np.arctan2(u, v)), np.full_like(lat, 1.0))
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3035", always_xy=True)
    x0, y0 = tr.transform(lon, lat)
    x1, y1 = tr.transform(lon1, lat1)
    speed = np.hypot(u, v)
    return (x1 - x0) * speed, (y1 - y0) * speed


def test_winds_turned_by_the_projections_convergence(laea_store):
    grid, times, store, _ = laea_store
    ds = open_store(store)
    k = 30
    hour = times[k].hour
    # The synthetic ERA5 winds are linear in lat (u) and lon (v), so bilinear remapping is exact.
    u = 5.0 + 0.2 * (grid.lat - 45.0) + np.sin(2 * np.pi * hour / 24)
    v = -2.0 + 0.1 * (grid.lon - 10.0) + 0.1 * np.cos(2 * np.pi * hour / 24)
    w = ds["wind"].values[k]
    ux, vy = _grid_velocity(grid.lat, grid.lon, u, v)
    np.testing.assert_allclose(w[0], ux, atol=2e-5 * 7)
    np.testing.assert_allclose(w[1], vy, atol=2e-5 * 7)
    # The check has teeth: at 7 E the grid's y axis is turned ~2 deg from true north, so unrotated
    # components would be off by ~0.2 m/s.
    assert np.abs(v - vy).min() > 0.1
    # Scale factors of LAEA ~800 km from its origin: speed changes by a few 1e-4 to 1e-3.
    ratio = np.hypot(w[0], w[1]) / np.hypot(u, v)
    assert np.all(np.abs(ratio - 1.0) < 5e-3)


def test_wind_matrix_shape_is_checked(laea_store):
    grid, _, store, _ = laea_store
    with xr.open_dataset(store.parent / "static.nc") as static:
        target = TargetGrid.from_xarray(static)
    m = wind_to_grid_matrix(target)
    assert m.shape == (2, 2, *grid.shape)
    u = xr.DataArray(np.ones((4, 4)), dims=("rlat", "rlon"))
    with pytest.raises(InputError, match="does not fit winds"):
        rotate_wind_to_grid(u, u, target, matrix=m)


def test_predictions_carry_the_projection(laea_store, tmp_path):
    """The prediction file written for this store keeps x/y in metres and the LAEA grid mapping."""
    from pdeldm.predict import store_coords
    from pdeldm.prediction_file import create_prediction_file

    grid, _, store, _ = laea_store
    nc = create_prediction_file(tmp_path / "pred.nc", store_coords(store), members=1, model="unet", attrs={})
    nc.close()
    with xr.open_dataset(tmp_path / "pred.nc") as ds:
        assert ds["rlat"].attrs["units"] == "m" and ds["rlon"].attrs["standard_name"] == "projection_x_coordinate"
        assert ds["crs"].attrs["grid_mapping_name"] == LAEA_GRID_MAPPING_NAME
        assert grid_mapping_params(ds) == grid_mapping_params(xr.open_dataset(store.parent / "static.nc"))
        np.testing.assert_allclose(TargetGrid.from_xarray(ds).lat, grid.lat, atol=1e-9)
