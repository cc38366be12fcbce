"""Radially averaged power spectra and spectral slopes of 2-D fields (numpy).

Two binnings, both with integer radial bins ``k = round(|k_vec|)``:

* :func:`rapsd` follows ``pysteps.utils.spectral.rapsd`` exactly (index radius
  ``sqrt(i² + j²)`` of the centred FFT, bins ``0 .. l/2 − 1`` with ``l = max(H, W)``,
  no mean removal, power ``|FFT2|² / (H W)``); use it for plots and comparisons with pysteps.
* :func:`spectral_fit` uses an isotropic wavenumber in cycles per ``L = min(H, W)`` pixels,
  ``k = sqrt((L kx / W)² + (L ky / H)²)`` (the same as the index radius for square fields),
  removes the mean, skips DC and fits ``log10 P = slope · log10 k + intercept`` over
  ``k_min ≤ k ≤ k_max`` (default ``1 .. L/2 − 1``, as in arXiv 2510.23866).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from pdeldm.evaluation.metrics import as_float_array, check_same_shape


def _field_2d(field: Any, name: str) -> np.ndarray:
    arr = as_float_array(field, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D field [H, W], got shape {arr.shape}")
    return arr


def rapsd(
    field: Any,
    fft_method: ModuleType | None = np.fft,
    return_freq: bool = True,
    dx: float = 1.0,
    normalize: bool = False,
    **fft_kwargs: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectral density, pysteps convention.

    ``P(r) = mean over {(i, j): round(sqrt(i² + j²)) = r} of |F_ij|² / (H W)`` with ``F`` the
    centred (fftshifted) 2-D FFT and ``i, j`` centred indices, for ``r = 0 .. n − 1``,
    ``n = l // 2`` (``l // 2 + 1`` for odd ``l``), ``l = max(H, W)``.

    Args:
        field: 2-D field; with ``fft_method=None`` it must already be the centred power spectrum.
        fft_method: module with ``fft2`` (``numpy.fft``, ``scipy.fft``), or None (see above).
        return_freq: also return the frequencies ``fftfreq(l, d=dx)[:n]`` (cycles per unit of dx).
        dx: sample spacing (pysteps' ``d``), e.g. metres.
        normalize: scale the spectrum to sum to one.

    Returns:
        ``power`` or ``(power, freq)`` (pysteps order).
    """
    arr = _field_2d(field, "field")
    h, w = arr.shape
    if fft_method is not None:
        spectrum = np.fft.fftshift(fft_method.fft2(arr, **fft_kwargs))
        psd = np.abs(spectrum) ** 2 / spectrum.size
    else:
        psd = arr
    # Centred indices: -n/2 .. n/2 - 1 for even n, -(n-1)/2 .. (n-1)/2 for odd n.
    iy = np.arange(h) - h // 2
    ix = np.arange(w) - w // 2
    radius = np.rint(np.hypot(iy[:, None], ix[None, :])).astype(np.int64)
    longest = max(h, w)
    n_bins = longest // 2 + (longest % 2)
    sums = np.bincount(radius.ravel(), weights=psd.ravel(), minlength=n_bins)[:n_bins]
    counts = np.bincount(radius.ravel(), minlength=n_bins)[:n_bins]
    power = sums / counts
    if normalize:
        power = power / power.sum()
    if return_freq:
        return power, np.fft.fftfreq(longest, d=dx)[:n_bins]
    return power


@dataclass(frozen=True)
class SpectralFit:
    """Result of :func:`spectral_fit`: ``log10 power ≈ slope · log10 wavenumber + intercept``."""

    slope: float
    intercept: float
    wavenumber: np.ndarray  # fitted bins, cycles per min(H, W) pixels
    power: np.ndarray  # mean |FFT|² / (H W) in those bins
    wavelength_m: np.ndarray | None  # min(H, W) · dx / k, when dx is given


