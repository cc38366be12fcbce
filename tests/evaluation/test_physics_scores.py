"""Physics scores: the study's flux ratio as its code computes it, windowed spectra, gradient W1."""

from __future__ import annotations

import numpy as np
import pytest

from pdeldm.evaluation import physics_scores as ps
from pdeldm.evaluation import spectra


def _study_flux_ratio_cells_loop(T: np.ndarray, cell: int = 16, eps: float = 1e-6) -> np.ndarray:
    """The study's per-cell loop, transcribed line by line (dx = dy = 1)."""
    H, W = T.shape
    dTdx, dTdy = np.zeros_like(T), np.zeros_like(T)
    dTdx[:, 1:-1] = (T[:, 2:] - T[:, :-2]) / 2.0
    dTdy[1:-1, :] = (T[2:, :] - T[:-2, :]) / 2.0
    dTdx[:, 0] = T[:, 1] - T[:, 0]
    dTdx[:, -1] = T[:, -1] - T[:, -2]
    dTdy[0, :] = T[1, :] - T[0, :]
    dTdy[-1, :] = T[-1, :] - T[-2, :]
    out = np.zeros((H // cell, W // cell))
    for i in range(H // cell):
        for j in range(W // cell):
            blk = (slice(i * cell, (i + 1) * cell), slice(j * cell, (j + 1) * cell))
            t, gx, gy = T[blk], dTdx[blk], dTdy[blk]
            adv, dif = [], []

            def edge(ii, jj, nx, ny):  # noqa: ANN001, ANN202
                norm = np.sqrt(gx[ii, jj] ** 2 + gy[ii, jj] ** 2) + eps
                adv.append(t[ii, jj] * (gx[ii, jj] / norm * nx + gy[ii, jj] / norm * ny))
                dif.append(np.sqrt(gx[ii, jj] ** 2 + gy[ii, jj] ** 2))

            n = cell
            edge(np.zeros(n, int), np.arange(n), 0.0, -1.0)
            edge(np.full(n, n - 1), np.arange(n), 0.0, 1.0)
            edge(np.arange(1, n - 1), np.zeros(n - 2, int), -1.0, 0.0)
            edge(np.arange(1, n - 1), np.full(n - 2, n - 1), 1.0, 0.0)
            out[i, j] = np.mean(np.concatenate(adv)) / (np.mean(np.concatenate(dif)) + eps)
    return out


def test_study_flux_ratio_matches_the_study_loop():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:48, 0:40]
    field = 285 + 0.05 * xx - 0.03 * yy + rng.standard_normal((48, 40))
    np.testing.assert_allclose(ps.study_flux_ratio_cells(field), _study_flux_ratio_cells_loop(field), rtol=1e-12)
    coarse = np.kron(field[::8, ::8], np.ones((8, 8)))
    expected = np.mean(np.abs(_study_flux_ratio_cells_loop(field) - _study_flux_ratio_cells_loop(coarse)))
    assert ps.study_flux_ratio(field, coarse) == pytest.approx(expected, rel=1e-12)


def _power_law_crop(slope: float, rng: np.random.Generator, n: int = 256, crop: int = 64) -> np.ndarray:
    """A crop of a periodic Gaussian field whose radially averaged power goes as k^slope: the crop
    is not periodic, like a regional field."""
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    k[0, 0] = 1.0
    amplitude = k ** (slope / 2)
    amplitude[0, 0] = 0.0
    noise = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    return np.fft.ifft2(amplitude * noise).real[:crop, :crop]


@pytest.mark.parametrize("slope", [-2.0, -3.0, -4.0, -5.0])
def test_windowed_spectrum_recovers_the_slope_of_non_periodic_fields(slope: float):
    rng = np.random.default_rng(int(-slope))
    fields = [_power_law_crop(slope, rng) for _ in range(12)]
    windowed = np.mean([spectra.windowed_spectral_fit(f, 4, 31).slope for f in fields])
    assert windowed == pytest.approx(slope, abs=0.2)
    if slope <= -4:  # without the window, edge leakage flattens steep spectra towards k^-2.6
        raw = np.mean([spectra.spectral_fit(f, 4, 31).slope for f in fields])
        assert raw > slope + 1.0


def test_fine_scale_spectral_scores_are_zero_for_the_truth_and_see_smoothing():
    rng = np.random.default_rng(3)
    truth = _power_law_crop(-3.0, rng)
    assert ps.fine_scale_spectral_scores(truth, truth, factor=8) == {"spectral_slope_diff": 0.0, "spectral_lsd": 0.0}
    kernel = np.ones(3) / 3
    smooth = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, truth)
    scores = ps.fine_scale_spectral_scores(smooth, truth, factor=8)
    assert scores["spectral_slope_diff"] > 0.5 and scores["spectral_lsd"] > 3.0


def test_gradient_w1_is_a_distance_between_gradient_distributions():
    rng = np.random.default_rng(4)
    truth = rng.standard_normal((32, 32)).cumsum(axis=1)
    assert ps.gradient_w1(truth, truth, 1000.0, 1000.0) == 0.0
    assert ps.gradient_w1(truth + 3.0, truth, 1000.0, 1000.0) == pytest.approx(0.0, abs=1e-12)
    # doubling every gradient shifts the distribution by its mean magnitude
    mean_magnitude = ps.gradient_magnitude(truth, 1000.0, 1000.0).mean()
    assert ps.gradient_w1(2 * truth, truth, 1000.0, 1000.0) == pytest.approx(mean_magnitude, rel=1e-9)
