"""Score one model's test-period predictions against COSMO-CLM (the truth) and ERA5 (the input).

Inputs: a prediction netCDF ``T_2M(member, time, rlat, rlon)`` in K (interfaces §5) and the
training store + metadata (interfaces §3). The truth is selected at the prediction's time stamps.

Outputs (all written atomically; the side files sit next to ``out_csv`` and are named after its
stem, e.g. ``results/metrics/pde_ldm_rapsd.csv``):

``{stem}.csv`` — one row per test time (interfaces §7):
    ``time, model, rmse, mae, bias, r2, pcc, ssim, flux_ratio, flux_ratio_truth,
    spectral_slope_diff`` and, for ensembles only, ``crps, spread_skill, spread, rmse_ensmean``.
    Deterministic scores use **member 0** — a single sample, as in the study (the ensemble mean is
    smoother than any real field and would flatter pixel scores and ruin the spectral ones);
    ``rmse_ensmean`` reports the ensemble-mean RMSE next to it.
``{stem}_rank_hist.csv`` — ``model, rank, count, frequency`` summed over times and grid points
    (``rank`` = 0..members); header only for deterministic models.
``{stem}_extremes.csv`` — one row per model: quantile error of member 0 at ``extreme_quantile``
    and contingency scores for exceeding the truth's ``extreme_threshold_quantile`` (see
    :func:`extreme_scores`).
``{stem}_rapsd.csv`` — ``model, k, wavelength_km, power_pred, power_truth``: the radially
    averaged power spectrum (``spectra.rapsd`` of the anomaly, pysteps convention; ``k`` in
    cycles per metre, power in K² per bin) averaged over test times (and over the members for
    ensembles). FluxRatio values are in metres (``metrics.flux_ratio_metric``).

Keys read from ``cfg_eval`` (the config's ``evaluation`` block) and their defaults:

* ``ssim_data_range`` (None): None = per-time truth max − min (K); a number = that fixed range (K).
* ``flux_cell`` (None): supercell edge in px; None = 16, or 8 on grids < 96 px on a side.
* ``flux_eps`` (1e-6, K/m) and ``flux_sampling`` ("pixels" | "faces"): see
  :func:`pdeldm.physics.pde_losses.flux_ratio_cells`.
* ``flux_reference`` ("coarse" | "truth"): reference of the ``flux_ratio`` column ("coarse" =
  ERA5 t2m repeated over each coarse cell, the study's choice); ``flux_ratio_truth`` is always
  against the truth.
* ``spectral_band_km`` (None): ``[min_km, max_km]`` wavelengths fitted for the spectral slope;
  None = all resolved scales.
* ``crps_fair`` (True), ``extreme_quantile`` (0.99), ``extreme_threshold_quantile`` (0.95),
  ``extreme_threshold_mode`` ("pointwise" | "domain": per-grid-point or domain-wide percentile).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.evaluation import metrics, probabilistic, spectra
from pdeldm.io import atomic_output, read_json
from pdeldm.logs import stage_logger

PathLike = str | os.PathLike[str]

DEFAULTS: dict[str, Any] = {
    "ssim_data_range": None,
    "flux_cell": None,
    "flux_eps": 1e-6,
    "flux_reference": "coarse",
    "flux_sampling": "pixels",
    "spectral_band_km": None,
    "crps_fair": True,
    "extreme_quantile": 0.99,
    "extreme_threshold_quantile": 0.95,
    "extreme_threshold_mode": "pointwise",
}

DETERMINISTIC_COLUMNS = (
    "rmse",
    "mae",
    "bias",
    "r2",
    "pcc",
    "ssim",
    "flux_ratio",
    "flux_ratio_truth",
    "spectral_slope_diff",
)
ENSEMBLE_COLUMNS = ("crps", "spread_skill", "spread", "rmse_ensmean")


def side_paths(out_csv: PathLike) -> dict[str, Path]:
    """Paths of the side outputs derived from the metric CSV's name (for Snakemake rules too)."""
    out = Path(out_csv)
    return {
        "rank_hist": out.with_name(f"{out.stem}_rank_hist.csv"),
        "extremes": out.with_name(f"{out.stem}_extremes.csv"),
        "rapsd": out.with_name(f"{out.stem}_rapsd.csv"),
    }


