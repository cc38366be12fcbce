"""``gan``: conditional GAN — residual UNet generator (+ noise channels) and a PatchGAN critic.

Training uses manual optimisation with two optimisers (discriminator step, then generator step).
The generator loss is ``content_weight * MSE + adversarial_weight * adversarial``; the adversarial
loss is the hinge loss or the non-saturating (softplus) loss (config ``loss``). The critic sees the
field's detail (field minus upsampled coarse t2m) stacked with the conditioning inputs, so it
judges the fine-scale structure rather than the large-scale state the content loss already fixes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pdeldm.models.base import Batch, BaseModel
from pdeldm.models.ema import EMA
from pdeldm.models.unet import ResidualUNet


class PatchDiscriminator(nn.Module):
    """PatchGAN critic: strided convs, one logit per receptive-field patch (``[B, 1, h', w']``)."""

    def __init__(self, in_channels: int, base_channels: int = 32, n_layers: int = 3,
                 spectral_norm: bool = True) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, base_channels, 4, 2, 1)), nn.LeakyReLU(0.2)]
        ch = base_channels
        for i in range(1, n_layers):
            nxt = base_channels * min(2 ** i, 8)
            layers += [sn(nn.Conv2d(ch, nxt, 4, 2, 1)), nn.LeakyReLU(0.2)]
            ch = nxt
        layers += [sn(nn.Conv2d(ch, ch, 3, 1, 1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(ch, 1, 3, 1, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Critic loss on real/fake logits."""
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    raise ValueError(f"models.gan.loss must be 'hinge' or 'nonsaturating', got {kind!r}")


def generator_adversarial_loss(fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Generator's adversarial loss on the critic's logits of generated fields."""
    if kind == "hinge":
        return -fake.mean()
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    raise ValueError(f"models.gan.loss must be 'hinge' or 'nonsaturating', got {kind!r}")


class GANModel(BaseModel):
    """Conditional GAN downscaler (deterministic at prediction: one member, fixed noise seed)."""

    name = "gan"

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__(hp)
        self.automatic_optimization = False  # two optimisers, alternating steps
        self.noise_channels = int(self.cfg["noise_channels"])
        self.generator = ResidualUNet(self.spec, self.cfg, noise_channels=self.noise_channels)
        disc = self.cfg["discriminator"]
        self.discriminator = PatchDiscriminator(
            1 + self.spec.n_coarse + self.spec.n_static,
            base_channels=int(disc["base_channels"]),
            n_layers=int(disc["n_layers"]),
            spectral_norm=bool(disc["spectral_norm"]),
        )
        self.loss_kind = str(self.cfg["loss"])
        self.content_weight = float(self.cfg["content_weight"])
        self.adversarial_weight = float(self.cfg["adversarial_weight"])
        ema_decay = float(self.cfg["ema_decay"])
        self.generator_ema = EMA(self.generator, ema_decay) if ema_decay > 0 else None

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.generator, self.generator_ema)] if self.generator_ema is not None else []

    def _inference_generator(self) -> ResidualUNet:
        return self.generator_ema.shadow if self.generator_ema is not None else self.generator

    def _critic(self, field: torch.Tensor, coarse: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        detail = field - self.generator.base(coarse, tuple(field.shape[-2:]))
        return self.discriminator(torch.cat([detail, cond], dim=1))

    def _noise(self, batch: Batch, generators: list[torch.Generator] | None, offset: int = 0) -> torch.Tensor:
        b = batch["target"].shape[0] if "target" in batch else batch["static"].shape[0]
        h, w = batch["static"].shape[-2:]
        if generators is None:
            return torch.randn(b, self.noise_channels, h, w, device=self.device)
        return torch.stack([torch.randn(self.noise_channels, h, w, generator=g)
                            for g in generators[offset:offset + b]]).to(self.device)

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        coarse, static, target = batch["coarse"], batch["static"], batch["target"]
        bs = target.shape[0]
        cond = self.generator.conditioning(coarse, static)
        clip = self.cfg["gradient_clip_val"]

        # Critic step on detached fakes.
        self.toggle_optimizer(opt_d)
        with torch.no_grad():
            fake = self.generator(coarse, static)
        loss_d = discriminator_loss(self._critic(target, coarse, cond), self._critic(fake, coarse, cond),
                                    self.loss_kind)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        if clip:
            self.clip_gradients(opt_d, gradient_clip_val=float(clip), gradient_clip_algorithm="norm")
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # Generator step (the critic's parameters are toggled off, so they get no gradient).
        self.toggle_optimizer(opt_g)
        fake = self.generator(coarse, static)
        content = F.mse_loss(fake, target)
        adversarial = generator_adversarial_loss(self._critic(fake, coarse, cond), self.loss_kind)
        loss_g = self.content_weight * content + self.adversarial_weight * adversarial
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        if clip:
            self.clip_gradients(opt_g, gradient_clip_val=float(clip), gradient_clip_algorithm="norm")
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.log("train_loss", content, on_step=False, on_epoch=True, batch_size=bs)
        self.log("train_adv_g", adversarial, on_step=False, on_epoch=True, batch_size=bs)
        self.log("train_loss_d", loss_d, on_step=False, on_epoch=True, batch_size=bs)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        # Fixed noise per batch index: the validation loss is comparable across epochs.
        gen = torch.Generator().manual_seed(1_000_003 * (batch_idx + 1))
        noise = torch.randn(batch["target"].shape[0], self.noise_channels, *batch["static"].shape[-2:],
                            generator=gen).to(self.device)
        pred = self._inference_generator()(batch["coarse"], batch["static"], noise)
        self.log("val_loss", F.mse_loss(pred, batch["target"]), on_epoch=True,
                 batch_size=batch["target"].shape[0], sync_dist=True)

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_cfg()
        betas = tuple(opt["betas"])
        lr_d = float(opt["lr_d"])
        opt_g = torch.optim.AdamW(self.generator.parameters(), lr=float(opt["lr"]), betas=betas,
                                  weight_decay=float(opt["weight_decay"]))
        opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=lr_d, betas=betas,
                                  weight_decay=float(opt["weight_decay"]))
        return [opt_g, opt_d]

    @torch.no_grad()
    def generate(self, batch: Batch, members: int = 1,
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
        return self._inference_generator()(batch["coarse"], batch["static"], self._noise(batch, generators))[None]
