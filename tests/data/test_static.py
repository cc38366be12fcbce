"""The committed EUR-11 static file, its rebuild script, region extraction and grid geometry."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pyproj
import pytest
import xarray as xr

from pdeldm.data.static import (
    REGIONS,
    extract_region,
    geographic_to_grid_wind,
    grid_north_angle,
    grid_to_geographic_wind,
    load_static,
)
from pdeldm.errors import InputError

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "data" / "static" / "eur11_static.nc"
POLE_CF = {"grid_mapping_name": "rotated_latitude_longitude", "grid_north_pole_latitude": 39.25,
           "grid_north_pole_longitude": -162.0}
SMALL_ALPS = {"rlat0": -6.215, "rlon0": -8.025, "ny": 32, "nx": 32}


def _to_geographic(rlon: np.ndarray, rlat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_cf(POLE_CF), "EPSG:4326", always_xy=True)
    return transformer.transform(rlon, rlat)


def test_committed_file_is_small_and_real() -> None:
    assert STATIC.stat().st_size < 2_000_000
    ds = load_static(STATIC)
    assert ds.sizes == {"rlat": 438, "rlon": 450}
    assert ds["HSURF"].dtype == np.float32 and ds["FR_LAND"].dtype == np.float32
    assert float(ds["HSURF"].max()) > 2500.0  # the Alps
    assert 0.0 <= float(ds["FR_LAND"].min()) and float(ds["FR_LAND"].max()) <= 1.0
    assert float(ds["FR_LAND"].min()) == 0.0 and float(ds["FR_LAND"].max()) == 1.0
    attrs = ds["rotated_pole"].attrs
    assert attrs["grid_mapping_name"] == "rotated_latitude_longitude"
    assert attrs["grid_north_pole_latitude"] == pytest.approx(39.25)
    assert attrs["grid_north_pole_longitude"] == pytest.approx(-162.0)
    assert np.allclose(np.diff(ds["rlat"]), 0.11) and np.allclose(np.diff(ds["rlon"]), 0.11)
    assert 11_000 < ds.attrs["dx_m"] < 12_300 and ds.attrs["dy_m"] == pytest.approx(12_231.9, abs=1)


def test_latlon_match_pyproj_rotated_pole() -> None:
    ds = load_static(STATIC)
    for i, j in [(0, 0), (100, 200), (437, 449), (300, 17)]:
        lon, lat = _to_geographic(float(ds["rlon"][j]), float(ds["rlat"][i]))
        assert float(ds["lat"][i, j]) == pytest.approx(lat, abs=1e-4)
        assert float(ds["lon"][i, j]) == pytest.approx(lon, abs=1e-4)
    # Mont Blanc (45.83 N, 6.86 E) lies in a high cell of the grid
    rlon_mb, rlat_mb = -7.76, -4.34
    near = ds["HSURF"].sel(rlat=slice(rlat_mb - 0.2, rlat_mb + 0.2), rlon=slice(rlon_mb - 0.2, rlon_mb + 0.2))
    assert float(near.max()) > 2000.0


def test_extract_region_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "alps.nc"
    extract_region(STATIC, SMALL_ALPS, out)
    region = load_static(out)
    full = load_static(STATIC)
    assert region.sizes == {"rlat": 32, "rlon": 32}
    assert float(region["rlat"][0]) == pytest.approx(-6.215) and float(region["rlon"][0]) == pytest.approx(-8.025)
    window = full.sel(rlat=region["rlat"], rlon=region["rlon"], method="nearest")
    np.testing.assert_array_equal(region["HSURF"].values, window["HSURF"].values)
    np.testing.assert_array_equal(region["FR_LAND"].values, window["FR_LAND"].values)
    lon, lat = _to_geographic(*np.meshgrid(region["rlon"].values, region["rlat"].values))
    np.testing.assert_allclose(region["lat"].values, lat, atol=1e-9)
    np.testing.assert_allclose(region["lon"].values, lon, atol=1e-9)
    raw = xr.open_dataset(out)
    assert raw["HSURF"].dtype == np.float32 and raw["HSURF"].attrs["units"] == "m"
    assert raw["HSURF"].attrs["grid_mapping"] == "rotated_pole"
    assert raw["rlat"].attrs["standard_name"] == "grid_latitude"
    assert raw["lat"].dims == ("rlat", "rlon")
    assert 12_000 < raw.attrs["dx_m"] < 12_300 and 12_200 < raw.attrs["dy_m"] < 12_300
    assert float(region["HSURF"].max()) > 2500.0


def test_extract_region_snaps_to_nearest_cell(tmp_path: Path) -> None:
    out = tmp_path / "r.nc"
    extract_region(STATIC, {"rlat0": -6.2, "rlon0": -8.0, "ny": 8, "nx": 16}, out)
    region = xr.open_dataset(out)
    assert float(region["rlat"][0]) == pytest.approx(-6.215) and float(region["rlon"][0]) == pytest.approx(-8.025)


@pytest.mark.parametrize("region, message", [
    ({"rlat0": 0.0, "rlon0": 0.0, "ny": 30, "nx": 32}, "multiple"),
    ({"rlat0": 0.0, "rlon0": 0.0, "ny": 32}, "missing"),
    ({"rlat0": 22.0, "rlon0": 0.0, "ny": 32, "nx": 32}, "grid edge"),
    ({"rlat0": -40.0, "rlon0": 0.0, "ny": 32, "nx": 32}, "outside"),
    ({"rlat0": 0.0, "rlon0": 0.0, "ny": 32, "nx": 32, "size": 3}, "unknown"),
])
def test_extract_region_rejects_bad_boxes(tmp_path: Path, region: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        extract_region(STATIC, region, tmp_path / "r.nc")


def test_documented_regions_fit_the_grid(tmp_path: Path) -> None:
    full = load_static(STATIC)
    for name, region in REGIONS.items():
        assert np.min(np.abs(full["rlat"].values - region["rlat0"])) < 1e-6, name
        assert np.min(np.abs(full["rlon"].values - region["rlon0"])) < 1e-6, name
    extract_region(STATIC, REGIONS["italy"], tmp_path / "italy.nc")
    italy = load_static(tmp_path / "italy.nc")
    assert float(italy["HSURF"].max()) > 2500.0 and 0.3 < float(italy["FR_LAND"].mean()) < 0.7


def _write_static_like(path: Path, **changes: object) -> Path:
    ds = xr.open_dataset(STATIC).isel(rlat=slice(0, 16), rlon=slice(0, 16)).load()
    for name, value in changes.items():
        if name == "units":
            ds["HSURF"].attrs["units"] = value
        else:
            ds[name] = ds[name].copy(data=value)  # type: ignore[arg-type]
    for variable in ds.variables.values():
        variable.encoding = {}  # not the committed file's packing: values must be written as given
    ds.to_netcdf(path)
    return path


def test_load_static_rejects_bad_inputs(tmp_path: Path) -> None:
    base = xr.open_dataset(STATIC).isel(rlat=slice(0, 16), rlon=slice(0, 16)).load()
    percent = base["FR_LAND"].values * 100.0
    percent[0, 0] = 100.0
    with pytest.raises(InputError, match="FR_LAND"):
        load_static(_write_static_like(tmp_path / "pct.nc", FR_LAND=percent))
    nan = base["HSURF"].values.copy()
    nan[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load_static(_write_static_like(tmp_path / "nan.nc", HSURF=nan))
    with pytest.raises(InputError, match="units"):
        load_static(_write_static_like(tmp_path / "km.nc", units="km"))
    with pytest.raises(InputError, match="not found"):
        load_static(tmp_path / "missing.nc")


def test_wind_rotation_round_trip() -> None:
    pole = (39.25, -162.0)
    rlon, rlat = np.meshgrid(np.linspace(-20, 15, 5), np.linspace(-20, 20, 4))
    angle = grid_north_angle(rlon, rlat, pole)
    # along the rotated prime meridian grid north is true north
    assert np.allclose(grid_north_angle(np.zeros(3), np.array([-10.0, 0.0, 10.0]), pole), 0.0, atol=1e-6)
    assert np.abs(angle).max() > np.deg2rad(5)  # and away from it, it is not
    u, v = np.full(angle.shape, 4.0), np.full(angle.shape, -3.0)
    east, north = grid_to_geographic_wind(u, v, angle)
    np.testing.assert_allclose(np.hypot(east, north), 5.0)
    back = geographic_to_grid_wind(east, north, angle)
    np.testing.assert_allclose(back[0], u, atol=1e-12)
    np.testing.assert_allclose(back[1], v, atol=1e-12)


def _load_build_script():  # noqa: ANN202 - a module object
    return importlib.import_module("pdeldm.data.static_subset")


def _fake_source(nug: Path, shift_lat: float = 0.0) -> None:
    """Two small files laid out like the libncarg-data sources (float32 fields with a time axis)."""
    rlat = (-24.805 + 0.11 * np.arange(6)).astype(np.float32)
    rlon = (-29.805 + 0.11 * np.arange(5)).astype(np.float32)
    lon, lat = _to_geographic(*np.meshgrid(rlon.astype(float), rlat.astype(float)))
    pole = {"grid_mapping_name": "rotated_latitude_longitude", "grid_north_pole_latitude": np.float32(39.25),
            "grid_north_pole_longitude": np.float32(-162.0)}
    for name, file, values in [("HSURF", "HSURF_regional_model_0.11deg.nc", np.linspace(-10, 3000, 30)),
                               ("FR_LAND", "FR-LAND_regional_model_0.11deg.nc", np.linspace(0, 1, 30))]:
        lat_values = lat + (shift_lat if name == "FR_LAND" else 0.0)
        xr.Dataset(
            {name: (("time", "rlat", "rlon"), values.reshape(1, 6, 5).astype(np.float32),
                    {"units": "m" if name == "HSURF" else "1"}),
             "rotated_pole": ((), np.bytes_(b""), pole)},
            coords={"time": [0.0], "rlat": rlat, "rlon": rlon,
                    "lat": (("rlat", "rlon"), lat_values.astype(np.float32)),
                    "lon": (("rlat", "rlon"), lon.astype(np.float32))},
        ).to_netcdf(nug / file)


def test_build_script_packs_and_checks(tmp_path: Path) -> None:
    build = _load_build_script()
    nug = tmp_path / "usr" / "share" / "ncarg" / "data" / "nug"
    nug.mkdir(parents=True)
    _fake_source(nug)
    out = tmp_path / "static.nc"
    build.main([str(tmp_path), "--out", str(out)])  # finds nug/ below an unpacked package directory
    ds = load_static(out)
    raw = xr.open_dataset(out, mask_and_scale=False)
    assert raw["HSURF"].dtype == np.int16 and raw["FR_LAND"].dtype == np.uint8
    np.testing.assert_allclose(ds["HSURF"].values.ravel(), np.round(np.linspace(-10, 3000, 30)))
    np.testing.assert_allclose(ds["FR_LAND"].values.ravel(), np.linspace(0, 1, 30), atol=0.0021)
    assert float(ds["rlat"][1]) == pytest.approx(-24.695, abs=1e-9)
    bad = tmp_path / "bad"
    bad.mkdir()
    _fake_source(bad, shift_lat=0.5)
    with pytest.raises(InputError, match="lat"):
        build.main([str(bad), "--out", str(tmp_path / "bad.nc")])
