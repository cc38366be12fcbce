"""The UNet backbone and the deterministic UNet downscaling model (``unet``).

:class:`UNet` is a plain encoder-decoder with one skip connection per resolution level and an
optional timestep embedding (the latent denoiser reuses it). :class:`ResidualUNet` wraps it for
downscaling: it upsamples the coarse predictors (bilinear), stacks them with the static fields,
and predicts the *residual* over the upsampled coarse t2m, which it adds back — the network only
has to learn the fine-scale detail.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pdeldm.config import fill_defaults
from pdeldm.models.base import Batch, BaseModel, DataSpec
from pdeldm.models.blocks import (
    Downsample,
    EmbedSequential,
    ResBlock,
    SelfAttention,
    Upsample,
    norm,
    pad_to_multiple,
    timestep_embedding,
    zero_module,
)


class UNet(nn.Module):
    """UNet with ``len(channel_mult)`` levels (``len - 1`` halvings).

    Parameter groups are named so that parts can be frozen by prefix: ``input_conv``,
    ``input_blocks``, ``middle_block``, ``output_blocks``, ``out`` (and ``time_embed``).

    Args:
        in_channels, out_channels: channels of input and output.
        base_channels: channels at the first level; level i has ``base_channels * channel_mult[i]``.
        channel_mult: width multipliers per level (paper UNet: [1, 2, 4, 8] with base 64).
        num_res_blocks: residual blocks per level (encoder; the decoder has one more).
        time_embedding: add a sinusoidal timestep embedding (diffusion denoisers).
        attention_levels: level indices that get a self-attention after each res block.
        middle_attention: self-attention in the middle block.
        dropout: dropout inside residual blocks.
        zero_output: zero-initialise the output conv (the net starts by predicting 0).
    """

    def __init__(self, in_channels: int, out_channels: int, base_channels: int = 32,
                 channel_mult: tuple[int, ...] | list[int] = (1, 2, 4), num_res_blocks: int = 1,
                 time_embedding: bool = False, attention_levels: tuple[int, ...] | list[int] = (),
                 middle_attention: bool = False, dropout: float = 0.0, zero_output: bool = True) -> None:
        super().__init__()
        mult = list(channel_mult)
        self.levels = len(mult)
        emb_ch = 4 * base_channels if time_embedding else None
        self.base_channels = base_channels
        self.time_embed = (
            nn.Sequential(nn.Linear(base_channels, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
            if time_embedding else None
        )
        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        widths = [base_channels * m for m in mult]
        self.input_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        ch = base_channels
        for level, width in enumerate(widths):
            layers: list[nn.Module] = []
            for _ in range(num_res_blocks):
                layers.append(ResBlock(ch, width, emb_ch, dropout))
                ch = width
                if level in attention_levels:
                    layers.append(SelfAttention(ch))
            self.input_blocks.append(EmbedSequential(*layers))
            self.downsamplers.append(Downsample(ch) if level < self.levels - 1 else nn.Identity())
        middle: list[nn.Module] = [ResBlock(ch, ch, emb_ch, dropout)]
        if middle_attention:
            middle.append(SelfAttention(ch))
        middle.append(ResBlock(ch, ch, emb_ch, dropout))
        self.middle_block = EmbedSequential(*middle)
        self.output_blocks = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(self.levels)):
            width = widths[level]
            layers = [ResBlock(ch + width, width, emb_ch, dropout)]  # first block eats the skip
            ch = width
            for _ in range(num_res_blocks):
                layers.append(ResBlock(ch, width, emb_ch, dropout))
                if level in attention_levels:
                    layers.append(SelfAttention(ch))
            self.output_blocks.append(EmbedSequential(*layers))
            self.upsamplers.append(Upsample(ch, widths[level - 1]) if level > 0 else nn.Identity())
            if level > 0:
                ch = widths[level - 1]
        out_conv = nn.Conv2d(ch, out_channels, 3, padding=1)
        self.out = nn.Sequential(norm(ch), nn.SiLU(), zero_module(out_conv) if zero_output else out_conv)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this (inputs are padded up to it)."""
        return 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        emb = None
        if self.time_embed is not None:
            if t is None:
                raise ValueError("this UNet has a time embedding: pass the timesteps t")
            emb = self.time_embed(timestep_embedding(t, self.base_channels))
        x, (h, w) = pad_to_multiple(x, self.multiple)
        x = self.input_conv(x)
        skips = []
        for block, down in zip(self.input_blocks, self.downsamplers, strict=True):
            x = block(x, emb)
            skips.append(x)
            x = down(x)
        x = self.middle_block(x, emb)
        for block, up in zip(self.output_blocks, self.upsamplers, strict=True):
            x = block(torch.cat([x, skips.pop()], dim=1), emb)
            x = up(x)
        return self.out(x)[..., :h, :w]


def unet_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """UNet size settings from a model config block (``models.unet``, or ``models.gan`` for the
    generator, whose block has no ``dropout``); keys it lacks take ``models.unet``'s defaults."""
    cfg = fill_defaults("models.unet", cfg)
    return {
        "base_channels": int(cfg["base_channels"]),
        "channel_mult": list(cfg["channel_mult"]),
        "num_res_blocks": int(cfg["num_res_blocks"]),
        "dropout": float(cfg["dropout"]),
    }


class ResidualUNet(nn.Module):
    """Downscaling UNet: coarse predictors + static fields -> normalised fine T.

    ``forward`` returns ``base + net(inputs)`` where ``base`` is the bilinearly upsampled coarse t2m
    converted to the target's normalisation. ``noise_channels`` > 0 appends Gaussian noise maps to
    the input (GAN generator).
    """

    def __init__(self, spec: DataSpec, cfg: dict[str, Any], noise_channels: int = 0) -> None:
        super().__init__()
        self.spec = spec
        self.noise_channels = noise_channels
        in_ch = spec.n_coarse + spec.n_static + noise_channels
        self.net = UNet(in_ch, 1, **unet_kwargs(cfg))

    def upsample(self, coarse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Bilinear upsampling of the coarse predictors onto the fine grid."""
        return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)

    def base(self, coarse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Upsampled coarse t2m in target normalisation (the residual's reference)."""
        t2m = self.spec.coarse_t2m_in_target_norm(coarse)
        return F.interpolate(t2m, size=size, mode="bilinear", align_corners=False)

    def conditioning(self, coarse: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        """Network input without noise: upsampled predictors and static fields on the fine grid."""
        return torch.cat([self.upsample(coarse, tuple(static.shape[-2:])), static], dim=1)

    def forward(self, coarse: torch.Tensor, static: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        size = tuple(static.shape[-2:])
        x = self.conditioning(coarse, static)
        if self.noise_channels:
            if noise is None:
                noise = torch.randn(x.shape[0], self.noise_channels, *size, device=x.device, dtype=x.dtype)
            x = torch.cat([x, noise], dim=1)
        return self.base(coarse, size) + self.net(x)


class UNetModel(BaseModel):
    """``unet``: deterministic residual UNet trained with MSE on the normalised fine T."""

    name = "unet"

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__(hp)
        self.unet = ResidualUNet(self.spec, self.cfg)

    def forward(self, coarse: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        return self.unet(coarse, static)

    def _loss(self, batch: Batch) -> torch.Tensor:
        return F.mse_loss(self(batch["coarse"], batch["static"]), batch["target"])

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=batch["target"].shape[0])
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_epoch=True, batch_size=batch["target"].shape[0],
                 sync_dist=True)

    @torch.no_grad()
    def generate(self, batch: Batch, members: int = 1,
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
        return self(batch["coarse"], batch["static"])[None]
