"""Second-order finite differences on batched 2-D fields ``[..., H, W]`` (torch, differentiable).

Conventions (see docs/interfaces.md): x is the last axis (W, west->east), y is the
second-to-last axis (H, south->north); grid spacings ``dx``, ``dy`` are physical distances in
metres between neighbouring cell centres, so derivatives come out in field units per metre.

Stencils (h = spacing, f_i the value at index i along the axis):

* first derivative, interior:  f'_i  = (f_{i+1} - f_{i-1}) / (2h)                      O(h^2)
* first derivative, edges:     f'_0  = (-3 f_0 + 4 f_1 - f_2) / (2h)                   O(h^2)
                               f'_N  = ( 3 f_N - 4 f_{N-1} + f_{N-2}) / (2h)           O(h^2)
* second derivative, interior: f''_i = (f_{i+1} - 2 f_i + f_{i-1}) / h^2               O(h^2)
* second derivative, edges:    f''_0 = (2 f_0 - 5 f_1 + 4 f_2 - f_3) / h^2             O(h^2)
                               (mirrored at the far edge)

Every stencil, edges included, is second order, so the whole field converges at O(h^2) in the
max norm. First derivatives need at least 3 points along the axis, second derivatives 4.

Spacings may be Python floats or tensors broadcastable to the field (e.g. ``dx`` of shape
``[H, 1]`` for a latitude-dependent zonal spacing). A spacing that varies *along* the
differentiated axis is treated as the local spacing only (no non-uniform-grid correction), and
the Laplacian is the Cartesian one (no spherical metric terms): fine for regional grids whose
spacing changes by well under a percent per cell.

Low-precision inputs (float16/bfloat16) are computed in float32 and the results cast back to
the input dtype, because differencing neighbouring bf16 values loses nearly all significant
digits.
"""

from __future__ import annotations

import torch

Spacing = float | torch.Tensor

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _working_dtype(field: torch.Tensor) -> torch.dtype:
    """Float dtype to compute in: at least float32."""
    if field.dtype in _LOW_PRECISION or not field.dtype.is_floating_point:
        return torch.float32
    return field.dtype


def _as_spacing(spacing: Spacing, like: torch.Tensor, name: str) -> Spacing:
    """Validate a spacing and move tensor spacings to the field's device and dtype."""
    if isinstance(spacing, torch.Tensor):
        if not bool(torch.all(spacing > 0)):
            raise ValueError(f"{name} must be positive everywhere (metres)")
        return spacing.to(device=like.device, dtype=like.dtype)
    spacing = float(spacing)
    if not spacing > 0:
        raise ValueError(f"{name} must be positive (metres), got {spacing}")
    return spacing


def _check_field(field: torch.Tensor, name: str, min_points: int) -> None:
    if not isinstance(field, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(field).__name__}")
    if field.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dims [..., H, W], got shape {tuple(field.shape)}")
    h, w = field.shape[-2:]
    if h < min_points or w < min_points:
        raise ValueError(
            f"{name} of shape {tuple(field.shape)} is too small: need at least "
            f"{min_points} points along H and W for a second-order stencil"
        )


def _first_derivative(f: torch.Tensor, dim: int) -> torch.Tensor:
    """Undivided first difference (times 2h) along ``dim`` with 2nd-order one-sided edges."""
    n = f.shape[dim]
    interior = f.narrow(dim, 2, n - 2) - f.narrow(dim, 0, n - 2)
    first = -3 * f.narrow(dim, 0, 1) + 4 * f.narrow(dim, 1, 1) - f.narrow(dim, 2, 1)
    last = 3 * f.narrow(dim, n - 1, 1) - 4 * f.narrow(dim, n - 2, 1) + f.narrow(dim, n - 3, 1)
    return torch.cat([first, interior, last], dim=dim)


