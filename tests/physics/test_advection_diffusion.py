"""Advection–diffusion residual: ~0 on an analytic solution (spreading, drifting Gaussian)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pdeldm.physics.pde_losses import advection_diffusion_loss, advection_diffusion_residual

L = 200e3  # m, square domain
U, V = 5.0, -3.0  # m/s
KAPPA = 1e4  # m^2/s
T0 = 1.64e4  # s: initial spread, so that the width is ~20 km at t = 1 h
X0, Y0 = 90e3, 110e3
PEAK = 10.0  # K: peak value when t + t0 = 2e4 s (t ~ 1 h)
A = PEAK * 4 * math.pi * KAPPA * 2e4


def _gaussian(n: int, t: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """T = A / (4 pi k s) exp(-((x - x0 - u t)^2 + (y - y0 - v t)^2) / (4 k s)), s = t + t0;
    returns (T [1,1,n,n], analytic dT/dt, dx)."""
    coords = torch.linspace(0.0, L, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    s = t + T0
    xi, eta = xx - X0 - U * t, yy - Y0 - V * t
    r2 = xi**2 + eta**2
    field = A / (4 * math.pi * KAPPA * s) * torch.exp(-r2 / (4 * KAPPA * s))
    # dT/dt = T * (-1/s + r^2 / (4 k s^2) + (u xi + v eta) / (2 k s))
    tendency = field * (-1 / s + r2 / (4 * KAPPA * s**2) + (U * xi + V * eta) / (2 * KAPPA * s))
    return field[None, None], tendency[None, None], L / (n - 1)


def _relative_residual(field: torch.Tensor, tendency: torch.Tensor, dx: float) -> float:
    """max |residual| / max |dT/dt|: dimensionless."""
    res = advection_diffusion_residual(field, U, V, dx, dx, KAPPA, tendency=tendency)
    return float(res.abs().max() / tendency.abs().max())


def test_residual_vanishes_on_analytic_solution_at_second_order() -> None:
    t = 3600.0
    hs, rel = [], []
    for n in (33, 65, 129, 257):
        field, tendency, dx = _gaussian(n, t)
        hs.append(dx)
        rel.append(_relative_residual(field, tendency, dx))
    assert all(b < a for a, b in zip(rel, rel[1:])), rel
    assert rel[-1] < 2e-3, rel
    order = float(np.polyfit(np.log(hs), np.log(rel), 1)[0])
    assert order == pytest.approx(2.0, abs=0.2), (order, rel)


def test_centred_time_difference_as_tendency() -> None:
    t, dt, n = 3600.0, 60.0, 129
    field, _, dx = _gaussian(n, t)
    before, _, _ = _gaussian(n, t - dt)
    after, _, _ = _gaussian(n, t + dt)
    tendency = (after - before) / (2 * dt)
    assert _relative_residual(field, tendency, dx) < 5e-3


def test_residual_is_large_on_a_perturbed_field() -> None:
    n, t = 129, 3600.0
    field, tendency, dx = _gaussian(n, t)
    coords = torch.linspace(0.0, L, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    bump = 0.05 * PEAK * torch.sin(2 * math.pi * xx / 50e3) * torch.sin(2 * math.pi * yy / 50e3)
    clean = _relative_residual(field, tendency, dx)
    perturbed = _relative_residual(field + bump[None, None], tendency, dx)
    assert perturbed > 0.05 and perturbed > 50 * clean, (clean, perturbed)
    scale = float(tendency.abs().max())
    loss_clean = advection_diffusion_loss(field, U, V, dx, dx, KAPPA, tendency=tendency, scale=scale)
    loss_bad = advection_diffusion_loss(field + bump[None, None], U, V, dx, dx, KAPPA, tendency=tendency, scale=scale)
    assert float(loss_bad) > 1e3 * float(loss_clean)


def test_steady_default_and_source_terms() -> None:
    # Without tendency/source: r = u dT/dx + v dT/dy - k lap T. Then the source moves it exactly.
    field, tendency, dx = _gaussian(33, 0.0)
    steady = advection_diffusion_residual(field, U, V, dx, dx, KAPPA)
    with_tendency = advection_diffusion_residual(field, U, V, dx, dx, KAPPA, tendency=tendency)
    torch.testing.assert_close(with_tendency - steady, tendency)
    with_source = advection_diffusion_residual(field, U, V, dx, dx, KAPPA, source=tendency)
    torch.testing.assert_close(steady - with_source, tendency)


def test_wind_fields_broadcast_over_batch() -> None:
    field, _, dx = _gaussian(33, 0.0)
    batch = field.expand(2, 1, 33, 33)
    u = torch.full((2, 1, 33, 33), U, dtype=torch.float64)
    v = torch.full((1, 1, 33, 33), V, dtype=torch.float64)
    kappa = torch.tensor(KAPPA, dtype=torch.float64)
    res = advection_diffusion_residual(batch, u, v, dx, dx, kappa)
    torch.testing.assert_close(res, advection_diffusion_residual(field, U, V, dx, dx, KAPPA).expand(2, 1, 33, 33))


def test_loss_is_differentiable() -> None:
    torch.manual_seed(0)
    field = torch.randn(1, 1, 6, 7, dtype=torch.float64, requires_grad=True)
    u, v = torch.randn(1, 1, 6, 7, dtype=torch.float64), torch.randn(1, 1, 6, 7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: advection_diffusion_loss(t, u, v, 1.0, 1.5, 0.3, scale=2.0), (field,))


def test_bad_inputs() -> None:
    field = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"not broadcastable.*'u': \(1, 1, 7, 8\)"):
        advection_diffusion_residual(field, torch.zeros(1, 1, 7, 8), 0.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        advection_diffusion_loss(field, 0.0, 0.0, 1.0, 1.0, 1.0, scale=0.0)
    with pytest.raises(ValueError, match="too small"):
        advection_diffusion_residual(torch.zeros(1, 1, 3, 8), 0.0, 0.0, 1.0, 1.0, 1.0)
