"""Noise schedule, v-parameterisation algebra and the DDIM sampler (other solvers: :mod:`pdeldm.models.solvers`).

Notation (variance preserving): ``alpha_t = sqrt(abar_t)``, ``sigma_t = sqrt(1 - abar_t)``,
``alpha_t^2 + sigma_t^2 = 1``;

    z_t = alpha_t x0 + sigma_t eps,      v = alpha_t eps - sigma_t x0,
    x0  = alpha_t z_t - sigma_t v,       eps = sigma_t z_t + alpha_t v.

DDIM (Song et al. 2021) from t to the previous timestep s (``alpha_s = 1, sigma_s = 0`` after the
last step) with ``eta`` in [0, 1]:

    c   = eta * sqrt(sigma_s^2 / sigma_t^2 * (1 - alpha_t^2 / alpha_s^2))
    z_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c * noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

NoiseFn = Callable[[tuple[int, ...]], torch.Tensor]


class NoiseSchedule(nn.Module):
    """Discrete schedule of ``timesteps`` steps.

    ``kind``: ``linear`` (beta linear in t, the study's 1e-4..2e-2) or ``scaled_linear``
    (sqrt(beta) linear, as in Rombach et al.'s LDM code).
    """

    def __init__(self, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2,
                 kind: str = "linear") -> None:
        super().__init__()
        if kind == "linear":
            betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        elif kind == "scaled_linear":
            betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2
        else:
            raise ValueError(f"beta schedule must be 'linear' or 'scaled_linear', got {kind!r}")
        abar = torch.cumprod(1.0 - betas, dim=0)
        self.timesteps = timesteps
        # float32 buffers (float64 is unsupported on some accelerators); computed in float64 first.
        self.register_buffer("alphas", abar.sqrt().float(), persistent=False)
        self.register_buffer("sigmas", (1.0 - abar).sqrt().float(), persistent=False)

    def alpha_sigma(self, t: torch.Tensor, ndim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """``alpha_t``, ``sigma_t`` for integer timesteps ``t [B]``, shaped to broadcast on ``ndim`` dims."""
        shape = (-1,) + (1,) * (ndim - 1)
        return self.alphas[t].reshape(shape), self.sigmas[t].reshape(shape)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a, s = self.alpha_sigma(t, x0.dim())
        return a * x0 + s * eps

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a, s = self.alpha_sigma(t, x0.dim())
        return a * eps - s * x0

    def x0_from_v(self, z_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a, s = self.alpha_sigma(t, z_t.dim())
        return a * z_t - s * v

    def eps_from_v(self, z_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a, s = self.alpha_sigma(t, z_t.dim())
        return s * z_t + a * v


def ddim_timesteps(total: int, steps: int) -> list[int]:
    """``steps`` (distinct) timesteps from ``total - 1`` down to 0, evenly spaced."""
    if not 1 <= steps <= total:
        raise ValueError(f"DDIM steps must be in 1..{total}, got {steps}")
    ts = torch.linspace(total - 1, 0, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


def per_sample_noise(generators: Sequence[torch.Generator], device: torch.device | str,
                     dtype: torch.dtype = torch.float32) -> NoiseFn:
    """Noise function drawing each sample of a batch from its own (CPU) generator.

    Makes every sample reproducible from its seed whatever the batch composition.
    """

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        if shape[0] != len(generators):
            raise ValueError(f"batch of {shape[0]} but {len(generators)} generators")
        return torch.stack([torch.randn(shape[1:], generator=g) for g in generators]).to(device, dtype)

    return draw


def ddim_sample(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                shape: tuple[int, ...], steps: int = 50, eta: float = 0.0, noise: NoiseFn | None = None,
                device: torch.device | str = "cpu", z_T: torch.Tensor | None = None) -> torch.Tensor:
    """Sample ``x0`` with DDIM from a v-prediction ``model(z_t, t) -> v_hat``.

    Args:
        model: the denoiser with its conditioning bound (``t`` is an int64 tensor ``[B]``).
        schedule: the training noise schedule.
        shape: latent shape ``[B, C, h, w]``.
        steps: number of denoising steps; eta: 0 = deterministic DDIM, 1 = DDPM-like.
        noise: noise function (default ``torch.randn`` on ``device``); z_T: start latent.

    The other solvers (DPM-Solver++(2M), Heun) are in :mod:`pdeldm.models.solvers`.
    """
    from pdeldm.models.solvers import sample

    return sample(model, schedule, shape, "ddim", steps, eta, "uniform", noise, device, z_T)
