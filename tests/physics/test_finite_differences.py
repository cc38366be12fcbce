"""Finite differences: second-order convergence on analytic fields (edges included), spacings, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pdeldm.physics.finite_differences import divergence, gradient, laplacian

LENGTH_M = 100e3  # a 100 km x 80 km domain, like a regional sub-grid
HEIGHT_M = 80e3
A = 2 * math.pi * 1.3 / LENGTH_M  # wavenumbers (rad/m), not commensurate with the domain
B = 2 * math.pi * 0.9 / HEIGHT_M
RESOLUTIONS = (17, 33, 65, 129)  # points per side; h halves each time


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    x = torch.linspace(0.0, LENGTH_M, n, dtype=torch.float64)
    y = torch.linspace(0.0, HEIGHT_M, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(y, x, indexing="ij")  # H = y, W = x
    return xx, yy, LENGTH_M / (n - 1), HEIGHT_M / (n - 1)


def _errors(n: int, operator: str) -> tuple[float, float, float]:
    """(h, max error whole field, max error interior) of one operator on f = sin(Ax) cos(By)."""
    xx, yy, dx, dy = _grid(n)
    f = (torch.sin(A * xx) * torch.cos(B * yy))[None, None]
    if operator == "ddx":
        num, exact = gradient(f, dx, dy)[0], A * torch.cos(A * xx) * torch.cos(B * yy)
    elif operator == "ddy":
        num, exact = gradient(f, dx, dy)[1], -B * torch.sin(A * xx) * torch.sin(B * yy)
    elif operator == "laplacian":
        num, exact = laplacian(f, dx, dy), -(A**2 + B**2) * f[0, 0]
    else:  # divergence of (u, v) = (cos(Ax) sin(By), sin(Ax) cos(By))
        u = (torch.cos(A * xx) * torch.sin(B * yy))[None, None]
        num = divergence(u, f, dx, dy)
        exact = -A * torch.sin(A * xx) * torch.sin(B * yy) - B * torch.sin(A * xx) * torch.sin(B * yy)
    err = (num[0, 0] - exact).abs()
    return dx, float(err.max()), float(err[1:-1, 1:-1].max())


def _fitted_order(hs: list[float], errs: list[float]) -> float:
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


@pytest.mark.parametrize("operator", ["ddx", "ddy", "laplacian", "divergence"])
def test_second_order_convergence_whole_field_and_interior(operator: str) -> None:
    rows = [_errors(n, operator) for n in RESOLUTIONS]
    hs = [r[0] for r in rows]
    whole = _fitted_order(hs, [r[1] for r in rows])
    interior = _fitted_order(hs, [r[2] for r in rows])
    assert whole == pytest.approx(2.0, abs=0.2), f"{operator}: whole-field order {whole:.3f}"
    assert interior == pytest.approx(2.0, abs=0.2), f"{operator}: interior order {interior:.3f}"


def test_quadratic_is_exact_everywhere_including_edges() -> None:
    # Second-order stencils differentiate quadratics exactly (up to rounding), edges included.
    xx, yy, dx, dy = _grid(9)
    f = (3 * xx**2 - 2 * xx * yy + 5 * yy**2)[None, None] * 1e-8
    gx, gy = gradient(f, dx, dy)
    torch.testing.assert_close(gx[0, 0], 1e-8 * (6 * xx - 2 * yy), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gy[0, 0], 1e-8 * (-2 * xx + 10 * yy), rtol=1e-9, atol=1e-12)
    lap = laplacian(f, dx, dy)
    torch.testing.assert_close(lap, torch.full_like(lap, 1e-8 * 16), rtol=1e-6, atol=1e-20)


def test_row_dependent_dx_tensor() -> None:
    # Latitude-dependent zonal spacing: dx of shape [H, 1]; f = c_i * x_j with x_j = j * dx_i.
    h, w = 6, 7
    dx_rows = torch.linspace(1000.0, 1500.0, h, dtype=torch.float64)[:, None]
    slopes = torch.arange(1, h + 1, dtype=torch.float64)[:, None] * 1e-3
    f = (slopes * torch.arange(w, dtype=torch.float64)[None, :] * dx_rows)[None, None]
    gx, _ = gradient(f, dx_rows, 2000.0)
    torch.testing.assert_close(gx[0, 0], slopes.expand(h, w))


def test_batched_channels_are_independent() -> None:
    torch.manual_seed(0)
    f = torch.randn(3, 2, 10, 12, dtype=torch.float64)
    gx, gy = gradient(f, 2.0, 3.0)
    for b in range(3):
        for c in range(2):
            sx, sy = gradient(f[b : b + 1, c : c + 1], 2.0, 3.0)
            torch.testing.assert_close(gx[b : b + 1, c : c + 1], sx)
            torch.testing.assert_close(gy[b : b + 1, c : c + 1], sy)


def test_bfloat16_computed_in_float32_and_cast_back() -> None:
    xx, yy, dx, dy = _grid(33)
    f64 = (280.0 + 5 * torch.sin(A * xx) * torch.cos(B * yy))[None, None]
    f_bf16 = f64.to(torch.bfloat16)
    gx, gy = gradient(f_bf16, dx, dy)
    lap = laplacian(f_bf16, dx, dy)
    assert gx.dtype == gy.dtype == lap.dtype == torch.bfloat16
    # Reference: the same bf16-rounded input differentiated in float64.
    ref_gx, _ = gradient(f_bf16.to(torch.float64), dx, dy)
    torch.testing.assert_close(gx.to(torch.float64), ref_gx, rtol=1e-2, atol=1e-6)


def test_gradient_is_differentiable() -> None:
    f = torch.randn(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: laplacian(t, 2.0, 3.0), (f,))
    assert torch.autograd.gradcheck(lambda t: gradient(t, 2.0, 3.0), (f,))


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="too small"):
        gradient(torch.zeros(1, 1, 2, 5), 1.0, 1.0)
    with pytest.raises(ValueError, match="too small"):
        laplacian(torch.zeros(1, 1, 3, 5), 1.0, 1.0)
    with pytest.raises(ValueError, match="dx must be positive"):
        gradient(torch.zeros(1, 1, 5, 5), 0.0, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        divergence(torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 5, 6), 1.0, 1.0)
