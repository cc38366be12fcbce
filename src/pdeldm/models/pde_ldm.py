"""``pde_ldm``: PDE-informed fine-tuning of the latent diffusion model.

Loss ``L = L_diff + lambda_pde * L_PDE (+ data_weight * L_data)``. The PDE term is evaluated in
pixel space, in kelvin, on the physical grid, on the field the network currently *predicts*:

    x0_hat = alpha_t z_t - sigma_t v_hat                  (clean latent from the v-prediction)
    T_hat  = denorm( UNet mean + D(x0_hat / latent_scale) )   [K]

restricted to noise levels ``t < pde.t_max`` (at high noise ``x0_hat`` is a blur). Forms
(``pde.form``):

* ``flux_ratio`` (the study's, kept for reproduction): ``|R(T_hat) - R(coarse t2m in K)|`` with the
  supercell flux ratio of :func:`pdeldm.physics.flux_ratio_loss`, divided by ``pde.scale`` metres
  (default: the cell's size ``cell * dx``). Its best answer is not the truth: it rewards fields
  whose cell-edge gradients mimic the coarse input, and 50 gradient steps on it move the truth by
  well under a kelvin while more than halving it (``tests/physics/test_loss_ranking.py``).
* ``advection_diffusion``: the identified transport equation (:mod:`pdeldm.physics.identified_pde`)
  with the batch's explicit ERA5 wind, diffusion, relaxation, the static sources and the tendency
  from the target one hour before and after: ``mean((r(T_hat) / scale)^2)``, ``scale`` defaulting
  to the residual RMS of the truth on the training times. Weak: a 1-cell smoothing of the truth
  scores only a little worse than the truth (the residual of the truth is the forcing the equation
  does not know, and smoothing removes part of the response to it), so the loss barely pushes
  against over-smoothing.
* ``advection_diffusion_matched`` (the default proper form): the same equation, matched to the
  target's: ``mean((HP L(T_hat - T) / scale)^2)`` with ``L = u.grad - kappa lap + 1/tau``. The
  tendency and the sources cancel, and the only field with zero loss is the target itself: the
  prediction must satisfy the equation exactly as the truth does, forcing included. It weights
  errors by the physics: errors along the wind, in curvature and in amplitude.

The equation forms take their coefficients from ``pde.coefficients`` (the ``coefficients`` block
of ``results/physics/pde_coefficients.json``, injected by the training stage and stored in the
checkpoint).

``lambda`` = 0 with no data term is the control fine-tuning: the same steps, schedule and EMA
restart without a physics term (the term is then not even computed).

``val_loss`` (early stopping, LR plateau, checkpoint choice) is ``L_diff + data_weight L_data`` without
the physics term, which a model can game; ``val_pde`` is logged beside it.

Only ``trainable_parts`` (dotted prefixes of parameter names, e.g. ``denoiser.middle_block``,
``autoencoder.decoder``) are updated; everything else keeps ``requires_grad=False``.
"""

from __future__ import annotations

from typing import Any

import torch

from pdeldm.config import fill_defaults, schema_defaults
from pdeldm.errors import ConfigError
from pdeldm.models.base import Batch
from pdeldm.models.diffusion import LDMModel

FORMS = ("flux_ratio", "advection_diffusion", "advection_diffusion_matched")
EQUATION_FORMS = ("advection_diffusion", "advection_diffusion_matched")


