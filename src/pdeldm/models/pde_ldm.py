"""``pde_ldm``: PDE-informed fine-tuning of the latent diffusion model.

Loss ``L = L_diff + lambda_pde * L_PDE``. The PDE term is evaluated in pixel space, in kelvin,
on the physical grid, on the field the network currently *predicts*:

    x0_hat = alpha_t z_t - sigma_t v_hat                  (clean latent from the v-prediction)
    T_hat  = denorm( UNet mean + D(x0_hat / latent_scale) )   [K]

and then either

* ``flux_ratio``: ``|R(T_hat) - R(coarse t2m in K)|`` with the supercell flux ratio of
  :func:`pdeldm.physics.flux_ratio_loss` (fine spacing dx_m, dy_m; reference spacing factor*dx),
  divided by ``pde.scale`` metres (default: the cell's size ``cell * dx``) to make it O(1); or
* ``advection_diffusion``: the mean-square steady residual ``u.grad T - kappa lap T`` with the
  explicit ERA5 10-m wind of the batch, divided by ``pde.scale`` (K/s).

At high noise ``x0_hat`` is a blur, so the term can be restricted to ``t < pde.t_max``.

``pde.data_weight`` (default 0, the study's loss) adds ``data_weight * mean((T_hat - T)^2)`` (in
target-normalised units) on the same decoded field: without it the trainable decoder receives
gradients from L_PDE alone and can drift from the data to satisfy the physics term, which costs
RMSE (the study's trade-off); with it the fine-tuning has to satisfy both.

Only ``trainable_parts`` (dotted prefixes of parameter names, e.g. ``denoiser.middle_block``,
``autoencoder.decoder``) are updated; everything else keeps ``requires_grad=False``.
"""

from __future__ import annotations

from typing import Any

import torch

from pdeldm.errors import ConfigError
from pdeldm.models.base import Batch
from pdeldm.models.diffusion import LDMModel

DEFAULT_TRAINABLE = ["denoiser.middle_block", "denoiser.output_blocks", "denoiser.upsamplers", "denoiser.out",
                     "autoencoder.decoder"]


