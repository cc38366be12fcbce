r"""The twin against real COSMO-CLM: monthly means at the scales the coarse grid cannot resolve.

The reference is a real COSMO-CLM EUR-11 monthly mean of 2-m temperature on the grid of the
static fields (by default ``tas_rotated_grid_EUR11.nc`` of Debian's ``libncarg-data``, January
2006).  For every configured region the twin is integrated over the same calendar month (after its
spin-up) and its monthly mean is compared with the real one over the same cells.  Both are reduced
to their fine-scale anomaly ``T' = T - U(B(T))`` (``B`` = mean over ``factor x factor`` blocks,
``U`` = repeat over the block), the part a downscaling model has to add to the coarse field, and
described by:

* the least-squares regression ``T' = a_h HSURF' + a_l FR_LAND' + r`` on the anomalies of the
  static fields (same blocks): the lapse-rate coefficient ``a_h`` (K/km) and the land-sea
  coefficient ``a_l`` (K per unit land fraction), the fine-scale std of ``T'`` and the std of the
  residual ``r`` (what orography and coastlines do not explain);
* the power spectrum of the whole field (least-squares plane removed, 2-D Hann window, radially
  averaged, :func:`pdeldm.evaluation.spectra.rapsd`) over the wavelengths from 2 fine cells up to
  two coarse cells (``2 factor`` fine cells), where the coarse input carries no information:
  its log-log slope and the log-spectral distance ``sqrt(mean_k (10 log10(P_twin / P_real))^2)``
  in dB.

One month of one real simulation is a small sample: the coefficients are climatological
properties of 2-m temperature, but the residual and the spectrum also carry January 2006's weather.
"""

from __future__ import annotations

import logging
import time as wallclock
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pdeldm.data.static import region_static
from pdeldm.data.twin.model import TwinModel
from pdeldm.data.twin.params import merged_params
from pdeldm.errors import InputError
from pdeldm.evaluation.spectra import rapsd
from pdeldm.io import atomic_output

#: Tolerance (degrees) for matching the reference's cell centres to the static grid's.
CELL_MATCH_DEG = 1e-3
#: Metrics compared per region (CSV columns) and their display names with units.
METRICS: dict[str, str] = {
    "lapse_rate_K_per_km": "lapse-rate coef. [K/km]",
    "land_sea_K": "land-sea coef. [K]",
    "fine_std_K": "fine-scale std [K]",
    "residual_std_K": "residual std [K]",
    "band_slope": "spectral slope < 2 coarse cells",
}


