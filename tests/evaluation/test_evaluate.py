"""evaluate_model on a small synthetic store: perfect, noisy and ensemble predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pdeldm.errors import InputError
from pdeldm.evaluation.evaluate import DETERMINISTIC_COLUMNS, evaluate_model, side_paths

NY = NX = 32
FACTOR = 8
N_TIMES = 10
DX = 12_000.0


def _smooth_field(rng: np.random.Generator, ny: int, nx: int, slope: float = -3.0) -> np.ndarray:
    """Gaussian random field with a power-law spectrum (|k|^slope), unit std."""
    ky, kx = np.meshgrid(np.fft.fftfreq(ny), np.fft.fftfreq(nx), indexing="ij")
    k = np.hypot(ky, kx)
    k[0, 0] = np.inf
    spectrum = np.fft.fft2(rng.standard_normal((ny, nx))) * k ** (slope / 2)
    field = np.real(np.fft.ifft2(spectrum))
    return (field - field.mean()) / field.std()


def make_store(tmp: Path, n_times: int = N_TIMES, seed: int = 0) -> tuple[Path, Path, np.ndarray]:
    """Zarr store + meta JSON as interfaces §3 (only what evaluation reads); returns truth too."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2003-05-01", periods=n_times, freq="6h")
    truth = np.stack([285.0 + 0.5 * i + 3.0 * _smooth_field(rng, NY, NX) for i in range(n_times)]).astype(np.float32)
    nyc, nxc = NY // FACTOR, NX // FACTOR
    coarse_t2m = truth.reshape(n_times, nyc, FACTOR, nxc, FACTOR).mean(axis=(2, 4))
    wind = rng.standard_normal((n_times, nyc, nxc)).astype(np.float32)
    coarse = np.stack([coarse_t2m, wind, -wind], axis=1).astype(np.float32)
    rlat = -13.5 + 0.11 * np.arange(NY)
    rlon = -9.0 + 0.11 * np.arange(NX)
    ds = xr.Dataset(
        {"target": (("time", "y", "x"), truth), "coarse": (("time", "cvar", "yc", "xc"), coarse)},
        coords={
            "time": times,
            "cvar": ["t2m", "u10", "v10"],
            "rlat": ("y", rlat),
            "rlon": ("x", rlon),
            "rlat_c": ("yc", rlat.reshape(nyc, FACTOR).mean(1)),
            "rlon_c": ("xc", rlon.reshape(nxc, FACTOR).mean(1)),
        },
        attrs={"dx_m": DX, "dy_m": DX, "factor": FACTOR},
    )
    store = tmp / "store.zarr"
    ds.to_zarr(store, mode="w")
    meta = tmp / "store.json"
    meta.write_text(json.dumps({"factor": FACTOR, "dx_m": DX, "dy_m": DX, "shape": [NY, NX],
                                "predictors": ["t2m", "u10", "v10"], "n_times": n_times}))
    return store, meta, truth


def write_prediction(path: Path, model: str, fields: np.ndarray, times: pd.DatetimeIndex) -> Path:
    """Prediction netCDF as interfaces §5: T_2M(realization, time, rlat, rlon) K, attr model."""
    rlat = -13.5 + 0.11 * np.arange(fields.shape[-2])
    rlon = -9.0 + 0.11 * np.arange(fields.shape[-1])
    da = xr.DataArray(fields.astype(np.float32), dims=("realization", "time", "rlat", "rlon"),
                      coords={"time": times, "rlat": rlat, "rlon": rlon}, attrs={"units": "K"})
    xr.Dataset({"T_2M": da}, attrs={"model": model}).to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, pd.DatetimeIndex]:
    tmp = tmp_path_factory.mktemp("store")
    store_path, meta_path, truth = make_store(tmp)
    times = pd.DatetimeIndex(xr.open_zarr(store_path)["time"].values)
    return store_path, meta_path, truth, times


