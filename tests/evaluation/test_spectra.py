"""Spectra: pysteps-compatible RAPSD and power-law slopes of synthetic Gaussian random fields."""

from __future__ import annotations

import numpy as np
import pytest
from pysteps.utils.spectral import rapsd as pysteps_rapsd

from pdeldm.evaluation import spectra


def _power_law_field(shape: tuple[int, int], slope: float, seed: int) -> np.ndarray:
    """Gaussian random field with isotropic power spectrum P(k) ∝ k^slope (k in cycles/min(H, W))."""
    h, w = shape
    side = min(h, w)
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(h) * side
    kx = np.fft.fftfreq(w) * side
    k = np.hypot(ky[:, None], kx[None, :])
    amplitude = np.zeros_like(k)
    amplitude[k > 0] = k[k > 0] ** (slope / 2)
    # Filtering white noise keeps Hermitian symmetry, so the field is real.
    return 280.0 + np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * amplitude).real


@pytest.mark.parametrize("slope", [-3.0, -5.0 / 3.0])
@pytest.mark.parametrize("shape", [(256, 256), (192, 256)])
def test_recovers_prescribed_slope(slope: float, shape: tuple[int, int]) -> None:
    for seed in range(3):
        field = _power_law_field(shape, slope, seed)
        assert spectra.spectral_slope(field) == pytest.approx(slope, abs=0.1)


def test_slope_diff_and_band() -> None:
    steep = _power_law_field((128, 128), -3.0, 0)
    shallow = _power_law_field((128, 128), -5.0 / 3.0, 1)
    assert spectra.spectral_slope_diff(steep, steep) == 0.0
    assert spectra.spectral_slope_diff(steep, shallow) == pytest.approx(4.0 / 3.0, abs=0.15)
    # A band in km with dx = 2 km: wavelengths 8..64 km -> k = 128*2/64 .. 128*2/8 = 4 .. 32.
    fit = spectra.spectral_fit(steep, dx=2e3, band_km=(8, 64))
    assert fit.wavenumber.min() == 4 and fit.wavenumber.max() == 32
    np.testing.assert_allclose(fit.wavelength_m, 128 * 2e3 / fit.wavenumber)
    assert fit.slope == pytest.approx(-3.0, abs=0.2)
    by_bins = spectra.spectral_fit(steep, k_min=4, k_max=32)
    assert by_bins.slope == fit.slope and by_bins.wavelength_m is None
    # The mean (DC) does not matter, dx does not change the slope.
    assert spectra.spectral_slope(steep + 100) == pytest.approx(spectra.spectral_slope(steep), abs=1e-9)
    assert spectra.spectral_slope(steep, dx=5.0) == spectra.spectral_slope(steep)


@pytest.mark.parametrize("shape", [(64, 64), (48, 64), (33, 40), (31, 31)])
@pytest.mark.parametrize("normalize", [False, True])
def test_rapsd_matches_pysteps(shape: tuple[int, int], normalize: bool) -> None:
    field = _power_law_field(shape, -2.5, 7)
    power, freq = spectra.rapsd(field, np.fft, return_freq=True, dx=2e3, normalize=normalize)
    ref_power, ref_freq = pysteps_rapsd(field, np.fft, return_freq=True, d=2e3, normalize=normalize)
    np.testing.assert_allclose(power, ref_power, rtol=1e-10)
    np.testing.assert_allclose(freq, ref_freq)
    only_power = spectra.rapsd(field, return_freq=False)
    np.testing.assert_allclose(only_power, pysteps_rapsd(field, np.fft), rtol=1e-10)


def test_rapsd_of_a_precomputed_centred_spectrum() -> None:
    field = _power_law_field((32, 32), -2.0, 8)
    centred = np.fft.fftshift(np.abs(np.fft.fft2(field)) ** 2 / field.size)
    np.testing.assert_allclose(spectra.rapsd(centred, None, return_freq=False), pysteps_rapsd(centred, None))


def test_bad_inputs() -> None:
    field = _power_law_field((64, 64), -3.0, 0)
    bad = field.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="field contains NaN"):
        spectra.spectral_slope(bad)
    with pytest.raises(ValueError, match="truth contains NaN"):
        spectra.spectral_slope_diff(field, bad)
    with pytest.raises(ValueError, match=r"shapes differ: \(64, 64\) vs \(64, 32\)"):
        spectra.spectral_slope_diff(field, field[:, :32])
    with pytest.raises(ValueError, match="must be a 2-D field"):
        spectra.rapsd(field[None])
    with pytest.raises(ValueError, match="need at least 3"):
        spectra.spectral_slope(field[:6, :6])
    with pytest.raises(ValueError, match="band_km needs the grid spacing dx"):
        spectra.spectral_slope(field, band_km=(4, 40))
    with pytest.raises(ValueError, match="0 < min < max"):
        spectra.spectral_slope(field, dx=2e3, band_km=(40, 4))
