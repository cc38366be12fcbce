"""ERA5 reading: CDS layout normalisation and the value checks (messages name file and variable)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.data.era5 import check_era5_file, normalise_era5, open_era5
from pdeldm.errors import InputError

VARS = ["t2m", "u10", "v10"]


@pytest.fixture
def axes():
    return np.arange(44.0, 47.01, 0.25), np.arange(8.0, 12.01, 0.25)


def _times(start: str = "2001-01-01", hours: int = 48) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=hours, freq="h")


def test_normalises_cds_layout(tmp_path, synth, axes):
    lat, lon = axes
    raw = synth.era5_dataset(_times(), lat, lon)
    assert raw["latitude"].values[0] > raw["latitude"].values[-1]  # CDS: descending
    path = synth.write_era5(tmp_path / "era5_2001_01.nc", raw)

    ds = open_era5([path], VARS)
    assert dict(ds.sizes) == {"time": 48, "latitude": lat.size, "longitude": lon.size}
    assert list(ds["t2m"].dims) == ["time", "latitude", "longitude"]
    assert np.all(np.diff(ds["latitude"].values) > 0)
    assert "number" not in ds.variables and "expver" not in ds.variables and "valid_time" not in ds.variables
    assert all(ds[v].dtype == np.float32 for v in VARS)
    # values follow their coordinates through the flip
    expected = raw["t2m"].sel(latitude=45.5, longitude=9.0).values
    np.testing.assert_array_equal(ds["t2m"].sel(latitude=45.5, longitude=9.0).values, expected)


def test_longitudes_0_360_are_wrapped(tmp_path, synth):
    lat, lon = np.arange(44.0, 46.01, 0.25), np.arange(-3.0, 3.01, 0.25)
    raw = synth.era5_dataset(_times(hours=24), lat, lon, lon360=True)
    assert raw["longitude"].values.min() >= 0
    ds = normalise_era5(raw)
    np.testing.assert_allclose(ds["longitude"].values, lon)
    np.testing.assert_array_equal(
        ds["t2m"].sel(longitude=-1.0).values, raw["t2m"].sel(longitude=359.0).values[:, ::-1]
    )


def test_expver_dimension_is_merged(synth, axes):
    lat, lon = axes
    t = _times(hours=24)
    full = synth.era5_dataset(t, lat, lon).drop_vars("expver")
    # Old-CDS layout at the ERA5/ERA5T boundary: final ERA5 for the first 10 h, ERA5T after, NaN elsewhere.
    era5 = full.where(xr.DataArray(np.arange(24) < 10, dims="valid_time"))
    era5t = full.where(xr.DataArray(np.arange(24) >= 10, dims="valid_time"))
    both = xr.concat([era5, era5t], dim=pd.Index(["0001", "0005"], name="expver"))
    ds = normalise_era5(both)
    assert "expver" not in ds.dims and "expver" not in ds.variables
    np.testing.assert_allclose(ds["t2m"].values, normalise_era5(full)["t2m"].values)
    assert not np.isnan(ds["t2m"].values).any()


def test_degc_detected_by_values(tmp_path, synth, axes):
    lat, lon = axes
    raw = synth.era5_dataset(_times(), lat, lon, t_offset=-273.15)
    path = synth.write_era5(tmp_path / "era5_2001_01.nc", raw)
    with pytest.raises(InputError, match=r"era5_2001_01\.nc.*'t2m'.*looks like degC, expected K"):
        open_era5([path], VARS)


def test_degc_detected_by_units(tmp_path, synth, axes):
    lat, lon = axes
    raw = synth.era5_dataset(_times(), lat, lon)
    raw["t2m"].attrs["units"] = "degC"
    path = synth.write_era5(tmp_path / "era5_2001_02.nc", raw)
    with pytest.raises(InputError, match=r"era5_2001_02\.nc.*'t2m'.*looks like degC, expected K"):
        open_era5([path], VARS)


def test_nan_detected_with_count(tmp_path, synth, axes):
    lat, lon = axes
    raw = synth.era5_dataset(_times(), lat, lon)
    raw["u10"][3, 2, 1:4] = np.nan
    path = synth.write_era5(tmp_path / "era5_2001_01.nc", raw)
    with pytest.raises(InputError, match=r"era5_2001_01\.nc.*'u10' has 3 NaN"):
        open_era5([path], VARS)


def test_maskable_variable_is_filled(tmp_path, synth, axes):
    lat, lon = axes
    raw = synth.era5_dataset(_times(), lat, lon, variables=("t2m", "sst"))
    raw["sst"][:, :3, :3] = np.nan  # land
    path = synth.write_era5(tmp_path / "era5_2001_01.nc", raw)
    with pytest.raises(InputError, match="'sst' has"):
        open_era5([path], ["t2m", "sst"])
    ds = open_era5([path], ["t2m", "sst"], fill_values={"sst": 271.35})
    assert not np.isnan(ds["sst"].values).any()
    assert np.sum(ds["sst"].values == np.float32(271.35)) == 48 * 9


def test_missing_variable_is_named(tmp_path, synth, axes):
    lat, lon = axes
    path = synth.write_era5(tmp_path / "era5_2001_01.nc", synth.era5_dataset(_times(), lat, lon))
    with pytest.raises(InputError, match=r"era5_2001_01\.nc: missing variable\(s\) \['d2m'\]; variables present: \['t2m', 'u10', 'v10'\]"):
        open_era5([path], ["t2m", "d2m"])


def test_files_concatenated_sorted_and_checked(tmp_path, synth, axes):
    lat, lon = axes
    a = synth.write_era5(tmp_path / "era5_2001_01.nc", synth.era5_dataset(_times("2001-01-01", 24), lat, lon))
    b = synth.write_era5(tmp_path / "era5_2001_02.nc", synth.era5_dataset(_times("2001-01-02", 24), lat, lon))
    ds = open_era5([b, a], VARS)  # any order
    assert ds.sizes["time"] == 48 and ds.indexes["time"].is_monotonic_increasing

    with pytest.raises(InputError, match=r"duplicate ERA5 time 2001-01-01T00:00:00"):
        open_era5([a, a], VARS)

    c = synth.write_era5(tmp_path / "era5_gap.nc", synth.era5_dataset(_times("2001-01-02T05:00", 24), lat, lon))
    with pytest.raises(InputError, match=r"time gap: 2001-01-01T23:00:00 is followed by 2001-01-02T05:00:00"):
        open_era5([a, c], VARS)


def test_check_era5_file(tmp_path, synth, axes):
    lat, lon = axes  # 44..47 N, 8..12 E
    t = _times(hours=24)
    path = synth.write_era5(tmp_path / "era5_2001_01.nc", synth.era5_dataset(t, lat, lon))
    check_era5_file(path, VARS, times=t, area=[47, 8, 44, 12])
    check_era5_file(path, VARS, area=[47.1, 7.9, 43.9, 12.1])  # CDS snaps to the grid: half a step is fine
    with pytest.raises(InputError, match=r"1 of 25 requested times missing, first 2001-01-02T00:00:00"):
        check_era5_file(path, VARS, times=t.append(pd.DatetimeIndex(["2001-01-02"])))
    with pytest.raises(InputError, match=r"era5_2001_01\.nc: does not cover the area"):
        check_era5_file(path, VARS, area=[50, 8, 44, 12])
    with pytest.raises(InputError, match="missing variable"):
        check_era5_file(path, ["sst"])

    zipped = tmp_path / "era5_zip.nc"
    zipped.write_bytes(b"PK\x03\x04rest-of-zip")
    with pytest.raises(InputError, match="zip archive"):
        check_era5_file(zipped, VARS)
