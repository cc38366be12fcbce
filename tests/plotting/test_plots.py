"""Every plot function writes a non-empty PNG from small synthetic inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.plotting import plot_calibration, plot_maps, plot_metric_boxplots, plot_spectra
from pdeldm.plotting.maps import select_times

MODELS = ["interpolation", "unet", "gan", "ldm", "ldm_control", "pde_ldm_adv"]
ENSEMBLES = {"ldm": 4, "ldm_control": 4, "pde_ldm_adv": 4}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_kb: float = 10.0) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > min_kb * 1024, f"{path} is only {len(data)} bytes"
    assert not list(path.parent.glob(f".{path.name}.tmp-*"))  # atomic write left nothing behind


@pytest.fixture(scope="module")
def csvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Per-model metric, rank-histogram and RAPSD CSVs as evaluate_model writes them."""
    tmp = tmp_path_factory.mktemp("csvs")
    rng = np.random.default_rng(0)
    times = pd.date_range("2003-05-01", periods=20, freq="12h").strftime("%Y-%m-%dT%H:%M:%S")
    k = np.arange(0, 33) / (64 * 12_000.0)
    truth_power = np.r_[0.0, 1e6 * (k[1:] * 1e5) ** -3.0]
    out: dict[str, list[Path]] = {"metrics": [], "rank_hist": [], "rapsd": []}
    for j, model in enumerate(MODELS):
        scale = 1.0 - 0.15 * j
        frame = pd.DataFrame({
            "time": times, "model": model,
            "rmse": scale * (1 + 0.1 * rng.standard_normal(20)), "mae": 0.8 * scale * np.ones(20),
            "bias": 0.1 * rng.standard_normal(20), "r2": 1 - 0.1 * scale * rng.random(20),
            "pcc": 1 - 0.05 * scale * rng.random(20), "ssim": 1 - 0.2 * scale * rng.random(20),
            "pde_residual": 0.2 + scale * rng.random(20), "grad_w1": 0.01 * scale * rng.random(20),
            "study_flux_ratio": 200 * scale * rng.random(20), "spectral_slope_diff": scale * rng.random(20),
        })
        hist = pd.DataFrame(columns=["model", "rank", "count", "frequency"])
        if model in ENSEMBLES:
            frame["crps"] = 0.5 * scale
            frame["spread"] = 0.4 * scale * (1 + 0.1 * rng.standard_normal(20))
            frame["rmse_ensmean"] = 0.6 * scale * (1 + 0.1 * rng.standard_normal(20))
            frame["spread_skill"] = frame["spread"] / frame["rmse_ensmean"]
            counts = np.array([30, 18, 15, 17, 32]) * 100
            hist = pd.DataFrame({"model": model, "rank": np.arange(5), "count": counts,
                                 "frequency": counts / counts.sum()})
        damping = np.exp(-(k * 64 * 12_000.0 / (8 + 6 * j)) ** 2)
        wavelength_km = np.where(k > 0, 1 / np.maximum(k, 1e-30), np.inf) / 1e3
        rapsd = pd.DataFrame({"model": model, "k": k, "wavelength_km": wavelength_km,
                              "power_pred": truth_power * damping, "power_truth": truth_power})
        for kind, table in (("metrics", frame), ("rank_hist", hist), ("rapsd", rapsd)):
            path = tmp / f"{model}_{kind}.csv"
            table.to_csv(path, index=False)
            out[kind].append(path)
    return out


def test_boxplots(csvs, tmp_path: Path) -> None:
    out = tmp_path / "figures" / "metric_boxplots.png"
    plot_metric_boxplots(csvs["metrics"], out)
    assert_png(out, min_kb=40)


def test_spectra(csvs, tmp_path: Path) -> None:
    out = tmp_path / "spectra.png"
    plot_spectra(csvs["rapsd"], out)
    assert_png(out, min_kb=20)


def test_calibration(csvs, tmp_path: Path) -> None:
    out = tmp_path / "calibration.png"
    plot_calibration(csvs["rank_hist"], csvs["metrics"], out)
    assert_png(out, min_kb=20)
    # Deterministic models only: still a (placeholder) figure, because the rule needs its output.
    out_none = tmp_path / "calibration_none.png"
    plot_calibration(csvs["rank_hist"][:3], csvs["metrics"][:3], out_none)
    assert_png(out_none, min_kb=2)


