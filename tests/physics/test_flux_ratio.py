"""Supercell flux ratio: hand-computed values, invariances, coarse references, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch

from pdeldm.physics.pde_losses import flux_ratio_cells, flux_ratio_loss

DX = 1000.0  # m


def _ramp(h: int, w: int, a: float = 280.0, b: float = 0.002, dx: float = DX, offset: float = 0.0) -> torch.Tensor:
    """T = a + b x, x = (j + offset) * dx along W, constant along H; shape [1, 1, h, w]."""
    x = (torch.arange(w, dtype=torch.float64) + offset) * dx
    return (a + b * x).expand(h, w)[None, None].clone()


def _smooth_field(h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """A smooth non-linear field in K with no vanishing gradient on the test grid."""
    gen = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    field = 280.0 + 0.05 * x + 0.03 * y
    for _ in range(4):
        kx, ky, phase = (torch.rand(3, generator=gen, dtype=torch.float64) * torch.tensor([0.4, 0.4, 6.28])).tolist()
        field = field + 0.8 * torch.sin(kx * x + ky * y + phase)
    return field[None, None]


def test_linear_ramp_single_cell_by_hand() -> None:
    # T = 280 + 0.002 x (K, x in m), one 4x4 cell, dx = dy = 1000 m, eps = 0.
    # grad T = (0.002, 0) exactly (also at the edges), so g = (1, 0) and |grad T| = 0.002 K/m.
    # West column x = 0 m: T = 280, n = (-1, 0): adv = -280 (4 samples)
    # East column x = 3000 m: T = 286, n = (+1, 0): adv = +286 (4 samples)
    # South/north rows: g . n = 0 (8 samples)
    # mean adv = 4 * (286 - 280) / 16 = 1.5 K; mean diff = 0.002 K/m; R = 1.5 / 0.002 = 750 m
    # = (n - 1) dx / 4.
    r = flux_ratio_cells(_ramp(4, 4), cell=4, dx=DX, dy=DX, eps=0.0)
    assert r.shape == (1, 1, 1, 1)
    assert float(r) == pytest.approx(750.0, rel=1e-12)


def test_linear_ramp_faces_and_eps_by_hand() -> None:
    # Faces sampling: west face x = -500 m (T = 279), east face x = 3500 m (T = 287):
    # mean adv = 4 * 8 / 16 = 2 K; R = 2 / 0.002 = 1000 m = n dx / 4.
    r = flux_ratio_cells(_ramp(4, 4), cell=4, dx=DX, dy=DX, eps=0.0, sampling="faces")
    assert float(r) == pytest.approx(1000.0, rel=1e-12)
    # eps > 0: g_x = b / (b + eps), R = 1.5 * g_x / (b + eps) with b = 0.002.
    b, eps = 0.002, 1e-4
    r_eps = flux_ratio_cells(_ramp(4, 4), cell=4, dx=DX, dy=DX, eps=eps)
    assert float(r_eps) == pytest.approx(1.5 * (b / (b + eps)) / (b + eps), rel=1e-12)


def test_linear_ramp_2x2_cells_by_hand() -> None:
    # 4x4 field, 2x2 cells of 2 px: each cell has west/east columns 1000 m apart:
    # mean adv = 2 * 0.002 * 1000 / 8 = 0.5 K, R = 0.5 / 0.002 = 250 m in every cell, whatever a.
    r = flux_ratio_cells(_ramp(4, 4, a=10.0), cell=2, dx=DX, dy=DX, eps=0.0)
    torch.testing.assert_close(r, torch.full((1, 1, 2, 2), 250.0, dtype=torch.float64))


def test_trailing_pixels_outside_whole_cells_are_ignored() -> None:
    field = _smooth_field(37, 42)
    r = flux_ratio_cells(field, cell=8, dx=DX, dy=DX)
    assert r.shape == (1, 1, 4, 5)


@pytest.mark.parametrize("c", [3.7, 0.25, -2.0])
def test_invariant_to_nonzero_scaling(c: float) -> None:
    field = _smooth_field()
    r = flux_ratio_cells(field, 8, DX, DX, eps=0.0)
    torch.testing.assert_close(flux_ratio_cells(c * field, 8, DX, DX, eps=0.0), r)


def test_scaling_invariance_is_only_approximate_with_eps() -> None:
    # eps is in K/m: it must be small against |grad T| (here ~5e-5 K/m) for the invariance to hold.
    field = _smooth_field()
    r = flux_ratio_cells(field, 8, DX, DX, eps=1e-7)
    r_scaled = flux_ratio_cells(10 * field, 8, DX, DX, eps=1e-7)
    assert not torch.equal(r, r_scaled)
    torch.testing.assert_close(r_scaled, r, rtol=1e-2, atol=0.0)


def test_not_invariant_to_offset_but_affine_in_it() -> None:
    # R(T + a) = R(T) + a * mean(g.n) / mean|grad T|: affine in a, not constant.
    field = _smooth_field()
    r0, r1, r2 = (flux_ratio_cells(field + a, 8, DX, DX, eps=0.0) for a in (0.0, 50.0, 100.0))
    assert (r1 - r0).abs().max() > 1.0  # metres: a visible change
    torch.testing.assert_close(r2 - r1, r1 - r0)


def test_scales_linearly_with_grid_spacing() -> None:
    field = _smooth_field()
    r = flux_ratio_cells(field, 8, DX, DX, eps=0.0)
    torch.testing.assert_close(flux_ratio_cells(field, 8, 3 * DX, 3 * DX, eps=0.0), 3 * r)


@pytest.mark.parametrize("sampling", ["pixels", "faces"])
def test_rotating_the_field_rotates_the_cell_map(sampling: str) -> None:
    field = _smooth_field()
    r = flux_ratio_cells(field, 8, DX, DX, sampling=sampling)
    r_rot = flux_ratio_cells(torch.rot90(field, 1, dims=(-2, -1)), 8, DX, DX, sampling=sampling)
    torch.testing.assert_close(r_rot, torch.rot90(r, 1, dims=(-2, -1)))


def test_same_field_gives_zero_loss() -> None:
    field = _smooth_field()
    assert float(flux_ratio_loss(field, field.clone(), 8, DX, DX)) == 0.0


@pytest.mark.parametrize(("sampling", "expected"), [("faces", 0.0), ("pixels", (4 - 1) * DX / 4)])
def test_coarse_reference_of_a_ramp(sampling: str, expected: float) -> None:
    # Fine ramp at fine pixel centres, coarse ramp at the aligned coarse centres (factor 4).
    # Faces: both grids' cell edges are 16 km apart -> identical R, loss 0.
    # Pixels: edges (16-1) dx vs (4-1) * 4 dx apart -> R differs by (4-1) dx / 4 = 750 m.
    factor, cell = 4, 16
    fine = _ramp(32, 32, offset=0.5)
    coarse = _ramp(8, 8, dx=factor * DX, offset=0.5)
    loss = flux_ratio_loss(fine, coarse, cell, DX, DX, eps=0.0, sampling=sampling)
    assert float(loss) == pytest.approx(expected, abs=1e-9)
    # The default reference spacing is dx * factor; passing it explicitly gives the same.
    explicit = flux_ratio_loss(
        fine, coarse, cell, DX, DX, eps=0.0, reference_dx=4 * DX, reference_dy=4 * DX, sampling=sampling
    )
    assert float(explicit) == pytest.approx(float(loss), abs=1e-9)


def test_gradcheck_float64() -> None:
    pred = (_smooth_field(12, 12, seed=1) / 280.0).requires_grad_(True)
    ref = _smooth_field(12, 12, seed=2) / 280.0
    for sampling in ("pixels", "faces"):
        assert torch.autograd.gradcheck(
            lambda p: flux_ratio_loss(p, ref, 4, DX, DX, eps=1e-5, sampling=sampling), (pred,)
        )


def test_backward_is_finite_where_the_gradient_vanishes() -> None:
    flat = torch.full((1, 1, 8, 8), 280.0, dtype=torch.float64, requires_grad=True)
    loss = flux_ratio_loss(flat, _smooth_field(8, 8), 4, DX, DX)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(flat.grad).all()


def test_bfloat16_input_runs_in_float32() -> None:
    field = _smooth_field().to(torch.bfloat16)
    r = flux_ratio_cells(field, 8, DX, DX)
    assert r.dtype == torch.float32 and torch.isfinite(r).all()


def test_bad_inputs() -> None:
    field = _smooth_field(16, 16)
    with pytest.raises(ValueError, match="smaller than one cell"):
        flux_ratio_cells(field[..., :6, :], 8, DX, DX)
    with pytest.raises(ValueError, match="cell must be an integer >= 2"):
        flux_ratio_cells(field, 1, DX, DX)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        flux_ratio_cells(field[0, 0], 4, DX, DX)
    with pytest.raises(ValueError, match=r"\(1, 1, 5, 5\).*\(1, 1, 16, 16\).*coarser by the same integer factor"):
        flux_ratio_loss(field, field[..., :5, :5], 8, DX, DX)
    with pytest.raises(ValueError, match="not divisible by the reference coarsening factor 4"):
        flux_ratio_loss(field, field[..., ::4, ::4], 6, DX, DX)
    with pytest.raises(ValueError, match="share"):
        flux_ratio_loss(field, field.expand(2, 1, 16, 16), 8, DX, DX)
    with pytest.raises(ValueError, match="reference_dx is required"):
        flux_ratio_loss(field, field[..., ::2, ::2], 8, torch.full((16, 1), DX), DX)
