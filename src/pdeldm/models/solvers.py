"""Samplers of a v-prediction denoiser: DDIM, DPM-Solver++(2M) and Heun (EDM), on one timestep grid.

All three integrate the same probability-flow ODE of the training schedule (:class:`NoiseSchedule`,
variance preserving, ``alpha_t^2 + sigma_t^2 = 1``) from pure noise at the first timestep of a
grid ``t_0 > t_1 > ... > t_{N-1}`` to the clean latent (``alpha = 1``, ``sigma = 0``) after the
last one. With the data prediction ``D_i = x0_hat(z_i, t_i) = alpha_i z_i - sigma_i v_hat``:

* ``ddim`` (Song et al. 2021): ``z_{i+1} = alpha_{i+1} D_i + sigma_{i+1} eps_hat_i``; first order,
  one denoiser evaluation per timestep. ``eta`` > 0 adds fresh noise at every step (``eta`` = 1:
  DDPM-like ancestral sampling) and is the only stochastic option.
* ``dpmpp_2m`` (Lu et al. 2022, DPM-Solver++(2M), data prediction, multistep): with
  ``lambda = log(alpha / sigma)`` and ``h = lambda_{i+1} - lambda_i``,
  ``z_{i+1} = sigma_{i+1}/sigma_i z_i - alpha_{i+1} (exp(-h) - 1) D'``, where ``D' = D_i`` on the
  first step and on the last (the step to sigma = 0), else ``D' = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}``
  with ``r = h_{i-1} / h_i``. Second order, one evaluation per timestep.
* ``heun`` (Karras et al. 2022, EDM Algorithm 1 without churn): in the variance-exploding variables
  ``x = z / alpha``, ``s = sigma / alpha`` the ODE is ``dx/ds = eps_hat``; Heun's predictor-corrector
  on every step but the last (Euler to s = 0). Second order, ``2 N - 1`` evaluations.

On a point mass (``D`` constant) every solver is exact for any grid, and ``ddim`` with ``eta`` = 0
is Euler's method in ``(x, s)``: the three differ only in how they use the curvature of the
trajectory. ``spacing`` picks the grid (:func:`timestep_grid`): ``uniform`` in t (DDIM's, the
default), uniform in ``lambda`` (``logsnr``, DPM-Solver's) or Karras et al.'s (``karras``, EDM's).

Denoiser evaluations: ``evaluations(solver, steps)``; the quality-vs-cost study compares solvers at
equal evaluations (:func:`steps_for_evaluations`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pdeldm.models.samplers import NoiseFn, NoiseSchedule, ddim_timesteps

SOLVERS: tuple[str, ...] = ("ddim", "dpmpp_2m", "heun")
SPACINGS: tuple[str, ...] = ("uniform", "logsnr", "karras")
VModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_solver(solver: str, eta: float = 0.0, spacing: str = "uniform") -> None:
    """``ValueError`` naming the allowed values for an unknown solver or spacing, or eta on an ODE solver."""
    if solver not in SOLVERS:
        raise ValueError(f"sampler solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"sampler spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"sampler eta must lie in [0, 1], got {eta}")
    if solver != "ddim" and float(eta) != 0.0:
        raise ValueError(f"sampler eta = {eta} needs the ddim solver ({solver} is deterministic): set eta to 0")


def evaluations(solver: str, steps: int) -> int:
    """Denoiser evaluations of ``solver`` on a grid of ``steps`` timesteps."""
    check_solver(solver)
    return 2 * steps - 1 if solver == "heun" else steps


def steps_for_evaluations(solver: str, budget: int) -> int:
    """The most timesteps whose evaluations stay within ``budget`` (at least one)."""
    check_solver(solver)
    return max(1, (budget + 1) // 2) if solver == "heun" else max(1, budget)


def timestep_grid(schedule: NoiseSchedule, steps: int, spacing: str = "uniform") -> list[int]:
    """``steps`` distinct integer timesteps from ``T - 1`` down to 0.

    ``uniform``: evenly spaced in t (DDIM's grid); ``logsnr``: evenly spaced in ``lambda = log(alpha /
    sigma)`` (DPM-Solver's); ``karras``: Karras et al.'s ``rho = 7`` grid of the variance-exploding
    noise level ``sigma / alpha`` (EDM's, dense at low noise). The non-uniform grids are rounded to the
    nearest timesteps; where several round to the same one (many steps near t = 0, where lambda
    changes fast) the next free timesteps are taken, so the grid keeps ``steps`` entries.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"sampler spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    if spacing == "uniform":
        return ddim_timesteps(schedule.timesteps, steps)
    total = schedule.timesteps
    if not 1 <= steps <= total:
        raise ValueError(f"sampler steps must be in 1..{total}, got {steps}")
    lam = (schedule.alphas.double() / schedule.sigmas.double()).log()  # decreasing in t
    if spacing == "logsnr":
        targets = torch.linspace(float(lam[-1]), float(lam[0]), steps, dtype=torch.float64)
    else:
        rho = 7.0
        s_max, s_min = float((-lam[-1]).exp()), float((-lam[0]).exp())
        ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
        targets = -torch.log((s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho)
    # Nearest timestep of each target on the (increasing) reversed lambda sequence.
    increasing = lam.flip(0).contiguous()
    right = torch.searchsorted(increasing, targets).clamp(1, total - 1)
    nearer_left = (targets - increasing[right - 1]) < (increasing[right] - targets)
    grid = (total - 1 - (right - nearer_left.long())).tolist()
    grid[-1] = 0
    for k in range(steps - 2, -1, -1):  # from low noise up: strictly larger than the next one
        grid[k] = max(grid[k], grid[k + 1] + 1)
    grid[0] = total - 1
    for k in range(1, steps):  # and from high noise down: strictly smaller than the previous one
        grid[k] = min(grid[k], grid[k - 1] - 1)
    return grid


class CountingModel:
    """Wraps a denoiser and counts its evaluations (one per call, whatever the batch size)."""

    def __init__(self, model: VModel) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(z, t)


def _predict(model: VModel, schedule: NoiseSchedule, z: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0_hat, eps_hat)`` at integer timestep ``t``."""
    t_batch = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
    v = model(z, t_batch).float()
    a, s = schedule.alphas[t], schedule.sigmas[t]
    return a * z - s * v, s * z + a * v


def _coefficients(schedule: NoiseSchedule, grid: list[int], z: torch.Tensor) -> tuple[list[torch.Tensor], ...]:
    """``alpha``, ``sigma`` at every grid point plus the clean end (``alpha = 1``, ``sigma = 0``)."""
    one = torch.ones((), device=z.device)
    alphas = [schedule.alphas[t] for t in grid] + [one]
    sigmas = [schedule.sigmas[t] for t in grid] + [0.0 * one]
    return alphas, sigmas


@torch.no_grad()
def ddim(model: VModel, schedule: NoiseSchedule, z: torch.Tensor, grid: list[int], eta: float = 0.0,
         draw: NoiseFn | None = None) -> torch.Tensor:
    """DDIM over ``grid`` from ``z`` (eta > 0 draws fresh noise with ``draw``)."""
    alphas, sigmas = _coefficients(schedule, grid, z)
    for i, t in enumerate(grid):
        x0, eps = _predict(model, schedule, z, t)
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        if eta > 0:
            c = eta * torch.sqrt(((s_s ** 2 / s_t ** 2) * (1 - a_t ** 2 / a_s ** 2)).clamp(min=0))
        else:
            c = 0.0 * s_s
        z = a_s * x0 + torch.sqrt((s_s ** 2 - c ** 2).clamp(min=0)) * eps
        if eta > 0 and float(c) > 0:
            if draw is None:
                raise ValueError("ddim with eta > 0 needs a noise function")
            z = z + c * draw(tuple(z.shape))
    return z


@torch.no_grad()
def dpmpp_2m(model: VModel, schedule: NoiseSchedule, z: torch.Tensor, grid: list[int]) -> torch.Tensor:
    """DPM-Solver++(2M) over ``grid`` from ``z`` (deterministic)."""
    alphas, sigmas = _coefficients(schedule, grid, z)
    lambdas = [torch.log(a / s) for a, s in zip(alphas[:-1], sigmas[:-1], strict=True)]
    previous: torch.Tensor | None = None
    h_previous: torch.Tensor | None = None
    for i, t in enumerate(grid):
        x0, _ = _predict(model, schedule, z, t)
        if i + 1 == len(grid):  # to sigma = 0: exp(-h) = 0, first order
            return x0
        h = lambdas[i + 1] - lambdas[i]
        data = x0
        if previous is not None and h_previous is not None:
            r = h_previous / h
            data = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous
        z = (sigmas[i + 1] / sigmas[i]) * z - alphas[i + 1] * torch.expm1(-h) * data
        previous, h_previous = x0, h
    return z


@torch.no_grad()
def heun(model: VModel, schedule: NoiseSchedule, z: torch.Tensor, grid: list[int]) -> torch.Tensor:
    """Heun's second-order method in the variance-exploding variables over ``grid`` (deterministic)."""
    alphas, sigmas = _coefficients(schedule, grid, z)
    ve = [s / a for a, s in zip(alphas, sigmas, strict=True)]  # s_i = sigma_i / alpha_i, 0 at the end
    x = z / alphas[0]
    for i, t in enumerate(grid):
        x0, eps = _predict(model, schedule, alphas[i] * x, t)
        if i + 1 == len(grid):
            return x0
        step = ve[i + 1] - ve[i]
        x_euler = x + step * eps
        _, eps_next = _predict(model, schedule, alphas[i + 1] * x_euler, grid[i + 1])
        x = x + step * 0.5 * (eps + eps_next)
    return alphas[-1] * x


@torch.no_grad()
def sample(model: VModel, schedule: NoiseSchedule, shape: tuple[int, ...], solver: str = "ddim", steps: int = 20,
           eta: float = 0.0, spacing: str = "uniform", noise: NoiseFn | None = None,
           device: torch.device | str = "cpu", z_T: torch.Tensor | None = None) -> torch.Tensor:
    """Clean latents ``shape`` from the v-prediction ``model(z_t, t)`` with ``solver``.

    Args:
        model: the denoiser with its conditioning bound (``t`` an int64 tensor ``[B]``).
        schedule: the training noise schedule.
        solver: ``ddim``, ``dpmpp_2m`` or ``heun``; steps: timesteps of the grid (``heun`` evaluates
            the denoiser ``2 steps - 1`` times); eta: ``ddim`` only; spacing: ``uniform``, ``logsnr`` or ``karras``.
        noise: noise function (default ``torch.randn`` on ``device``), for the start and ``eta``;
        z_T: start latent (then ``noise`` only serves ``eta``).
    """
    check_solver(solver, eta, spacing)
    draw = noise or (lambda s: torch.randn(s, device=device))
    z = draw(shape) if z_T is None else z_T
    grid = timestep_grid(schedule, int(steps), spacing)
    if solver == "ddim":
        return ddim(model, schedule, z, grid, float(eta), draw)
    if solver == "dpmpp_2m":
        return dpmpp_2m(model, schedule, z, grid)
    return heun(model, schedule, z, grid)
