"""``ldm``: latent diffusion of the UNet residual, v-parameterised, sampled with DDIM or a faster solver.

Pipeline for one sample: ``mean = UNet(coarse, static)``; the residual's latent ``z0 =
latent_scale * E(y - mean)`` is what the denoiser learns to generate, conditioned on the coarse
predictors and static fields; a sample is ``mean + D(z0_hat / latent_scale)``.

``latent_scale`` (= 1 / std of the training latents) is estimated once before training starts
(:meth:`LDMModel.estimate_latent_scale`) and kept as a buffer, so it travels in every checkpoint
and is restored on resume. The validation loss is computed with the EMA denoiser and a fixed
noise/timestep draw per batch, so it is comparable between epochs (early stopping, LR plateau).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pdeldm.models.autoencoder import ResidualAutoencoder
from pdeldm.errors import InputError
from pdeldm.models.base import Batch, BaseModel, DataSpec, freeze, sub_state
from pdeldm.models.denoiser import LatentDenoiser
from pdeldm.models.ema import EMA
from pdeldm.models.samplers import NoiseSchedule, per_sample_noise
from pdeldm.models.solvers import check_solver, sample
from pdeldm.models.unet import ResidualUNet


class LDMModel(BaseModel):
    """Latent diffusion model on top of a frozen UNet and a frozen residual autoencoder."""

    name = "ldm"
    stochastic = True

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__(hp)
        arch = self.architecture_cfg()
        sub = self.dependency_hparams()
        self.unet = freeze(ResidualUNet(DataSpec.from_dict(sub["unet"]["spec"]), sub["unet"]["model"]))
        self.autoencoder = freeze(ResidualAutoencoder(sub["autoencoder"]["model"]))
        self.denoiser = LatentDenoiser(self.autoencoder.latent_channels, self.spec.n_coarse, self.spec.n_static,
                                       arch["denoiser"], downsample=self.autoencoder.downsample)
        self.denoiser_ema = EMA(self.denoiser, float(self.cfg["ema_decay"]))
        diff = arch["diffusion"]
        self.schedule = NoiseSchedule(int(diff["timesteps"]), float(diff["beta_start"]),
                                      float(diff["beta_end"]), str(diff["beta_schedule"]))
        # 0 means "not estimated yet"; set by estimate_latent_scale before the first epoch.
        self.register_buffer("latent_scale", torch.zeros(()))
        sampler = {**arch["sampler"], **self.cfg["sampler"]}
        self.sampler_solver = str(sampler["solver"])
        self.sampler_steps = int(sampler["steps"])
        self.sampler_eta = float(sampler["eta"])
        self.sampler_spacing = str(sampler["spacing"])
        check_solver(self.sampler_solver, self.sampler_eta, self.sampler_spacing)

    @classmethod
    def sub_hparams(cls, checkpoints: dict[str, dict[str, Any]]) -> dict[str, Any]:
        ae = checkpoints["autoencoder"]["hparams"]  # it embeds the UNet it was trained on
        return {"unet": ae["sub"]["unet"], "autoencoder": {"model": ae["model"], "spec": ae["spec"]}}

    @classmethod
    def config_sub_hparams(cls, block: Any, hparams: Any) -> dict[str, Any]:
        return {"unet": block("unet"), "autoencoder": block("autoencoder")}

    def load_dependencies(self, checkpoints: dict[str, dict[str, Any]]) -> None:
        state = checkpoints["autoencoder"]["state_dict"]
        self.unet.load_state_dict(sub_state(state, "unet."))
        self.autoencoder.load_state_dict(sub_state(state, "autoencoder."))
        if "unet" in checkpoints:  # the autoencoder must have been trained on residuals of *this* UNet
            unet_state = sub_state(checkpoints["unet"]["state_dict"], "unet.")
            if any(not torch.equal(v, unet_state[k]) for k, v in self.unet.state_dict().items()):
                raise InputError(f"{checkpoints['autoencoder']['path']} was trained on a different UNet than "
                                 f"{checkpoints['unet']['path']}: retrain the autoencoder")

    # --- configuration plumbing (overridden by the PDE fine-tuning subclass) -------------------
    def architecture_cfg(self) -> dict[str, Any]:
        """The block that defines the denoiser and the diffusion process."""
        return self.cfg

    def dependency_hparams(self) -> dict[str, Any]:
        """Hyper-parameters of the UNet and autoencoder this model was built on."""
        return self.hp["sub"]

    def train(self, mode: bool = True) -> LDMModel:
        super().train(mode)
        self.unet.eval()  # frozen dependencies: inference mode (the quantiser must not update)
        self.autoencoder.eval()
        return self

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.denoiser, self.denoiser_ema)]

    # --- latent space ----------------------------------------------------------------------
    def _check_scale(self) -> torch.Tensor:
        if float(self.latent_scale) <= 0:
            raise RuntimeError("latent_scale is not set: call estimate_latent_scale() before training")
        return self.latent_scale

    @torch.no_grad()
    def unet_mean(self, batch: Batch) -> torch.Tensor:
        return self.unet(batch["coarse"], batch["static"])

    @torch.no_grad()
    def raw_latent(self, batch: Batch, mean: torch.Tensor | None = None) -> torch.Tensor:
        """Unscaled latent of the residual ``target - UNet mean``."""
        mean = self.unet_mean(batch) if mean is None else mean
        return self.autoencoder.encode(batch["target"] - mean)

    @torch.no_grad()
    def estimate_latent_scale(self, batches: Iterable[Batch], max_batches: int = 32) -> float:
        """Set ``latent_scale = 1 / std`` of the latents over up to ``max_batches`` batches."""
        total, total_sq, count = 0.0, 0.0, 0
        for i, batch in enumerate(batches):
            if i >= max_batches:
                break
            batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            z = self.raw_latent(batch).double()
            total += float(z.sum())
            total_sq += float((z ** 2).sum())
            count += z.numel()
        if count == 0:
            raise RuntimeError("no training batches to estimate the latent scale from")
        var = total_sq / count - (total / count) ** 2
        std = max(var, 1e-12) ** 0.5
        self.latent_scale.fill_(1.0 / std)
        return 1.0 / std

    def decode(self, z: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Scaled latent + UNet mean -> normalised fine field."""
        return mean + self.autoencoder.decode(z / self._check_scale())

    # --- diffusion loss --------------------------------------------------------------------
    def diffusion_terms(self, batch: Batch, denoiser: nn.Module,
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Draw (t, eps), noise the latent and predict v. Returns loss and intermediate tensors."""
        mean = self.unet_mean(batch)
        z0 = self.raw_latent(batch, mean) * self._check_scale()
        b = z0.shape[0]
        if generator is None:
            t = torch.randint(0, self.schedule.timesteps, (b,), device=z0.device)
            eps = torch.randn_like(z0)
        else:  # fixed draw (validation)
            t = torch.randint(0, self.schedule.timesteps, (b,), generator=generator).to(z0.device)
            eps = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
        z_t = self.schedule.q_sample(z0, t, eps)
        v_hat = denoiser(z_t, t, batch["coarse"], batch["static"])
        loss = F.mse_loss(v_hat.float(), self.schedule.v_target(z0, t, eps).float())
        return {"loss": loss, "z_t": z_t, "t": t, "v_hat": v_hat, "mean": mean}

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.diffusion_terms(batch, self.denoiser)["loss"]
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=batch["target"].shape[0])
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        gen = torch.Generator().manual_seed(7_919 * (batch_idx + 1))
        loss = self.diffusion_terms(batch, self.denoiser_ema.shadow, gen)["loss"]
        self.log("val_loss", loss, on_epoch=True, batch_size=batch["target"].shape[0], sync_dist=True)

    # --- sampling --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: Batch, members: int = 1,
                 generators: list[torch.Generator] | None = None, steps: int | None = None,
                 eta: float | None = None, max_batch: int = 256, solver: str | None = None,
                 spacing: str | None = None) -> torch.Tensor:
        """``members`` samples per batch item, ``[M, B, 1, H, W]`` (EMA denoiser).

        The sampler is the model's (``sampler`` config: solver, steps, eta, spacing) unless
        ``solver``, ``steps``, ``eta`` or ``spacing`` override it (:func:`pdeldm.models.solvers.sample`).
        Members are stacked along the batch dimension (up to ``max_batch`` latents per sampler
        run), so the ensemble costs one sampler pass per chunk, not one per member.
        ``generators``: one per (member, item), member-major.
        """
        mean = self.unet_mean(batch)
        z = self.sample_latents(batch, members, generators, steps, eta, max_batch, solver, spacing)
        b = mean.shape[0]
        per_run = max(1, max_batch // b)
        out = []
        for m0 in range(0, members, per_run):
            chunk = z[m0:m0 + per_run]
            decoded = self.decode(chunk.flatten(0, 1), mean.repeat(chunk.shape[0], 1, 1, 1))
            out.append(decoded.reshape(chunk.shape[0], b, *mean.shape[1:]))
        return torch.cat(out)

    @torch.no_grad()
    def sample_latents(self, batch: Batch, members: int = 1, generators: list[torch.Generator] | None = None,
                       steps: int | None = None, eta: float | None = None, max_batch: int = 256,
                       solver: str | None = None, spacing: str | None = None) -> torch.Tensor:
        """The scaled clean latents of :meth:`generate`, ``[M, B, C, h, w]`` (before decoding)."""
        solver = solver or self.sampler_solver
        if eta is None:  # the model's eta belongs to its own solver
            eta = self.sampler_eta if solver == self.sampler_solver else 0.0
        coarse, static = batch["coarse"], batch["static"]
        b = coarse.shape[0]
        ds = self.autoencoder.downsample
        h, w = static.shape[-2] // ds, static.shape[-1] // ds
        denoiser = self.denoiser_ema.shadow
        cond = denoiser.condition(coarse, static, (h, w))
        per_run = max(1, max_batch // b)
        out = []
        for m0 in range(0, members, per_run):
            k = min(per_run, members - m0)
            noise = None
            if generators is not None:
                noise = per_sample_noise(generators[m0 * b:(m0 + k) * b], self.device)
            cond_k = cond.repeat(k, 1, 1, 1)
            z = sample(lambda z_t, t: denoiser(z_t, t, cond=cond_k), self.schedule,
                       (k * b, self.autoencoder.latent_channels, h, w), solver=solver,
                       steps=steps or self.sampler_steps, eta=eta, spacing=spacing or self.sampler_spacing,
                       noise=noise, device=self.device)
            out.append(z.reshape(k, b, *z.shape[1:]))
        return torch.cat(out)
