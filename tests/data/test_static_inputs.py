"""Static inputs regridded onto the target grid (rotated EUR-11 subset and EPSG:3035 2 km).

Sources are small synthetic lat-lon files with analytic fields, so the expected cell means can be
computed independently (dense sampling of each target cell); the rotated target is a real EUR-11
64x64 subset cut with ``extract_region`` from the committed static file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyproj
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the shared checker helper

from cf_check import cf_report  # noqa: E402

from pdeldm.data.regrid import TargetGrid
from pdeldm.data.static import REGIONS, extract_region, load_static
from pdeldm.data.static_inputs import build_static_inputs, land_cover_names
from pdeldm.errors import InputError

EUR11 = Path(__file__).resolve().parents[2] / "data" / "static" / "eur11_static.nc"


def orography(lat, lon):
    """Smooth analytic orography (m): +-800 m around 1200 m, wavelengths 3 deg (lat) x 4 deg (lon)."""
    return 1200.0 + 800.0 * np.sin(2 * np.pi * lat / 3.0) * np.cos(2 * np.pi * lon / 4.0)


def land_cover(lat, lon):
    """Class codes 1..16 in blocks of 1/3 deg."""
    return 1 + (np.floor(lat * 3.0) + 2 * np.floor(lon * 3.0)).astype(int) % 16


def write_latlon(path, values_of, lat, lon, name, units, descending=True, dtype=np.float32, **attrs):
    """A regular lat-lon file (latitude north->south as many DEMs store it)."""
    lat = np.sort(lat)[::-1] if descending else np.sort(lat)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    var_attrs = {"units": units, **attrs} if units is not None else dict(attrs)
    ds = xr.Dataset(
        {name: (("lat", "lon"), np.asarray(values_of(la, lo)).astype(dtype), var_attrs)},
        coords={"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
    )
    ds.to_netcdf(path)
    return path


def axes(lat2d, lon2d, step, margin=1.0):
    lat = np.arange(np.floor(lat2d.min() - margin), np.ceil(lat2d.max() + margin) + step / 2, step)
    lon = np.arange(np.floor(lon2d.min() - margin), np.ceil(lon2d.max() + margin) + step / 2, step)
    return lat, lon


def cell_samples(rlat, rlon, crs, n=10):
    """Geographic (lat, lon) of n x n points evenly spread over each cell: shape (ny, nx, n*n)."""
    off = (np.arange(n) + 0.5) / n - 0.5
    d_y, d_x = np.median(np.diff(rlat)), np.median(np.diff(rlon))
    y = rlat[:, None, None, None] + off[None, None, :, None] * d_y
    x = rlon[None, :, None, None] + off[None, None, None, :] * d_x
    y, x = np.broadcast_arrays(y, x)
    lon, lat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return lat.reshape(rlat.size, rlon.size, -1), lon.reshape(rlat.size, rlon.size, -1)


def class_fractions(s_lat, s_lon, lat, lon):
    """(16, ny, nx) area fraction of each class of the *source map* (cells of ``lat``/``lon``) per target cell."""
    def snap(v, ax):  # centre of the source cell containing v
        return ax[np.clip(np.rint((v - ax[0]) / (ax[1] - ax[0])).astype(int), 0, ax.size - 1)]

    codes = land_cover(snap(s_lat, lat), snap(s_lon, lon))
    return np.stack([(codes == c).mean(axis=-1) for c in range(1, 17)])


def check_mode(one_hot, fractions, min_agree):
    """One-hot, and the chosen class covers the largest area (near-ties within 0.1 tolerated)."""
    np.testing.assert_array_equal(one_hot.sum(axis=0), 1.0)
    chosen = np.argmax(one_hot, axis=0)
    shortfall = fractions.max(axis=0) - np.take_along_axis(fractions, chosen[None], axis=0)[0]
    assert shortfall.max() <= 0.1, shortfall.max()
    assert float(np.mean(shortfall == 0)) >= min_agree, float(np.mean(shortfall == 0))


@pytest.fixture(scope="module")
def rotated(tmp_path_factory, synth):
    """A real EUR-11 64x64 target (the CI Italy box): its static file and a T_2M file on its grid."""
    root = tmp_path_factory.mktemp("rotated")
    extract_region(EUR11, REGIONS["italy_ci"], root / "region_static.nc")
    st = load_static(root / "region_static.nc")
    grid = synth.Grid(st["rlat"].values, st["rlon"].values, st["lat"].values, st["lon"].values)
    target = synth.write_cosmo(root / "T_2M_200101.nc", synth.cosmo_dataset(synth.month_times(2001, 1)[:2], grid))
    lat, lon = axes(grid.lat, grid.lon, 0.05)
    files = {
        "orog": write_latlon(root / "orog.nc", orography, lat, lon, "HSURF", "m"),
        # land-sea mask in percent (0/100): FR_LAND = the land share of each cell
        "mask": write_latlon(root / "mask.nc", lambda a, b: 100.0 * (orography(a, b) > 1000.0), lat, lon, "lsm", "%"),
        "lc": write_latlon(root / "lc.nc", land_cover, lat, lon, "lccs", None, dtype=np.int16),
    }
    return root, target, grid, st, files


def cfg_for(files, land_cover_spec=True):
    cfg = {
        "orography": {"file": str(files["orog"]), "variable": "HSURF"},
        "land_fraction": {"file": str(files["mask"]), "variable": "lsm"},
        "land_cover": {"file": str(files["lc"]), "variable": "lccs", "classes": 16} if land_cover_spec else None,
    }
    return cfg


def test_static_inputs_file_is_cf_compliant(rotated, tmp_path):
    """compliance-checker --test cf:1.8: no errors, no warnings."""
    root, target, _, _, files = rotated
    out = tmp_path / "static_inputs.nc"
    build_static_inputs(cfg_for(files), target, out)
    assert cf_report(out, tmp_path) == {"errors": [], "warnings": []}


def test_rotated_target_from_latlon_sources(rotated):
    root, target, grid, st, files = rotated
    out, log = root / "static_inputs.nc", root / "static_inputs.log"
    build_static_inputs(cfg_for(files), target, out, log=log)
    ds = xr.open_dataset(out)

    # interfaces section 1 format, on the target grid
    assert ds["HSURF"].dims == ("rlat", "rlon") and ds["HSURF"].dtype == np.float32 and ds["HSURF"].attrs["units"] == "m"
    assert ds["rotated_pole"].attrs["grid_north_pole_latitude"] == 39.25
    np.testing.assert_allclose(ds["rlat"].values, grid.rlat)
    np.testing.assert_allclose(ds["lat"].values, grid.lat, atol=1e-9)
    assert ds.attrs["dx_m"] == pytest.approx(st.attrs["dx_m"]) and ds.attrs["dy_m"] == pytest.approx(st.attrs["dy_m"])
    loaded = load_static(out)  # the section-1 reader accepts it
    assert set(loaded.data_vars) >= {"HSURF", "FR_LAND"}
    TargetGrid.from_xarray(ds)  # so does the store's grid reader

    # accuracy: HSURF against the exact cell means of the analytic field
    crs = pyproj.CRS.from_cf({"grid_mapping_name": "rotated_latitude_longitude", **{
        k: ds["rotated_pole"].attrs[k] for k in ("grid_north_pole_latitude", "grid_north_pole_longitude")}})
    s_lat, s_lon = cell_samples(grid.rlat, grid.rlon, crs)
    exact = orography(s_lat, s_lon).mean(axis=-1)
    err = ds["HSURF"].values - exact
    # Field range 1600 m, cells 0.11 deg; measured with the default supersample 8: max 11.1, RMS 2.35 m.
    assert np.abs(err).max() < 15.0, np.abs(err).max()
    assert np.sqrt(np.mean(err**2)) < 3.5
    assert abs(err.mean()) < 0.5  # conservation over the domain

    # land fraction from a percent mask (converted, noted in the log)
    land = (orography(s_lat, s_lon) > 1000.0).mean(axis=-1)
    assert float(ds["FR_LAND"].min()) >= 0.0 and float(ds["FR_LAND"].max()) <= 1.0
    assert np.abs(ds["FR_LAND"].values - land).mean() < 0.02
    assert "converted to a fraction" in log.read_text()

    # land cover: exactly one-hot, and the area-weighted mode
    names = land_cover_names(16)
    assert names[0] == "LC_01" and names[-1] == "LC_16"
    lat, lon = axes(grid.lat, grid.lon, 0.05)
    # measured: the area-largest class in 99.3 % of cells, elsewhere within 0.06 of it
    check_mode(np.stack([ds[n].values for n in names]), class_fractions(s_lat, s_lon, lat, lon), 0.98)
    ds.close()


def test_same_grid_source_is_cut_not_resampled(rotated):
    """The whole-EUR-11 static file as the source: the region's values come back exactly."""
    root, target, grid, st, files = rotated
    out = root / "same_grid.nc"
    cfg = {"orography": {"file": str(EUR11), "variable": "HSURF"},
           "land_fraction": {"file": str(EUR11), "variable": "FR_LAND"}, "land_cover": None}
    build_static_inputs(cfg, target, out)
    ds = xr.open_dataset(out)
    np.testing.assert_array_equal(ds["HSURF"].values, st["HSURF"].values)
    np.testing.assert_allclose(ds["FR_LAND"].values, st["FR_LAND"].values, atol=1e-6)
    assert not any(str(v).startswith("LC_") for v in ds.data_vars)
    ds.close()


