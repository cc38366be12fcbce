"""The ERA5 (new CDS netCDF) and COSMO-CLM writers produce interfaces.md section 2 exactly."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.data.formats import make_era5_dataset, write_cosmo_month, write_era5_month
from pdeldm.data.static import extract_region, load_static
from pdeldm.errors import InputError

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "data" / "static" / "eur11_static.nc"
TIMES = pd.date_range("2001-03-01", periods=6, freq="h")


def _era5(latitude: np.ndarray, longitude: np.ndarray) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    shape = (TIMES.size, latitude.size, longitude.size)
    lat3 = np.broadcast_to(latitude[None, :, None], shape)
    fields = {"t2m": 300.0 - lat3 * 0.5, "u10": np.full(shape, 3.0), "v10": np.full(shape, -1.0)}
    return make_era5_dataset(TIMES, latitude, longitude, fields), fields


def test_era5_file_layout(tmp_path: Path) -> None:
    latitude = np.array([44.1, 45.0, 45.9])  # ascending in, descending out
    longitude = np.array([6.3, 7.2, 8.1, 9.0])
    ds, fields = _era5(latitude, longitude)
    path = tmp_path / "era5_2001_03.nc"
    write_era5_month(ds, path)

    raw = netCDF4.Dataset(path)
    assert list(raw.dimensions) == ["valid_time", "latitude", "longitude"]
    assert raw.Conventions == "CF-1.7"
    assert raw.institution == "European Centre for Medium-Range Weather Forecasts"
    assert raw["valid_time"].dtype == np.int64 and raw["valid_time"].units == "seconds since 1970-01-01"
    assert raw["valid_time"][0] == (TIMES[0] - pd.Timestamp("1970-01-01")).total_seconds()
    assert raw["latitude"].dtype == np.float64 and list(raw["latitude"][:]) == [45.9, 45.0, 44.1]
    assert raw["number"].shape == () and int(raw["number"][...]) == 0
    assert list(raw["expver"][:]) == ["0001"] * TIMES.size
    for name, units in (("t2m", "K"), ("u10", "m s**-1"), ("v10", "m s**-1")):
        var = raw[name]
        assert var.dimensions == ("valid_time", "latitude", "longitude") and var.dtype == np.float32
        assert var.units == units and var.long_name and var.standard_name
        assert var.coordinates == "number valid_time latitude longitude expver"
    raw.close()

    opened = xr.open_dataset(path)
    assert opened["latitude"].values[0] > opened["latitude"].values[-1]
    # the data were flipped with the axis: t2m decreases northwards
    np.testing.assert_allclose(opened["t2m"].sel(latitude=45.9).values, fields["t2m"][:, 2, :], rtol=1e-6)
    assert (pd.DatetimeIndex(opened["valid_time"].values) == TIMES).all()
    assert opened["number"].item() == 0 and opened["expver"].dims == ("valid_time",)


def test_era5_writer_leaves_input_untouched_and_validates(tmp_path: Path) -> None:
    ds, _ = _era5(np.array([45.0, 44.1]), np.array([7.2, 8.1]))
    write_era5_month(ds, tmp_path / "a.nc")
    assert "coordinates" not in ds["t2m"].encoding
    with pytest.raises(InputError, match="shape"):
        make_era5_dataset(TIMES, np.array([45.0]), np.array([7.0]), {"t2m": np.zeros((2, 1, 1))})
    with pytest.raises(InputError, match="unknown"):
        make_era5_dataset(TIMES, np.array([45.0]), np.array([7.0]), {"tp": np.zeros((TIMES.size, 1, 1))})


@pytest.fixture(scope="module")
def region_static(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    path = tmp_path_factory.mktemp("static") / "region.nc"
    extract_region(STATIC, {"rlat0": -6.215, "rlon0": -8.025, "ny": 16, "nx": 24}, path)
    return load_static(path)


def test_cosmo_file_layout(tmp_path: Path, region_static: xr.Dataset) -> None:
    values = 270.0 + np.random.default_rng(0).random((TIMES.size, 16, 24))
    da = xr.DataArray(values, dims=("time", "rlat", "rlon"),
                      coords={"time": TIMES, "rlat": region_static["rlat"], "rlon": region_static["rlon"]})
    path = tmp_path / "T_2M_200103.nc"
    write_cosmo_month(da, region_static, path)

    raw = netCDF4.Dataset(path)
    t2m = raw["T_2M"]
    assert t2m.dimensions == ("time", "rlat", "rlon") and t2m.dtype == np.float32
    assert t2m.units == "K" and t2m.grid_mapping == "rotated_pole" and t2m.coordinates == "lon lat"
    pole = raw["rotated_pole"]
    assert np.issubdtype(pole.dtype, np.integer)
    assert pole.grid_mapping_name == "rotated_latitude_longitude"
    assert pole.grid_north_pole_latitude == pytest.approx(39.25)
    assert pole.grid_north_pole_longitude == pytest.approx(-162.0)
    for axis, standard_name in (("rlat", "grid_latitude"), ("rlon", "grid_longitude")):
        assert raw[axis].standard_name == standard_name and raw[axis].units == "degrees"
    assert raw["lat"].dimensions == ("rlat", "rlon") and raw["lon"].dimensions == ("rlat", "rlon")
    assert raw["time"].units.startswith("seconds since 1949-12-01")
    raw.close()

    opened = xr.open_dataset(path)
    np.testing.assert_allclose(opened["T_2M"].values, values.astype(np.float32))
    assert (pd.DatetimeIndex(opened["time"].values) == TIMES).all()
    np.testing.assert_allclose(opened["lat"].values, region_static["lat"].values)


def test_cosmo_writer_rejects_other_grids(tmp_path: Path, region_static: xr.Dataset) -> None:
    da = xr.DataArray(np.zeros((1, 16, 24)), dims=("time", "rlat", "rlon"),
                      coords={"time": TIMES[:1], "rlat": region_static["rlat"].values + 0.11,
                              "rlon": region_static["rlon"].values})
    with pytest.raises(InputError, match="rlat"):
        write_cosmo_month(da, region_static, tmp_path / "x.nc")
    with pytest.raises(InputError, match="dims"):
        write_cosmo_month(da.transpose("rlat", "time", "rlon"), region_static, tmp_path / "x.nc")
    assert not (tmp_path / "x.nc").exists()