def resolve_config(cfg_eval: Mapping[str, Any] | None) -> dict[str, Any]:
    """``cfg_eval`` over :data:`DEFAULTS`, with the keys this module reads checked."""
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in (cfg_eval or {}).items() if k in DEFAULTS})
    if cfg["flux_reference"] not in ("coarse", "truth"):
        raise InputError(f"evaluation.flux_reference must be 'coarse' or 'truth', got {cfg['flux_reference']!r}")
    if cfg["flux_sampling"] not in ("pixels", "faces"):
        raise InputError(f"evaluation.flux_sampling must be 'pixels' or 'faces', got {cfg['flux_sampling']!r}")
    if cfg["extreme_threshold_mode"] not in ("pointwise", "domain"):
        raise InputError(
            f"evaluation.extreme_threshold_mode must be 'pointwise' or 'domain', got {cfg['extreme_threshold_mode']!r}"
        )
    for key in ("extreme_quantile", "extreme_threshold_quantile"):
        if not 0.0 < float(cfg[key]) < 1.0:
            raise InputError(f"evaluation.{key} must lie in (0, 1), got {cfg[key]}")
    band = cfg["spectral_band_km"]
    if band is not None and (len(band) != 2 or not 0 < float(band[0]) < float(band[1])):
        raise InputError(f"evaluation.spectral_band_km must be [min_km, max_km] with 0 < min < max, got {band}")
    return cfg


def flux_cell_size(shape: tuple[int, int], configured: int | None) -> int:
    """Supercell edge in pixels: the configured one, else 16 (8 on grids < 96 px on a side)."""
    if configured is not None:
        cell = int(configured)
    else:
        # Keep at least 6 supercells per side: a small (CI, 64 px) grid would hold only 4x4
        # supercells of 16 px, too few for a meaningful ratio.
        cell = 16 if min(shape) >= 96 else 8
    if cell < 2 or cell > min(shape):
        raise InputError(f"evaluation.flux_cell={cell} does not fit the {shape[0]}x{shape[1]} grid")
    return cell


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass
class EvaluationInputs:
    """Arrays of one evaluation, all float32 on the fine grid (except ``coarse``)."""

    model: str
    dataset: xr.Dataset  # the open prediction file (close when done)
    pred: xr.DataArray  # (member, time, rlat, rlon), lazy
    truth: np.ndarray  # (time, ny, nx) K
    coarse_fine: np.ndarray  # (time, ny, nx) K: ERA5 t2m upsampled by nearest (block repeat)
    times: pd.DatetimeIndex
    dx: float
    dy: float


def _model_name(ds: xr.Dataset, var: xr.DataArray, pred_path: Path) -> str:
    name = var.attrs.get("model", ds.attrs.get("model"))
    return str(name) if name else pred_path.stem