class PDELDMModel(LDMModel):
    """LDM fine-tuned with a physics loss on the decoded predicted clean field."""

    name = "pde_ldm"

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__(hp)
        pde = self.cfg["pde"]
        self.pde_form = str(pde["form"])
        if self.pde_form not in FORMS:
            raise ConfigError(f"models.pde_ldm.pde.form must be one of {', '.join(FORMS)}, got {self.pde_form!r}")
        self.lambda_pde = float(pde["lambda"])
        self.data_weight = float(pde["data_weight"])
        self.t_max = int(pde["t_max"])
        self.cell = int(pde["cell"])
        self.eps = float(pde["eps"])
        self.sampling = str(pde["sampling"])
        self.coefficients = None
        if self.pde_form in EQUATION_FORMS:
            from pdeldm.physics.identified_pde import PDECoefficients

            if not pde.get("coefficients"):
                raise ConfigError(f"models.pde_ldm.pde.form '{self.pde_form}' needs the identified equation's "
                                  "coefficients (pde.coefficients, from results/physics/pde_coefficients.json: "
                                  "run the identify_pde rule)")
            self.coefficients = PDECoefficients.from_dict(pde["coefficients"])
        default_scale = (self.cell * self.spec.dx_m if self.pde_form == "flux_ratio"
                         else self.coefficients.residual_std)
        self.pde_scale = float(pde["scale"] or default_scale)
        #: The data module must supply the neighbouring hours and the source fields.
        self.needs_physics_fields = self.pde_form == "advection_diffusion" and self.physics_active
        # an empty list, like a missing one, means the schema's default parts
        self.trainable_parts = list(self.cfg["trainable_parts"]
                                    or schema_defaults("models.pde_ldm")["trainable_parts"])
        self.set_trainable(self.trainable_parts)

    @property
    def physics_active(self) -> bool:
        """False for the lambda = 0 control without a data term: nothing is decoded then."""
        return self.lambda_pde != 0 or self.data_weight > 0

    @classmethod
    def sub_hparams(cls, checkpoints: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"ldm": checkpoints["ldm"]["hparams"]}

    @classmethod
    def config_sub_hparams(cls, block: Any, hparams: Any) -> dict[str, Any]:
        return {"ldm": hparams("ldm")}

    def load_dependencies(self, checkpoints: dict[str, dict[str, Any]]) -> None:
        self.load_state_dict(checkpoints["ldm"]["state_dict"])
        # Restart the EMA warm-up: with the LDM's long-run decay the short fine-tuning would
        # hardly move the EMA weights that are exported and sampled from.
        self.denoiser_ema.num_updates.zero_()

    def architecture_cfg(self) -> dict[str, Any]:
        return fill_defaults("models.ldm", self.hp["sub"]["ldm"]["model"])

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
        if not bool(keep.any()) or not self.physics_active:
            return zero, zero
        # float32 throughout: in bf16 a temperature near 290 K is only resolved to ~1 K, and
        # finite differences of neighbouring values would be noise.
        with torch.autocast(device_type=self.device.type, enabled=False):
            field = self.predicted_field_kelvin(terms["z_t"][keep], terms["t"][keep], terms["v_hat"][keep],
                                                terms["mean"][keep])
            n = keep.shape[0]
            sub = {k: v[keep] for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim() > 1
                   and v.shape[0] == n}
            pde = self.physics_term(field, sub) if self.lambda_pde != 0 else zero
            if self.data_weight <= 0:
                return pde, zero
            data = torch.mean(((field - self.spec.denormalise(sub["target"].float())) / self.spec.target_std) ** 2)
            return pde, data

    def physics_term(self, field_k: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The configured PDE loss of a field in K (dimensionless after scaling)."""
        from pdeldm.physics import flux_ratio_loss
        from pdeldm.physics.identified_pde import equation_residual, matched_residual, source_fields

        dx, dy = self.spec.dx_m, self.spec.dy_m
        if self.pde_form == "flux_ratio":
            reference = self.spec.coarse_t2m_kelvin(batch["coarse"].float())
            f = field_k.shape[-1] // reference.shape[-1]
            loss = flux_ratio_loss(field_k, reference, cell=self.cell, dx=dx, dy=dy, eps=self.eps,
                                   reference_dx=f * dx, reference_dy=f * dy, sampling=self.sampling)
            return loss / self.pde_scale
        wind = batch["wind"].float()
        u, v = wind[:, 0:1], wind[:, 1:2]
        if self.pde_form == "advection_diffusion_matched":
            truth = self.spec.denormalise(batch["target"].float())
            residual = matched_residual(field_k, truth, u, v, dx, dy, self.coefficients)
        else:
            surface, phases = batch["surface"].float(), batch["phases"].float()
            sources = source_fields(surface[:, 0:1], surface[:, 1:2], surface[:, 2:3], phases[:, 0], phases[:, 1])
            residual = equation_residual(field_k, self.spec.denormalise(batch["target_prev"].float()),
                                         self.spec.denormalise(batch["target_next"].float()), u, v, sources, dx, dy,
                                         self.coefficients)
        return torch.mean((residual / self.pde_scale) ** 2)

    def _losses(self, batch: Batch, denoiser: torch.nn.Module, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L, L_diff, L_PDE, L_data)`` with ``L = L_diff + lambda L_PDE + data_weight L_data``."""
        terms = self.diffusion_terms(batch, denoiser, generator)
        pde, data = self.pixel_terms(batch, terms)
        return terms["loss"] + self.lambda_pde * pde + self.data_weight * data, terms["loss"], pde, data

    def _log(self, stage: str, batch: Batch, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            self.log(f"{stage}_{name}", value, on_step=False, on_epoch=True, batch_size=batch["target"].shape[0],
                     sync_dist=stage == "val")

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, diff, pde, data = self._losses(batch, self.denoiser)
        values = {"loss": loss, "diff": diff, "pde": pde}
        if self.data_weight > 0:
            values["data"] = data
        self._log("train", batch, values)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        gen = torch.Generator().manual_seed(7_919 * (batch_idx + 1))
        total, diff, pde, data = self._losses(batch, self.denoiser_ema.shadow, gen)
        # Checkpoint choice without the physics term, which a model could game.
        values = {"loss": diff + self.data_weight * data, "diff": diff, "pde": pde, "total": total}
        if self.data_weight > 0:
            values["data"] = data
        self._log("val", batch, values)

