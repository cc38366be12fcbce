"""``autoencoder``: compresses the UNet residual ``r = y - UNet(x)`` into an 8x smaller latent.

The diffusion model then only has to generate the (stochastic) fine-scale part that the
deterministic UNet cannot predict, in a space 64x smaller than the field.

Two regularisations (config ``kind``):

* ``vq`` (default): VQ-VAE. The codebook is updated either by exponential moving averages of the
  assigned encoder outputs (``codebook_update: ema``, stable, no codebook loss) or by gradient
  with the codebook loss (``straight_through``); the encoder gets gradients through the
  straight-through estimator plus a commitment loss ``beta * |z - sg(e)|^2``. Unused codes are
  re-seeded from encoder outputs (``restart_dead_codes``).
* ``kl``: KL-VAE with a diagonal Gaussian posterior and a weak KL penalty (``kl_weight``).

The latent handed to the diffusion model (:meth:`ResidualAutoencoder.encode`) is deterministic:
the quantised codes (vq) or the posterior mean (kl); :meth:`decode` maps any continuous latent
back, so the diffusion model's predictions need no re-quantisation and stay differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pdeldm.config import fill_defaults
from pdeldm.models.base import Batch, BaseModel, DataSpec, freeze, sub_state
from pdeldm.models.blocks import Downsample, ResBlock, Upsample, norm
from pdeldm.models.unet import ResidualUNet


def _stages(downsample: int, channel_mult: list[int]) -> int:
    stages = int(round(math.log2(downsample)))
    if 2 ** stages != downsample:
        raise ValueError(f"models.autoencoder.downsample must be a power of 2, got {downsample}")
    if len(channel_mult) != stages:
        raise ValueError(f"models.autoencoder.channel_mult needs {stages} entries (one per halving) "
                         f"for downsample={downsample}, got {channel_mult}")
    return stages


class Encoder(nn.Module):
    """``[B, in, H, W]`` -> ``[B, out, H/2^s, W/2^s]`` with one halving per entry of ``channel_mult``."""

    def __init__(self, in_channels: int, out_channels: int, base_channels: int, channel_mult: list[int],
                 num_res_blocks: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        layers: list[nn.Module] = []
        ch = base_channels
        for m in channel_mult:
            for _ in range(num_res_blocks):
                layers.append(ResBlock(ch, base_channels * m))
                ch = base_channels * m
            layers.append(Downsample(ch))
        layers += [ResBlock(ch, ch), norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.conv_in(x))


class Decoder(nn.Module):
    """Mirror of :class:`Encoder`: latent -> field, one doubling per entry of ``channel_mult``."""

    def __init__(self, in_channels: int, out_channels: int, base_channels: int, channel_mult: list[int],
                 num_res_blocks: int) -> None:
        super().__init__()
        ch = base_channels * channel_mult[-1]
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        layers: list[nn.Module] = [ResBlock(ch, ch)]
        for m in reversed(channel_mult):
            layers.append(Upsample(ch))
            for _ in range(num_res_blocks):
                layers.append(ResBlock(ch, base_channels * m))
                ch = base_channels * m
        layers += [norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.conv_in(z))


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation with EMA or gradient codebook updates.

    Args:
        n_codes: codebook size.
        dim: code dimension (= latent channels).
        beta: commitment loss weight.
        ema: update the codebook by EMA (else by the codebook loss through gradients).
        decay: EMA decay.
        restart_dead_codes: re-seed codes whose EMA usage falls below ``dead_threshold``.
    """

    def __init__(self, n_codes: int, dim: int, beta: float = 0.25, ema: bool = True, decay: float = 0.99,
                 eps: float = 1e-5, restart_dead_codes: bool = True, dead_threshold: float = 1e-2) -> None:
        super().__init__()
        self.n_codes, self.dim, self.beta = n_codes, dim, beta
        self.ema, self.decay, self.eps = ema, decay, eps
        self.restart_dead_codes, self.dead_threshold = restart_dead_codes, dead_threshold
        self.embedding = nn.Parameter(torch.randn(n_codes, dim) * 0.1, requires_grad=not ema)
        self.register_buffer("cluster_size", torch.ones(n_codes))
        self.register_buffer("embed_avg", self.embedding.detach().clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @staticmethod
    def _all_reduce(x: torch.Tensor) -> torch.Tensor:
        # Under DDP every rank must hold the same codebook: sum the statistics over ranks.
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(x)
        return x

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        """Seed the codebook with random encoder outputs (avoids most codes never being used)."""
        idx = torch.randint(0, flat.shape[0], (self.n_codes,), device=flat.device)
        codes = flat[idx] + 1e-3 * torch.randn_like(flat[idx])
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(codes, 0)
        self.embedding.data.copy_(codes)
        self.embed_avg.copy_(codes)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    def quantize(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of and nearest codes to the rows of ``flat [N, dim]``."""
        emb = self.embedding.float()
        dists = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ emb.t() + emb.pow(2).sum(1)[None]
        idx = dists.argmin(1)
        return idx, F.embedding(idx, emb)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        onehot = F.one_hot(idx, self.n_codes).type(flat.dtype)
        counts = self._all_reduce(onehot.sum(0))
        sums = self._all_reduce(onehot.t() @ flat)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        self.embed_avg.lerp_(sums, 1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.n_codes * self.eps) * n  # Laplace smoothing
        self.embedding.data.copy_(self.embed_avg / smoothed[:, None])
        if self.restart_dead_codes:
            dead = self.cluster_size < self.dead_threshold
            if bool(dead.any()):
                pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
                fresh = flat[pick]
                if dist.is_available() and dist.is_initialized():
                    dist.broadcast(fresh, 0)
                self.embedding.data[dead] = fresh
                self.embed_avg[dead] = fresh
                self.cluster_size[dead] = 1.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise ``z [B, C, H, W]``: returns (straight-through codes, loss, stats)."""
        b, c, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):  # distances in fp32
            zf = z.float()
            flat = zf.permute(0, 2, 3, 1).reshape(-1, c)
            if self.training and not bool(self.initialised):
                self._init_from(flat.detach())
            idx, q = self.quantize(flat.detach() if self.ema else flat)
            if self.training and self.ema:
                self._ema_update(flat.detach(), idx)
                idx, q = self.quantize(flat.detach())
            q = q.reshape(b, h, w, c).permute(0, 3, 1, 2)
            commitment = F.mse_loss(zf, q.detach())
            loss = self.beta * commitment if self.ema else F.mse_loss(q, zf.detach()) + self.beta * commitment
            q_st = zf + (q - zf).detach()  # straight-through: gradients pass to the encoder
            probs = torch.bincount(idx, minlength=self.n_codes).float() / idx.numel()
            perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return q_st.to(z.dtype), loss, {"perplexity": perplexity}


class ResidualAutoencoder(nn.Module):
    """Encoder, regulariser (vq | kl) and decoder of the residual field (1 channel)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        cfg = fill_defaults("models.autoencoder", cfg)
        self.kind = str(cfg["kind"])
        if self.kind not in ("vq", "kl"):
            raise ValueError(f"models.autoencoder.kind must be 'vq' or 'kl', got {self.kind!r}")
        self.downsample = int(cfg["downsample"])
        mult = list(cfg["channel_mult"])
        _stages(self.downsample, mult)
        self.latent_channels = int(cfg["latent_channels"])
        base, nrb = int(cfg["base_channels"]), int(cfg["num_res_blocks"])
        enc_out = self.latent_channels * (2 if self.kind == "kl" else 1)
        self.encoder = Encoder(1, enc_out, base, mult, nrb)
        self.decoder = Decoder(self.latent_channels, 1, base, mult, nrb)
        self.kl_weight = float(cfg["kl_weight"])
        if self.kind == "vq":
            vq = cfg["vq"]
            self.quantizer: VectorQuantizer | None = VectorQuantizer(
                int(vq["n_codes"]), self.latent_channels, beta=float(vq["beta"]),
                ema=str(vq["codebook_update"]) == "ema", decay=float(vq["decay"]),
                restart_dead_codes=bool(vq["restart_dead_codes"]))
        else:
            self.quantizer = None

    def regularise(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder output -> (latent for the decoder, regularisation loss, stats)."""
        if self.quantizer is not None:
            return self.quantizer(h)
        mean, logvar = h.chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return z, self.kl_weight * kl, {"kl": kl}

    def encode(self, r: torch.Tensor) -> torch.Tensor:
        """Deterministic latent of the residual (codes for vq, posterior mean for kl)."""
        h = self.encoder(r)
        if self.quantizer is not None:
            flat = h.float().permute(0, 2, 3, 1).reshape(-1, h.shape[1])
            _, q = self.quantizer.quantize(flat)
            return q.reshape(h.shape[0], h.shape[2], h.shape[3], h.shape[1]).permute(0, 3, 1, 2).to(h.dtype)
        return h.chunk(2, dim=1)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        z, reg, stats = self.regularise(self.encoder(r))
        return self.decoder(z), reg, stats


class AutoencoderModel(BaseModel):
    """Trains :class:`ResidualAutoencoder` on residuals of a frozen, pre-trained UNet."""

    name = "autoencoder"

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__(hp)
        unet_hp = hp["sub"]["unet"]
        self.unet = freeze(ResidualUNet(DataSpec.from_dict(unet_hp["spec"]), unet_hp["model"]))
        self.autoencoder = ResidualAutoencoder(self.cfg)

    @classmethod
    def sub_hparams(cls, checkpoints: dict[str, dict[str, Any]]) -> dict[str, Any]:
        unet = checkpoints["unet"]["hparams"]
        return {"unet": {"model": unet["model"], "spec": unet["spec"]}}

    @classmethod
    def config_sub_hparams(cls, block: Any, hparams: Any) -> dict[str, Any]:
        return {"unet": block("unet")}

    def load_dependencies(self, checkpoints: dict[str, dict[str, Any]]) -> None:
        self.unet.load_state_dict(sub_state(checkpoints["unet"]["state_dict"], "unet."))

    def train(self, mode: bool = True) -> AutoencoderModel:
        super().train(mode)
        self.unet.eval()  # frozen dependency stays in inference mode
        return self

    def residual(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            return batch["target"] - self.unet(batch["coarse"], batch["static"])

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        r = self.residual(batch)
        recon, reg, stats = self.autoencoder(r)
        rec = F.mse_loss(recon, r)
        loss = rec + reg
        bs = r.shape[0]
        on_step = False
        sync = stage == "val"
        self.log(f"{stage}_loss", loss, on_step=on_step, on_epoch=True, batch_size=bs, sync_dist=sync)
        self.log(f"{stage}_rec", rec, on_step=on_step, on_epoch=True, batch_size=bs, sync_dist=sync)
        for key, value in stats.items():
            self.log(f"{stage}_{key}", value, on_step=on_step, on_epoch=True, batch_size=bs, sync_dist=sync)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer([p for p in self.autoencoder.parameters() if p.requires_grad])
        scheduler = self.plateau_scheduler(optimizer)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}

    @torch.no_grad()
    def generate(self, batch: Batch, members: int = 1,
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """Reconstruction of the truth (needs ``target``): UNet mean + decoded residual latent."""
        mean = self.unet(batch["coarse"], batch["static"])
        return (mean + self.autoencoder.decode(self.autoencoder.encode(batch["target"] - mean)))[None]
