"""Forward/backward of every model on a tiny batch (no store, no Trainer)."""

from __future__ import annotations

import copy

import pytest
import torch

from pdeldm.models.autoencoder import AutoencoderModel, ResidualAutoencoder, VectorQuantizer
from pdeldm.models.base import DataSpec
from pdeldm.models.baselines import InterpolationModel
from pdeldm.models.diffusion import LDMModel
from pdeldm.models.gan import GANModel
from pdeldm.models.pde_ldm import PDELDMModel
from pdeldm.models.unet import UNet, UNetModel

H = W = 32
FACTOR = 8
META = {
    "factor": FACTOR, "dx_m": 12_000.0, "dy_m": 12_500.0, "predictors": ["t2m", "u10", "v10"],
    "static_vars": ["HSURF", "FR_LAND", "lat"],
    "norm": {"target": {"mean": 285.0, "std": 8.0},
             "coarse": {"t2m": {"mean": 284.0, "std": 7.0}, "u10": {"mean": 0.0, "std": 3.0},
                        "v10": {"mean": 0.0, "std": 3.0}},
             "static": {}},
}
SPEC = DataSpec.from_meta(META).to_dict()
UNET_CFG = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1}
AE_CFG = {"base_channels": 8, "channel_mult": [1, 1, 2], "latent_channels": 3, "vq": {"n_codes": 16}}
LDM_CFG = {"denoiser": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "cond_channels": 4},
           "diffusion": {"timesteps": 100}, "sampler": {"steps": 4}}


COEFFICIENTS = {"kappa": 2000.0, "tau_s": 10_800.0, "highpass_cells": 2.0, "margin_cells": 3,
                "residual_std": 1e-4, "source": {"HSURF": -6e-7, "FR_LAND_cos_solar": 1e-4}}


