"""Calibration and event scores of an ensemble, pooled over the test period (one pass over the file).

For ``m`` members ``x_1..x_m`` and the truth ``y`` at every grid point and test time:

* **CRPS** (fair, Ferro 2014; with one member it is the absolute error, so a deterministic model is
  scored as a zero-spread ensemble): :func:`pdeldm.evaluation.probabilistic.crps_ensemble`.
* **Spread-skill, pooled** (Fortin et al. 2014): ``sqrt((m + 1)/m * mean(s^2)) / sqrt(mean((xbar - y)^2))``
  with the unbiased member variance ``s^2``, both means over *all* points and times. If truth and
  members are exchangeable, ``E[(xbar - y)^2] = (1 + 1/m) E[s^2]``, so a calibrated ensemble scores 1
  whatever ``m``. The mean of per-map ratios (``spread_skill_mean_of_ratios``, what the per-time
  ``spread_skill`` column averages to) weights quiet maps like busy ones and is biased by Jensen's
  inequality; it is reported beside it only for comparison.
* **Spread-error diagram**: the same two quantities within bins of predicted spread. The variance is
  first averaged over each coarse cell (``factor x factor`` points): binning by a single point's
  variance from a few members would select points whose variance is overestimated by chance and
  bend the diagram (regression dilution). Fine logarithmic bins are accumulated and merged into
  ``bins`` groups of equal population at the end (:func:`merge_spread_bins`).
* **Rank histogram** (ties broken at random, seeded) and its shape: ``outer`` = mean frequency of
  the two extreme ranks times ``m + 1`` (1 flat, > 1 U-shaped: under-dispersive, < 1 dome-shaped:
  over-dispersive) and ``asymmetry`` = (first - last) times ``m + 1`` (> 0: the truth too often
  below every member, a warm bias).
* **Events** for each threshold field (``above`` or ``below`` a per-cell training quantile,
  :mod:`pdeldm.evaluation.climatology`): the ensemble's probability ``p = k/m`` (k members in the
  event), its reliability (observed frequency per ``k``), the Brier score ``mean((p - o)^2)``, its
  fair form ``(p - o)^2 - p (1 - p)/(m - 1)`` (Ferro 2014, unbiased for the ensemble's underlying
  distribution), the Brier skill against the sample climatology ``obar (1 - obar)``, and the 2x2
  contingency table of single members (pooled over members: the table of a member drawn at random)
  with hit rate ``H``, false-alarm rate ``F`` and the symmetric extremal dependence index
  ``SEDI = (ln F - ln H - ln(1-F) + ln(1-H)) / (ln F + ln H + ln(1-F) + ln(1-H))`` (Ferro and
  Stephenson 2011), which keeps its meaning as events get rare.

Per-time sums (:attr:`EnsembleVerification.rows`) are kept so that intervals can be bootstrapped
over test days (:func:`pdeldm.evaluation.paired.block_bootstrap_sums`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pdeldm.evaluation import probabilistic

#: Fine bin edges of the predicted spread (K) before merging; spread 0 (one member) has its own bin.
SPREAD_EDGES = np.geomspace(1e-3, 1e2, 201)


@dataclass(frozen=True)
class Threshold:
    """An event: the truth ``direction`` (``above`` or ``below``) a per-cell ``field`` (K)."""

    field: np.ndarray
    direction: str = "above"

    def events(self, values: np.ndarray) -> np.ndarray:
        return values > self.field if self.direction == "above" else values < self.field


@dataclass
class EnsembleVerification:
    """Accumulates the scores of the module docstring time by time (:meth:`add`)."""

    members: int
    factor: int = 8
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    seed: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = int(self.members)
        self.rank_counts = np.zeros(m + 1, dtype=np.int64)
        n_bins = SPREAD_EDGES.size + 1
        self.bin_count = np.zeros(n_bins, dtype=np.int64)
        self.bin_var = np.zeros(n_bins)
        self.bin_sqerr = np.zeros(n_bins)
        self.forecast_counts = {name: np.zeros(m + 1, dtype=np.int64) for name in self.thresholds}
        self.event_counts = {name: np.zeros(m + 1, dtype=np.int64) for name in self.thresholds}
        self._rng = np.random.default_rng([int(self.seed), 0xCA1B])

    def add(self, time: Any, ens: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
        """Score one time: ``ens`` ``(m, ny, nx)`` and ``truth`` ``(ny, nx)`` in K; returns its row."""
        ens = np.asarray(ens, dtype=np.float64)
        truth = np.asarray(truth, dtype=np.float64)
        m = ens.shape[0]
        if m != self.members:
            raise ValueError(f"expected {self.members} members, got {m}")
        mean = ens.mean(axis=0)
        var = ens.var(axis=0, ddof=1) if m > 1 else np.zeros_like(truth)
        sqerr = (mean - truth) ** 2
        crps = probabilistic.crps_ensemble(truth, ens, axis=0, fair=True)
        row: dict[str, Any] = {
            "time": pd.Timestamp(time).isoformat(), "n_points": int(truth.size),
            "sum_var": float(var.sum()), "sum_sqerr": float(sqerr.sum()), "sum_crps": float(crps.sum()),
            "sum_abs_err_member0": float(np.abs(ens[0] - truth).sum()), "domain_mean_truth": float(truth.mean()),
        }
        if m > 1:
            self.rank_counts += probabilistic.rank_histogram(truth, ens, axis=0, rng=self._rng)
        self._bin_spread(var, sqerr)
        for name, threshold in self.thresholds.items():
            row.update(self._events(name, threshold, ens, truth))
        self.rows.append(row)
        return row

    def _bin_spread(self, var: np.ndarray, sqerr: np.ndarray) -> None:
        f = max(1, int(self.factor))
        ny, nx = (var.shape[0] // f) * f, (var.shape[1] // f) * f
        if ny == 0 or nx == 0:
            f, ny, nx = 1, var.shape[0], var.shape[1]

        def blocks(a: np.ndarray) -> np.ndarray:
            return a[:ny, :nx].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3)).ravel()

        block_var, block_sqerr = blocks(var), blocks(sqerr)
        index = np.where(block_var > 0, np.searchsorted(SPREAD_EDGES, np.sqrt(block_var)) + 1, 0)
        index = np.minimum(index, self.bin_count.size - 1)
        self.bin_count += np.bincount(index, minlength=self.bin_count.size)
        self.bin_var += np.bincount(index, weights=block_var, minlength=self.bin_count.size)
        self.bin_sqerr += np.bincount(index, weights=block_sqerr, minlength=self.bin_count.size)

    def _events(self, name: str, threshold: Threshold, ens: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        m = ens.shape[0]
        observed = threshold.events(truth)
        member_events = threshold.events(ens)
        k = member_events.sum(axis=0)
        p = k / m
        self.forecast_counts[name] += np.bincount(k.ravel(), minlength=m + 1)
        self.event_counts[name] += np.bincount(k[observed].ravel(), minlength=m + 1)
        brier = (p - observed) ** 2
        fair = brier - (p * (1 - p) / (m - 1) if m > 1 else 0.0)
        return {
            f"{name}_events": float(observed.sum()), f"{name}_prob_sum": float(p.sum()),
            f"{name}_brier_sum": float(brier.sum()), f"{name}_brier_fair_sum": float(np.sum(fair)),
            f"{name}_hits": float(np.sum(member_events & observed[None])),
            f"{name}_misses": float(np.sum(~member_events & observed[None])),
            f"{name}_false_alarms": float(np.sum(member_events & ~observed[None])),
            f"{name}_correct_negatives": float(np.sum(~member_events & ~observed[None])),
        }

    # --- results ---------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """The per-time sums, one row per time."""
        return pd.DataFrame(self.rows)

    def counts(self) -> dict[str, Any]:
        """The pooled counts (rank histogram, fine spread bins, event reliability) as JSON types."""
        return {"members": int(self.members), "rank_counts": self.rank_counts.tolist(),
                "spread_bins": {"count": self.bin_count.tolist(), "var": self.bin_var.tolist(),
                                "sqerr": self.bin_sqerr.tolist()},
                "events": {name: {"forecasts": self.forecast_counts[name].tolist(),
                                  "events": self.event_counts[name].tolist(),
                                  "direction": self.thresholds[name].direction} for name in self.thresholds}}


def merge_counts(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of several verifications with the same members (e.g. the seeds of one run), summed."""
    if not parts:
        raise ValueError("nothing to merge")
    members = {int(p["members"]) for p in parts}
    if len(members) != 1:
        raise ValueError(f"cannot pool ensembles of different sizes {sorted(members)}")

    def total(get: Any) -> list[float]:
        return np.sum([np.asarray(get(p), dtype=float) for p in parts], axis=0).tolist()

    first = parts[0]
    return {"members": members.pop(), "rank_counts": total(lambda p: p["rank_counts"]),
            "spread_bins": {k: total(lambda p, k=k: p["spread_bins"][k]) for k in ("count", "var", "sqerr")},
            "events": {name: {"forecasts": total(lambda p, n=name: p["events"][n]["forecasts"]),
                              "events": total(lambda p, n=name: p["events"][n]["events"]),
                              "direction": first["events"][name]["direction"]} for name in first["events"]}}