def test_laea_target(tmp_path, synth):
    grid = synth.make_laea_grid(40, 32)  # 80 x 64 km at 2 km
    target = synth.write_cosmo(tmp_path / "T_2M.nc", synth.cosmo_laea_dataset(synth.month_times(2001, 1)[:1], grid))
    lat, lon = axes(grid.lat, grid.lon, 0.01, margin=0.2)
    files = {
        "orog": write_latlon(tmp_path / "orog.nc", orography, lat, lon, "z", "m"),
        "mask": write_latlon(tmp_path / "mask.nc", lambda a, b: (orography(a, b) > 1000.0) * 1.0, lat, lon, "lsm", "1"),
        "lc": write_latlon(tmp_path / "lc.nc", land_cover, lat, lon, "lccs", None, dtype=np.int16),
    }
    cfg = cfg_for(files)
    cfg["orography"]["variable"] = "z"
    out = tmp_path / "static.nc"
    build_static_inputs(cfg, target, out)
    ds = xr.open_dataset(out)
    assert ds["HSURF"].dims == ("rlat", "rlon") and ds["crs"].attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    np.testing.assert_array_equal(ds["rlat"].values, grid.rlat)  # native metres, ascending
    assert ds["rlon"].attrs["units"] == "m"
    assert (ds.attrs["dx_m"], ds.attrs["dy_m"]) == (2000.0, 2000.0)
    np.testing.assert_allclose(TargetGrid.from_xarray(ds).lat, grid.lat, atol=1e-9)

    s_lat, s_lon = cell_samples(grid.rlat, grid.rlon, synth.LAEA_CRS)
    exact = orography(s_lat, s_lon).mean(axis=-1)
    err = ds["HSURF"].values - exact
    assert np.abs(err).max() < 3.0, np.abs(err).max()
    land = (orography(s_lat, s_lon) > 1000.0).mean(axis=-1)
    assert np.abs(ds["FR_LAND"].values - land).mean() < 0.03
    check_mode(np.stack([ds[n].values for n in land_cover_names(16)]), class_fractions(s_lat, s_lon, lat, lon), 0.98)
    ds.close()