def test_maps(tmp_path: Path) -> None:
    ny = nx = 32
    factor, n_times = 8, 6
    rng = np.random.default_rng(1)
    times = pd.date_range("2003-05-01", periods=n_times, freq="D")
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    truth = np.stack([280 + 2 * i + 4 * np.sin(xx / 5 + i) * np.cos(yy / 7) for i in range(n_times)]).astype(np.float32)
    coarse = truth.reshape(n_times, ny // factor, factor, nx // factor, factor).mean(axis=(2, 4))[:, None]
    rlat, rlon = 0.11 * np.arange(ny), 0.11 * np.arange(nx)
    xr.Dataset(
        {"target": (("time", "y", "x"), truth), "coarse": (("time", "cvar", "yc", "xc"), coarse.astype(np.float32))},
        coords={"time": times, "cvar": ["t2m"], "rlat": ("y", rlat), "rlon": ("x", rlon)},
    ).to_zarr(tmp_path / "store.zarr", mode="w")
    (tmp_path / "meta.json").write_text(json.dumps({"factor": factor, "dx_m": 12e3, "dy_m": 12e3,
                                                    "predictors": ["t2m"]}))
    preds = []
    for model in MODELS:
        members = ENSEMBLES.get(model, 1)
        fields = truth[None] + rng.normal(0, 0.5, (members, *truth.shape))
        da = xr.DataArray(fields.astype(np.float32), dims=("realization", "time", "rlat", "rlon"),
                          coords={"time": times, "rlat": rlat, "rlon": rlon}, attrs={"units": "K"})
        path = tmp_path / f"{model}.nc"
        xr.Dataset({"T_2M": da}, attrs={"model": model}).to_netcdf(path)
        preds.append(path)
    out = tmp_path / "maps.png"
    plot_maps(preds, tmp_path / "store.zarr", tmp_path / "meta.json", out, n_times=2)
    assert_png(out, min_kb=40)


def test_select_times() -> None:
    available = pd.date_range("2003-05-01", periods=10, freq="D")
    assert list(select_times(available, None, 2)) == [available[2], available[7]]
    assert list(select_times(available, [0, "2003-05-04"], 3)) == [available[0], available[3]]


def test_training_curves(tmp_path: Path) -> None:
    from pdeldm.plotting.training import plot_training_curves

    columns = "epoch,train_loss,val_loss,lr,seconds,samples_per_s\n"
    csvs = {"interpolation": tmp_path / "interpolation.csv", "unet": tmp_path / "unet.csv",
            "autoencoder": tmp_path / "autoencoder.csv"}
    csvs["interpolation"].write_text(columns)
    csvs["unet"].write_text(columns + "0,0.5,0.4,0.001,1.0,10\n1,0.3,0.35,0.001,1.0,10\n")
    csvs["autoencoder"].write_text(columns + "0,0.2,0.25,0.001,1.0,10\n")
    out = tmp_path / "training.png"
    plot_training_curves(csvs, out)
    assert_png(out, min_kb=15)


def test_transfer_figures(tmp_path: Path) -> None:
    from pdeldm.evaluation.transfer import region_summary
    from pdeldm.plotting.transfer import plot_region_maps, plot_transfer_matrix, plot_transfer_models

    rng = np.random.default_rng(1)
    regions = ["a", "b", "c"]
    rows = [{"train": train, "test": test, "model": model, "rmse": 1 + rng.random(), "rmse_vs_interpolation":
             0.0 if model == "interpolation" else -rng.random(), "crps_vs_interpolation": -rng.random()}
            for test in regions for train, model in [("a", "interpolation"), ("a", "ldm"), *((t, "unet") for t in regions)]]
    table = pd.DataFrame(rows)
    plot_transfer_matrix(table, ["unet"], ["rmse", "crps"], regions, tmp_path / "matrix.png")
    plot_transfer_models(table, "a", ["rmse", "crps"], regions, tmp_path / "models.png")
    statics = {}
    for region in regions:
        ds = xr.Dataset({"HSURF": (("rlat", "rlon"), 1000 * rng.random((16, 16))),
                         "FR_LAND": (("rlat", "rlon"), rng.random((16, 16))),
                         "lat": (("rlat", "rlon"), np.full((16, 16), 45.0))})
        statics[region] = tmp_path / f"{region}.nc"
        ds.to_netcdf(statics[region])
    plot_region_maps(statics, region_summary(statics), tmp_path / "maps.png")
    for name in ("matrix", "models", "maps"):
        assert_png(tmp_path / f"{name}.png")