class PDELDMModel(LDMModel):
    """LDM fine-tuned with a physics loss on the decoded predicted clean field."""

    name = "pde_ldm"

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__(hp)
        pde = dict(self.cfg.get("pde") or {})
        self.pde_form = str(pde.get("form", "flux_ratio"))
        if self.pde_form not in ("flux_ratio", "advection_diffusion"):
            raise ConfigError(f"models.pde_ldm.pde.form must be 'flux_ratio' or 'advection_diffusion', "
                              f"got {self.pde_form!r}")
        self.lambda_pde = float(pde.get("lambda", 0.01))
        self.data_weight = float(pde.get("data_weight", 0.0))
        self.t_max = int(pde.get("t_max", self.schedule.timesteps // 2))
        self.cell = int(pde.get("cell", 2 * self.spec.factor))
        self.eps = float(pde.get("eps", 1e-6))
        self.sampling = str(pde.get("sampling", "faces"))
        self.kappa = float(pde.get("kappa", 1.0e3))
        default_scale = self.cell * self.spec.dx_m if self.pde_form == "flux_ratio" else 1e-4
        self.pde_scale = float(pde.get("scale") or default_scale)
        self.trainable_parts = list(self.cfg.get("trainable_parts") or DEFAULT_TRAINABLE)
        self.set_trainable(self.trainable_parts)

    def architecture_cfg(self) -> dict[str, Any]:
        return self.hp["sub"]["ldm"]["model"]

    def dependency_hparams(self) -> dict[str, Any]:
        return self.hp["sub"]["ldm"]["sub"]

    def set_trainable(self, parts: list[str]) -> None:
        """Freeze every parameter except those under the dotted prefixes ``parts``."""
        names = [n for n, _ in self.named_parameters() if not n.startswith("denoiser_ema.")]
        for part in parts:
            if not any(n == part or n.startswith(part + ".") for n in names):
                tops = sorted({".".join(n.split(".")[:2]) for n in names})
                raise ConfigError(f"models.pde_ldm.trainable_parts: '{part}' matches no parameter; "
                                  f"known prefixes: {', '.join(tops)}")
        for name, p in self.named_parameters():
            p.requires_grad_(any(name == part or name.startswith(part + ".") for part in parts)
                             and not name.startswith("denoiser_ema."))

    def predicted_field_kelvin(self, z_t: torch.Tensor, t: torch.Tensor, v_hat: torch.Tensor,
                               mean: torch.Tensor) -> torch.Tensor:
        """Decoded predicted clean field in K (``[B, 1, H, W]``, float32)."""
        x0_hat = self.schedule.x0_from_v(z_t.float(), t, v_hat.float())
        return self.spec.denormalise(self.decode(x0_hat, mean.float()))

    def pde_loss(self, batch: Batch, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Physics term on the samples with ``t < t_max`` (0 if there are none)."""
        return self.pixel_terms(batch, terms)[0]

    def pixel_terms(self, batch: Batch, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_PDE, L_data)`` on the decoded predicted clean field of the samples with ``t < t_max``.

        ``L_data`` is the mean-square error of that field against the target (normalised units),
        computed only when ``pde.data_weight`` > 0 (else 0): it anchors the trainable decoder to
        the data, which the latent diffusion loss does not (its only other gradient is L_PDE).
        """
        keep = terms["t"] < self.t_max
        zero = terms["loss"].new_zeros(())
        if not bool(keep.any()):
            return zero, zero
        # float32 throughout: in bf16 a temperature near 290 K is only resolved to ~1 K, and
        # finite differences of neighbouring values would be noise.
        with torch.autocast(device_type=self.device.type, enabled=False):
            field = self.predicted_field_kelvin(terms["z_t"][keep], terms["t"][keep], terms["v_hat"][keep],
                                                terms["mean"][keep])
            sub = {k: v[keep] for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim() == 4}
            pde = self.physics_term(field, sub)
            if self.data_weight <= 0:
                return pde, zero
            data = torch.mean(((field - self.spec.denormalise(sub["target"].float())) / self.spec.target_std) ** 2)
            return pde, data

    def physics_term(self, field_k: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The configured PDE loss of a field in K (dimensionless after scaling)."""
        from pdeldm.physics import advection_diffusion_loss, flux_ratio_loss

        dx, dy = self.spec.dx_m, self.spec.dy_m
        if self.pde_form == "flux_ratio":
            reference = self.spec.coarse_t2m_kelvin(batch["coarse"].float())
            f = field_k.shape[-1] // reference.shape[-1]
            loss = flux_ratio_loss(field_k, reference, cell=self.cell, dx=dx, dy=dy, eps=self.eps,
                                   reference_dx=f * dx, reference_dy=f * dy, sampling=self.sampling)
            return loss / self.pde_scale
        wind = batch["wind"].float()
        return advection_diffusion_loss(field_k, wind[:, 0:1], wind[:, 1:2], dx, dy, self.kappa,
                                        tendency=None, scale=self.pde_scale)

    def _losses(self, batch: Batch, denoiser: torch.nn.Module, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L, L_diff, L_PDE, L_data)`` with ``L = L_diff + lambda L_PDE + data_weight L_data``."""
        terms = self.diffusion_terms(batch, denoiser, generator)
        pde, data = self.pixel_terms(batch, terms)
        return terms["loss"] + self.lambda_pde * pde + self.data_weight * data, terms["loss"], pde, data

    def _log_losses(self, stage: str, batch: Batch, losses: tuple[torch.Tensor, ...]) -> None:
        names = ("loss", "diff", "pde", "data") if self.data_weight > 0 else ("loss", "diff", "pde")
        for name, value in zip(names, losses):
            self.log(f"{stage}_{name}", value, on_step=False, on_epoch=True, batch_size=batch["target"].shape[0],
                     sync_dist=stage == "val")

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch, self.denoiser)
        self._log_losses("train", batch, losses)
        return losses[0]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        gen = torch.Generator().manual_seed(7_919 * (batch_idx + 1))
        self._log_losses("val", batch, self._losses(batch, self.denoiser_ema.shadow, gen))

    def optimizer_cfg(self) -> dict[str, Any]:
        opt = {"lr": 1e-4, "betas": [0.5, 0.9], "weight_decay": 1e-3}
        opt.update(self.cfg.get("optimizer") or {})
        return opt
