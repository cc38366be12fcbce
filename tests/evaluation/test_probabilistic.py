"""Ensemble and tail scores against properscoring, direct formulas and calibrated synthetic ensembles."""

from __future__ import annotations

import numpy as np
import properscoring
import pytest
from scipy import stats

from pdeldm.evaluation import probabilistic as prob


def _calibrated(n: int, m: int, member_scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth and m members drawn from N(mu, 1) per point (members from N(mu, member_scale²))."""
    rng = np.random.default_rng(seed)
    mu = 3 * rng.standard_normal(n)
    truth = mu + rng.standard_normal(n)
    ens = mu + member_scale * rng.standard_normal((m, n))
    return truth, ens


@pytest.mark.parametrize("m", [1, 2, 7])
def test_crps_matches_properscoring(m: int) -> None:
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((5, 6))
    ens = rng.standard_normal((m, 5, 6)) * 2
    expected = properscoring.crps_ensemble(obs, np.moveaxis(ens, 0, -1))
    np.testing.assert_allclose(prob.crps_ensemble(obs, ens), expected, rtol=1e-12, atol=1e-14)
    # Members on another axis give the same scores.
    np.testing.assert_allclose(prob.crps_ensemble(obs, np.moveaxis(ens, 0, 2), axis=2), expected, rtol=1e-12)


def test_crps_one_member_is_absolute_error() -> None:
    obs, ens = np.array([1.0, -2.0]), np.array([[3.0, -2.5]])
    np.testing.assert_allclose(prob.crps_ensemble(obs, ens), [2.0, 0.5])


@pytest.mark.parametrize("fair", [False, True])
def test_crps_of_a_one_member_ensemble_equals_the_mae(fair: bool) -> None:
    from pdeldm.evaluation.metrics import mae

    rng = np.random.default_rng(11)
    truth, field = rng.normal(285, 5, (24, 20)), rng.normal(285, 5, (24, 20))
    assert np.mean(prob.crps_ensemble(truth, field[None], fair=fair)) == pytest.approx(float(mae(field, truth)),
                                                                                   rel=1e-12)


def test_fair_crps_matches_the_direct_formula() -> None:
    rng = np.random.default_rng(1)
    obs = rng.standard_normal(40)
    ens = rng.standard_normal((6, 40))
    m = ens.shape[0]
    pairwise = np.abs(ens[:, None, :] - ens[None, :, :]).sum(axis=(0, 1))
    direct = np.abs(ens - obs).mean(axis=0) - pairwise / (2 * m * (m - 1))
    np.testing.assert_allclose(prob.crps_ensemble(obs, ens, fair=True), direct, rtol=1e-12)
    assert np.all(prob.crps_ensemble(obs, ens, fair=True) < prob.crps_ensemble(obs, ens))


def test_rank_histogram_of_exchangeable_draws_is_flat() -> None:
    truth, ens = _calibrated(20000, 9, 1.0, seed=2)
    counts = prob.rank_histogram(truth, ens, rng=0)
    assert counts.shape == (10,) and counts.sum() == 20000 and counts.dtype == np.int64
    assert stats.chisquare(counts).pvalue > 1e-3


def test_rank_histogram_breaks_ties_randomly() -> None:
    # Integer-valued exchangeable draws: many ties; without random tie-breaking rank 0 would dominate.
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 20000).astype(float)
    ens = rng.integers(0, 3, (4, 20000)).astype(float)
    counts = prob.rank_histogram(truth, ens, rng=np.random.default_rng(4))
    assert stats.chisquare(counts).pvalue > 1e-3


def test_rank_histogram_of_an_underdispersive_ensemble_is_u_shaped() -> None:
    truth, ens = _calibrated(20000, 9, 0.3, seed=5)
    counts = prob.rank_histogram(truth, ens, rng=0)
    assert counts[0] > 3 * counts[5] and counts[-1] > 3 * counts[5]


def test_spread_skill_is_one_for_a_calibrated_ensemble() -> None:
    truth, ens = _calibrated(50000, 5, 1.0, seed=6)
    assert prob.spread_skill_ratio(truth, ens) == pytest.approx(1.0, abs=0.05)
    # Without the (m + 1)/m correction it tends to sqrt(m / (m + 1)) = 0.913 for m = 5.
    assert prob.spread_skill_ratio(truth, ens, corrected=False) == pytest.approx(np.sqrt(5 / 6), abs=0.05)


def test_spread_skill_is_below_one_for_an_underdispersive_ensemble() -> None:
    truth, ens = _calibrated(50000, 5, 0.4, seed=7)
    assert prob.spread_skill_ratio(truth, ens) < 0.6


def test_quantile_error() -> None:
    truth = np.random.default_rng(8).standard_normal((50, 40))
    assert prob.quantile_error(truth + 1.5, truth, q=0.99) == pytest.approx(1.5)
    assert prob.quantile_error(2 * truth, truth, q=0.5) == pytest.approx(np.median(truth))
    np.testing.assert_allclose(prob.quantile_error(truth + 1, truth, axis=0), np.ones(40))


def test_threshold_scores_by_hand() -> None:
    truth = np.array([5.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    pred = np.array([5.0, 5.0, 0.0, 5.0, 0.0, 0.0, 0.0, 1.0])
    # threshold 1 (strictly above): hits 2, misses 1, false alarms 1, correct negatives 4.
    scores = prob.threshold_scores(pred, truth, 1.0)
    assert scores == pytest.approx({"hit_rate": 2 / 3, "false_alarm_ratio": 1 / 3, "csi": 2 / 4, "frequency_bias": 1.0})
    none = prob.threshold_scores(pred, truth, 10.0)
    assert all(np.isnan(v) for v in none.values())
    # A per-point threshold broadcasts.
    per_point = prob.threshold_scores(pred[None].repeat(2, 0), truth[None].repeat(2, 0), np.full((1, 8), 1.0))
    assert per_point == pytest.approx(scores)


def test_bad_inputs() -> None:
    truth, ens = _calibrated(10, 3, 1.0, seed=9)
    bad = ens.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="ens contains NaN"):
        prob.crps_ensemble(truth, bad)
    with pytest.raises(ValueError, match="obs contains NaN"):
        prob.rank_histogram(np.full(10, np.nan), ens)
    with pytest.raises(ValueError, match=r"obs shape \(9,\) does not match ens shape \(3, 10\)"):
        prob.spread_skill_ratio(truth[:9], ens)
    with pytest.raises(ValueError, match="at least 2 members"):
        prob.spread_skill_ratio(truth, ens[:1])
    with pytest.raises(ValueError, match=r"shapes differ: \(10,\) vs \(9,\)"):
        prob.quantile_error(truth, truth[:9])
    with pytest.raises(ValueError, match="threshold shape"):
        prob.threshold_scores(truth, truth, np.zeros(3))
    with pytest.raises(ValueError, match="q must be in"):
        prob.quantile_error(truth, truth, q=99)
