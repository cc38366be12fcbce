"""Score one model's test-period predictions against COSMO-CLM (the truth) and ERA5 (the input).

Inputs: a prediction netCDF ``T_2M(realization, time, rlat, rlon)`` in K (interfaces §5) and the
training store + metadata (interfaces §3). The truth is selected at the prediction's time stamps.

Outputs (all written atomically; the side files sit next to ``out_csv`` and are named after its
stem, e.g. ``results/metrics/pde_ldm_rapsd.csv``):

``{stem}.csv`` — one row per test time (interfaces §7):
    ``time, model, rmse, mae, bias, r2, pcc, ssim, pde_residual, pde_residual_identified,
    spectral_slope_diff, spectral_lsd, grad_w1, study_flux_ratio, study_spectral_slope_diff`` and,
    for ensembles only, ``crps, spread_skill, spread, rmse_ensmean``. The physics columns are
    defined in :mod:`pdeldm.evaluation.physics_scores`: ``pde_residual`` (the twin's known
    equation, K/h; NaN on real data), ``pde_residual_identified`` (the identified equation, K/h;
    compare with the truth's own value, not "lower is better"), the fine-band spectral slope
    difference and log-spectral distance (dB), the |grad T| Wasserstein-1 distance (K/km), and
    the study's FluxRatio (grid units, against ERA5) and full-range slope difference, kept for
    reproduction. The residuals need the truth one hour before and after; where the store lacks
    them the residual columns are NaN.
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
    ensembles).

Keys read from ``cfg_eval`` (the config's ``evaluation`` block) and their defaults:

* ``ssim_data_range`` (None): None = per-time truth max − min (K); a number = that fixed range (K).
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

from pdeldm.config import fill_defaults
from pdeldm.errors import InputError
from pdeldm.evaluation import metrics, physics_scores, probabilistic, spectra
from pdeldm.io import atomic_output, read_json
from pdeldm.logs import stage_logger
from pdeldm.prediction_file import ENSEMBLE_DIM, PREDICTION_DIMS, open_prediction

PathLike = str | os.PathLike[str]

#: The keys of the config's ``evaluation`` section this module reads (defaults: the schema's).
CONFIG_KEYS = ("ssim_data_range", "crps_fair", "extreme_quantile", "extreme_threshold_quantile",
               "extreme_threshold_mode")

DETERMINISTIC_COLUMNS = (
    "rmse",
    "mae",
    "bias",
    "r2",
    "pcc",
    "ssim",
    "pde_residual",
    "pde_residual_identified",
    "spectral_slope_diff",
    "spectral_lsd",
    "grad_w1",
    "study_flux_ratio",
    "study_spectral_slope_diff",
)
ENSEMBLE_COLUMNS = ("crps", "spread_skill", "spread", "rmse_ensmean")


def side_paths(out_csv: PathLike) -> dict[str, Path]:
    """Default paths of the side outputs, derived from the metric CSV's name."""
    out = Path(out_csv)
    return {
        "rank_hist": out.with_name(f"{out.stem}_rank_hist.csv"),
        "extremes": out.with_name(f"{out.stem}_extremes.csv"),
        "rapsd": out.with_name(f"{out.stem}_rapsd.csv"),
    }


