"""The embedded twin: determinism, file formats, the ERA5-like grid, PDE residual, predictability,
clean edges, continentality and the January land-sea contrast against real COSMO-CLM."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
import xarray as xr

from pdeldm.data.static import extract_region, load_static, region_static
from pdeldm.data.twin import (
    DEFAULT_PARAMS,
    StochasticForcing,
    TwinModel,
    merged_params,
    pde_residual,
    run_region,
    simulate_twin,
)
from pdeldm.data.twin.diagnostics import EDGES, edge_roughness
from pdeldm.data.twin.numerics import numerical_diffusion
from pdeldm.data.twin.realism import fine_scale_regression, reference_cells, reference_month, twin_monthly_mean
from pdeldm.errors import InputError
from pdeldm.io import read_json

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "data" / "static" / "eur11_static.nc"
REAL_JANUARY = Path(__file__).parent / "files" / "tas_rotated_grid_EUR11.nc"  # COSMO-CLM tas, January 2006
ITALY = {"rlat0": -13.585, "rlon0": -9.455, "ny": 96, "nx": 96}  # config.yaml's default region
ALPS_32 = {"rlat0": -6.215, "rlon0": -8.025, "ny": 32, "nx": 32}  # Mont Blanc to the Swiss plateau
SEED = 7
PARAMS = {"spinup_days": 1, "diagnostic_days": 2}
START, END = "2001-01-30", "2001-02-02"  # crosses a month boundary


@pytest.fixture(scope="module")
def static_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("twin_static") / "alps.nc"
    extract_region(STATIC, ALPS_32, path)
    return path


@pytest.fixture(scope="module")
def twin_run(static_path: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("twin")
    written = simulate_twin(static_path, START, END, SEED, PARAMS, root / "era5", root / "cosmo",
                            root / "diagnostics.json")
    return SimpleNamespace(root=root, written=written, static_path=static_path)


def _short_run(static_path: Path, root: Path, seed: int) -> np.ndarray:
    simulate_twin(static_path, "2001-03-01", "2001-03-01", seed, {"spinup_days": 0.5}, root / "e", root / "c", None)
    with xr.open_dataset(root / "c" / "T_2M_200103.nc") as ds:
        return ds["T_2M"].values


def test_written_files(twin_run: SimpleNamespace) -> None:
    names = sorted(p.name for p in twin_run.written)
    assert names == ["T_2M_200101.nc", "T_2M_200102.nc", "diagnostics.json", "era5_2001_01.nc", "era5_2001_02.nc"]
    assert not list(twin_run.root.rglob(".*tmp*"))  # atomic writes left no temporaries


def test_same_seed_same_output_other_seed_differs(static_path: Path, tmp_path: Path) -> None:
    first = _short_run(static_path, tmp_path / "a", SEED)
    again = _short_run(static_path, tmp_path / "b", SEED)
    other = _short_run(static_path, tmp_path / "c", SEED + 1)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.5


def test_cosmo_files_match_interfaces(twin_run: SimpleNamespace) -> None:
    static = load_static(twin_run.static_path)
    with xr.open_dataset(twin_run.root / "cosmo" / "T_2M_200101.nc") as ds:
        assert dict(ds["T_2M"].sizes) == {"time": 48, "rlat": 32, "rlon": 32}
        assert ds["T_2M"].dtype == np.float32 and ds["T_2M"].attrs["units"] == "K"
        assert ds["T_2M"].attrs["grid_mapping"] == "rotated_pole"
        assert ds["T_2M"].encoding["coordinates"] == "lon lat"
        assert ds["rotated_pole"].attrs["grid_north_pole_latitude"] == pytest.approx(39.25)
        assert ds["rotated_pole"].attrs["grid_north_pole_longitude"] == pytest.approx(-162.0)
        assert ds["rlat"].attrs["standard_name"] == "grid_latitude" and ds["rlon"].attrs["units"] == "degrees"
        np.testing.assert_allclose(ds["rlat"].values, static["rlat"].values)
        np.testing.assert_allclose(ds["lon"].values, static["lon"].values)
        times = pd.DatetimeIndex(ds["time"].values)
        assert times[0] == pd.Timestamp("2001-01-30") and (np.diff(times) == np.timedelta64(1, "h")).all()
        t2m = ds["T_2M"].values
    assert np.isfinite(t2m).all() and 230.0 < t2m.min() and t2m.max() < 300.0
    # the lapse rate shows: high cells are colder on average
    high = static["HSURF"].values > 2000
    low = static["HSURF"].values < 600
    assert t2m[:, high].mean() < t2m[:, low].mean() - 5.0
    with xr.open_dataset(twin_run.root / "cosmo" / "T_2M_200102.nc") as ds:
        assert pd.DatetimeIndex(ds["time"].values)[-1] == pd.Timestamp("2001-02-02T23:00")


def test_era5_files_match_interfaces(twin_run: SimpleNamespace) -> None:
    with xr.open_dataset(twin_run.root / "era5" / "era5_2001_02.nc") as ds:
        assert set(ds.data_vars) == {"t2m", "u10", "v10"}
        assert ds["t2m"].dims == ("valid_time", "latitude", "longitude")
        assert all(ds[v].dtype == np.float32 for v in ds.data_vars)
        assert ds["t2m"].attrs["units"] == "K" and ds["u10"].attrs["units"] == "m s**-1"
        assert (np.diff(ds["latitude"].values) < 0).all()
        assert ds["number"].item() == 0 and set(ds["expver"].values) == {"0001"}
        assert ds.attrs["Conventions"] == "CF-1.7"
        assert ds.sizes["valid_time"] == 48
        assert np.isfinite(ds["t2m"]).all() and 230 < float(ds["t2m"].min()) < float(ds["t2m"].max()) < 300
        speed = np.hypot(ds["u10"].values, ds["v10"].values)
        assert 1.0 < speed.mean() < 20.0


def test_downstream_readers_accept_the_files(twin_run: SimpleNamespace) -> None:
    """The twin's files take the code path of real data: the project's ERA5 and COSMO readers."""
    from pdeldm.data.cosmo import open_cosmo
    from pdeldm.data.era5 import open_era5

    era5 = open_era5(sorted((twin_run.root / "era5").glob("era5_*.nc")), ["t2m", "u10", "v10"])
    cosmo = open_cosmo(sorted((twin_run.root / "cosmo").glob("T_2M_*.nc")))
    assert era5.sizes["time"] == cosmo.sizes["time"] == 96
    assert (np.diff(era5["latitude"].values) > 0).all()


def test_era5_grid_is_not_aligned_with_the_fine_grid(twin_run: SimpleNamespace) -> None:
    static = load_static(twin_run.static_path)
    with xr.open_dataset(twin_run.root / "era5" / "era5_2001_01.nc") as ds:
        lat, lon = np.sort(ds["latitude"].values), ds["longitude"].values
    step = 0.9
    np.testing.assert_allclose(np.diff(lat), step)
    np.testing.assert_allclose(np.round(lat / step), lat / step, atol=1e-9)  # CDS lattice: multiples of the step
    # covers the region's bounding box plus one cell
    assert lat[0] < static["lat"].min() - step / 2 and lat[-1] > static["lat"].max() + step / 2
    assert lon[0] < static["lon"].min() - step / 2 and lon[-1] > static["lon"].max() + step / 2
    # fine cells per lat-lon cell vary: the rotated grid is curvilinear in lat/lon
    i = np.rint((static["lat"].values - lat[0]) / step).astype(int)
    j = np.rint((static["lon"].values - lon[0]) / step).astype(int)
    counts = np.bincount((i * lon.size + j).ravel())
    counts = counts[counts > 0]
    assert len(set(counts.tolist())) > 3
    # no row of fine cells runs along an ERA5 cell edge
    edges = lat[None, None, :] + step / 2
    assert not np.any(np.isclose(static["lat"].values[:, :, None], edges, atol=1e-3).all(axis=1))


def test_pde_residual_small_on_truth(twin_run: SimpleNamespace) -> None:
    """The stated PDE holds on the written truth far better than on a bicubic coarse field."""
    static = load_static(twin_run.static_path)
    months = [xr.open_dataset(path) for path in sorted((twin_run.root / "cosmo").glob("T_2M_*.nc"))]
    truth = np.concatenate([ds["T_2M"].values for ds in months]).astype(np.float64)
    times = pd.DatetimeIndex(np.concatenate([ds["time"].values for ds in months]))
    for ds in months:
        ds.close()
    # regenerated from the seed: a fresh model, not the one that integrated
    origin = times[0] - pd.Timedelta(days=PARAMS["spinup_days"])
    model = TwinModel(static, PARAMS, SEED, origin)
    factor = 8
    blocks = truth.reshape(truth.shape[0], 4, factor, 4, factor).mean(axis=(2, 4))
    bicubic = np.stack([ndi.zoom(b, factor, order=3, mode="nearest", grid_mode=True) for b in blocks])
    truth_sq, bicubic_sq = [], []
    for k in range(1, len(times) - 1, 5):
        truth_sq.append(np.mean(pde_residual(truth[k - 1], truth[k], truth[k + 1], times[k], model) ** 2))
        bicubic_sq.append(np.mean(pde_residual(bicubic[k - 1], bicubic[k], bicubic[k + 1], times[k], model) ** 2))
    ratio = math.sqrt(np.mean(truth_sq) / np.mean(bicubic_sq))
    assert ratio < 0.2, ratio


def test_predictability_diagnostic(twin_run: SimpleNamespace) -> None:
    diagnostics = read_json(twin_run.root / "diagnostics.json")
    share = diagnostics["predictability"]["predictable_share_fine"]
    assert 0.0 < share < 1.0
    assert diagnostics["predictability"]["rmse_floor_fine_K"] > 0.05
    assert diagnostics["params"] == merged_params(PARAMS)
    assert diagnostics["fine_grid"]["ny"] == 32 and diagnostics["era5_grid"]["resolution_deg"] == 0.9
    assert diagnostics["integration_seconds"] > 0


def test_stochastic_forcing_statistics() -> None:
    params = merged_params({"forcing_amplitude": 0.6, "forcing_time_hours": 4.0})
    forcing = StochasticForcing((64, 64), params, seed=3)
    frames = np.stack([forcing.keyframe(k) for k in range(24 * 6)])[:, 8:-8, 8:-8] * 3600.0  # K/h
    assert frames.std() == pytest.approx(0.6, rel=0.2)
    lag1 = np.mean(frames[1:] * frames[:-1]) / np.mean(frames**2)
    assert lag1 == pytest.approx(math.exp(-1 / 4.0), abs=0.05)
    # regenerating an earlier keyframe (replaying from the origin) gives the same field
    again = StochasticForcing((64, 64), params, seed=3)
    np.testing.assert_array_equal(again.keyframe(30)[8:-8, 8:-8] * 3600.0, frames[30])
    # xi lives below the coarse cell: its 8x8 block means carry little of its variance
    block = frames.reshape(-1, 6, 8, 6, 8).mean(axis=(2, 4))
    assert np.mean(block**2) < 0.2 * np.mean(frames**2)


def test_forcing_keyframes_do_not_depend_on_the_order_they_are_asked_for() -> None:
    """The evaluation asks for scattered test hours (far ahead, then back): same fields as in order."""
    params = merged_params({})
    in_order = StochasticForcing((40, 40), params, seed=5)
    frames = [in_order.keyframe(k).copy() for k in range(24 * 5)]
    scattered = StochasticForcing((40, 40), params, seed=5)
    for k in (100, 101, 47, 23, 24, 119, 0, 70, 71, 95):
        np.testing.assert_array_equal(scattered.keyframe(k), frames[k], err_msg=f"keyframe {k}")
    with pytest.raises(ValueError, match="origin"):
        scattered.keyframe(-1)


def test_a_jump_far_ahead_replays_only_the_forcings_memory() -> None:
    """A keyframe months after the origin (a test hour) from a fresh generator equals the one
    replayed day by day from the origin, to float64 rounding."""
    params = merged_params({})
    replayed = StochasticForcing((40, 40), params, seed=5)
    far = 24 * (3 * replayed.memory_days) + 7
    for k in range(far + 2):
        frame = replayed.keyframe(k)
    jumped = StochasticForcing((40, 40), params, seed=5)
    np.testing.assert_allclose(jumped.keyframe(far + 1), frame, rtol=0, atol=1e-12 * np.abs(frame).max())
    assert far // 24 > jumped.memory_days  # so it did jump


def test_parameters_validated(static_path: Path) -> None:
    with pytest.raises(InputError, match="unknown"):
        merged_params({"kapa": 1.0})
    with pytest.raises(InputError, match="kappa"):
        merged_params({"kappa": -1.0})
    assert set(DEFAULT_PARAMS) >= {"kappa", "tau_hours", "lapse_rate", "wind_speed", "forcing_amplitude",
                                   "era5_bias", "era5_noise", "margin_cells", "spinup_days"}
    model = TwinModel(load_static(static_path), {}, 1, "2001-01-01")
    dt = 3600.0 / model.substeps
    courant = model.fields.max_speed * math.hypot(1 / model.dx, 1 / model.dy) * dt
    assert courant <= DEFAULT_PARAMS["cfl"] < math.sqrt(3)  # SSP-RK3 with centred advection
    with pytest.raises(InputError, match=r"cfl must be < 1\.73"):
        merged_params({"cfl": 1.8})
    with pytest.raises(InputError, match="margin_cells must be >= 3"):
        merged_params({"margin_cells": 2})


def _region_run(box: dict, start: str, days: float, params: dict) -> tuple[np.ndarray, xr.Dataset]:
    static = region_static(STATIC, box)
    merged = merged_params({"spinup_days": 1, **params})
    first = np.datetime64(pd.Timestamp(start).to_datetime64(), "s")
    model = TwinModel(static, merged, SEED, first - np.timedelta64(24, "h"))
    return run_region(model, first, int(days * 24)), static


#: The relaxation time and wind of the earlier default, under which centred advection rippled.
SLOW_RELAXATION = {"tau_hours": 3.0, "wind_speed": 8.0}


@pytest.mark.parametrize("physics", [{}, SLOW_RELAXATION], ids=["default", "tau3h_8ms"])
def test_no_two_cell_oscillation_at_the_edges(physics: dict) -> None:
    """Italy in November (where centred advection left 2-cell ripples along the southern edge):
    successive second differences across every edge are not anti-correlated, and where the
    lapse-rate part of T_bg is no rougher at the edge than inside, neither is the truth (within
    20 %)."""
    truth, static = _region_run(ITALY, "2003-11-01", 4, physics)
    stats = edge_roughness(truth)
    static_stats = edge_roughness(-DEFAULT_PARAMS["lapse_rate"] * 1e-3 * static["HSURF"].values)
    smooth_edges = []
    for edge in EDGES:
        assert stats[edge]["lag1"] >= 0.0, (edge, stats[edge])
        interior = "interior_rows" if edge in ("south", "north") else "interior_columns"
        if static_stats[edge]["roughness_K"] <= static_stats[interior]["roughness_K"]:
            smooth_edges.append(edge)
            assert stats[edge]["roughness_K"] <= 1.2 * stats[interior]["roughness_K"], (edge, stats)
    assert set(smooth_edges) == {"south", "west", "east"}  # the north edge crosses the Alps


def test_centred_advection_without_numerical_diffusion_ripples() -> None:
    """The control: the same run with plain centred advection (the former scheme) has 2-cell
    oscillations along the edges, which the diagnostic of the test above detects."""
    rippled, _ = _region_run(ITALY, "2003-11-01", 4, {**SLOW_RELAXATION, "numerical_diffusion": 0.0})
    stats = edge_roughness(rippled)
    assert min(stats[edge]["lag1"] for edge in EDGES) < -0.2, stats


def test_edge_roughness_detects_a_two_cell_oscillation() -> None:
    rng = np.random.default_rng(0)
    smooth = np.add.outer(3 * np.sin(np.arange(40) / 5.0), np.cos(np.arange(40) / 7.0))
    assert edge_roughness(smooth)["south"]["lag1"] > 0.9
    rippled = smooth.copy()
    rippled[:6] += 0.5 * (-1.0) ** np.arange(6)[:, None]
    stats = edge_roughness(rippled + 1e-4 * rng.standard_normal(rippled.shape))
    assert stats["south"]["lag1"] < -0.9 and stats["north"]["lag1"] > 0.5
    assert stats["south"]["roughness_K"] > 5 * stats["interior_rows"]["roughness_K"]


def test_numerical_diffusion_is_the_residual_of_the_stated_equation(static_path: Path) -> None:
    """Without stochastic forcing the truth obeys the stated equation plus the numerical diffusion
    N(T), up to the time discretisation of the hourly output."""
    static = load_static(static_path)
    params = merged_params({"spinup_days": 1, "forcing_amplitude": 0.0})
    first = np.datetime64("2001-07-01T00:00:00", "s")
    model = TwinModel(static, params, SEED, first - np.timedelta64(24, "h"))
    truth = run_region(model, first, 12)
    h = 3  # numerical_diffusion needs 3 cells on each side; pde_operator 1
    residual_sq, remainder_sq = [], []
    for k in range(1, 11):
        time = first + np.timedelta64(k * 3600, "s")
        residual = pde_residual(truth[k - 1], truth[k], truth[k + 1], time, model)[h - 1:1 - h, h - 1:1 - h]
        terms = model.residual_terms(time)
        n_term = numerical_diffusion(truth[k], terms["u"], terms["v"], model.dx, model.dy)
        residual_sq.append(np.mean(residual**2))
        remainder_sq.append(np.mean((residual - n_term) ** 2))
    assert math.sqrt(np.mean(remainder_sq)) < 0.25 * math.sqrt(np.mean(residual_sq))


def test_background_terms_are_separate_and_sum_to_the_background(static_path: Path) -> None:
    static = load_static(static_path)
    model = TwinModel(static, {}, SEED, "2001-01-01")
    land = static["FR_LAND"].values
    for time, sign in (("2001-01-16T12", -1.0), ("2001-07-17T12", 1.0)):
        terms = model.background_terms(time)
        assert set(terms) == {"mean_seasonal", "synoptic", "diurnal", "meridional", "lapse_rate", "continentality"}
        np.testing.assert_allclose(sum(terms.values()), model.residual_terms(time)["background"], atol=1e-9)
        # land colder than sea in January, warmer in July, by the configured amplitude
        np.testing.assert_allclose(terms["continentality"], sign * DEFAULT_PARAMS["continentality_amplitude"] * land,
                                   rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(terms["lapse_rate"], -6.5e-3 * static["HSURF"].values, rtol=1e-6)


def test_january_land_sea_coefficient_has_the_sign_and_order_of_real_cosmo_clm() -> None:
    """Over a region with coasts (Ligurian and Adriatic coasts, Alps), the twin's January-mean
    fine-scale land-sea coefficient is negative like the real COSMO-CLM January's, and within a
    factor 2 of it (the workflow's realism table reports the full comparison)."""
    box = {"rlat0": -9.405, "rlon0": -8.245, "ny": 64, "nx": 64}  # config's italy_ci
    static = region_static(STATIC, box)
    real = reference_cells(reference_month(REAL_JANUARY), static)
    assert real is not None
    hsurf, land = static["HSURF"].values, static["FR_LAND"].values
    assert 0.2 < land.mean() < 0.8  # coasts
    real_coef = fine_scale_regression(real, hsurf, land, 8)["land_sea_K"]
    twin = twin_monthly_mean(static, {"spinup_days": 1}, SEED, "2006-01", days=10)
    twin_coef = fine_scale_regression(twin, hsurf, land, 8)["land_sea_K"]
    assert real_coef < -1.0
    assert 0.5 < twin_coef / real_coef < 2.0, (twin_coef, real_coef)
    # without the continentality term the twin's January has (almost) no coastline signal
    flat = twin_monthly_mean(static, {"spinup_days": 1, "continentality_amplitude": 0.0}, SEED, "2006-01", days=10)
    assert abs(fine_scale_regression(flat, hsurf, land, 8)["land_sea_K"]) < 0.3 * abs(real_coef)


def test_end_before_start_is_a_clear_error(static_path: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="twin: end 2001-01-01 before start 2001-02-01"):
        simulate_twin(static_path, "2001-02-01", "2001-01-01", SEED, {}, tmp_path / "e", tmp_path / "c", None)
