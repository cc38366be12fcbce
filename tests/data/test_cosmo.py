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
    grid_mapping_params,
    grid_spacing_m,
    grid_spacing_of,
    is_projected,
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


# --------------------------------------------------------------------------------------------
# The study's projected target grid: EPSG:3035 (ETRS89-LAEA), 2 km, dims (time, y, x) in metres.
# --------------------------------------------------------------------------------------------
def _laea_to_geographic(x, y):
    """EPSG:3035 -> EPSG:4326 straight from the EPSG code (independent of the reader's CF path)."""
    import pyproj

    tr = pyproj.Transformer.from_crs("EPSG:3035", "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(x, y)
    return lat, lon


@pytest.mark.parametrize("mapping", ["cf", "wkt"])
def test_laea_file_opens_on_package_dims(tmp_path, synth, mapping):
    grid = synth.make_laea_grid(12, 10)
    t = synth.month_times(2001, 1)[:6]
    field = synth.truth_t2m(grid.lat, grid.lon, t)
    path = synth.write_cosmo(tmp_path / "T_2M_200101.nc",
                             synth.cosmo_laea_dataset(t, grid, field=field, mapping=mapping, y_descending=True))
    da = open_cosmo([path])
    assert da.dims == ("time", "rlat", "rlon") and da.shape == (6, 12, 10)
    # Native metres kept, rows flipped to south->north together with the data.
    np.testing.assert_array_equal(da["rlat"].values, grid.rlat)
    np.testing.assert_array_equal(da["rlon"].values, grid.rlon)
    assert da["rlat"].attrs["standard_name"] == "projection_y_coordinate" and da["rlon"].attrs["units"] == "m"
    np.testing.assert_allclose(da.values, field.astype(np.float32))
    # Spacing is exact, from x/y.
    assert (da.attrs["dx_m"], da.attrs["dy_m"]) == (2000.0, 2000.0)
    assert grid_spacing_of(da) == (2000.0, 2000.0)
    params = grid_mapping_params(da)
    assert is_projected(params) and da.attrs["grid_mapping"] == "crs"
    assert params["latitude_of_projection_origin"] == 52.0 and params["false_easting"] == 4321000.0
    assert params["inverse_flattening"] == pytest.approx(298.257222101)
    # lat/lon spot checks against pyproj's EPSG:3035 for a few cells.
    for i, j in [(0, 0), (11, 9), (5, 3), (0, 9)]:
        lat, lon = _laea_to_geographic(grid.rlon[j], grid.rlat[i])
        assert da["lat"].values[i, j] == pytest.approx(lat, abs=1e-9)
        assert da["lon"].values[i, j] == pytest.approx(lon, abs=1e-9)


def test_laea_false_origin_is_52n_10e(tmp_path, synth):
    # The false origin (4321000, 3210000) is the projection centre 52 N, 10 E by definition.
    grid = synth.make_laea_grid(4, 4, y0=3_210_000.0 - 2000.0, x0=4_321_000.0 - 2000.0)
    path = synth.write_cosmo(tmp_path / "T_2M.nc", synth.cosmo_laea_dataset(synth.month_times(2001, 1)[:2], grid))
    da = open_cosmo([path])
    assert da["lat"].values[1, 1] == pytest.approx(52.0, abs=1e-12)
    assert da["lon"].values[1, 1] == pytest.approx(10.0, abs=1e-12)
    # One cell east of the centre: 2 km along the parallel ~ 2000 / (R cos 52) rad of longitude.
    assert da["lon"].values[1, 2] - 10.0 == pytest.approx(np.rad2deg(2000.0 / (6_381_000 * np.cos(np.deg2rad(52)))), rel=3e-3)


def test_laea_multi_file_and_latlon_check(tmp_path, synth):
    grid = synth.make_laea_grid(8, 8)
    t = synth.month_times(2001, 1)
    jan = synth.write_cosmo(tmp_path / "T_2M_a.nc", synth.cosmo_laea_dataset(t[:3], grid, with_latlon=True))
    feb = synth.write_cosmo(tmp_path / "T_2M_b.nc", synth.cosmo_laea_dataset(t[3:5], grid, mapping="wkt", y_descending=False))
    da = open_cosmo([feb, jan])  # mixed mapping styles, same grid
    assert da.sizes["time"] == 5 and bool((np.diff(da["time"].values) > np.timedelta64(0)).all())

    other = synth.write_cosmo(tmp_path / "T_2M_c.nc", synth.cosmo_laea_dataset(t[5:6], synth.make_laea_grid(8, 8, x0=4_087_000.0)))
    with pytest.raises(InputError, match=r"T_2M_c\.nc: grid differs"):
        open_cosmo([jan, other])

    ds = synth.cosmo_laea_dataset(t[:2], grid, with_latlon=True)
    ds["lambert_azimuthal_equal_area"].attrs["longitude_of_projection_origin"] = 11.0  # not the grid's projection
    bad = synth.write_cosmo(tmp_path / "T_2M_proj.nc", ds)
    with pytest.raises(InputError, match=r"T_2M_proj\.nc: the file's lat/lon differ .* lambert_azimuthal_equal_area"):
        open_cosmo([bad])


def test_laea_errors(tmp_path, synth):
    import pyproj

    grid = synth.make_laea_grid(6, 5)
    t = synth.month_times(2001, 1)[:2]

    path = synth.write_cosmo(tmp_path / "T_2M_km.nc", synth.cosmo_laea_dataset(t, grid, xy_units="km"))
    with pytest.raises(InputError, match=r"T_2M_km\.nc: coordinate 'y' of variable 'T_2M' has units 'km'; expected m"):
        open_cosmo([path])

    path = synth.write_cosmo(tmp_path / "T_2M_degc.nc", synth.cosmo_laea_dataset(t, grid, units="degC"))
    with pytest.raises(InputError, match=r"T_2M_degc\.nc: variable 'T_2M' has units 'degC': looks like degC"):
        open_cosmo([path])

    ragged = synth.make_laea_grid(6, 5)
    ragged.rlon[-1] += 500.0
    path = synth.write_cosmo(tmp_path / "T_2M_ragged.nc", synth.cosmo_laea_dataset(t, ragged))
    with pytest.raises(InputError, match=r"T_2M_ragged\.nc: variable 'T_2M': projected coordinate 'x' is not a regular"):
        open_cosmo([path])

    ds = synth.cosmo_laea_dataset(t, grid, mapping="wkt")
    utm = pyproj.CRS("EPSG:32632").to_wkt()
    ds["crs"].attrs = {"crs_wkt": utm, "spatial_ref": utm}
    path = synth.write_cosmo(tmp_path / "T_2M_utm.nc", ds)
    with pytest.raises(InputError, match=r"T_2M_utm\.nc: no rotated-pole grid mapping or lambert_azimuthal_equal_area"):
        open_cosmo([path])


def test_laea_target_feeds_the_regridder(tmp_path, synth):
    """Downstream: TargetGrid/bilinear Regridder accept the LAEA grid; lat/lon-linear fields come back exactly."""
    from pdeldm.data.regrid import Regridder, TargetGrid

    grid = synth.make_laea_grid(16, 16)
    path = synth.write_cosmo(tmp_path / "T_2M.nc", synth.cosmo_laea_dataset(synth.month_times(2001, 1)[:1], grid))
    da = open_cosmo([path])
    target = TargetGrid.from_xarray(da)
    np.testing.assert_allclose(target.lat, grid.lat, atol=1e-9)
    lat = np.arange(44.0, 47.01, 0.25)
    lon = np.arange(5.0, 9.01, 0.25)
    src = xr.DataArray(300.0 - 0.5 * lat[:, None] + 0.2 * lon[None, :] + 0 * lon, dims=("latitude", "longitude"),
                       coords={"latitude": lat, "longitude": lon})
    out = Regridder(lat, lon, target, "bilinear")(src)
    np.testing.assert_allclose(out.values, 300.0 - 0.5 * grid.lat + 0.2 * grid.lon, atol=1e-4)
