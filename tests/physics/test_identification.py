"""The least-squares identification recovers the twin's known equation."""

from __future__ import annotations

import numpy as np
import pytest

from pdeldm.data.twin import merged_params
from pdeldm.errors import InputError
from pdeldm.physics.identification import identify_coefficients, sample_times


@pytest.fixture(scope="module")
def fit(ci_twin_store):
    return identify_coefficients(ci_twin_store.store, ci_twin_store.meta,
                                 dict(ci_twin_store.cfg["physics"], time_stride_hours=5, seed=0))


def test_fit_recovers_relaxation_time_lapse_rate_and_land_sea_diurnal_range(fit, ci_twin_store):
    """Tolerance: 5% on tau, the lapse rate and the land-sea diurnal range (45 days of a 64x64 twin)."""
    true = merged_params(ci_twin_store.cfg["twin"]["params"])
    got = fit["derived"]
    assert got["tau_hours"] == pytest.approx(true["tau_hours"], rel=0.05)
    assert got["lapse_rate_K_per_km"] == pytest.approx(true["lapse_rate"], rel=0.05)
    land_minus_sea = true["diurnal_amplitude_land"] - true["diurnal_amplitude_sea"]
    assert got["diurnal_range_land_minus_sea_K"] == pytest.approx(land_minus_sea, rel=0.05)
    assert got["diurnal_peak_hour_land_local_solar"] == pytest.approx(15.0, abs=0.25)
    for key, (low, high) in fit["derived_95ci"].items():
        assert low <= got[key] <= high, key


def test_ordinary_least_squares_is_biased_by_the_forcing(fit, ci_twin_store):
    """Why the fit uses instruments: T has responded to the forcing, so plain least squares
    overestimates the relaxation time."""
    true_tau = merged_params(ci_twin_store.cfg["twin"]["params"])["tau_hours"]
    assert fit["ols"]["derived"]["tau_hours"] > 1.15 * true_tau


def test_sample_times_need_neighbours_and_history():
    import pandas as pd

    times = pd.date_range("2001-01-01", periods=200, freq="h").delete(120)  # a missing hour
    chosen = sample_times(times, (0, 150), [24, 48], stride=1, max_times=1000)
    # index 119's next hour and every lag-48 instrument of indices 120..148 straddle the gap
    assert chosen == list(range(48, 119))
    assert len(sample_times(times, (0, 150), [24], 1, 10)) == 10


def test_missing_static_field_and_short_record_are_clear_errors(ci_twin_store, tmp_path):
    import json

    meta = json.loads(ci_twin_store.meta.read_text())
    cfg = dict(ci_twin_store.cfg["physics"], seed=0)
    bad = tmp_path / "meta.json"
    bad.write_text(json.dumps(dict(meta, static_vars=["HSURF", "LAND", "lat"])))
    with pytest.raises(InputError, match="no static field 'FR_LAND'.*data.static_vars"):
        identify_coefficients(ci_twin_store.store, bad, cfg)
    short = tmp_path / "short.json"
    short.write_text(json.dumps(dict(meta, splits=dict(meta["splits"], train=[0, 60]))))
    with pytest.raises(InputError, match="only .* training times .* needs at least 10"):
        identify_coefficients(ci_twin_store.store, short, cfg)
    assert np.isfinite(meta["dx_m"])