def test_perfect_prediction_scores_perfectly(store, tmp_path: Path) -> None:
    store_path, meta_path, truth, times = store
    # Only the last 6 store times: the truth must be selected by time stamp, not by position.
    pred = write_prediction(tmp_path / "unet.nc", "unet", truth[None, 4:], times[4:])
    out = tmp_path / "metrics" / "unet.csv"
    evaluate_model(pred, store_path, meta_path, out, {})
    table = pd.read_csv(out)
    assert list(table.columns) == ["time", "model", *DETERMINISTIC_COLUMNS]
    assert len(table) == 6 and set(table["model"]) == {"unet"}
    assert pd.Timestamp(table["time"].iloc[0]) == times[4]
    np.testing.assert_allclose(table["rmse"], 0.0, atol=1e-5)
    distances = ["mae", "bias", "spectral_slope_diff", "spectral_lsd", "grad_w1", "study_spectral_slope_diff"]
    np.testing.assert_allclose(table[distances], 0.0, atol=1e-4)
    np.testing.assert_allclose(table[["r2", "pcc", "ssim"]], 1.0, atol=1e-5)
    # The study's flux ratio is against the coarse input, not the truth: a real number.
    assert np.all(np.isfinite(table["study_flux_ratio"])) and (table["study_flux_ratio"] > 0).all()
    # 6-hourly store: no neighbouring hours, so no equation residuals (and no equations given).
    assert table[["pde_residual", "pde_residual_identified"]].isna().all().all()

    sides = side_paths(out)
    assert pd.read_csv(sides["rank_hist"]).empty  # deterministic: header only
    extremes = pd.read_csv(sides["extremes"])
    assert len(extremes) == 1 and abs(extremes["quantile_error"].iloc[0]) < 1e-5
    rapsd = pd.read_csv(sides["rapsd"])
    assert list(rapsd.columns) == ["model", "k", "wavelength_km", "power_pred", "power_truth"]
    np.testing.assert_allclose(rapsd["power_pred"], rapsd["power_truth"], rtol=1e-5)
    resolved = rapsd[rapsd["k"] > 0]
    assert resolved["wavelength_km"].min() == pytest.approx(2 * DX / 1000, rel=0.3)  # Nyquist ~ 2 dx


def test_noisy_prediction_rmse_matches_noise(store, tmp_path: Path) -> None:
    store_path, meta_path, truth, times = store
    sigma = 0.5
    noisy = truth + np.random.default_rng(1).normal(0.0, sigma, truth.shape)
    pred = write_prediction(tmp_path / "gan.nc", "gan", noisy[None], times)
    out = tmp_path / "gan.csv"
    evaluate_model(pred, store_path, meta_path, out, {"ssim_data_range": 20.0})
    table = pd.read_csv(out)
    assert table["rmse"].mean() == pytest.approx(sigma, rel=0.05)
    assert table["mae"].mean() == pytest.approx(sigma * np.sqrt(2 / np.pi), rel=0.05)
    assert abs(table["bias"].mean()) < 0.05
    assert (table["r2"] < 1).all() and (table["ssim"] < 1).all()
    # White noise flattens the spectrum: its slope departs from the truth's.
    assert (table["spectral_slope_diff"] > 0.1).all() and (table["grad_w1"] > 0).all()


def test_ensemble_scores_and_rank_histogram(store, tmp_path: Path) -> None:
    store_path, meta_path, truth, times = store
    members, sigma = 6, 0.5
    rng = np.random.default_rng(2)
    # Truth and members drawn from the same distribution around a common centre -> calibrated.
    centre = truth + rng.normal(0.0, sigma, truth.shape)
    ens = centre[None] + rng.normal(0.0, sigma, (members, *truth.shape))
    pred = write_prediction(tmp_path / "pde_ldm.nc", "pde_ldm", ens, times)
    out = tmp_path / "pde_ldm.csv"
    evaluate_model(pred, store_path, meta_path, out, {"crps_fair": True})
    table = pd.read_csv(out)
    for column in ("crps", "spread_skill", "spread", "rmse_ensmean"):
        assert column in table.columns and np.all(np.isfinite(table[column]))
    assert table["spread"].mean() == pytest.approx(sigma, rel=0.1)
    assert table["rmse_ensmean"].mean() < table["rmse"].mean()  # the mean beats one member
    assert 0.8 < table["spread_skill"].mean() < 1.25
    hist = pd.read_csv(side_paths(out)["rank_hist"])
    assert list(hist["rank"]) == list(range(members + 1))
    assert hist["count"].sum() == N_TIMES * NY * NX
    assert hist["frequency"].sum() == pytest.approx(1.0, abs=1e-4)
    assert hist["frequency"].max() < 2.0 / (members + 1)  # roughly flat


