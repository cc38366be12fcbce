"""Deterministic metrics against peers (numpy, scipy, skimage) and their input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy import ndimage, stats
from skimage.metrics import structural_similarity

from pdeldm.evaluation import metrics


def _pair(shape: tuple[int, ...] = (48, 40), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = 280 + 5 * ndimage.gaussian_filter(rng.standard_normal(shape), 3)
    pred = truth + 0.3 * rng.standard_normal(shape) + 0.1
    return pred, truth


def test_pixel_scores_on_hand_values() -> None:
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    truth = np.array([[1.0, 1.0], [1.0, 1.0]])
    # errors 0, 1, 2, 3: rmse = sqrt(14/4), mae = 6/4, bias = 6/4
    assert metrics.rmse(pred, truth) == pytest.approx(np.sqrt(3.5))
    assert metrics.mae(pred, truth) == pytest.approx(1.5)
    assert metrics.bias(pred, truth) == pytest.approx(1.5)
    assert metrics.bias(truth, pred) == pytest.approx(-1.5)


def test_r2_and_pcc_against_numpy_and_scipy() -> None:
    pred, truth = _pair()
    expected_r2 = 1 - np.mean((pred - truth) ** 2) / np.var(truth)
    assert metrics.r2(pred, truth) == pytest.approx(expected_r2, rel=1e-12)
    assert metrics.pcc(pred, truth) == pytest.approx(stats.pearsonr(pred.ravel(), truth.ravel())[0], rel=1e-12)
    assert metrics.r2(truth, truth) == 1.0
    assert np.isnan(metrics.r2(pred, np.ones_like(truth)))
    assert np.isnan(metrics.pcc(np.ones_like(pred), truth))


def test_batched_scores_over_an_axis() -> None:
    pred, truth = _pair((3, 24, 20))
    for name in ("rmse", "mae", "bias", "r2", "pcc"):
        fn = getattr(metrics, name)
        batched = fn(pred, truth, axis=(-2, -1))
        assert batched.shape == (3,)
        np.testing.assert_allclose(batched, [fn(pred[i], truth[i]) for i in range(3)], rtol=1e-12)


@pytest.mark.parametrize(("shape", "data_range"), [((48, 40), None), ((64, 64), 20.0), ((11, 30), 1.0)])
def test_ssim_matches_skimage(shape: tuple[int, int], data_range: float | None) -> None:
    pred, truth = _pair(shape, seed=3)
    rng = float(truth.max() - truth.min()) if data_range is None else data_range
    expected = structural_similarity(
        pred, truth, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=rng
    )
    assert metrics.ssim(pred, truth, data_range=rng) == pytest.approx(expected, rel=1e-10)
    assert metrics.ssim(truth, truth, data_range=rng) == pytest.approx(1.0)


def test_ssim_of_float32_and_batches() -> None:
    pred, truth = _pair((2, 32, 32), seed=4)
    batched = metrics.ssim(pred.astype(np.float32), truth.astype(np.float32), data_range=10.0)
    singles = [metrics.ssim(pred[i], truth[i], data_range=10.0) for i in range(2)]
    np.testing.assert_allclose(batched, singles, rtol=1e-5)


def test_accepts_xarray_and_torch() -> None:
    pred, truth = _pair()
    expected = metrics.rmse(pred, truth)
    assert metrics.rmse(xr.DataArray(pred, dims=("y", "x")), truth) == pytest.approx(expected)
    t_pred = torch.from_numpy(pred).requires_grad_(True)
    assert metrics.rmse(t_pred, torch.from_numpy(truth)) == pytest.approx(expected, rel=1e-12)


def test_nan_names_the_argument() -> None:
    pred, truth = _pair()
    bad = truth.copy()
    bad[3, 4] = np.nan
    for fn in (metrics.rmse, metrics.mae, metrics.bias, metrics.r2, metrics.pcc):
        with pytest.raises(ValueError, match=r"truth contains NaN \(1 of"):
            fn(pred, bad)
        with pytest.raises(ValueError, match="pred contains NaN"):
            fn(bad, truth)
    with pytest.raises(ValueError, match="truth contains NaN"):
        metrics.ssim(pred, bad, data_range=1.0)


def test_shape_mismatch_shows_both_shapes() -> None:
    pred, truth = _pair((20, 30))
    for fn in (metrics.rmse, metrics.mae, metrics.bias, metrics.r2, metrics.pcc):
        with pytest.raises(ValueError, match=r"shapes differ: \(20, 30\) vs \(30, 20\)"):
            fn(pred, truth.T)
    with pytest.raises(ValueError, match=r"\(20, 30\) vs \(30, 20\)"):
        metrics.ssim(pred, truth.T, data_range=1.0)


def test_small_fields_and_bad_parameters() -> None:
    pred, truth = _pair((10, 30))
    with pytest.raises(ValueError, match="smaller than the 11-pixel SSIM window"):
        metrics.ssim(pred, truth, data_range=1.0)
    with pytest.raises(ValueError, match="data_range must be > 0"):
        metrics.ssim(pred, truth, data_range=0.0)