def _isotropic_spectrum(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin index k = 0..K, mean power per bin) on the isotropic wavenumber of the module doc."""
    h, w = arr.shape
    side = min(h, w)
    anomaly = arr - arr.mean()
    psd = np.abs(np.fft.fft2(anomaly)) ** 2 / arr.size
    ky = np.fft.fftfreq(h) * side
    kx = np.fft.fftfreq(w) * side
    k = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(np.int64).ravel()
    sums = np.bincount(k, weights=psd.ravel())
    counts = np.bincount(k)
    with np.errstate(invalid="ignore"):
        return np.arange(sums.size), sums / counts


def _plane_removed_windowed(arr: np.ndarray) -> np.ndarray:
    """``arr`` minus its least-squares plane, times a 2-D Hann window, rescaled to the same mean power.

    A non-periodic field's FFT sees a jump where opposite edges meet; its leakage adds a k^-2 tail
    that hides the true slope of steep spectra. Removing the plane takes out the mean gradient
    (the largest jump), the window tapers what is left to zero at the edges.
    """
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w]
    design = np.column_stack([np.ones(arr.size), xx.ravel(), yy.ravel()])
    plane = design @ np.linalg.lstsq(design, arr.ravel(), rcond=None)[0]
    window = np.outer(np.hanning(h), np.hanning(w))
    return (arr - plane.reshape(h, w)) * window / np.sqrt(np.mean(window**2))


def windowed_spectral_fit(field: Any, k_min: float = 1, k_max: float | None = None) -> SpectralFit:
    """:func:`spectral_fit` of the plane-detrended, Hann-windowed field (safe on non-periodic fields)."""
    arr = _field_2d(field, "field")
    return spectral_fit(_plane_removed_windowed(arr), k_min, k_max)


def _band(
    side: int, k_min: float, k_max: float | None, dx: float | None, band_km: Sequence[float] | None
) -> tuple[float, float]:
    """Wavenumber band in bins; ``band_km`` = (min, max) wavelength in km overrides k_min/k_max."""
    if band_km is not None:
        if dx is None:
            raise ValueError("band_km needs the grid spacing dx in metres")
        lo_km, hi_km = (float(b) for b in band_km)
        if not 0 < lo_km < hi_km:
            raise ValueError(f"band_km must be (min_km, max_km) with 0 < min < max, got {band_km}")
        k_min, k_max = side * dx / (hi_km * 1e3), side * dx / (lo_km * 1e3)
    k_max = side // 2 - 1 if k_max is None else k_max
    return max(k_min, 1), min(k_max, side // 2 - 1)  # never DC, never beyond the resolved range


def spectral_fit(
    field: Any,
    k_min: float = 1,
    k_max: float | None = None,
    dx: float | None = None,
    band_km: Sequence[float] | None = None,
) -> SpectralFit:
    """Least-squares power law ``log10 P(k) = slope · log10 k + intercept`` of a 2-D field.

    ``P(k)`` is the mean of ``|FFT2(field − mean)|² / (H W)`` over the integer isotropic
    wavenumber bin ``k`` (cycles per ``L = min(H, W)`` pixels), fitted for
    ``max(k_min, 1) ≤ k ≤ min(k_max, L/2 − 1)``; DC is always excluded.

    Args:
        field: 2-D field ``[H, W]``.
        k_min, k_max: band in bins (default ``1 .. L/2 − 1``).
        dx: grid spacing in metres: needed for ``band_km`` and to report wavelengths
            (``L dx / k``); the slope itself does not depend on it.
        band_km: ``(min_km, max_km)`` wavelengths to fit; overrides ``k_min``/``k_max``.

    Raises:
        ValueError: NaN, not 2-D, or fewer than 3 non-empty bins in the band.
    """
    arr = _field_2d(field, "field")
    side = min(arr.shape)
    lo, hi = _band(side, k_min, k_max, dx, band_km)
    k, power = _isotropic_spectrum(arr)
    use = (k >= lo) & (k <= hi) & np.isfinite(power) & (power > 0)
    if use.sum() < 3:
        raise ValueError(
            f"only {int(use.sum())} wavenumber bins with power in [{lo:g}, {hi:g}] for a field of shape "
            f"{arr.shape}: need at least 3 (larger field or wider band)"
        )
    slope, intercept = np.polyfit(np.log10(k[use]), np.log10(power[use]), 1)
    wavelength = side * dx / k[use] if dx is not None else None
    return SpectralFit(float(slope), float(intercept), k[use], power[use], wavelength)


def spectral_slope(
    field: Any,
    k_min: float = 1,
    k_max: float | None = None,
    dx: float | None = None,
    band_km: Sequence[float] | None = None,
) -> float:
    """Slope of the fitted power law ``P(k) ∝ k^slope`` (see :func:`spectral_fit`)."""
    return spectral_fit(field, k_min, k_max, dx, band_km).slope


def spectral_slope_diff(
    pred: Any,
    truth: Any,
    k_min: float = 1,
    k_max: float | None = None,
    dx: float | None = None,
    band_km: Sequence[float] | None = None,
) -> float:
    """SpectralSlopeDiff ``|slope(pred) − slope(truth)|`` over the same band (fields of equal shape)."""
    p, t = _field_2d(pred, "pred"), _field_2d(truth, "truth")
    check_same_shape(p, t)
    return abs(spectral_slope(p, k_min, k_max, dx, band_km) - spectral_slope(t, k_min, k_max, dx, band_km))