def _check_kelvin(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        raise InputError(f"{what} contains NaN or inf")
    if np.nanmean(values) < 150.0:
        raise InputError(f"{what} looks like degC (mean {np.nanmean(values):.1f}); expected K")


def coarse_channel(store: xr.Dataset, meta: Mapping[str, Any], name: str, where: PathLike) -> np.ndarray:
    """One coarse predictor as float32 ``(time, yc, xc)``, by ``cvar`` name or the meta's order."""
    coarse = store["coarse"]
    if "cvar" in coarse.coords and name in [str(v) for v in coarse["cvar"].values]:
        return np.asarray(coarse.sel(cvar=name).values, dtype=np.float32)
    predictors = list(meta.get("predictors", []))
    if name not in predictors:
        raise InputError(f"{where}: no coarse channel {name!r} (predictors {predictors})")
    return np.asarray(coarse.isel(cvar=predictors.index(name)).values, dtype=np.float32)


def upsample_nearest(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Repeat each coarse cell over its ``factor x factor`` block (last two axes).

    The coarse and fine grids are aligned ``factor``:1, so this is nearest-neighbour upsampling:
    the reference carries exactly the ERA5 information, nothing interpolated.
    """
    return np.repeat(np.repeat(coarse, factor, axis=-2), factor, axis=-1)


def load_inputs(pred_path: PathLike, store_path: PathLike, meta_path: PathLike) -> EvaluationInputs:
    """Open a prediction and the matching truth/coarse fields; check grids, times and units."""
    pred_path = Path(pred_path)
    meta = read_json(meta_path)
    ds = xr.open_dataset(pred_path)
    if "T_2M" not in ds:
        raise InputError(f"{pred_path}: no variable T_2M (interfaces §5)")
    pred = ds["T_2M"]
    if set(pred.dims) != {"member", "time", "rlat", "rlon"}:
        raise InputError(f"{pred_path}: T_2M has dims {pred.dims}, expected (member, time, rlat, rlon)")
    pred = pred.transpose("member", "time", "rlat", "rlon")
    units = pred.attrs.get("units", "K")
    if units not in ("K", "kelvin", "Kelvin"):
        raise InputError(f"{pred_path}: T_2M units {units!r}, expected K")

    store = xr.open_zarr(store_path)
    times = pd.DatetimeIndex(pred["time"].values)
    missing = times.difference(pd.DatetimeIndex(store["time"].values))
    if len(missing):
        raise InputError(f"{pred_path}: {len(missing)} prediction times not in {store_path} (first {missing[0]})")
    sub = store.sel(time=times)
    truth = np.asarray(sub["target"].values, dtype=np.float32)
    if truth.shape[1:] != tuple(pred.shape[2:]):
        raise InputError(f"{pred_path}: grid {pred.shape[2:]} differs from the store's {truth.shape[1:]}")
    for name in ("rlat", "rlon"):
        if name in store.coords and name in pred.coords:
            a, b = np.asarray(store[name].values), np.asarray(pred[name].values)
            if a.shape == b.shape and not np.allclose(a, b, atol=1e-4):
                raise InputError(f"{pred_path}: coordinate {name} differs from the store's")

    coarse_t2m = coarse_channel(sub, meta, "t2m", store_path)
    factor = int(meta.get("factor", store.attrs.get("factor", 8)))
    coarse_fine = upsample_nearest(coarse_t2m, factor)
    if coarse_fine.shape != truth.shape:
        raise InputError(
            f"{store_path}: coarse grid {coarse_t2m.shape[1:]} x factor {factor} != fine grid {truth.shape[1:]}"
        )
    _check_kelvin(truth, f"{store_path}:target")
    _check_kelvin(coarse_fine, f"{store_path}:coarse[t2m]")
    dx = float(meta.get("dx_m", store.attrs.get("dx_m", math.nan)))
    dy = float(meta.get("dy_m", store.attrs.get("dy_m", math.nan)))
    if not (dx > 0 and dy > 0):
        raise InputError(f"{meta_path}: dx_m/dy_m missing or not positive")
    return EvaluationInputs(_model_name(ds, pred, pred_path), ds, pred, truth, coarse_fine, times, dx, dy)


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def deterministic_scores(
    pred: np.ndarray,
    truth: np.ndarray,
    coarse_fine: np.ndarray,
    cfg: Mapping[str, Any],
    cell: int,
    dx: float,
    dy: float,
) -> dict[str, float]:
    """Pixel, structural, physical and spectral scores of one 2-D field against the truth."""
    data_range = cfg["ssim_data_range"]
    if data_range is None:
        # Per-time truth range: SSIM's constants then scale with the day's contrast; guard
        # against a flat truth field (range 0) with a tiny floor.
        data_range = max(float(truth.max() - truth.min()), 1e-6)
    reference = coarse_fine if cfg["flux_reference"] == "coarse" else truth
    band = cfg["spectral_band_km"]
    return {
        "rmse": float(metrics.rmse(pred, truth)),
        "mae": float(metrics.mae(pred, truth)),
        "bias": float(metrics.bias(pred, truth)),
        "r2": float(metrics.r2(pred, truth)),
        "pcc": float(metrics.pcc(pred, truth)),
        "ssim": float(metrics.ssim(pred, truth, data_range=float(data_range))),
        "flux_ratio": _flux(pred, reference, cell, dx, dy, cfg),
        "flux_ratio_truth": _flux(pred, truth, cell, dx, dy, cfg),
        "spectral_slope_diff": float(_slope_diff(pred, truth, dx, band)),
    }


def _flux(pred: np.ndarray, reference: np.ndarray, cell: int, dx: float, dy: float, cfg: Mapping[str, Any]) -> float:
    return float(
        metrics.flux_ratio_metric(pred, reference, cell, dx, dy, float(cfg["flux_eps"]), sampling=cfg["flux_sampling"])
    )


def _slope_diff(pred: np.ndarray, truth: np.ndarray, dx: float, band: Any) -> float:
    return float(spectra.spectral_slope_diff(pred, truth, dx=dx, band_km=band))


def ensemble_scores(ens: np.ndarray, truth: np.ndarray, fair: bool) -> dict[str, float]:
    """CRPS, spread/skill ratio, spread and ensemble-mean RMSE of ``ens`` (member, ny, nx)."""
    mean = ens.mean(axis=0)
    # Spread = sqrt of the domain-mean unbiased ensemble variance (K), the numerator of the ratio.
    spread = float(np.sqrt(np.mean(ens.var(axis=0, ddof=1))))
    return {
        "crps": float(np.mean(probabilistic.crps_ensemble(truth, ens, axis=0, fair=fair))),
        "spread_skill": float(probabilistic.spread_skill_ratio(truth, ens)),
        "spread": spread,
        "rmse_ensmean": float(metrics.rmse(mean, truth)),
    }


def extreme_scores(
    pred: np.ndarray, truth: np.ndarray, quantile: float, threshold_quantile: float, mode: str
) -> dict[str, float]:
    """Tail scores of a (time, ny, nx) prediction over the test period.

    * ``q{quantile}_error``: mean over the grid of (pred quantile − truth quantile) over time, K,
      and its mean absolute value ``..._abs``.
    * Events: truth above its ``threshold_quantile`` (per grid point over time for
      ``mode="pointwise"``, one domain-wide value for ``"domain"``); the same threshold is applied
      to the prediction. Scores from :func:`probabilistic.threshold_scores`.
    """
    qerr = np.asarray(probabilistic.quantile_error(pred, truth, quantile, axis=0))  # per grid point
    if mode == "pointwise":
        threshold = np.quantile(truth, threshold_quantile, axis=0)[None]
    else:
        threshold = np.quantile(truth, threshold_quantile)
    scores = probabilistic.threshold_scores(pred, truth, threshold)
    out = {
        "quantile": quantile,
        "quantile_error": float(np.mean(qerr)),
        "quantile_error_abs": float(np.mean(np.abs(qerr))),
        "threshold_quantile": threshold_quantile,
        "threshold_mode": mode,
        "threshold_mean_K": float(np.mean(threshold)),
    }
    out.update({k: float(v) for k, v in dict(scores).items()})
    return out


def _rapsd(field: np.ndarray, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequency in cycles per metre, power in K² per bin) of the field's anomaly.

    The mean is removed so the k = 0 bin is 0 and not the squared mean temperature.
    """
    power, freq = spectra.rapsd(field - field.mean(), dx=dx)  # pysteps order: (power, freq)
    return np.asarray(freq, dtype=float), np.asarray(power, dtype=float)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def evaluate_model(
    pred_path: PathLike,
    store_path: PathLike,
    meta_path: PathLike,
    out_csv: PathLike,
    cfg_eval: Mapping[str, Any] | None,
    log: PathLike | None = None,
) -> None:
    """Score one model's predictions; writes ``out_csv`` and its side files (module docstring)."""
    logger = stage_logger("evaluate", log)
    cfg = resolve_config(cfg_eval)
    inputs = load_inputs(pred_path, store_path, meta_path)
    n_members, n_times = int(inputs.pred.sizes["member"]), int(inputs.pred.sizes["time"])
    shape = inputs.truth.shape[1:]
    cell = flux_cell_size(shape, cfg["flux_cell"])
    ensemble = n_members > 1
    logger.info(
        "%s: %d times, %d member(s), grid %dx%d, flux cell %d px, flux reference %s",
        inputs.model, n_times, n_members, shape[0], shape[1], cell, cfg["flux_reference"],
    )

    rows: list[dict[str, Any]] = []
    member0 = np.empty_like(inputs.truth)  # kept for the period-wide extreme scores
    rank_counts: np.ndarray | None = None
    tie_rng = np.random.default_rng(0)  # ties are broken at random: seeded for reproducible files
    k_ref: np.ndarray | None = None
    power_pred_sum: np.ndarray | None = None
    power_truth_sum: np.ndarray | None = None
    try:
        for i, time in enumerate(inputs.times):
            fields = np.asarray(inputs.pred.isel(time=i).values, dtype=np.float64)  # (member, ny, nx)
            _check_kelvin(fields, f"{pred_path} at {time}")
            truth = inputs.truth[i].astype(np.float64)
            member0[i] = fields[0]
            row: dict[str, Any] = {"time": time.isoformat(), "model": inputs.model}
            row.update(deterministic_scores(fields[0], truth, inputs.coarse_fine[i], cfg, cell, inputs.dx, inputs.dy))
            if ensemble:
                row.update(ensemble_scores(fields, truth, bool(cfg["crps_fair"])))
                counts = np.asarray(probabilistic.rank_histogram(truth, fields, rng=tie_rng), dtype=np.int64)
                rank_counts = counts if rank_counts is None else rank_counts + counts
            rows.append(row)

            # Mean spectrum of single samples (every member), not the spectrum of the mean field.
            k, p_truth = _rapsd(truth, inputs.dx)
            p_pred = np.mean([_rapsd(f, inputs.dx)[1] for f in fields], axis=0)
            if k_ref is None:
                k_ref, power_pred_sum, power_truth_sum = k, np.zeros_like(p_pred), np.zeros_like(p_truth)
            power_pred_sum += p_pred
            power_truth_sum += p_truth
            if (i + 1) % max(1, n_times // 10) == 0 or i + 1 == n_times:
                logger.info("%s: %d/%d times scored (last rmse %.3f K)", inputs.model, i + 1, n_times, row["rmse"])
    finally:
        inputs.dataset.close()
    columns = ["time", "model", *DETERMINISTIC_COLUMNS] + (list(ENSEMBLE_COLUMNS) if ensemble else [])
    table = pd.DataFrame(rows, columns=columns)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")

    paths = side_paths(out_csv)
    _write_rank_hist(paths["rank_hist"], inputs.model, rank_counts)
    extremes = extreme_scores(
        member0, inputs.truth, float(cfg["extreme_quantile"]), float(cfg["extreme_threshold_quantile"]),
        cfg["extreme_threshold_mode"],
    )
    with atomic_output(paths["extremes"]) as tmp:
        pd.DataFrame([{"model": inputs.model, "sample": "member0", **extremes}]).to_csv(
            tmp, index=False, float_format="%.6g"
        )
    _write_rapsd(paths["rapsd"], inputs.model, k_ref, power_pred_sum / n_times, power_truth_sum / n_times)

    means = table[list(DETERMINISTIC_COLUMNS)].mean()
    logger.info(
        "%s: mean rmse %.3f K, ssim %.3f, flux_ratio %.3g, slope diff %.3f -> %s",
        inputs.model, means["rmse"], means["ssim"], means["flux_ratio"], means["spectral_slope_diff"], out_csv,
    )


def _write_rank_hist(path: Path, model: str, counts: np.ndarray | None) -> None:
    if counts is None:
        frame = pd.DataFrame(columns=["model", "rank", "count", "frequency"])
    else:
        frame = pd.DataFrame(
            {
                "model": model,
                "rank": np.arange(counts.size),
                "count": counts,
                "frequency": counts / max(int(counts.sum()), 1),
            }
        )
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def _write_rapsd(path: Path, model: str, k: np.ndarray, power_pred: np.ndarray, power_truth: np.ndarray) -> None:
    with np.errstate(divide="ignore"):
        wavelength_km = np.where(k > 0, 1.0 / k, np.inf) / 1000.0  # k in cycles per metre
    frame = pd.DataFrame(
        {"model": model, "k": k, "wavelength_km": wavelength_km, "power_pred": power_pred, "power_truth": power_truth}
    )
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
