r"""The twin's spatial discretisation: centred differences plus a flow-dependent 6th-order diffusion.

The semi-discrete tendency on the padded grid is, per direction (shown for x; y alike)::

    - u (T[i+1] - T[i-1]) / (2 dx)  +  kappa (T[i+1] - 2 T[i] + T[i-1]) / dx^2  +  |u| / (60 dx) d6x T

where ``d6x T = T[i+3] - 6 T[i+2] + 15 T[i+1] - 20 T[i] + 15 T[i-1] - 6 T[i-2] + T[i-3]`` is the
sixth difference; relaxation and forcing are added pointwise.  The first two terms are exactly the
2nd-order centred operator that :func:`pdeldm.data.twin.model.pde_operator` evaluates.  The third is
a numerical hyperdiffusion ``N(T) = sum_i (|u_i| dx_i^5 / 60) d^6 T / dx_i^6``: the dissipative half
of the 5th-order upwind-biased advection of Wicker and Skamarock (2002), which is that scheme's
6th-order centred part plus exactly this term.  Why it is needed: at a cell Peclet number
``|u| dx / kappa`` of 30-60 centred advection leaves grid-scale waves undamped, and they travel
upstream (their group velocity is ``-u``), so the Dirichlet frame and every sharp gradient seed
2-cell ripples.  The twin's ``numerical_diffusion`` parameter scales ``N`` (1 by default; 0 gives
plain centred advection and brings the ripples back, which the tests use as a control).  ``N`` damps a 2-cell wave with the e-folding time ``60 dx / (64 |u|)`` (about
30 min at 6 m/s on the 12 km grid), a 3-cell wave in ``60 dx / (27 |u|)`` (1.2 h), a 4-cell wave in
``60 dx / (8 |u|)`` (4 h) and an 8-cell wave in about 7 days, so what the coarse grid cannot resolve
but the fine grid can (4-16 cells) keeps the stated equation.

The stated equation and the discrete truth therefore differ by ``N(T)`` (see
:func:`numerical_diffusion`), plus the time discretisation of the hourly output: on Italy in
November without stochastic forcing, the residual of the stated equation on the truth is
0.054 K/h RMS, of which all but 0.005 K/h is ``N`` (against 1.4 K/h for a bicubic interpolation).

SSP-RK3 with this operator is stable for an advective Courant number ``(|u| / dx + |v| / dy) dt``
up to ``sqrt(3)`` (the centred part alone; the hyperdiffusion extends it to about 2.06) and for a
real negative eigenvalue ``|lambda| dt`` up to 2.51 (``RK3_REAL_AXIS_LIMIT``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Cells of the stencil on each side of a point: the width of the Dirichlet frame.
HALO = 3
#: Largest stable advective Courant number ``(|u|/dx + |v|/dy) dt`` of SSP-RK3 (centred part).
ADVECTIVE_COURANT_LIMIT = math.sqrt(3.0)
#: ``|lambda| dt`` bound of SSP-RK3 for a real negative eigenvalue (2.51).
RK3_REAL_AXIS_LIMIT = 2.5
#: Eigenvalue of the sixth difference for the 2-cell wave: ``(2 cos(pi) - 2)^3``.
SIXTH_DIFFERENCE_MAX = 64.0


@dataclass
class StageCoefficients:
    """Coefficient arrays of one stage on the integrated cells (the padded grid minus the frame)."""

    advect_x: np.ndarray  # -u / (2 dx)
    damping_x: np.ndarray  # scale |u| / (60 dx)
    advect_y: np.ndarray
    damping_y: np.ndarray
    source: np.ndarray  # T_bg / tau + xi (K/s)
    frame: np.ndarray  # T_bg on the whole padded grid: the Dirichlet values


def sixth_difference(T: np.ndarray, axis: int) -> np.ndarray:
    """``d6 T`` along ``axis`` (0 = rows, 1 = columns) on the cells 3 away from the edges of ``T``."""
    n = T.shape[axis]

    def shifted(k: int) -> np.ndarray:
        index = [slice(HALO, -HALO), slice(HALO, -HALO)]
        index[axis] = slice(HALO + k, n - HALO + k)
        return T[tuple(index)]

    return (shifted(3) + shifted(-3) - 6.0 * (shifted(2) + shifted(-2)) + 15.0 * (shifted(1) + shifted(-1))
            - 20.0 * shifted(0))


def numerical_diffusion(T: np.ndarray, u: np.ndarray, v: np.ndarray, dx: float, dy: float,
                        scale: float = 1.0) -> np.ndarray:
    """``N(T)`` (K/s) of the integrator on the ``(ny - 6, nx - 6)`` interior of ``(ny, nx)`` fields.

    ``scale (|u| / (60 dx) d6x T + |v| / (60 dy) d6y T)`` with ``u``, ``v`` at the time of ``T`` and
    ``scale`` = the twin's ``numerical_diffusion`` parameter: the term the discrete truth obeys
    beyond the stated equation (module docstring).
    """
    inner = (slice(HALO, -HALO), slice(HALO, -HALO))
    return scale * (np.abs(u[inner]) / (60.0 * dx) * sixth_difference(T, 1)
                    + np.abs(v[inner]) / (60.0 * dy) * sixth_difference(T, 0))


class SpatialOperator:
    """Tendency ``F(T)`` of the padded-grid field (module docstring), with reusable buffers."""

    def __init__(self, shape_pad: tuple[int, int], dx: float, dy: float, kappa: float, tau_s: float,
                 diffusion_scale: float = 1.0) -> None:
        self.shape_pad = shape_pad
        self.diffusion_scale = diffusion_scale
        self.dx, self.dy = dx, dy
        self.kappa_x, self.kappa_y = kappa / dx**2, kappa / dy**2
        self.inv_tau = 1.0 / tau_s
        self.inner = (slice(HALO, -HALO), slice(HALO, -HALO))
        shape_in = (shape_pad[0] - 2 * HALO, shape_pad[1] - 2 * HALO)
        self._tend = np.empty(shape_in)
        self._odd = np.empty(shape_in)
        self._even = np.empty(shape_in)

    def coefficients(self, u: np.ndarray, v: np.ndarray, background: np.ndarray, forcing: np.ndarray
                     ) -> StageCoefficients:
        """Stage coefficients from the padded wind, background and forcing at one time."""
        inner = self.inner
        u_in, v_in = u[inner], v[inner]
        return StageCoefficients(
            advect_x=u_in * (-0.5 / self.dx), damping_x=np.abs(u_in) * (self.diffusion_scale / (60.0 * self.dx)),
            advect_y=v_in * (-0.5 / self.dy), damping_y=np.abs(v_in) * (self.diffusion_scale / (60.0 * self.dy)),
            source=background[inner] * self.inv_tau + forcing[inner], frame=background)

    def tendency(self, T: np.ndarray, c: StageCoefficients) -> np.ndarray:
        """dT/dt (K/s) on the integrated cells; the returned buffer is reused by the next call."""
        h = HALO
        ny, nx = self.shape_pad
        rows, cols = slice(h, ny - h), slice(h, nx - h)
        centre = T[rows, cols]
        tend = self._tend
        np.multiply(centre, -(2 * self.kappa_x + 2 * self.kappa_y + self.inv_tau), out=tend)
        tend += c.source
        for axis, advect, damping, kappa in ((1, c.advect_x, c.damping_x, self.kappa_x),
                                             (0, c.advect_y, c.damping_y, self.kappa_y)):

            def shifted(k: int, axis: int = axis) -> np.ndarray:
                return T[rows, h + k:nx - h + k] if axis == 1 else T[h + k:ny - h + k, cols]

            odd, even = self._odd, self._even
            np.subtract(shifted(1), shifted(-1), out=odd)
            odd *= advect
            tend += odd
            near = shifted(1) + shifted(-1)
            tend += kappa * near
            # the sixth difference, scaled by |u| / (60 dx)
            np.add(shifted(3), shifted(-3), out=even)
            even -= 6.0 * (shifted(2) + shifted(-2))
            even += 15.0 * near
            even -= 20.0 * centre
            even *= damping
            tend += even
        return tend

    def set_frame(self, T: np.ndarray, background: np.ndarray) -> None:
        """Dirichlet values: T = T_bg on the outer ``HALO`` rings."""
        h = HALO
        T[:h, :], T[-h:, :] = background[:h, :], background[-h:, :]
        T[:, :h], T[:, -h:] = background[:, :h], background[:, -h:]