def block_anomaly(field: np.ndarray, factor: int) -> np.ndarray:
    """``field`` minus its ``factor x factor`` block mean repeated over each block (last two axes)."""
    *lead, ny, nx = field.shape
    if ny % factor or nx % factor:
        raise InputError(f"realism: a {ny}x{nx} region is not a whole number of {factor}x{factor} blocks")
    blocks = field.reshape(*lead, ny // factor, factor, nx // factor, factor).mean(axis=(-3, -1))
    return field - np.repeat(np.repeat(blocks, factor, axis=-2), factor, axis=-1)


def fine_scale_regression(field: np.ndarray, hsurf_m: np.ndarray, fr_land: np.ndarray, factor: int
                          ) -> dict[str, float]:
    """Lapse-rate and land-sea coefficients of the fine-scale anomaly, its std and the residual std."""
    anomaly = block_anomaly(np.asarray(field, np.float64), factor).ravel()
    design = np.column_stack([block_anomaly(np.asarray(hsurf_m, np.float64) / 1000.0, factor).ravel(),
                              block_anomaly(np.asarray(fr_land, np.float64), factor).ravel()])
    coef, *_ = np.linalg.lstsq(design, anomaly, rcond=None)
    residual = anomaly - design @ coef
    return {"lapse_rate_K_per_km": float(coef[0]), "land_sea_K": float(coef[1]),
            "fine_std_K": float(anomaly.std()), "residual_std_K": float(residual.std())}


def band_spectrum(field: np.ndarray, dx_m: float, longest_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """``(wavelength_km, power)`` of the detrended, Hann-windowed field for 2 .. ``longest_cells`` cells.

    Power in K^2 per wavenumber bin (pysteps convention), divided by the window's mean square so
    that a windowed white noise keeps its level.
    """
    field = np.asarray(field, np.float64)
    ny, nx = field.shape
    yy, xx = np.meshgrid(np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2, indexing="ij")
    design = np.column_stack([np.ones(field.size), yy.ravel(), xx.ravel()])
    plane, *_ = np.linalg.lstsq(design, field.ravel(), rcond=None)
    detrended = field - (design @ plane).reshape(field.shape)
    window = np.outer(np.hanning(ny), np.hanning(nx))
    power, freq = rapsd(detrended * window, dx=dx_m)
    power = np.asarray(power) / float(np.mean(window**2))
    freq = np.asarray(freq)
    with np.errstate(divide="ignore"):
        wavelength_cells = np.where(freq > 0, 1.0 / (freq * dx_m), np.inf)
    keep = (wavelength_cells <= longest_cells) & (wavelength_cells >= 2.0)
    return wavelength_cells[keep] * dx_m / 1000.0, power[keep]


def spectral_slope(wavelength_km: np.ndarray, power: np.ndarray) -> float:
    """Least-squares slope of log10 power against log10 wavenumber (``1 / wavelength``)."""
    return float(np.polyfit(np.log10(1.0 / wavelength_km), np.log10(power), 1)[0])


def log_spectral_distance_db(power: np.ndarray, reference: np.ndarray) -> float:
    """RMS over the bins of ``10 log10(power / reference)`` (dB)."""
    return float(np.sqrt(np.mean((10.0 * np.log10(power / reference)) ** 2)))


def reference_month(real_file: Path, variable: str = "T_2M") -> xr.DataArray:
    """The real monthly mean (rlat, rlon) in K, with its time stamp in ``attrs["month"]`` (YYYY-MM)."""
    from pdeldm.data.cosmo import open_cosmo

    if not Path(real_file).is_file():
        raise InputError(f"realism: reference file {real_file} not found (Debian: apt-get install libncarg-data)")
    field = open_cosmo([Path(real_file)], variable=variable)
    if field.sizes["time"] != 1:
        raise InputError(f"realism: {real_file} holds {field.sizes['time']} times; expected one monthly mean")
    stamp = pd.Timestamp(field["time"].values[0])
    out = field.isel(time=0).load()
    out.attrs["month"] = f"{stamp.year:04d}-{stamp.month:02d}"
    return out


def reference_cells(reference: xr.DataArray, static: xr.Dataset) -> np.ndarray | None:
    """The reference on the static region's cells, or None if the region is not inside it."""
    rlat, rlon = reference["rlat"].values, reference["rlon"].values
    i = np.searchsorted(rlat, static["rlat"].values[0] - CELL_MATCH_DEG)
    j = np.searchsorted(rlon, static["rlon"].values[0] - CELL_MATCH_DEG)
    ny, nx = static.sizes["rlat"], static.sizes["rlon"]
    if i + ny > rlat.size or j + nx > rlon.size:
        return None
    if not (np.allclose(rlat[i:i + ny], static["rlat"].values, atol=CELL_MATCH_DEG)
            and np.allclose(rlon[j:j + nx], static["rlon"].values, atol=CELL_MATCH_DEG)):
        return None
    return np.asarray(reference.values[i:i + ny, j:j + nx], np.float64)


def twin_monthly_mean(static: xr.Dataset, params: Mapping[str, Any] | None, seed: int, month: str,
                      days: float | None = None) -> np.ndarray:
    """Mean of the twin's hourly region fields over ``month`` (YYYY-MM) or its first ``days`` days."""
    merged = merged_params(params)
    first = pd.Timestamp(f"{month}-01")
    n_hours = int(round(24 * (first.days_in_month if days is None else float(days))))
    if n_hours < 24:
        raise InputError(f"realism: at least one day of twin is needed, got days={days}")
    origin = first - pd.Timedelta(hours=int(round(merged["spinup_days"] * 24)))
    model = TwinModel(static, merged, seed, origin)
    skip = int((first - origin) / pd.Timedelta(hours=1))
    total = np.zeros((model.ny, model.nx))
    for hour, (_, T) in enumerate(model.run(skip + n_hours - 1)):
        if hour >= skip:
            total += T[model.interior]
    return total / n_hours


def region_statistics(field: np.ndarray, static: xr.Dataset, factor: int) -> tuple[dict[str, float], np.ndarray,
                                                                                   np.ndarray]:
    """Regression statistics, spectral slope and the band spectrum of one monthly-mean field."""
    stats = fine_scale_regression(field, static["HSURF"].values, static["FR_LAND"].values, factor)
    dx_m = 0.5 * (float(static.attrs["dx_m"]) + float(static.attrs["dy_m"]))
    wavelength_km, power = band_spectrum(field, dx_m, 2 * factor)
    stats["band_slope"] = spectral_slope(wavelength_km, power)
    stats["mean_degC"] = float(np.mean(field) - 273.15)
    return stats, wavelength_km, power


def compare_regions(static_source: Path, real_file: Path, regions: Mapping[str, Mapping[str, Any]],
                    params: Mapping[str, Any] | None, seed: int, factor: int, days: float | None = None,
                    log: logging.Logger | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Twin vs reference per region -> (statistics, one row per region and source; spectra).

    Regions outside the reference's domain get a row with ``note`` set and no statistics.
    """
    log = log or logging.getLogger("pdeldm.twin.realism")
    reference = reference_month(real_file)
    month = reference.attrs["month"]
    rows: list[dict[str, Any]] = []
    spectra: list[pd.DataFrame] = []
    for name, box in regions.items():
        static = region_static(static_source, box)
        real = reference_cells(reference, static)
        base = {"region": name, "month": month, "ny": static.sizes["rlat"], "nx": static.sizes["rlon"],
                "land_fraction": float(static["FR_LAND"].mean())}
        if real is None:
            log.warning("realism: region %s lies outside %s; skipped", name, real_file)
            rows.append({**base, "source": "real", "note": "outside the reference domain"})
            continue
        clock = wallclock.perf_counter()
        twin = twin_monthly_mean(static, params, seed, month, days)
        for source, field in (("twin", twin), ("real", real)):
            stats, wavelength_km, power = region_statistics(field, static, factor)
            rows.append({**base, "source": source, **stats, "note": ""})
            spectra.append(pd.DataFrame({"region": name, "source": source, "wavelength_km": wavelength_km,
                                         "power": power}))
        log.info("realism: %s: twin %s (%.1f s); land-sea %.2f vs %.2f K, lapse %.2f vs %.2f K/km", name, month,
                 wallclock.perf_counter() - clock, rows[-2]["land_sea_K"], rows[-1]["land_sea_K"],
                 rows[-2]["lapse_rate_K_per_km"], rows[-1]["lapse_rate_K_per_km"])
    table = pd.DataFrame(rows)
    spectrum = pd.concat(spectra, ignore_index=True) if spectra else pd.DataFrame(
        columns=["region", "source", "wavelength_km", "power"])
    return table, spectrum


def comparison_table(table: pd.DataFrame, spectrum: pd.DataFrame) -> pd.DataFrame:
    """Wide table: per region, twin and real side by side, the relative differences and the LSD."""
    compared = table[table["note"].fillna("") == ""]
    rows = []
    for region, part in compared.groupby("region", sort=False):
        twin = part[part["source"] == "twin"].iloc[0]
        real = part[part["source"] == "real"].iloc[0]
        row: dict[str, Any] = {"region": region, "land_fraction": real["land_fraction"]}
        for key in METRICS:
            row[f"{key}_twin"], row[f"{key}_real"] = twin[key], real[key]
            if key == "band_slope":
                row["band_slope_diff"] = twin[key] - real[key]
            else:
                row[f"{key}_rel_diff"] = (twin[key] - real[key]) / abs(real[key])
        twin_power = spectrum[(spectrum["region"] == region) & (spectrum["source"] == "twin")]["power"].to_numpy()
        real_power = spectrum[(spectrum["region"] == region) & (spectrum["source"] == "real")]["power"].to_numpy()
        row["log_spectral_distance_dB"] = log_spectral_distance_db(twin_power, real_power)
        row["mean_degC_twin"], row["mean_degC_real"] = twin["mean_degC"], real["mean_degC"]
        rows.append(row)
    return pd.DataFrame(rows)


def tolerances(wide: pd.DataFrame) -> dict[str, float]:
    """The largest |relative difference| per regression metric, |slope difference| and LSD over regions."""
    out = {f"max_abs_rel_diff_{key}": float(wide[f"{key}_rel_diff"].abs().max())
           for key in METRICS if key != "band_slope"}
    out["max_abs_band_slope_diff"] = float(wide["band_slope_diff"].abs().max())
    out["max_log_spectral_distance_dB"] = float(wide["log_spectral_distance_dB"].max())
    return out


def markdown_table(wide: pd.DataFrame, table: pd.DataFrame, month: str, source_name: str,
                   days: float | None = None) -> str:
    """The comparison as a Markdown table (twin / real per cell) with the tolerances reached."""
    twin_span = "the whole month" if days is None else f"its first {days:g} days"
    header = ("| region | land frac. | lapse-rate coef. K/km | land-sea coef. K | fine-scale std K | residual std K "
              "| spectral slope | LSD dB | mean degC |")
    lines = [f"Twin vs real COSMO-CLM ({source_name}), monthly mean of {month} (twin: mean over {twin_span}), "
             "fine-scale anomaly (field minus its block mean); each cell: twin / real.", "", header,
             "|" + "---|" * 9]
    for _, r in wide.iterrows():
        lines.append(
            f"| {r['region']} | {r['land_fraction']:.2f} "
            f"| {r['lapse_rate_K_per_km_twin']:.2f} / {r['lapse_rate_K_per_km_real']:.2f} "
            f"| {r['land_sea_K_twin']:.2f} / {r['land_sea_K_real']:.2f} "
            f"| {r['fine_std_K_twin']:.2f} / {r['fine_std_K_real']:.2f} "
            f"| {r['residual_std_K_twin']:.2f} / {r['residual_std_K_real']:.2f} "
            f"| {r['band_slope_twin']:.2f} / {r['band_slope_real']:.2f} "
            f"| {r['log_spectral_distance_dB']:.1f} "
            f"| {r['mean_degC_twin']:.1f} / {r['mean_degC_real']:.1f} |")
    skipped = table[table["note"].fillna("") != ""]
    if len(skipped):
        lines += ["", "Not compared: " + ", ".join(f"{r.region} ({r.note})" for r in skipped.itertuples())]
    if len(wide):
        tol = tolerances(wide)
        lines += ["", "Tolerances reached over the compared regions: "
                  f"lapse-rate coef. within {100 * tol['max_abs_rel_diff_lapse_rate_K_per_km']:.0f} %, "
                  f"land-sea coef. within {100 * tol['max_abs_rel_diff_land_sea_K']:.0f} %, "
                  f"fine-scale std within {100 * tol['max_abs_rel_diff_fine_std_K']:.0f} %, "
                  f"residual std within {100 * tol['max_abs_rel_diff_residual_std_K']:.0f} %, "
                  f"spectral slope within {tol['max_abs_band_slope_diff']:.2f}, "
                  f"log-spectral distance at most {tol['max_log_spectral_distance_dB']:.1f} dB."]
    return "\n".join(lines) + "\n"


def realism_check(static_source: str | Path, real_file: str | Path, regions: Mapping[str, Mapping[str, Any]],
                  params: Mapping[str, Any] | None, seed: int, factor: int, out_csv: str | Path, out_md: str | Path,
                  out_html: str | Path, out_png: str | Path, days: float | None = None,
                  log: logging.Logger | None = None) -> pd.DataFrame:
    """Compare the twin with the real field for every region; write CSV, Markdown, HTML and figure.

    ``out_csv`` holds one row per region and source (twin, real) with every statistic; the
    Markdown and HTML files the side-by-side table with the tolerances reached; ``out_png`` the
    spectra. Returns the wide comparison table.
    """
    from pdeldm.plotting.realism import plot_realism

    table, spectrum = compare_regions(Path(static_source), Path(real_file), regions, params, seed, factor, days, log)
    wide = comparison_table(table, spectrum)
    month = str(table["month"].iloc[0]) if len(table) else "?"
    markdown = markdown_table(wide, table, month, Path(real_file).name, days)
    with atomic_output(Path(out_csv)) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_output(Path(out_md)) as tmp:
        Path(tmp).write_text(markdown)
    with atomic_output(Path(out_html)) as tmp:
        Path(tmp).write_text(_html(wide, markdown))
    plot_realism(spectrum, wide, Path(out_png), month)
    return wide


def _html(wide: pd.DataFrame, markdown: str) -> str:
    """A self-contained HTML page of the table (for the workflow report)."""
    lines = [line for line in markdown.splitlines() if line.strip()]
    title, notes = lines[0], [line for line in lines[1:] if not line.startswith("|")]
    rows = [line.strip("|").split("|") for line in lines if line.startswith("|") and not line.startswith("|---")]
    head = "".join(f"<th>{cell.strip()}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell.strip()}</td>" for cell in row) + "</tr>" for row in rows[1:])
    paragraphs = "".join(f"<p>{note}</p>" for note in notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Twin realism</title></head><body>"
            f"<p>{title}</p><table border='1' cellpadding='4'><tr>{head}</tr>{body}</table>{paragraphs}"
            f"</body></html>\n")