def batch(b: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(b, 1, H, W, generator=g)
    return {
        "coarse": torch.randn(b, 3, H // FACTOR, W // FACTOR, generator=g),
        "static": torch.randn(b, 3, H, W, generator=g),
        "target": target,
        "wind": 3 * torch.randn(b, 2, H, W, generator=g),
        "index": torch.arange(b),
        # fields of the equation-residual losses (the data module's physics_fields)
        "target_prev": target + 0.1 * torch.randn(b, 1, H, W, generator=g),
        "target_next": target + 0.1 * torch.randn(b, 1, H, W, generator=g),
        "surface": torch.stack([500 * torch.rand(b, H, W, generator=g), torch.rand(b, H, W, generator=g),
                                torch.full((b, H, W), 12.0)], dim=1),
        "phases": torch.rand(b, 2, generator=g),
    }


def hp(name: str, model: dict, sub: dict | None = None) -> dict:
    return {"name": name, "model": model, "spec": SPEC, "sub": sub or {}}


def ldm_hp() -> dict:
    return hp("ldm", LDM_CFG, {"unet": {"model": UNET_CFG, "spec": SPEC},
                               "autoencoder": {"model": AE_CFG, "spec": SPEC}})


def test_unet_shapes_and_padding() -> None:
    net = UNet(5, 2, base_channels=8, channel_mult=[1, 2, 4], num_res_blocks=1, zero_output=False)
    assert net(torch.randn(1, 5, 20, 28)).shape == (1, 2, 20, 28)  # padded to a multiple of 4, cropped back
    tnet = UNet(3, 3, base_channels=8, channel_mult=[1, 2], time_embedding=True, middle_attention=True)
    assert tnet(torch.randn(2, 3, 8, 8), torch.tensor([1, 50])).shape == (2, 3, 8, 8)


def test_interpolation_reproduces_coarse_t2m_in_kelvin() -> None:
    model = InterpolationModel(hp("interpolation", {}))
    b = batch()
    b["coarse"][:, 0] = (290.0 - 284.0) / 7.0  # uniform 290 K
    out = model.spec.denormalise(model.generate(b))
    assert out.shape == (1, 2, 1, H, W)
    torch.testing.assert_close(out, torch.full_like(out, 290.0))


def test_unet_model_starts_at_upsampled_t2m_and_learns() -> None:
    torch.manual_seed(0)
    model = UNetModel(hp("unet", UNET_CFG))
    b = batch()
    base = model.unet.base(b["coarse"], (H, W))
    torch.testing.assert_close(model(b["coarse"], b["static"]), base)  # zero-initialised residual
    loss = model._loss(b)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("loss", ["hinge", "nonsaturating"])
def test_gan_manual_step_updates_both_networks(loss: str) -> None:
    torch.manual_seed(0)
    model = GANModel(hp("gan", {**UNET_CFG, "loss": loss, "ema_decay": 0.9,
                                "discriminator": {"base_channels": 8, "n_layers": 2}}))
    opt_g, opt_d = model.configure_optimizers()
    g0 = copy.deepcopy(model.generator.state_dict())
    d0 = copy.deepcopy(model.discriminator.state_dict())
    # Drive the manual step outside a Trainer: stub Lightning's optimiser plumbing.
    model.optimizers = lambda: (opt_g, opt_d)  # type: ignore[method-assign]
    model.manual_backward = lambda loss, *a, **k: loss.backward()  # type: ignore[method-assign]
    model.toggle_optimizer = lambda opt: None  # type: ignore[method-assign]
    model.untoggle_optimizer = lambda opt: None  # type: ignore[method-assign]
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.training_step(batch(), 0)
    assert any(not torch.equal(v, model.generator.state_dict()[k]) for k, v in g0.items())
    assert any(not torch.equal(v, model.discriminator.state_dict()[k]) for k, v in d0.items())
    out = model.generate(batch(), generators=[torch.Generator().manual_seed(i) for i in range(2)])
    assert out.shape == (1, 2, 1, H, W) and torch.isfinite(out).all()


@pytest.mark.parametrize("update", ["ema", "straight_through"])
def test_vector_quantizer(update: str) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3, ema=update == "ema")
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    q, loss, stats = vq(z)
    assert q.shape == z.shape and bool(vq.initialised)
    (q.sum() + loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()  # straight-through reaches the encoder
    assert 1.0 <= float(stats["perplexity"]) <= 8.0
    vq.eval()
    codes = vq.quantize(z.detach().permute(0, 2, 3, 1).reshape(-1, 3))[1]
    assert all(any(torch.allclose(c, e) for e in vq.embedding) for c in codes)


@pytest.mark.parametrize("kind", ["vq", "kl"])
def test_autoencoder_model_step(kind: str) -> None:
    torch.manual_seed(0)
    model = AutoencoderModel(hp("autoencoder", {**AE_CFG, "kind": kind}, {"unet": {"model": UNET_CFG, "spec": SPEC}}))
    assert not any(p.requires_grad for p in model.unet.parameters())
    ae: ResidualAutoencoder = model.autoencoder
    r = torch.randn(2, 1, H, W)
    assert ae.encode(r).shape == (2, 3, H // 8, W // 8)
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.train()
    loss = model.training_step(batch(), 0)
    loss.backward()
    assert all(p.grad is None for p in model.unet.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.encoder.parameters())
    assert model.generate(batch()).shape == (1, 2, 1, H, W)


def test_ldm_step_and_sampling() -> None:
    torch.manual_seed(0)
    model = LDMModel(ldm_hp())
    model.estimate_latent_scale([batch(4, s) for s in range(2)])
    assert float(model.latent_scale) > 0
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.train()
    loss = model.training_step(batch(), 0)
    loss.backward()
    assert all(p.grad is None for p in model.unet.parameters())
    assert all(p.grad is None for p in model.autoencoder.parameters())
    assert any(p.grad is not None for p in model.denoiser.parameters())
    model.eval()
    gens = [torch.Generator().manual_seed(i) for i in range(6)]
    out = model.generate(batch(), members=3, generators=gens)
    assert out.shape == (3, 2, 1, H, W) and torch.isfinite(out).all()
    again = model.generate(batch(), members=3, generators=[torch.Generator().manual_seed(i) for i in range(6)])
    torch.testing.assert_close(out, again)  # seeded: reproducible
    assert not torch.allclose(out[0], out[1])  # independent noise: members differ


@pytest.mark.parametrize("form", ["flux_ratio", "advection_diffusion", "advection_diffusion_matched"])
def test_pde_ldm_step_trains_only_trainable_parts(form: str) -> None:
    torch.manual_seed(0)
    ldm = LDMModel(ldm_hp())
    ldm.estimate_latent_scale([batch(4)])
    # Make the zero-initialised output convs non-zero, as after LDM training, so gradients flow everywhere.
    with torch.no_grad():
        for p in ldm.denoiser.parameters():
            p.add_(1e-2 * torch.randn_like(p))
    pde_cfg = {"pde": {"form": form, "lambda": 1.0, "t_max": 100, "cell": 16, "coefficients": COEFFICIENTS},
               "trainable_parts": ["denoiser.middle_block", "denoiser.output_blocks", "denoiser.out",
                                   "autoencoder.decoder"],
               "optimizer": {"lr": 1e-2, "weight_decay": 1e-2}}
    model = PDELDMModel(hp("pde_ldm", pde_cfg, {"ldm": ldm.hp}))
    model.load_state_dict(ldm.state_dict())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("denoiser.middle_block", "denoiser.output_blocks", "denoiser.out",
                                           "autoencoder.decoder")) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("denoiser_ema.")}
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.train()
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    terms = model.diffusion_terms(batch(), model.denoiser)
    pde = model.pde_loss(batch(), terms)
    assert pde.requires_grad and torch.isfinite(pde)
    (terms["loss"] + pde).backward()
    # The physics term alone reaches the decoder (the diffusion loss never touches it).
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.autoencoder.decoder.parameters())
    optimizer.step()
    for name, p in model.named_parameters():
        if name in before:
            changed = not torch.equal(before[name], p.detach())
            if name in trainable:
                continue
            assert not changed, f"frozen parameter {name} changed"
    assert any(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if n in trainable)


