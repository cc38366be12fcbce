"""COSMO-CLM reading, on the real EUR-11 file of libncarg-data and on synthetic variants.

``files/tas_rotated_grid_EUR11.nc`` is CORDEX EUR-11 COSMO-CLM ``tas`` (January 2006 monthly mean,
412 x 424 cells, rotated pole 39.25 N / 162 W) from Debian's ``libncarg-data`` (licence in
``files/LICENSE-libncarg-data.txt``). It has no lat/lon variables (CDO dropped them) and a
singleton ``height`` dimension, which is exactly what the reader must cope with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pdeldm.data.cosmo import (
    EARTH_RADIUS_M,
    grid_spacing_m,
    open_cosmo,
    rotated_pole_crs,
    rotated_to_geographic,
)
from pdeldm.errors import InputError

REAL = Path(__file__).parent / "files" / "tas_rotated_grid_EUR11.nc"

# (i, j, rlat, rlon, lat, lon): geographic coordinates of tas-grid cells as stored in the 2-D lat/lon
# of the same package's HSURF_regional_model_0.11deg.nc (the same EUR-11 grid with 13 more cells on
# each side, so tas cell (i, j) is HSURF cell (i + 13, j + 13)).
REFERENCE_CELLS = [
    (0, 0, -23.375, -28.375, 21.98783, -10.06388),
    (187, 287, -2.805, 3.195, 47.84227, 22.75761),
    (205, 212, -0.825, -5.055, 49.65771, 10.17793),
    (411, 423, 21.835, 18.155, 66.68983, 64.96438),
    (0, 423, -23.375, 18.155, 25.11426, 36.41383),
    (411, 0, 21.835, -28.375, 60.20376, -44.59386),
]


def _rotated_to_geographic_formula(rlat, rlon, pole_lat=39.25, pole_lon=-162.0):
    """Textbook spherical rotation (independent of pyproj) for the cross-check."""
    r, lam, p = np.deg2rad(rlat), np.deg2rad(rlon), np.deg2rad(pole_lat)
    lat = np.arcsin(np.sin(r) * np.sin(p) + np.cos(r) * np.cos(lam) * np.cos(p))
    lon = pole_lon - 180.0 + np.rad2deg(
        np.arctan2(np.cos(r) * np.sin(lam), np.sin(p) * np.cos(r) * np.cos(lam) - np.cos(p) * np.sin(r))
    )
    return np.rad2deg(lat), (lon + 180.0) % 360.0 - 180.0


def test_real_file_opens_in_kelvin_with_latlon():
    da = open_cosmo([REAL])  # asks for T_2M, the file has the CMOR name 'tas'
    assert da.name == "T_2M"
    assert da.dims == ("time", "rlat", "rlon") and da.shape == (1, 412, 424)
    assert da.attrs["units"] == "K"
    values = da.values
    assert values.dtype == np.float32 and 240.0 < values.mean() < 300.0 and values.min() > 200.0
    assert da["lat"].dims == ("rlat", "rlon") and da["lon"].dims == ("rlat", "rlon")
    np.testing.assert_allclose(float(da.isel(rlat=187, rlon=287).values[0]), 268.37549, atol=1e-4)


@pytest.mark.parametrize(("i", "j", "rlat", "rlon", "lat", "lon"), REFERENCE_CELLS)
def test_real_file_latlon_spot_checks(i, j, rlat, rlon, lat, lon):
    da = open_cosmo([REAL], variable="tas")
    cell = da.isel(rlat=i, rlon=j)
    assert float(cell["rlat"]) == pytest.approx(rlat, abs=1e-3)
    assert float(cell["rlon"]) == pytest.approx(rlon, abs=1e-3)
    # against the EUR-11 grid's own stored lat/lon
    assert float(cell["lat"]) == pytest.approx(lat, abs=2e-5)
    assert float(cell["lon"]) == pytest.approx(lon, abs=2e-5)
    # against an independent spherical-rotation formula
    flat, flon = _rotated_to_geographic_formula(float(cell["rlat"]), float(cell["rlon"]))
    assert float(cell["lat"]) == pytest.approx(flat, abs=1e-6)
    assert float(cell["lon"]) == pytest.approx(flon, abs=1e-6)


def test_real_file_crs_and_spacing():
    with xr.open_dataset(REAL) as ds:
        crs = rotated_pole_crs(ds)
    params = crs.to_cf()
    assert params["grid_north_pole_latitude"] == pytest.approx(39.25)
    assert params["grid_north_pole_longitude"] == pytest.approx(-162.0)
    lat, lon = rotated_to_geographic(np.array([-0.825]), np.array([-5.055]), crs)
    assert lat[0] == pytest.approx(49.65771, abs=2e-5) and lon[0] == pytest.approx(10.17793, abs=2e-5)

    da = open_cosmo([REAL])
    dx, dy = grid_spacing_m(da["rlat"].values, da["rlon"].values)
    assert dy == pytest.approx(EARTH_RADIUS_M * np.deg2rad(0.11), rel=1e-4)  # 12.23 km
    mean_cos = np.mean(np.cos(np.deg2rad(da["rlat"].values)))
    assert dx == pytest.approx(dy * mean_cos, rel=1e-4)
    assert 11_500 < dx < dy


def test_synthetic_variants(tmp_path, synth):
    grid = synth.make_grid(16, 8)
    t = synth.month_times(2001, 1)[:24]
    plain = synth.write_cosmo(tmp_path / "T_2M_200101.nc", synth.cosmo_dataset(t, grid))
    da = open_cosmo([plain])
    np.testing.assert_allclose(da["lat"].values, grid.lat, atol=1e-9)

    # lat/lon missing -> computed; misspelt grid_mapping_name accepted; grid mapping under another name
    ds = synth.cosmo_dataset(t, grid, variable="tas", gm_name="rotation_latitude_longitude", with_latlon=False)
    ds = ds.rename({"rotated_pole": "crs_rot"})
    ds["tas"].attrs["grid_mapping"] = "crs_rot"
    other = synth.write_cosmo(tmp_path / "tas_200101.nc", ds)
    db = open_cosmo([other])
    np.testing.assert_allclose(db["lat"].values, grid.lat, atol=1e-9)
    np.testing.assert_allclose(db["lon"].values, grid.lon, atol=1e-9)
    assert rotated_pole_crs(db).to_cf()["grid_north_pole_longitude"] == pytest.approx(-162.0)


def test_synthetic_errors(tmp_path, synth):
    grid = synth.make_grid(16, 8)
    t = synth.month_times(2001, 1)[:24]

    ds = synth.cosmo_dataset(t, grid, units="degC")
    path = synth.write_cosmo(tmp_path / "T_2M_units.nc", ds)
    with pytest.raises(InputError, match=r"T_2M_units\.nc: variable 'T_2M' has units 'degC': looks like degC, expected K"):
        open_cosmo([path])

    ds = synth.cosmo_dataset(t, grid, field=synth.truth_t2m(grid.lat, grid.lon, t) - 273.15)
    path = synth.write_cosmo(tmp_path / "T_2M_values.nc", ds)
    with pytest.raises(InputError, match=r"T_2M_values\.nc: .*looks like degC, expected K"):
        open_cosmo([path])

    field = synth.truth_t2m(grid.lat, grid.lon, t)
    field[2, 3, 4] = np.nan
    path = synth.write_cosmo(tmp_path / "T_2M_nan.nc", synth.cosmo_dataset(t, grid, field=field))
    with pytest.raises(InputError, match=r"T_2M_nan\.nc: variable 'T_2M' has 1 NaN"):
        open_cosmo([path])

    ds = synth.cosmo_dataset(t, grid)
    ds["rotated_pole"].attrs["grid_north_pole_latitude"] = 40.0  # pole does not match the stored lat/lon
    path = synth.write_cosmo(tmp_path / "T_2M_pole.nc", ds)
    with pytest.raises(InputError, match=r"T_2M_pole\.nc: the file's lat/lon differ"):
        open_cosmo([path])

    ds = synth.cosmo_dataset(t, grid).drop_vars("rotated_pole")
    path = synth.write_cosmo(tmp_path / "T_2M_nogm.nc", ds)
    with pytest.raises(InputError, match=r"T_2M_nogm\.nc: no rotated-pole grid mapping"):
        open_cosmo([path])

    good = synth.write_cosmo(tmp_path / "T_2M_good.nc", synth.cosmo_dataset(t, grid))
    with pytest.raises(InputError, match="duplicate COSMO time"):
        open_cosmo([good, good])
    with pytest.raises(InputError, match=r"missing variable 'W_SO'"):
        open_cosmo([good], variable="W_SO")


def test_grid_spacing_simple():
    rlat = np.array([-0.11, 0.0, 0.11])
    rlon = np.array([0.0, 0.22])
    dx, dy = grid_spacing_m(rlat, rlon)
    assert dy == pytest.approx(EARTH_RADIUS_M * np.deg2rad(0.11))
    assert dx == pytest.approx(EARTH_RADIUS_M * np.deg2rad(0.22) * np.mean(np.cos(np.deg2rad(rlat))))
    with pytest.raises(InputError):
        grid_spacing_m(np.array([0.0]), rlon)