def summarise(table: pd.DataFrame, counts: Mapping[str, Any], bins: int = 10) -> dict[str, Any]:
    """Pooled scores (module docstring) from per-time sums and counts, as plain JSON types."""
    m = int(counts["members"])
    out: dict[str, Any] = {"members": m, "n_times": int(table["time"].nunique()),
                           "n_points": int(table["n_points"].sum())}
    out.update(pooled_scores(table, m))
    out["rank_histogram"] = rank_summary(np.asarray(counts["rank_counts"], dtype=np.int64)) if m > 1 else None
    bins_ = counts["spread_bins"]
    out["spread_error"] = merge_spread_bins(np.asarray(bins_["count"], dtype=np.int64), np.asarray(bins_["var"]),
                                            np.asarray(bins_["sqerr"]), m, bins)
    out["events"] = {name: event_summary(table, name, np.asarray(ev["forecasts"], dtype=np.int64),
                                         np.asarray(ev["events"], dtype=np.int64), m)
                     for name, ev in counts["events"].items()}
    return out


def finite_ensemble_factor(members: int) -> float:
    """``(m + 1) / m``: the expected squared error of the mean of ``m`` exchangeable members over their variance."""
    return (members + 1) / members


def pooled_spread_skill(sum_var: Any, sum_sqerr: Any, members: int) -> Any:
    """``sqrt((m + 1)/m * sum_var / sum_sqerr)`` (equal point counts cancel); 0 for one member."""
    sum_var, sum_sqerr = np.asarray(sum_var, dtype=float), np.asarray(sum_sqerr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(finite_ensemble_factor(members) * sum_var / sum_sqerr)


def pooled_scores(table: pd.DataFrame, members: int) -> dict[str, float]:
    """CRPS, MAE of member 0, ensemble-mean RMSE, spread and spread-skill from per-time sums."""
    n = float(table["n_points"].sum())
    sum_var, sum_sqerr = float(table["sum_var"].sum()), float(table["sum_sqerr"].sum())
    factor = finite_ensemble_factor(members)
    per_time = pooled_spread_skill(table["sum_var"], table["sum_sqerr"], members)
    return {
        "crps": float(table["sum_crps"].sum() / n),
        "mae_member0": float(table["sum_abs_err_member0"].sum() / n),
        "rmse_ensmean": math.sqrt(sum_sqerr / n),
        "spread": math.sqrt(factor * sum_var / n),
        "spread_skill": float(pooled_spread_skill(sum_var, sum_sqerr, members)),
        "spread_skill_mean_of_ratios": float(np.nanmean(per_time)) if members > 1 else 0.0,
    }


def rank_summary(counts: np.ndarray) -> dict[str, Any]:
    """Counts, frequencies and the shape measures ``outer`` and ``asymmetry`` of a rank histogram."""
    counts = np.asarray(counts, dtype=np.int64)
    total = max(int(counts.sum()), 1)
    freq = counts / total
    bins = counts.size
    outer = float((freq[0] + freq[-1]) / 2 * bins)
    asymmetry = float((freq[0] - freq[-1]) * bins)
    return {"counts": counts.tolist(), "frequency": freq.tolist(), "outer": outer, "asymmetry": asymmetry,
            "shape": rank_shape(outer, asymmetry)}


def rank_shape(outer: float, asymmetry: float, tolerance: float = 0.15) -> str:
    """Words for a rank histogram: ``flat``, ``U-shaped`` or ``dome-shaped``, plus a skew if any."""
    if outer > 1 + tolerance:
        shape = "U-shaped"
    elif outer < 1 - tolerance:
        shape = "dome-shaped"
    else:
        shape = "flat"
    if asymmetry > tolerance:
        shape += ", truth often below all members"
    elif asymmetry < -tolerance:
        shape += ", truth often above all members"
    return shape


def merge_spread_bins(count: np.ndarray, var: np.ndarray, sqerr: np.ndarray, members: int,
                      bins: int) -> list[dict[str, float]]:
    """Adjacent fine bins merged into about ``bins`` groups of equal population.

    Each group: ``spread`` = ``sqrt((m+1)/m * pooled variance)`` and ``rmse`` of the ensemble mean
    (both K, calibrated: equal), ``count`` of coarse cells x times. Zero spread keeps its own group.
    """
    groups: list[dict[str, float]] = []
    factor = finite_ensemble_factor(members)

    def close(sl: slice) -> None:
        n = int(count[sl].sum())
        if n:
            groups.append({"spread": math.sqrt(factor * float(var[sl].sum()) / n),
                           "rmse": math.sqrt(float(sqerr[sl].sum()) / n), "count": n})

    close(slice(0, 1))
    total = int(count[1:].sum())
    if total == 0:
        return groups
    target = total / max(1, int(bins))
    start, running = 1, 0
    for i in range(1, count.size):
        running += int(count[i])
        if running >= target or i == count.size - 1:
            close(slice(start, i + 1))
            start, running = i + 1, 0
    return groups


def sedi(hits: Any, misses: Any, false_alarms: Any, correct_negatives: Any) -> Any:
    """Symmetric extremal dependence index from contingency counts (NaN where H or F is 0 or 1)."""
    hits, misses = np.asarray(hits, dtype=float), np.asarray(misses, dtype=float)
    false_alarms, correct_negatives = np.asarray(false_alarms, dtype=float), np.asarray(correct_negatives, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = hits / (hits + misses)
        f = false_alarms / (false_alarms + correct_negatives)
        num = np.log(f) - np.log(h) - np.log1p(-f) + np.log1p(-h)
        den = np.log(f) + np.log(h) + np.log1p(-f) + np.log1p(-h)
        value = num / den
    valid = (h > 0) & (h < 1) & (f > 0) & (f < 1)
    return np.where(valid, value, np.nan)[()]


CONTINGENCY = ("hits", "misses", "false_alarms", "correct_negatives")


def event_summary(table: pd.DataFrame, name: str, forecast_counts: np.ndarray, event_counts: np.ndarray,
                  members: int) -> dict[str, Any]:
    """Reliability, Brier scores and single-member contingency scores of one event (module docstring)."""
    n = float(table["n_points"].sum())
    base_rate = float(table[f"{name}_events"].sum() / n)
    brier = float(table[f"{name}_brier_sum"].sum() / n)
    reference = base_rate * (1 - base_rate)
    counts = {c: float(table[f"{name}_{c}"].sum()) for c in CONTINGENCY}
    hits, misses, false_alarms, negatives = (counts[c] for c in CONTINGENCY)
    forecast_counts = np.asarray(forecast_counts, dtype=np.int64)
    event_counts = np.asarray(event_counts, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.where(forecast_counts > 0, event_counts / np.maximum(forecast_counts, 1), np.nan)
    return {
        "base_rate": base_rate,
        "mean_probability": float(table[f"{name}_prob_sum"].sum() / n),
        "brier": brier,
        "brier_fair": float(table[f"{name}_brier_fair_sum"].sum() / n),
        "brier_skill": 1 - brier / reference if reference > 0 else math.nan,
        "hit_rate": hits / (hits + misses) if hits + misses else math.nan,
        "false_alarm_rate": false_alarms / (false_alarms + negatives) if false_alarms + negatives else math.nan,
        "sedi": float(sedi(hits, misses, false_alarms, negatives)),
        "reliability": {"probability": (np.arange(members + 1) / members).tolist(),
                        "forecasts": forecast_counts.tolist(), "events": event_counts.tolist(),
                        "observed_frequency": [None if not np.isfinite(v) else float(v) for v in observed]},
    }


def read_rows(paths: Sequence[str]) -> pd.DataFrame:
    """Per-time sums of several files (e.g. the seeds of one run), concatenated."""
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


#: The events scored: threshold name in the climatology file -> direction.
EVENT_DIRECTIONS = {"warm": "above", "hot": "above", "cold": "below"}


def verify_prediction(prediction: str | os.PathLike[str], store_path: str | os.PathLike[str],
                      meta_path: str | os.PathLike[str], climatology: str | os.PathLike[str],
                      out_times: str | os.PathLike[str], out_counts: str | os.PathLike[str], seed: int = 0,
                      log: str | os.PathLike[str] | None = None) -> None:
    """Score every test time of a prediction file: per-time sums -> ``out_times`` (CSV), pooled counts
    -> ``out_counts`` (JSON), for the events of :data:`EVENT_DIRECTIONS` found in ``climatology``."""
    import xarray as xr

    from pdeldm.errors import InputError
    from pdeldm.evaluation.climatology import read_climatology
    from pdeldm.io import atomic_output, read_json, write_json
    from pdeldm.logs import stage_logger
    from pdeldm.prediction_file import ENSEMBLE_DIM, open_prediction

    logger = stage_logger("calibration", log)
    meta = read_json(meta_path)
    fields = read_climatology(climatology)
    thresholds = {name: Threshold(fields[name], direction) for name, direction in EVENT_DIRECTIONS.items()
                  if name in fields}
    ds, pred = open_prediction(prediction)
    with ds, xr.open_zarr(store_path) as store:
        times = pd.DatetimeIndex(pred["time"].values)
        missing = times.difference(pd.DatetimeIndex(store["time"].values))
        if len(missing):
            raise InputError(f"{prediction}: {len(missing)} prediction times not in {store_path} (first {missing[0]})")
        target = store["target"].sel(time=times)  # read time by time: the test period can be long
        grid = tuple(int(n) for n in target.shape[1:])
        members = int(pred.sizes[ENSEMBLE_DIM])
        for name, threshold in thresholds.items():
            if threshold.field.shape != grid:
                raise InputError(f"{climatology}: threshold {name} has shape {threshold.field.shape}, "
                                 f"the predictions {grid}: rebuild it for this region")
        verification = EnsembleVerification(members, int(meta.get("factor", 8)), thresholds, seed)
        for i, time in enumerate(times):
            verification.add(time, np.asarray(pred.isel(time=i).values, dtype=np.float64),
                             np.asarray(target.isel(time=i).values, dtype=np.float64))
            if (i + 1) % max(1, len(times) // 5) == 0 or i + 1 == len(times):
                logger.info("%s: %d/%d times verified", prediction, i + 1, len(times))
    model = str(ds.attrs.get("model", os.path.splitext(os.path.basename(prediction))[0]))
    table = verification.table()
    table.insert(1, "model", model)
    with atomic_output(out_times) as tmp:
        table.to_csv(tmp, index=False, float_format="%.9g")
    write_json(out_counts, {"model": model, **verification.counts()})
    summary = summarise(table, verification.counts())
    logger.info("%s: %d members, CRPS %.3f K, ensemble-mean RMSE %.3f K, pooled spread-skill %.3f "
                "(mean of per-map ratios %.3f), rank histogram %s", model, members, summary["crps"],
                summary["rmse_ensmean"], summary["spread_skill"], summary["spread_skill_mean_of_ratios"],
                summary["rank_histogram"]["shape"] if summary["rank_histogram"] else "n/a (one member)")