def test_bad_inputs_are_rejected(store, tmp_path: Path) -> None:
    store_path, meta_path, truth, times = store
    celsius = write_prediction(tmp_path / "c.nc", "unet", truth[None] - 273.15, times)
    with pytest.raises(InputError, match="degC"):
        evaluate_model(celsius, store_path, meta_path, tmp_path / "c.csv", {})
    shifted = write_prediction(tmp_path / "t.nc", "unet", truth[None], times + pd.Timedelta("1h"))
    with pytest.raises(InputError, match="not in"):
        evaluate_model(shifted, store_path, meta_path, tmp_path / "t.csv", {})
    with pytest.raises(InputError, match="extreme_threshold_mode"):
        evaluate_model(celsius, store_path, meta_path, tmp_path / "r.csv", {"extreme_threshold_mode": "cell"})
    old_layout = tmp_path / "m.nc"
    write_prediction(old_layout, "unet", truth[None], times)
    with xr.open_dataset(old_layout) as ds:
        renamed = ds.rename({"realization": "member"}).load()
    renamed.to_netcdf(old_layout)
    with pytest.raises(InputError, match=r"m\.nc: T_2M has dims \('member'.*delete them and rerun"):
        evaluate_model(old_layout, store_path, meta_path, tmp_path / "m.csv", {})
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "m.csv").exists()


def test_equation_residuals_on_the_twin_with_the_truth_as_reference(ci_twin_store, tmp_path: Path) -> None:
    """On hourly twin data both residuals are scored; the truth's own row has rmse 0, a twin
    residual at its discretisation floor, and the identified residual of its unexplained forcing."""
    import scipy.ndimage as ndi

    from pdeldm.io import read_json, write_json
    from pdeldm.physics.identification import identify_coefficients

    meta = read_json(ci_twin_store.meta)
    ds = xr.open_zarr(ci_twin_store.store)
    i0, i1 = meta["splits"]["test"]
    index = np.arange(i0 + 1, i1 - 1, 37)
    times = pd.DatetimeIndex(ds["time"].values[index])
    truth = ds["target"].values[index]
    coarse = ds["coarse"].values[index, 0]
    bilinear = np.stack([ndi.zoom(c, 8, order=1, mode="nearest", grid_mode=True) for c in coarse])
    rlat, rlon = ds["rlat"].values, ds["rlon"].values
    da = xr.DataArray(bilinear[None].astype(np.float32), dims=("realization", "time", "rlat", "rlon"),
                      coords={"time": times, "rlat": rlat, "rlon": rlon}, attrs={"units": "K"})
    pred = tmp_path / "interpolation.nc"
    xr.Dataset({"T_2M": da}, attrs={"model": "interpolation"}).to_netcdf(pred)
    coefficients = tmp_path / "pde_coefficients.json"
    write_json(coefficients, identify_coefficients(ci_twin_store.store, ci_twin_store.meta,
                                                   dict(ci_twin_store.cfg["physics"], seed=0, bootstrap_samples=0)))
    twin = {"static": ci_twin_store.static, "params": ci_twin_store.cfg["twin"]["params"],
            "seed": ci_twin_store.cfg["seed"], "start": ci_twin_store.start}
    tables = {}
    for name, kwargs in (("interpolation", {}), ("truth", {"score_truth": True})):
        out = tmp_path / f"{name}.csv"
        evaluate_model(pred, ci_twin_store.store, ci_twin_store.meta, out, {}, coefficients=coefficients, twin=twin,
                       **kwargs)
        tables[name] = pd.read_csv(out)
    truth_row, interp = tables["truth"], tables["interpolation"]
    assert set(truth_row["model"]) == {"truth"} and len(truth_row) == len(times)
    np.testing.assert_allclose(truth_row["rmse"], 0.0, atol=1e-4)
    assert truth_row["pde_residual"].between(0.01, 0.3).all()  # the hourly time step's error, K/h
    assert (interp["pde_residual"] > 2 * truth_row["pde_residual"]).all()
    forcing = ci_twin_store.cfg["twin"]["params"]["forcing_amplitude"]  # K/h: the forcing the equation does not know
    assert truth_row["pde_residual_identified"].between(0.4 * forcing, 1.3 * forcing).all()
    assert np.allclose(truth, ds["target"].values[index])