def test_pde_ldm_rejects_unknown_part() -> None:
    from pdeldm.errors import ConfigError

    with pytest.raises(ConfigError, match="matches no parameter"):
        PDELDMModel(hp("pde_ldm", {"trainable_parts": ["denoiser.nope"]}, {"ldm": ldm_hp()}))


def test_pde_term_uses_kelvin_and_physical_spacing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The physics function gets the decoded predicted field in K and metres, not raw outputs."""
    import pdeldm.physics as physics

    seen: dict = {}

    def fake_flux(pred, reference, cell, dx, dy, eps, reference_dx, reference_dy, sampling):
        seen.update(pred=pred.detach(), reference=reference, dx=dx, dy=dy, rdx=reference_dx, rdy=reference_dy)
        return pred.mean() * 0

    monkeypatch.setattr(physics, "flux_ratio_loss", fake_flux)
    torch.manual_seed(0)
    model = PDELDMModel(hp("pde_ldm", {"pde": {"form": "flux_ratio", "t_max": 100}}, {"ldm": ldm_hp()}))
    model.estimate_latent_scale([batch(4)])
    b = batch()
    terms = model.diffusion_terms(b, model.denoiser)
    model.pde_loss(b, terms)
    expected = model.predicted_field_kelvin(terms["z_t"], terms["t"], terms["v_hat"], terms["mean"])
    torch.testing.assert_close(seen["pred"], expected.detach())
    assert 200 < float(seen["pred"].mean()) < 400  # kelvin
    assert seen["dx"] == 12_000.0 and seen["dy"] == 12_500.0
    assert seen["rdx"] == 8 * 12_000.0 and seen["rdy"] == 8 * 12_500.0
    torch.testing.assert_close(seen["reference"], b["coarse"][:, :1] * 7.0 + 284.0)


def test_pde_ldm_data_term_is_the_decoded_fields_error() -> None:
    """data_weight > 0 adds mean((T_hat - T)^2 / std^2) on the decoded predicted clean field."""
    torch.manual_seed(0)
    cfg = {"pde": {"form": "flux_ratio", "t_max": 100, "lambda": 0.5, "data_weight": 2.0}}
    model = PDELDMModel(hp("pde_ldm", cfg, {"ldm": ldm_hp()}))
    model.estimate_latent_scale([batch(4)])
    b = batch()
    terms = model.diffusion_terms(b, model.denoiser)
    pde, data = model.pixel_terms(b, terms)
    field = model.predicted_field_kelvin(terms["z_t"], terms["t"], terms["v_hat"], terms["mean"])
    expected = torch.mean(((field - model.spec.denormalise(b["target"])) / model.spec.target_std) ** 2)
    torch.testing.assert_close(data, expected)
    data.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.autoencoder.decoder.parameters())
    # The total is L_diff + lambda L_PDE + data_weight L_data (same draw of t and noise).
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    loss, diff, pde, data = model._losses(b, model.denoiser, gen())
    torch.testing.assert_close(loss, diff + 0.5 * pde + 2.0 * data)
    off = PDELDMModel(hp("pde_ldm", {"pde": {"form": "flux_ratio", "t_max": 100}}, {"ldm": ldm_hp()}))
    assert off.data_weight == 0.0


def test_control_computes_no_physics_and_validation_loss_excludes_it() -> None:
    """lambda = 0 is the control: the term is zero and not computed; val_loss never includes L_PDE."""
    torch.manual_seed(0)
    control = PDELDMModel(hp("pde_ldm", {"pde": {"form": "flux_ratio", "lambda": 0.0}}, {"ldm": ldm_hp()}))
    control.estimate_latent_scale([batch(4)])
    assert not control.physics_active
    loss, diff, pde, _ = control._losses(batch(), control.denoiser, torch.Generator().manual_seed(1))
    assert float(pde) == 0.0 and torch.equal(loss, diff)

    model = PDELDMModel(hp("pde_ldm", {"pde": {"form": "advection_diffusion_matched", "lambda": 3.0, "t_max": 100,
                                               "coefficients": COEFFICIENTS}}, {"ldm": ldm_hp()}))
    model.estimate_latent_scale([batch(4)])
    logged: dict[str, float] = {}
    model.log = lambda name, value, **_: logged.__setitem__(name, float(value.detach()))  # type: ignore[method-assign]
    model.validation_step(batch(), 0)
    assert logged["val_pde"] > 0
    assert logged["val_loss"] == pytest.approx(logged["val_diff"])
    assert logged["val_total"] == pytest.approx(logged["val_diff"] + 3.0 * logged["val_pde"], rel=1e-5)


def test_equation_forms_need_coefficients_and_the_matched_form_is_zero_at_the_truth() -> None:
    from pdeldm.errors import ConfigError

    with pytest.raises(ConfigError, match="identify_pde"):
        PDELDMModel(hp("pde_ldm", {"pde": {"form": "advection_diffusion"}}, {"ldm": ldm_hp()}))
    model = PDELDMModel(hp("pde_ldm", {"pde": {"form": "advection_diffusion_matched",
                                               "coefficients": COEFFICIENTS}}, {"ldm": ldm_hp()}))
    b = batch()
    truth = model.spec.denormalise(b["target"])
    assert float(model.physics_term(truth, b)) == 0.0
    assert float(model.physics_term(truth + 0.1 * torch.randn_like(truth), b)) > 0
    assert model.pde_scale == COEFFICIENTS["residual_std"] and not model.needs_physics_fields
