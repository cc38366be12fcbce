"""Physics: finite differences and PDE-informed loss terms (torch, differentiable).

Grid conventions: tensors ``[B, C, H, W]``, x along W (west->east), y along H (south->north),
spacings in metres. See :mod:`pdeldm.physics.finite_differences` and
:mod:`pdeldm.physics.pde_losses` for the formulas.
"""

from pdeldm.physics.finite_differences import ddx, ddy, divergence, gradient, laplacian
from pdeldm.physics.pde_losses import (
    advection_diffusion_loss,
    advection_diffusion_residual,
    flux_ratio_cells,
    flux_ratio_loss,
)

__all__ = [
    "advection_diffusion_loss",
    "advection_diffusion_residual",
    "ddx",
    "ddy",
    "divergence",
    "flux_ratio_cells",
    "flux_ratio_loss",
    "gradient",
    "laplacian",
]
