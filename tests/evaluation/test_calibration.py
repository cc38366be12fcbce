"""Pooled calibration scores on synthetic ensembles whose calibration is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdeldm.evaluation import calibration as cal
from pdeldm.evaluation.metrics import mae

NY = NX = 32


def _verify(members: int, member_scale: float, n_times: int = 40, seed: int = 0,
            thresholds: dict[str, cal.Threshold] | None = None) -> cal.EnsembleVerification:
    """Truth and members drawn around a common centre with a spread that varies over the map.

    The standard deviation ``sigma`` varies by coarse cell (0.2 to 2 K): calibrated when the members
    use ``sigma`` (``member_scale`` 1), under-dispersive below.
    """
    rng = np.random.default_rng(seed)
    sigma_blocks = rng.uniform(0.2, 2.0, (NY // 8, NX // 8))
    sigma = np.kron(sigma_blocks, np.ones((8, 8)))
    verification = cal.EnsembleVerification(members, 8, thresholds or {}, seed=1)
    times = pd.date_range("2003-05-01", periods=n_times, freq="35h")
    for time in times:
        centre = 285.0 + rng.normal(0, 3, (NY, NX))
        truth = centre + sigma * rng.standard_normal((NY, NX))
        ens = centre[None] + member_scale * sigma * rng.standard_normal((members, NY, NX))
        verification.add(time, ens, truth)
    return verification


def _summary(verification: cal.EnsembleVerification) -> dict:
    return cal.summarise(verification.table(), verification.counts())


def test_pooled_spread_skill_of_a_calibrated_ensemble_is_one_within_sampling_error() -> None:
    summary = _summary(_verify(members=4, member_scale=1.0))
    # 40 maps x 1024 points, but a spread varying twentyfold: a few per cent of sampling error.
    assert summary["spread_skill"] == pytest.approx(1.0, abs=0.04)
    assert summary["spread"] == pytest.approx(summary["rmse_ensmean"], rel=0.04)


def test_pooled_spread_skill_of_an_under_dispersive_ensemble_is_below_one() -> None:
    summary = _summary(_verify(members=4, member_scale=0.5))
    assert summary["spread_skill"] < 0.65
    assert summary["rank_histogram"]["shape"].startswith("U-shaped")


def test_rank_histogram_counts_sum_to_the_verification_points_and_a_calibrated_one_is_flat() -> None:
    verification = _verify(members=5, member_scale=1.0, n_times=30)
    summary = _summary(verification)
    hist = summary["rank_histogram"]
    assert len(hist["counts"]) == 6
    assert sum(hist["counts"]) == 30 * NY * NX == summary["n_points"]
    assert hist["outer"] == pytest.approx(1.0, abs=0.1) and hist["shape"] == "flat"


def test_crps_of_a_one_member_ensemble_equals_the_mae() -> None:
    verification = cal.EnsembleVerification(1, 8)
    rng = np.random.default_rng(2)
    truths, fields = rng.normal(285, 4, (5, NY, NX)), rng.normal(285, 4, (5, NY, NX))
    for i in range(5):
        verification.add(pd.Timestamp("2003-06-01") + pd.Timedelta(hours=i), fields[i][None], truths[i])
    summary = _summary(verification)
    assert summary["crps"] == pytest.approx(float(mae(fields, truths)), rel=1e-12)
    assert summary["spread"] == 0.0 and summary["spread_skill"] == 0.0 and summary["rank_histogram"] is None


def test_spread_error_diagram_of_a_calibrated_ensemble_lies_on_the_diagonal() -> None:
    summary = _summary(_verify(members=8, member_scale=1.0, n_times=60))
    groups = summary["spread_error"]
    assert 8 <= len(groups) <= 11
    spreads = np.array([g["spread"] for g in groups])
    rmses = np.array([g["rmse"] for g in groups])
    assert np.all(np.diff(spreads) > 0)
    np.testing.assert_allclose(rmses, spreads, rtol=0.15)
    under = _summary(_verify(members=8, member_scale=0.5, n_times=60))["spread_error"]
    assert all(g["rmse"] > 1.5 * g["spread"] for g in under)


def test_reliability_and_brier_of_a_calibrated_ensemble() -> None:
    warm = cal.Threshold(np.full((NY, NX), 286.0), "above")
    summary = _summary(_verify(members=8, member_scale=1.0, n_times=60, thresholds={"warm": warm}))
    events = summary["events"]["warm"]
    rel = events["reliability"]
    forecasts = np.array(rel["forecasts"])
    assert forecasts.sum() == summary["n_points"]
    populated = forecasts > 2000
    observed = np.array([np.nan if v is None else v for v in rel["observed_frequency"]])
    np.testing.assert_allclose(observed[populated], np.array(rel["probability"])[populated], atol=0.05)
    assert 0.0 < events["brier_fair"] < events["brier"] < events["base_rate"] * (1 - events["base_rate"])
    assert events["brier_skill"] > 0 and 0 < events["sedi"] < 1


def test_sedi_is_zero_for_a_random_forecast_and_higher_for_a_skilful_one() -> None:
    # Random: hit rate = false-alarm rate.
    assert cal.sedi(10, 90, 100, 900) == pytest.approx(0.0, abs=1e-12)
    assert cal.sedi(80, 20, 50, 950) > 0.8
    assert np.isnan(cal.sedi(0, 100, 5, 995))  # no hit: undefined


def test_counts_of_several_seeds_pool_into_one_summary() -> None:
    warm = {"warm": cal.Threshold(np.full((NY, NX), 286.0), "above")}
    a, b = _verify(4, 1.0, 10, seed=3, thresholds=warm), _verify(4, 1.0, 10, seed=4, thresholds=warm)
    merged = cal.merge_counts([a.counts(), b.counts()])
    table = pd.concat([a.table(), b.table()], ignore_index=True)
    summary = cal.summarise(table, merged)
    assert sum(summary["rank_histogram"]["counts"]) == 2 * 10 * NY * NX
    assert sum(summary["events"]["warm"]["reliability"]["forecasts"]) == 2 * 10 * NY * NX
    with pytest.raises(ValueError, match="different sizes"):
        cal.merge_counts([a.counts(), _verify(3, 1.0, 2).counts()])
