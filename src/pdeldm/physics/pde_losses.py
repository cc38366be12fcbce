"""PDE-informed terms: the supercell flux ratio and the advection–diffusion residual (torch).

Supercell flux ratio (arXiv 2510.23866, with its defects fixed)
---------------------------------------------------------------
The domain ``[B, C, H, W]`` is split into ``n x n``-pixel cells (trailing rows/columns that do
not fill a whole cell are ignored). The gradient ∇T is computed on the *whole* field in
physical units (K/m; :mod:`pdeldm.physics.finite_differences`), then sampled on each cell's
four edges, each edge having ``n`` samples and its outward normal ``n̂`` (corners are sampled
once per edge they belong to, so every cell has ``4n`` samples)::

    g    = ∇T / (|∇T| + eps)                 (unit gradient direction)
    adv  = T (g · n̂)                         (advective flux sample)
    diff = |∇T|                              (diffusive flux sample)
    R    = mean_edges(adv) / (mean_edges(diff) + eps)

``R`` has units of metres (K / (K/m)). Two edge samplings are offered:

* ``"pixels"`` (default, the study's choice): the cell's own boundary pixels. A cell of ``n``
  pixels has its opposite edges ``(n - 1) * dx`` apart.
* ``"faces"``: values interpolated to the cell faces, half a pixel outside the boundary pixels
  (mean of the two pixels straddling the face; linear extrapolation at the domain edge).
  Opposite edges are ``n * dx`` apart, the same physical distance on every grid, so this is the
  consistent choice when comparing with a coarser reference.

Invariances (exact for eps = 0, approximate for eps > 0 small against |∇T|):

* ``R(c T) = R(T)`` for any constant ``c != 0`` (adv and diff both scale by ``|c|``; for ``c < 0``
  both T and g flip sign, so adv is unchanged).
* ``R`` is NOT invariant to adding a constant: ``R(T + a) = R(T) + a * mean(g·n̂) / mean|∇T|``.
  Hence ``R`` of a field in K differs from ``R`` of the same field standardised
  ``(T - mu) / sigma``; compare predictions and references in the same units and offset.
* ``R`` scales linearly with the grid spacing (dx, dy -> s dx, s dy gives s R): spacings must be
  the true physical ones for each grid.
* Rotating the field by 90° (with ``dx == dy``) rotates the cell map of ``R`` the same way.

Coarser reference: if ``reference`` has shape ``[B, C, H/f, W/f]`` for an integer factor ``f``,
a fine cell of ``n`` pixels corresponds to a coarse cell of ``n / f`` pixels covering the same
area (``n`` must be divisible by ``f``), giving the same cell map.

Advection–diffusion residual
----------------------------
``r = ∂T/∂t + u ∂T/∂x + v ∂T/∂y − κ ∇²T − S`` with explicit winds ``u, v`` (m/s),
diffusivity ``κ`` (m²/s), tendency ``∂T/∂t`` (K/s, default 0 = steady balance) and source
``S`` (K/s, default 0).

Neither function checks for NaN (that would synchronise the device every step); the numpy
wrappers in :mod:`pdeldm.evaluation.metrics` do.
"""

from __future__ import annotations

from typing import Literal

import torch

from pdeldm.physics.finite_differences import Spacing, _working_dtype, gradient, laplacian

Sampling = Literal["pixels", "faces"]


def _safe_norm(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """sqrt(gx² + gy²) whose backward pass is 0 (not NaN) where the gradient vanishes."""
    sq = gx * gx + gy * gy
    positive = sq > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), 0.0)


def _edge_samples(
    q: torch.Tensor, dim: int, cell: int, n_cells: int, sampling: Sampling
) -> tuple[torch.Tensor, torch.Tensor]:
    """Values of ``q`` on the low and high edge of each cell along ``dim`` (size ``n_cells`` each)."""
    starts = torch.arange(n_cells, device=q.device) * cell
    if sampling == "pixels":
        return q.index_select(dim, starts), q.index_select(dim, starts + cell - 1)
    # Faces: pad with a linear extrapolation so that face i (between pixels i-1 and i) is
    # 0.5 * (padded[i] + padded[i + 1]) for every i in 0..n, including the domain edges.
    n = q.shape[dim]
    below = 2 * q.narrow(dim, 0, 1) - q.narrow(dim, 1, 1)
    above = 2 * q.narrow(dim, n - 1, 1) - q.narrow(dim, n - 2, 1)
    padded = torch.cat([below, q, above], dim=dim)

    def face(index: torch.Tensor) -> torch.Tensor:
        return 0.5 * (padded.index_select(dim, index) + padded.index_select(dim, index + 1))

    return face(starts), face(starts + cell)