def _second_derivative(f: torch.Tensor, dim: int) -> torch.Tensor:
    """Undivided second difference (times h^2) along ``dim`` with 2nd-order one-sided edges."""
    n = f.shape[dim]
    interior = f.narrow(dim, 2, n - 2) - 2 * f.narrow(dim, 1, n - 2) + f.narrow(dim, 0, n - 2)
    first = (
        2 * f.narrow(dim, 0, 1) - 5 * f.narrow(dim, 1, 1) + 4 * f.narrow(dim, 2, 1) - f.narrow(dim, 3, 1)
    )
    last = (
        2 * f.narrow(dim, n - 1, 1)
        - 5 * f.narrow(dim, n - 2, 1)
        + 4 * f.narrow(dim, n - 3, 1)
        - f.narrow(dim, n - 4, 1)
    )
    return torch.cat([first, interior, last], dim=dim)


def ddx(field: torch.Tensor, dx: Spacing) -> torch.Tensor:
    """∂f/∂x along the last axis (W): (f[j+1] − f[j−1]) / (2 dx), 2nd-order one-sided at the edges."""
    _check_field(field, "field", 3)
    f = field.to(_working_dtype(field))
    out = _first_derivative(f, -1) / (2 * _as_spacing(dx, f, "dx"))
    return out.to(field.dtype)


def ddy(field: torch.Tensor, dy: Spacing) -> torch.Tensor:
    """∂f/∂y along axis H: (f[i+1] − f[i−1]) / (2 dy), 2nd-order one-sided at the edges."""
    _check_field(field, "field", 3)
    f = field.to(_working_dtype(field))
    out = _first_derivative(f, -2) / (2 * _as_spacing(dy, f, "dy"))
    return out.to(field.dtype)


def gradient(field: torch.Tensor, dx: Spacing, dy: Spacing) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ∇f = (∂f/∂x, ∂f/∂y) of ``field`` ``[..., H, W]``.

    Central differences (f[j+1] − f[j−1]) / (2h) inside, second-order one-sided differences
    (∓3 f_0 ± 4 f_1 ∓ f_2) / (2h) on the edges: O(h²) everywhere. Needs H, W ≥ 3.

    Args:
        field: tensor ``[..., H, W]``.
        dx: spacing along W in metres (float, or tensor broadcastable to ``field``).
        dy: spacing along H in metres (float, or tensor broadcastable to ``field``).

    Returns:
        ``(dfdx, dfdy)``, each shaped like ``field``, in field units per metre.
    """
    return ddx(field, dx), ddy(field, dy)


def divergence(u: torch.Tensor, v: torch.Tensor, dx: Spacing, dy: Spacing) -> torch.Tensor:
    """Divergence ∇·(u, v) = ∂u/∂x + ∂v/∂y, with the stencils of :func:`gradient` (O(h²) everywhere).

    Args:
        u: x-component ``[..., H, W]``.
        v: y-component, same shape as ``u``.
        dx, dy: spacings in metres.
    """
    if u.shape != v.shape:
        raise ValueError(f"u and v must have the same shape, got {tuple(u.shape)} and {tuple(v.shape)}")
    return ddx(u, dx) + ddy(v, dy)


def laplacian(field: torch.Tensor, dx: Spacing, dy: Spacing) -> torch.Tensor:
    """Laplacian ∇²f = ∂²f/∂x² + ∂²f/∂y² of ``field`` ``[..., H, W]``.

    Interior: (f[j+1] − 2 f[j] + f[j−1]) / h²; edges: (2 f_0 − 5 f_1 + 4 f_2 − f_3) / h²
    (second-order one-sided), so O(h²) everywhere. Needs H, W ≥ 4. Cartesian form, see the
    module docstring for latitude-dependent spacings.
    """
    _check_field(field, "field", 4)
    f = field.to(_working_dtype(field))
    dx = _as_spacing(dx, f, "dx")
    dy = _as_spacing(dy, f, "dy")
    out = _second_derivative(f, -1) / dx**2 + _second_derivative(f, -2) / dy**2
    return out.to(field.dtype)
