"""The identified equation's operators, checked against the twin whose equation is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.ndimage as ndi
import torch
import xarray as xr

from pdeldm.data.twin import TwinModel, merged_params
from pdeldm.physics.identified_pde import (
    SOURCE_TERMS,
    PDECoefficients,
    equation_residual,
    highpass,
    matched_residual,
    source_fields,
    time_phases,
)


def test_highpass_is_field_minus_mirrored_gaussian():
    x = torch.randn(2, 3, 40, 50, dtype=torch.float64)
    expected = x.numpy() - ndi.gaussian_filter(x.numpy(), (0, 0, 3, 3), mode="mirror", truncate=4.0)
    np.testing.assert_allclose(highpass(x, 3.0, 0).numpy(), expected, atol=1e-12)
    assert highpass(x, 3.0, 5).shape == (2, 3, 30, 40)
    with pytest.raises(ValueError, match="leaves nothing"):
        highpass(x, 0.0, 20)


def _twin_coefficients(params: dict, sigma: float, margin: int) -> PDECoefficients:
    """The twin's known equation in the identified form:
    T_bg = ... - Gamma HSURF + D(FR_LAND, solar) + C(season) FR_LAND."""
    tau = params["tau_hours"] * 3600.0
    sea, land = params["diurnal_amplitude_sea"], params["diurnal_amplitude_land"]
    # D = A/2 cos(phi - phi15), A = sea + (land - sea) FR_LAND, phi15 the phase of 15 h local solar time
    phi15 = 2 * np.pi * 15 / 24
    season = 2 * np.pi * params["continentality_phase_day"] / 365.2425
    source = {
        "HSURF": -params["lapse_rate"] * 1e-3 / tau,
        "cos_solar": sea / 2 * np.cos(phi15) / tau, "sin_solar": sea / 2 * np.sin(phi15) / tau,
        "FR_LAND_cos_solar": (land - sea) / 2 * np.cos(phi15) / tau,
        "FR_LAND_sin_solar": (land - sea) / 2 * np.sin(phi15) / tau,
        # C = -A cos(2 pi (day - phase) / year): the season regressors' phase is 2 pi day / year
        "FR_LAND_cos_season": -params["continentality_amplitude"] * np.cos(season) / tau,
        "FR_LAND_sin_season": -params["continentality_amplitude"] * np.sin(season) / tau,
    }
    return PDECoefficients(kappa=params["kappa"], tau_s=tau, source=source, highpass_cells=sigma, margin_cells=margin)


def test_equation_residual_of_the_twin_truth_is_its_filtered_forcing(ci_twin_store):
    """With the twin's own coefficients, the residual of the truth is the high-passed stochastic
    forcing up to the hourly time step's error: the operator is the twin's equation."""
    cfg = ci_twin_store.cfg
    params = merged_params(cfg["twin"]["params"])
    origin = pd.Timestamp(ci_twin_store.start) - pd.Timedelta(hours=int(params["spinup_days"] * 24))
    from pdeldm.data.static import load_static

    twin = TwinModel(load_static(ci_twin_store.static), params, cfg["seed"], origin)
    coef = _twin_coefficients(params, sigma=4.0, margin=6)
    ds = xr.open_zarr(ci_twin_store.store)
    static = dict(zip([str(s) for s in ds["svar"].values], ds["static"].values.astype(np.float64)))

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float64))[None, None]

    ratios = []
    for i in range(100, 1000, 90):
        time = pd.Timestamp(ds["time"].values[i])
        terms = twin.residual_terms(time)
        day, year = time_phases([time])
        sources = source_fields(t(static["HSURF"]), t(static["FR_LAND"]), t(ds["lon"].values),
                                torch.from_numpy(day), torch.from_numpy(year))
        T = [ds["target"][j].values for j in (i - 1, i, i + 1)]
        # the twin's equation in the store's own (exact, here) winds
        r = equation_residual(t(T[1]), t(T[0]), t(T[2]), t(terms["u"]), t(terms["v"]), sources,
                              twin.dx, twin.dy, coef)
        xi = highpass(t(terms["forcing"]), 4.0, 6)
        ratios.append(float(torch.sqrt(torch.mean((r - xi) ** 2)) / torch.sqrt(torch.mean(xi**2))))
    assert np.mean(ratios) < 0.5, ratios  # the forcing is 0.4 K/h; what remains is the time step


def test_matched_residual_is_zero_only_for_the_truth():
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.standard_normal((1, 1, 40, 40)).cumsum(-1))
    wind = torch.full((1, 1, 40, 40), 5.0, dtype=torch.float64)
    coef = PDECoefficients(kappa=1000.0, tau_s=3 * 3600.0, source={}, highpass_cells=3.0, margin_cells=4)
    assert float(matched_residual(truth, truth, wind, -wind, 1e4, 1e4, coef).abs().max()) == 0.0
    other = truth + 0.1 * torch.from_numpy(rng.standard_normal((1, 1, 40, 40)))
    assert float(matched_residual(other, truth, wind, -wind, 1e4, 1e4, coef).abs().mean()) > 0


def test_source_fields_order_and_solar_phase():
    ones = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    day, year = time_phases(["2001-06-21T12:00"])
    fields = source_fields(500 * ones, 0.5 * ones, 15 * ones, torch.from_numpy(day), torch.from_numpy(year))
    assert fields.shape == (1, len(SOURCE_TERMS), 4, 4)
    by_name = dict(zip(SOURCE_TERMS, fields[0, :, 0, 0].tolist()))
    # 12 UTC at 15 E is 13 h local solar time
    assert by_name["cos_solar"] == pytest.approx(np.cos(2 * np.pi * 13 / 24))
    assert by_name["FR_LAND_sin_solar"] == pytest.approx(0.5 * np.sin(2 * np.pi * 13 / 24))
    assert by_name["HSURF"] == 500