def test_errors(rotated):
    root, target, grid, st, files = rotated
    lat, lon = axes(grid.lat, grid.lon, 0.1)
    out = root / "bad.nc"

    def run(**override):
        cfg = cfg_for(files, land_cover_spec=False)
        cfg.update(override)
        build_static_inputs(cfg, target, out)

    km = write_latlon(root / "orog_km.nc", lambda a, b: orography(a, b) / 1000.0, lat, lon, "h", "km")
    with pytest.raises(InputError, match=r"orog_km\.nc: variable 'h' \(static_inputs\.orography\) has units 'km'; expected m \(multiply by 1000\)"):
        run(orography={"file": str(km), "variable": "h"})
    geo = write_latlon(root / "orog_z.nc", lambda a, b: orography(a, b) * 9.80665, lat, lon, "z", "m**2 s**-2")
    with pytest.raises(InputError, match=r"orog_z\.nc: .*looks like surface geopotential.*divide by g"):
        run(orography={"file": str(geo), "variable": "z"})

    pct = write_latlon(root / "lsm_pct.nc", lambda a, b: 100.0 * (orography(a, b) > 1000.0), lat, lon, "lsm", "1")
    with pytest.raises(InputError, match=r"lsm_pct\.nc: variable 'lsm' .* outside \[0, 1\] \(percent\? set its units attribute to '%'\)"):
        run(land_fraction={"file": str(pct), "variable": "lsm"})

    def with_nan(a, b):
        h = orography(a, b)
        h[h.shape[0] // 2, h.shape[1] // 2] = np.nan
        return h

    nan = write_latlon(root / "orog_nan.nc", with_nan, lat, lon, "h", "m")
    with pytest.raises(InputError, match=r"orog_nan\.nc: variable 'h' .* has 1 NaN/missing values .*fill_value"):
        run(orography={"file": str(nan), "variable": "h"})
    run(orography={"file": str(nan), "variable": "h", "fill_value": 0.0})  # filled -> fine
    assert out.exists()

    small_lat = lat[(lat > grid.lat.min() + 0.5) & (lat < grid.lat.max())]
    small = write_latlon(root / "orog_small.nc", orography, small_lat, lon, "h", "m")
    with pytest.raises(InputError, match=r"orog_small\.nc: variable 'h' \(static_inputs\.orography\): the source grid .* does not cover the target grid"):
        run(orography={"file": str(small), "variable": "h"})

    lc = write_latlon(root / "lc_bad.nc", lambda a, b: land_cover(a, b) + 10, lat, lon, "lc", None, dtype=np.int16)
    with pytest.raises(InputError, match=r"lc_bad\.nc: variable 'lc' .* class codes outside static_inputs\.land_cover\.classes"):
        run(land_cover={"file": str(lc), "variable": "lc", "classes": 16})

    with pytest.raises(InputError, match=r"orog\.nc: variable 'nope' \(static_inputs\.orography\.variable\) not found; variables present: \['HSURF'\]"):
        run(orography={"file": str(files["orog"]), "variable": "nope"})
    with pytest.raises(InputError, match=r"static_inputs\.orography\.file: .*missing\.nc does not exist"):
        run(orography={"file": str(root / "missing.nc"), "variable": "h"})
    with pytest.raises(InputError, match=r"static_inputs\.land_fraction: unknown key\(s\) \[\], missing key\(s\) \['variable'\]"):
        run(land_fraction={"file": str(files["mask"])})
    with pytest.raises(InputError, match=r"static_inputs: unknown key\(s\) \['orog'\]"):
        run(orog={})