def _check_4d(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be [B, C, H, W], got shape {tuple(x.shape)}")


def flux_ratio_cells(
    field: torch.Tensor,
    cell: int,
    dx: Spacing,
    dy: Spacing,
    eps: float = 1e-6,
    sampling: Sampling = "pixels",
) -> torch.Tensor:
    """Per-cell supercell flux ratio ``R = mean(T g·n̂) / (mean|∇T| + eps)`` (metres).

    See the module docstring for the definition, edge sampling and invariances.

    Args:
        field: temperature ``[B, C, H, W]`` (any consistent units, e.g. K).
        cell: cell size in pixels (``>= 2`` for ``"pixels"``, ``>= 1`` for ``"faces"``).
        dx, dy: grid spacing in metres (floats or tensors broadcastable to ``field``).
        eps: regulariser in the units of |∇T| (K/m): used in ``g`` and in the denominator.
        sampling: ``"pixels"`` (boundary pixels) or ``"faces"`` (interpolated cell faces).

    Returns:
        ``[B, C, H // cell, W // cell]`` in the working dtype (float32 for bf16/fp16 input).

    Raises:
        ValueError: bad shape, a field smaller than one cell, a bad cell size or sampling.
    """
    _check_4d(field, "field")
    if sampling not in ("pixels", "faces"):
        raise ValueError(f"sampling must be 'pixels' or 'faces', got {sampling!r}")
    min_cell = 2 if sampling == "pixels" else 1
    if int(cell) != cell or cell < min_cell:
        raise ValueError(
            f"cell must be an integer >= {min_cell} for sampling={sampling!r}, got {cell} "
            "(a 1-pixel cell has no distinct boundary pixels)"
        )
    cell = int(cell)
    h, w = field.shape[-2:]
    if h < cell or w < cell:
        raise ValueError(f"field of shape {tuple(field.shape)} is smaller than one cell of {cell}x{cell} pixels")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")

    t = field.to(_working_dtype(field))
    gx, gy = gradient(t, dx, dy)
    norm = _safe_norm(gx, gy)
    adv_x = t * gx / (norm + eps)  # T g_x: outward flux through an east face, minus it on a west face
    adv_y = t * gy / (norm + eps)
    nh, nw = h // cell, w // cell
    b, c = t.shape[:2]

    # West/east edges: crop rows to whole cells, sample columns, sum the n rows of each cell.
    def along_x(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = _edge_samples(q[..., : nh * cell, :], -1, cell, nw, sampling)
        return tuple(e.reshape(b, c, nh, cell, nw).sum(dim=3) for e in (low, high))  # type: ignore[return-value]

    # South/north edges: crop columns, sample rows, sum the n columns of each cell.
    def along_y(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = _edge_samples(q[..., : nw * cell], -2, cell, nh, sampling)
        return tuple(e.reshape(b, c, nh, nw, cell).sum(dim=4) for e in (low, high))  # type: ignore[return-value]

    west, east = along_x(adv_x)
    south, north = along_y(adv_y)
    adv_sum = (east - west) + (north - south)  # outward normals: -x, +x, -y, +y
    diff_w, diff_e = along_x(norm)
    diff_s, diff_n = along_y(norm)
    diff_sum = diff_w + diff_e + diff_s + diff_n
    samples = 4 * cell
    return (adv_sum / samples) / (diff_sum / samples + eps)


def _reference_factor(pred_shape: torch.Size, ref_shape: torch.Size) -> int:
    """Integer coarsening factor of the reference grid (1 for the same grid)."""
    if pred_shape[:2] != ref_shape[:2]:
        raise ValueError(
            f"pred and reference must share [B, C]: got shapes {tuple(pred_shape)} and {tuple(ref_shape)}"
        )
    (h, w), (hr, wr) = pred_shape[-2:], ref_shape[-2:]
    if h % hr or w % wr or h // hr != w // wr:
        raise ValueError(
            f"reference shape {tuple(ref_shape)} must equal pred shape {tuple(pred_shape)} or be "
            "coarser by the same integer factor along H and W"
        )
    return h // hr


def flux_ratio_loss(
    pred: torch.Tensor,
    reference: torch.Tensor,
    cell: int,
    dx: Spacing,
    dy: Spacing,
    eps: float = 1e-6,
    reference_dx: Spacing | None = None,
    reference_dy: Spacing | None = None,
    sampling: Sampling = "pixels",
) -> torch.Tensor:
    """Flux-ratio loss ``mean |R(pred) − R(reference)|`` over batch, channels and cells (metres).

    ``reference`` is on the grid of ``pred`` or on a grid coarser by an integer factor ``f``
    (same factor along H and W, grids aligned at the south-west corner). Then a fine cell of
    ``cell`` pixels maps to a coarse cell of ``cell / f`` pixels. The reference spacing defaults
    to ``dx * f``, ``dy * f`` when ``dx``, ``dy`` are scalars; pass ``reference_dx`` /
    ``reference_dy`` for latitude-dependent (tensor) spacings or non-aligned grids.
    With a coarser reference, ``sampling="faces"`` puts the edges of fine and coarse cells at the
    same physical positions; ``"pixels"`` does not (edges ``(cell-1) dx`` vs ``(cell-f) dx`` apart,
    a systematic offset of ``R`` even for a perfectly interpolated field).

    Raises:
        ValueError: shapes that do not map, ``cell`` not divisible by ``f``, a field smaller than a cell.
    """
    _check_4d(pred, "pred")
    _check_4d(reference, "reference")
    factor = _reference_factor(pred.shape, reference.shape)
    if cell % factor:
        raise ValueError(
            f"cell={cell} is not divisible by the reference coarsening factor {factor} "
            f"(pred {tuple(pred.shape)}, reference {tuple(reference.shape)})"
        )
    if reference_dx is None:
        if factor != 1 and isinstance(dx, torch.Tensor):
            raise ValueError("reference_dx is required when dx is a tensor and the reference grid is coarser")
        reference_dx = dx * factor
    if reference_dy is None:
        if factor != 1 and isinstance(dy, torch.Tensor):
            raise ValueError("reference_dy is required when dy is a tensor and the reference grid is coarser")
        reference_dy = dy * factor
    r_pred = flux_ratio_cells(pred, cell, dx, dy, eps, sampling)
    r_ref = flux_ratio_cells(reference, cell // factor, reference_dx, reference_dy, eps, sampling)
    return (r_pred - r_ref.to(r_pred.dtype)).abs().mean()


def advection_diffusion_residual(
    T: torch.Tensor,
    u: torch.Tensor | float,
    v: torch.Tensor | float,
    dx: Spacing,
    dy: Spacing,
    kappa: float | torch.Tensor,
    source: torch.Tensor | float | None = None,
    tendency: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Residual field ``r = ∂T/∂t + u ∂T/∂x + v ∂T/∂y − κ ∇²T − S`` (K/s for T in K).

    Args:
        T: temperature ``[B, C, H, W]`` (or any ``[..., H, W]``), H, W >= 4.
        u, v: eastward / northward wind (m/s), broadcastable to ``T`` (e.g. ``[B, 1, H, W]``).
        dx, dy: grid spacing in metres.
        kappa: diffusivity (m²/s), scalar or broadcastable tensor.
        source: ``S`` (K/s); default 0.
        tendency: ``∂T/∂t`` (K/s); default 0, i.e. the steady balance ``u·∇T = κ∇²T + S``.

    Returns:
        Residual shaped like the broadcast of all inputs, in the working dtype of ``T``.
    """
    work = _working_dtype(T)
    t = T.to(work)
    shapes = {"T": tuple(T.shape)}
    for name, x in (("u", u), ("v", v), ("source", source), ("tendency", tendency)):
        if isinstance(x, torch.Tensor):
            shapes[name] = tuple(x.shape)
    try:
        torch.broadcast_shapes(*shapes.values())
    except RuntimeError:
        raise ValueError(f"inputs are not broadcastable to one another: {shapes}") from None

    def cast(x: torch.Tensor | float) -> torch.Tensor | float:
        return x.to(device=t.device, dtype=work) if isinstance(x, torch.Tensor) else x

    dtdx, dtdy = gradient(t, dx, dy)
    residual = cast(u) * dtdx + cast(v) * dtdy - cast(kappa) * laplacian(t, dx, dy)
    if tendency is not None:
        residual = residual + cast(tendency)
    if source is not None:
        residual = residual - cast(source)
    return residual


def advection_diffusion_loss(
    T: torch.Tensor,
    u: torch.Tensor | float,
    v: torch.Tensor | float,
    dx: Spacing,
    dy: Spacing,
    kappa: float | torch.Tensor,
    source: torch.Tensor | float | None = None,
    tendency: torch.Tensor | float | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Mean square residual ``mean((r / scale)²)`` of :func:`advection_diffusion_residual`.

    ``scale`` (K/s, default 1) makes the loss dimensionless, e.g. a typical advective tendency
    ``|u| ΔT / L``.
    """
    residual = advection_diffusion_residual(T, u, v, dx, dy, kappa, source=source, tendency=tendency)
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        residual = residual / scale
    return residual.square().mean()
