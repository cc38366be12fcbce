"""Ensemble and tail scores (numpy): CRPS, rank histogram, spread–skill, quantile and threshold scores.

Ensembles ``ens`` carry the members along ``axis`` (default 0); ``obs`` has the shape of
``ens`` without that axis. NaN in any input raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pdeldm.evaluation.metrics import as_float_array, check_same_shape


def _obs_and_members(obs: Any, ens: Any, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(obs, ens with the members moved to the last axis), shapes checked."""
    y = as_float_array(obs, "obs")
    x = as_float_array(ens, "ens")
    if x.ndim == 0:
        raise ValueError("ens must have a member axis")
    x = np.moveaxis(x, axis, -1)
    if x.shape[:-1] != y.shape:
        raise ValueError(
            f"obs shape {y.shape} does not match ens shape {np.moveaxis(x, -1, axis).shape} "
            f"without its member axis {axis} ({x.shape[:-1]})"
        )
    return y, x


def crps_ensemble(obs: Any, ens: Any, axis: int = 0, fair: bool = False) -> np.ndarray:
    """Continuous ranked probability score of an ensemble, per point (energy form).

    ``CRPS = (1/m) Σ_i |x_i − y| − 1/(2 m²) Σ_i Σ_j |x_i − x_j|``  (exact for the empirical CDF);
    ``fair=True`` divides the second sum by ``2 m (m − 1)`` instead (Ferro 2014: unbiased for the
    CRPS of the distribution the members are drawn from). With one member there is no pair: both
    forms are the absolute error, so a deterministic forecast is scored as a point mass (its CRPS
    is its MAE), the zero-spread reference of the ensembles.
    The double sum is evaluated in O(m log m) from the sorted members x₍₀₎ ≤ … ≤ x₍ₘ₋₁₎:
    ``Σ_i Σ_j |x_i − x_j| = 2 Σ_k (2k − m + 1) x₍ₖ₎``.

    Returns:
        Array of the shape of ``obs`` (average it for a domain score).
    """
    y, x = _obs_and_members(obs, ens, axis)
    m = x.shape[-1]
    skill = np.mean(np.abs(x - y[..., None]), axis=-1)
    if m == 1:
        return skill
    coeff = 2 * np.arange(m) - m + 1
    pair_sum = 2 * np.sum(np.sort(x, axis=-1) * coeff, axis=-1)
    return skill - pair_sum / (2 * m * (m - 1) if fair else 2 * m * m)


def rank_histogram(obs: Any, ens: Any, axis: int = 0, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Counts of the rank of ``obs`` among the ``m`` members: an int64 array of length ``m + 1``.

    Rank = number of members below the observation plus, for ties, a uniform random draw from
    ``0 .. (number of members equal to it)`` so that exchangeable ties do not pile up in one bin.
    A calibrated ensemble gives a flat histogram.
    """
    y, x = _obs_and_members(obs, ens, axis)
    generator = np.random.default_rng(rng)
    below = np.sum(x < y[..., None], axis=-1)
    ties = np.sum(x == y[..., None], axis=-1)
    ranks = below + generator.integers(0, ties + 1)
    return np.bincount(ranks.ravel(), minlength=x.shape[-1] + 1).astype(np.int64)


def spread_skill_ratio(obs: Any, ens: Any, axis: int = 0, corrected: bool = True) -> float:
    """Spread–skill ratio ``sqrt((m + 1) / m) · sqrt(mean(s²)) / RMSE(ens mean)``.

    ``s²`` is the unbiased (ddof = 1) ensemble variance at each point, averaged over all points
    before the square root; RMSE is that of the ensemble mean against ``obs``. If truth and the
    ``m`` members are exchangeable draws from the same distribution (variance σ²),
    ``E[s²] = σ²`` but ``E[(mean − y)²] = σ² (1 + 1/m)``, so the uncorrected ratio tends to
    ``sqrt(m / (m + 1))``; the ``sqrt((m + 1)/m)`` factor (Fortin et al. 2014) makes a perfectly
    calibrated ensemble score 1. ``< 1``: under-dispersive, ``> 1``: over-dispersive.
    ``corrected=False`` drops the factor.
    """
    y, x = _obs_and_members(obs, ens, axis)
    m = x.shape[-1]
    if m < 2:
        raise ValueError(f"spread needs at least 2 members, got {m}")
    spread = np.sqrt(np.mean(np.var(x, axis=-1, ddof=1)))
    skill = np.sqrt(np.mean((x.mean(axis=-1) - y) ** 2))
    factor = np.sqrt((m + 1) / m) if corrected else 1.0
    return float(factor * spread / skill) if skill > 0 else float("nan")


def quantile_error(pred: Any, truth: Any, q: float = 0.99, axis: int | None = None) -> np.floating | np.ndarray:
    """Tail error ``Q_q(pred) − Q_q(truth)`` of the q-quantiles over ``axis`` (None: all values)."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    p, t = as_float_array(pred, "pred"), as_float_array(truth, "truth")
    check_same_shape(p, t)
    return np.quantile(p, q, axis=axis) - np.quantile(t, q, axis=axis)


def threshold_scores(pred: Any, truth: Any, threshold: Any) -> dict[str, float]:
    """Contingency scores of exceeding ``threshold`` (strictly above; scalar or broadcastable array).

    With hits ``H`` (both above), misses ``M`` (truth only), false alarms ``F`` (pred only):
    ``hit_rate = H / (H + M)``, ``false_alarm_ratio = F / (H + F)``,
    ``csi = H / (H + M + F)``, ``frequency_bias = (H + F) / (H + M)``; NaN when a denominator is 0.
    """
    p, t = as_float_array(pred, "pred"), as_float_array(truth, "truth")
    check_same_shape(p, t)
    thr = as_float_array(threshold, "threshold")
    try:
        np.broadcast_shapes(thr.shape, p.shape)
    except ValueError:
        raise ValueError(f"threshold shape {thr.shape} does not broadcast to pred shape {p.shape}") from None
    pred_event, true_event = p > thr, t > thr
    hits = int(np.sum(pred_event & true_event))
    misses = int(np.sum(~pred_event & true_event))
    false_alarms = int(np.sum(pred_event & ~true_event))

    def ratio(num: int, den: int) -> float:
        return num / den if den else float("nan")

    return {
        "hit_rate": ratio(hits, hits + misses),
        "false_alarm_ratio": ratio(false_alarms, hits + false_alarms),
        "csi": ratio(hits, hits + misses + false_alarms),
        "frequency_bias": ratio(hits + false_alarms, hits + misses),
    }
