"""v-parameterisation algebra, DDIM with a perfect denoiser, EMA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pdeldm.models.ema import EMA
from pdeldm.models.samplers import NoiseSchedule, ddim_sample, ddim_timesteps, per_sample_noise


def test_linear_schedule_matches_study() -> None:
    s = NoiseSchedule(1000, 1e-4, 2e-2, "linear")
    betas = 1 - (s.alphas.double() ** 2) / torch.cat([torch.ones(1, dtype=torch.float64), s.alphas.double()[:-1] ** 2])
    assert betas[0].item() == pytest.approx(1e-4, rel=1e-3)
    assert betas[-1].item() == pytest.approx(2e-2, rel=1e-3)
    torch.testing.assert_close(s.alphas ** 2 + s.sigmas ** 2, torch.ones(1000))


def test_x0_and_eps_recovered_exactly_from_true_v() -> None:
    torch.manual_seed(0)
    s = NoiseSchedule(1000)
    x0, eps = torch.randn(8, 4, 6, 6), torch.randn(8, 4, 6, 6)
    t = torch.tensor([0, 1, 10, 250, 500, 750, 998, 999])
    z_t = s.q_sample(x0, t, eps)
    v = s.v_target(x0, t, eps)
    torch.testing.assert_close(s.x0_from_v(z_t, t, v), x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s.eps_from_v(z_t, t, v), eps, atol=1e-5, rtol=1e-5)


def _perfect_denoiser(s: NoiseSchedule, x0: torch.Tensor):
    def model(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sig = s.alpha_sigma(t)
        eps = (z_t - a * x0) / sig
        return a * eps - sig * x0

    return model


@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_eta0_with_perfect_denoiser_recovers_x0(steps: int) -> None:
    torch.manual_seed(0)
    s = NoiseSchedule(1000)
    x0 = torch.randn(3, 4, 5, 5)
    out = ddim_sample(_perfect_denoiser(s, x0), s, tuple(x0.shape), steps=steps, eta=0.0)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_ddim_eta1_with_perfect_denoiser_also_recovers_x0_and_is_seeded() -> None:
    s = NoiseSchedule(1000)
    x0 = torch.randn(2, 4, 5, 5)
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    model, shape = _perfect_denoiser(s, x0), tuple(x0.shape)
    a = ddim_sample(model, s, shape, steps=20, eta=1.0, noise=per_sample_noise(gens(), "cpu"))
    b = ddim_sample(model, s, shape, steps=20, eta=1.0, noise=per_sample_noise(gens(), "cpu"))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, x0, atol=1e-3, rtol=1e-3)


def test_ddim_timesteps() -> None:
    assert ddim_timesteps(1000, 1) == [999]
    ts = ddim_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50 and ts == sorted(ts, reverse=True)


def test_ema_tracks_and_warms_up() -> None:
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.99)
    w0 = ema.shadow.weight.detach().clone()
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # first update: warm-up decay (1+0)/(10+0) = 0.1 -> mostly the new weights
    torch.testing.assert_close(ema.shadow.weight, 0.1 * w0 + 0.9 * torch.ones(2, 2))
    for _ in range(2000):
        ema.update(net)
    torch.testing.assert_close(ema.shadow.weight, net.weight)
    assert not any(p.requires_grad for p in ema.shadow.parameters())
    other = nn.Linear(2, 2)
    ema.copy_to(other)
    torch.testing.assert_close(other.weight, net.weight)
