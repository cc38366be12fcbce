"""Deterministic scores of a predicted field against the truth (numpy).

Inputs are array-likes: numpy arrays, xarray DataArrays or torch tensors (detached and moved to
the CPU); they are compared in float64. Every score takes 2-D fields ``[H, W]``; batches work too:
pixel scores (:func:`rmse`, :func:`mae`, :func:`bias`, :func:`r2`, :func:`pcc`) reduce over
``axis`` (default ``None``: every element, giving one number; ``axis=(-2, -1)`` on ``[N, H, W]``
gives one score per field), :func:`ssim` returns one score per leading index of ``[..., H, W]``.

Errors: a NaN in any input raises ``ValueError`` naming the argument; arrays of different shape
raise ``ValueError`` showing both shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

Axis = int | tuple[int, ...] | None


def as_float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a float64 numpy array; ``ValueError`` naming ``name`` if it holds a NaN."""
    if hasattr(x, "detach"):  # torch tensor, possibly bf16, on any device, with grad
        x = x.detach().cpu().double().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN ({int(np.isnan(arr).sum())} of {arr.size} values)")
    return arr


def check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("pred", "truth")) -> None:
    """``ValueError`` with both shapes unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} shapes differ: {a.shape} vs {b.shape}")


def _pair(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_float_array(pred, "pred"), as_float_array(truth, "truth")
    check_same_shape(p, t)
    return p, t


def rmse(pred: Any, truth: Any, axis: Axis = None) -> np.floating | np.ndarray:
    """Root-mean-square error ``sqrt(mean((pred − truth)²))``."""
    p, t = _pair(pred, truth)
    return np.sqrt(np.mean((p - t) ** 2, axis=axis))


def mae(pred: Any, truth: Any, axis: Axis = None) -> np.floating | np.ndarray:
    """Mean absolute error ``mean(|pred − truth|)``."""
    p, t = _pair(pred, truth)
    return np.mean(np.abs(p - t), axis=axis)


def bias(pred: Any, truth: Any, axis: Axis = None) -> np.floating | np.ndarray:
    """Mean error ``mean(pred − truth)`` (positive: the prediction is too warm)."""
    p, t = _pair(pred, truth)
    return np.mean(p - t, axis=axis)


def r2(pred: Any, truth: Any, axis: Axis = None) -> np.floating | np.ndarray:
    """Coefficient of determination ``1 − SSE / SST``.

    ``SSE = Σ (pred − truth)²``, ``SST = Σ (truth − mean(truth))²`` over ``axis``. Can be negative;
    NaN when the truth is constant (SST = 0).
    """
    p, t = _pair(pred, truth)
    sse = np.sum((p - t) ** 2, axis=axis)
    sst = np.sum((t - np.mean(t, axis=axis, keepdims=True)) ** 2, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)[()]


def pcc(pred: Any, truth: Any, axis: Axis = None) -> np.floating | np.ndarray:
    """Pearson correlation ``Σ(p − p̄)(t − t̄) / sqrt(Σ(p − p̄)² Σ(t − t̄)²)``; NaN if either is constant."""
    p, t = _pair(pred, truth)
    dp = p - np.mean(p, axis=axis, keepdims=True)
    dt = t - np.mean(t, axis=axis, keepdims=True)
    denom = np.sqrt(np.sum(dp**2, axis=axis) * np.sum(dt**2, axis=axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, np.sum(dp * dt, axis=axis) / np.where(denom > 0, denom, 1.0), np.nan)[()]


def ssim(
    pred: Any,
    truth: Any,
    *,
    data_range: float,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.floating | np.ndarray:
    """Mean structural similarity with a Gaussian window (Wang et al. 2004).

    Local statistics are Gaussian-weighted means (σ = ``sigma`` px, truncated at 3.5 σ):
    ``μ_p, μ_t``, variances ``σ_p² = E[p²] − μ_p²`` (population, not sample, covariance) and
    ``σ_pt = E[pt] − μ_p μ_t``; then

        SSIM = ((2 μ_p μ_t + C1)(2 σ_pt + C2)) / ((μ_p² + μ_t² + C1)(σ_p² + σ_t² + C2)),
        C1 = (k1 · data_range)², C2 = (k2 · data_range)²,

    averaged over the pixels at least one window radius from the border. Equals
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``.

    Args:
        pred, truth: ``[..., H, W]`` with H, W at least the window size ``2 round(3.5 σ) + 1``.
        data_range: the value range the constants are relative to (e.g. K); required, > 0.

    Returns:
        A scalar for 2-D input, else one value per leading index.
    """
    p, t = _pair(pred, truth)
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    if p.ndim < 2:
        raise ValueError(f"ssim needs fields [..., H, W], got shape {p.shape}")
    truncate = 3.5
    radius = int(truncate * sigma + 0.5)  # as scipy.ndimage and skimage compute it
    if min(p.shape[-2:]) < 2 * radius + 1:
        raise ValueError(f"fields of shape {p.shape} are smaller than the {2 * radius + 1}-pixel SSIM window")
    sigmas = [0.0] * (p.ndim - 2) + [sigma, sigma]  # no smoothing across batch axes

    def local_mean(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=sigmas, mode="reflect", truncate=truncate)

    mu_p, mu_t = local_mean(p), local_mean(t)
    var_p = local_mean(p * p) - mu_p**2
    var_t = local_mean(t * t) - mu_t**2
    cov = local_mean(p * t) - mu_p * mu_t
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    # Skip the border where the window reaches outside the field (as skimage does).
    return s[..., radius:-radius, radius:-radius].mean(axis=(-2, -1))[()]