def resolve_config(cfg_eval: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of :data:`CONFIG_KEYS` from ``cfg_eval`` (the ``evaluation`` section, missing keys
    taking the schema's defaults), checked."""
    filled = fill_defaults("evaluation", cfg_eval)
    cfg = {key: filled[key] for key in CONFIG_KEYS}
    if cfg["extreme_threshold_mode"] not in ("pointwise", "domain"):
        raise InputError(
            f"evaluation.extreme_threshold_mode must be 'pointwise' or 'domain', got {cfg['extreme_threshold_mode']!r}"
        )
    for key in ("extreme_quantile", "extreme_threshold_quantile"):
        if not 0.0 < float(cfg[key]) < 1.0:
            raise InputError(f"evaluation.{key} must lie in (0, 1), got {cfg[key]}")
    return cfg


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass
class EvaluationInputs:
    """Arrays of one evaluation, all float32 on the fine grid (except ``coarse``)."""

    model: str
    dataset: xr.Dataset  # the open prediction file (close when done)
    pred: xr.DataArray  # (realization, time, rlat, rlon), lazy
    truth: np.ndarray  # (time, ny, nx) K
    coarse_fine: np.ndarray  # (time, ny, nx) K: ERA5 t2m upsampled by nearest (block repeat)
    times: pd.DatetimeIndex
    dx: float
    dy: float
    factor: int
    neighbours: Neighbours
    seed: int | None = None  # training seed of a fine-tuning run (file attribute ``finetune_seed``)


@dataclass
class Neighbours:
    """The truth one hour before and after each time, and the wind at it (for equation residuals).

    ``available[i]`` is False where the store lacks an hour; those times get NaN residuals.
    """

    available: np.ndarray  # (time,) bool
    prev: np.ndarray  # (time, ny, nx) K (NaN where unavailable)
    next: np.ndarray
    wind: np.ndarray | None  # (time, 2, ny, nx) m/s grid-relative, None if the store has no wind


def _neighbours(store: xr.Dataset, times: pd.DatetimeIndex, shape: tuple[int, int]) -> Neighbours:
    store_times = pd.DatetimeIndex(store["time"].values)
    hour = pd.Timedelta(hours=1)
    available = times.isin(store_times - hour) & times.isin(store_times + hour)
    prev = np.full((len(times), *shape), np.nan, dtype=np.float32)
    nxt = np.full_like(prev, np.nan)
    if available.any():
        ok = times[available]
        prev[available] = store["target"].sel(time=ok - hour).values
        nxt[available] = store["target"].sel(time=ok + hour).values
    wind = np.asarray(store["wind"].sel(time=times).values, dtype=np.float32) if "wind" in store else None
    return Neighbours(np.asarray(available), prev, nxt, wind)


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
    ds, pred = open_prediction(pred_path)
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
    seed = ds.attrs.get("finetune_seed")
    return EvaluationInputs(_model_name(ds, pred, pred_path), ds, pred, truth, coarse_fine, times, dx, dy, factor,
                            _neighbours(store, times, truth.shape[1:]), None if seed is None else int(seed))


def identified_equation(coefficients_path: PathLike, store_path: PathLike, meta_path: PathLike
                        ) -> physics_scores.IdentifiedEquation:
    """The identified equation (``results/physics/pde_coefficients.json``) on the store's grid."""
    from pdeldm.physics.identified_pde import PDECoefficients

    meta = read_json(meta_path)
    coefficients = PDECoefficients.from_dict(read_json(coefficients_path)["coefficients"])
    with xr.open_zarr(store_path) as store:
        static = dict(zip([str(v) for v in store["svar"].values], np.asarray(store["static"].values, np.float64)))
        missing = [v for v in ("HSURF", "FR_LAND") if v not in static]
        if missing:
            raise InputError(f"{store_path}: no static {missing} for the identified equation's sources")
        lon = np.asarray(store["lon"].values, dtype=np.float64)
    return physics_scores.IdentifiedEquation(coefficients, static["HSURF"], static["FR_LAND"], lon,
                                             float(meta["dx_m"]), float(meta["dy_m"]))


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


@dataclass
class Equations:
    """The equations whose residuals are scored (either may be absent)."""

    twin: physics_scores.TwinEquation | None = None
    identified: physics_scores.IdentifiedEquation | None = None


def deterministic_scores(pred: np.ndarray, truth: np.ndarray, inputs: EvaluationInputs, i: int,
                         cfg: Mapping[str, Any], equations: Equations) -> dict[str, float]:
    """Pixel, structural, physical and spectral scores of the 2-D field ``pred`` at time ``i``."""
    data_range = cfg["ssim_data_range"]
    if data_range is None:
        # Per-time truth range: SSIM's constants then scale with the day's contrast; guard
        # against a flat truth field (range 0) with a tiny floor.
        data_range = max(float(truth.max() - truth.min()), 1e-6)
    scores = {
        "rmse": float(metrics.rmse(pred, truth)),
        "mae": float(metrics.mae(pred, truth)),
        "bias": float(metrics.bias(pred, truth)),
        "r2": float(metrics.r2(pred, truth)),
        "pcc": float(metrics.pcc(pred, truth)),
        "ssim": float(metrics.ssim(pred, truth, data_range=float(data_range))),
        "pde_residual": math.nan,
        "pde_residual_identified": math.nan,
        **physics_scores.fine_scale_spectral_scores(pred, truth, inputs.factor),
        "grad_w1": physics_scores.gradient_w1(pred, truth, inputs.dx, inputs.dy),
        "study_flux_ratio": physics_scores.study_flux_ratio(pred, inputs.coarse_fine[i]),
        "study_spectral_slope_diff": physics_scores.study_spectral_slope_diff(pred, truth),
    }
    nb = inputs.neighbours
    if nb.available[i]:
        prev, nxt = nb.prev[i].astype(np.float64), nb.next[i].astype(np.float64)
        if equations.twin is not None:
            scores["pde_residual"] = equations.twin.residual_rms(prev, pred, nxt, inputs.times[i])
        if equations.identified is not None and nb.wind is not None:
            scores["pde_residual_identified"] = equations.identified.residual_rms(prev, pred, nxt, nb.wind[i],
                                                                                  inputs.times[i])
    return scores


def ensemble_scores(ens: np.ndarray, truth: np.ndarray, fair: bool) -> dict[str, float]:
    """CRPS, spread/skill ratio, spread and ensemble-mean RMSE of ``ens`` (realization, ny, nx)."""
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
    cfg_eval: Mapping[str, Any],
    log: PathLike | None = None,
    coefficients: PathLike | None = None,
    twin: Mapping[str, Any] | None = None,
    score_truth: bool = False,
    side_outputs: Mapping[str, PathLike] | None = None,
) -> None:
    """Score one model's predictions; writes ``out_csv`` and its side files (module docstring).

    ``side_outputs``: where the ``rank_hist``, ``extremes`` and ``rapsd`` CSVs go (a workflow rule
    passes the files it declares); by default :func:`side_paths` next to ``out_csv``.

    ``coefficients``: the identified equation's JSON (else ``pde_residual_identified`` is NaN).
    ``twin``: ``{"static", "params", "seed", "start"}`` of the embedded twin that made the data
    (else ``pde_residual`` is NaN). ``score_truth``: score the truth itself at the prediction's
    times (model ``truth``), the reference row for scores that are not distances to the truth.
    """
    logger = stage_logger("evaluate", log)
    cfg = resolve_config(cfg_eval)
    inputs = load_inputs(pred_path, store_path, meta_path)
    if score_truth:
        inputs.pred = xr.DataArray(inputs.truth[None], dims=PREDICTION_DIMS)
        inputs.model, inputs.seed = "truth", None
    equations = Equations(
        twin=physics_scores.TwinEquation(twin["static"], twin["params"], twin["seed"], twin["start"]) if twin else None,
        identified=identified_equation(coefficients, store_path, meta_path) if coefficients else None,
    )
    n_members, n_times = int(inputs.pred.sizes[ENSEMBLE_DIM]), int(inputs.pred.sizes["time"])
    shape = inputs.truth.shape[1:]
    ensemble = n_members > 1
    logger.info("%s: %d times, %d member(s), grid %dx%d, equations: twin %s, identified %s", inputs.model, n_times,
                n_members, shape[0], shape[1], "yes" if equations.twin else "no",
                "yes" if equations.identified else "no")

    rows: list[dict[str, Any]] = []
    member0 = np.empty_like(inputs.truth)  # kept for the period-wide extreme scores
    rank_counts: np.ndarray | None = None
    tie_rng = np.random.default_rng(0)  # ties are broken at random: seeded for reproducible files
    k_ref: np.ndarray | None = None
    power_pred_sum: np.ndarray | None = None
    power_truth_sum: np.ndarray | None = None
    try:
        for i, time in enumerate(inputs.times):
            fields = np.asarray(inputs.pred.isel(time=i).values, dtype=np.float64)  # (realization, ny, nx)
            _check_kelvin(fields, f"{pred_path} at {time}")
            truth = inputs.truth[i].astype(np.float64)
            member0[i] = fields[0]
            row: dict[str, Any] = {"time": time.isoformat(), "model": inputs.model}
            if inputs.seed is not None:
                row["seed"] = inputs.seed
            row.update(deterministic_scores(fields[0], truth, inputs, i, cfg, equations))
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
    columns = (["time", "model"] + (["seed"] if inputs.seed is not None else []) + list(DETERMINISTIC_COLUMNS)
               + (list(ENSEMBLE_COLUMNS) if ensemble else []))
    table = pd.DataFrame(rows, columns=columns)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")

    paths = {name: Path(path) for name, path in (side_outputs or side_paths(out_csv)).items()}
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
        "%s: mean rmse %.3f K, twin residual %.3f K/h, identified residual %.3f K/h, fine-band slope diff %.3f, "
        "grad W1 %.4f K/km -> %s", inputs.model, means["rmse"], means["pde_residual"],
        means["pde_residual_identified"], means["spectral_slope_diff"], means["grad_w1"], out_csv,
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
