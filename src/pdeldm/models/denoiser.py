"""Latent denoiser: a time-conditioned UNet on the latent grid, conditioned by concatenation.

The conditioning is an encoding of the coarse predictors (already at latent resolution, H/8,
since the coarse grid is aligned 8:1 and the autoencoder downsamples 8x) and of the static
fields, brought from H to H/8 by strided convolutions (learned, so sub-grid orography can be
summarised better than by averaging). Both encodings are stacked with the noisy latent ``z_t``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pdeldm.config import fill_defaults
from pdeldm.models.unet import UNet


class ConditionEncoder(nn.Module):
    """Coarse predictors ``[B, Cc, h, w]`` + static ``[B, Cs, H, W]`` -> features on the latent grid."""

    def __init__(self, n_coarse: int, n_static: int, channels: int, downsample: int) -> None:
        super().__init__()
        self.coarse = nn.Sequential(
            nn.Conv2d(n_coarse, channels, 3, padding=1), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))
        stages = int(round(math.log2(downsample)))
        layers: list[nn.Module] = []
        ch = n_static
        for _ in range(stages):
            layers += [nn.Conv2d(ch, channels, 3, stride=2, padding=1), nn.SiLU()]
            ch = channels
        layers.append(nn.Conv2d(ch, channels, 3, padding=1))
        self.static = nn.Sequential(*layers)
        self.out_channels = 2 * channels

    def forward(self, coarse: torch.Tensor, static: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # Resize guards against factor != autoencoder downsampling (the coarse grid then differs).
        c = self.coarse(coarse)
        if c.shape[-2:] != size:
            c = F.interpolate(c, size=size, mode="bilinear", align_corners=False)
        s = self.static(static)
        if s.shape[-2:] != size:
            s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
        return torch.cat([c, s], dim=1)


class LatentDenoiser(UNet):
    """v-prediction network ``v_hat = f(z_t, t | coarse, static)``.

    Submodule names (``cond_encoder``, ``time_embed``, ``input_conv``, ``input_blocks``,
    ``middle_block``, ``output_blocks``, ``out``) are what ``trainable_parts`` refers to.
    """

    def __init__(self, latent_channels: int, n_coarse: int, n_static: int, cfg: dict[str, Any],
                 downsample: int = 8) -> None:
        cfg = fill_defaults("models.ldm.denoiser", cfg)
        cond_ch = int(cfg["cond_channels"])
        super().__init__(
            latent_channels + 2 * cond_ch, latent_channels,
            base_channels=int(cfg["base_channels"]),
            channel_mult=list(cfg["channel_mult"]),
            num_res_blocks=int(cfg["num_res_blocks"]),
            time_embedding=True,
            attention_levels=list(cfg["attention_levels"]),
            middle_attention=bool(cfg["middle_attention"]),
            dropout=float(cfg["dropout"]),
        )
        self.cond_encoder = ConditionEncoder(n_coarse, n_static, cond_ch, downsample)

    def condition(self, coarse: torch.Tensor, static: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Conditioning features (computed once per sample and reused at every sampler step)."""
        return self.cond_encoder(coarse, static, size)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, coarse: torch.Tensor | None = None,  # type: ignore[override]
                static: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            if coarse is None or static is None:
                raise ValueError("pass either cond or both coarse and static")
            cond = self.condition(coarse, static, tuple(z_t.shape[-2:]))
        return super().forward(torch.cat([z_t, cond.to(z_t.dtype)], dim=1), t)
