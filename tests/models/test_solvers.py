"""Solvers of the v-prediction denoiser: exact on a point mass, convergent on a Gaussian toy, seeded."""

from __future__ import annotations

import pytest
import torch

from pdeldm.models.denoiser import LatentDenoiser
from pdeldm.models.samplers import NoiseSchedule, per_sample_noise
from pdeldm.models.solvers import (
    SOLVERS,
    CountingModel,
    check_solver,
    evaluations,
    sample,
    steps_for_evaluations,
    timestep_grid,
)

SCHEDULE = NoiseSchedule(1000)


def _point_mass_denoiser(s: NoiseSchedule, x0: torch.Tensor):
    """The perfect denoiser of a data distribution concentrated on ``x0``: v from the true eps."""

    def model(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sig = s.alpha_sigma(t)
        eps = (z_t - a * x0) / sig
        return a * eps - sig * x0

    return model


def _gaussian_denoiser(s: NoiseSchedule, mu: torch.Tensor, std: torch.Tensor):
    """The perfect denoiser of x0 ~ N(mu, std^2) per element: E[x0 | z_t] in closed form, as v."""

    def model(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sig = s.alpha_sigma(t)
        a, sig = a.double(), sig.double()
        z = z_t.double()
        x0 = mu + a * std ** 2 / (a ** 2 * std ** 2 + sig ** 2) * (z - a * mu)
        eps = (z - a * x0) / sig
        return (a * eps - sig * x0).float()

    return model


def _gaussian_flow_endpoint(s: NoiseSchedule, mu: torch.Tensor, std: torch.Tensor, z_T: torch.Tensor) -> torch.Tensor:
    """Where the exact probability-flow ODE takes ``z_T`` (marginals stay Gaussian: a linear map)."""
    a, sig = s.alphas[-1].double(), s.sigmas[-1].double()
    return (mu + std * (z_T.double() - a * mu) / torch.sqrt(a ** 2 * std ** 2 + sig ** 2)).float()


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps", [1, 2, 7, 25])
@pytest.mark.parametrize("spacing", ["uniform", "logsnr", "karras"])
def test_every_solver_recovers_x0_exactly_with_a_perfect_denoiser(solver: str, steps: int, spacing: str) -> None:
    torch.manual_seed(0)
    x0 = torch.randn(3, 4, 5, 5)  # a Gaussian draw, then the data distribution concentrated on it
    out = sample(_point_mass_denoiser(SCHEDULE, x0), SCHEDULE, tuple(x0.shape), solver=solver, steps=steps,
                 spacing=spacing)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_converges_to_the_exact_flow_of_a_gaussian_toy(solver: str) -> None:
    torch.manual_seed(1)
    mu, std = torch.randn(1, 2, 4, 4).double(), (0.2 + torch.rand(1, 2, 4, 4)).double()
    z_T = torch.randn(64, 2, 4, 4)
    exact = _gaussian_flow_endpoint(SCHEDULE, mu, std, z_T)
    model = _gaussian_denoiser(SCHEDULE, mu, std)
    out = sample(model, SCHEDULE, tuple(z_T.shape), solver=solver, steps=steps_for_evaluations(solver, 400),
                 z_T=z_T)
    assert float(((out - exact) ** 2).mean().sqrt()) < 0.01


def test_second_order_solvers_beat_ddim_at_equal_evaluations_on_the_gaussian_toy() -> None:
    torch.manual_seed(2)
    mu, std = torch.randn(1, 2, 4, 4).double(), (0.2 + torch.rand(1, 2, 4, 4)).double()
    z_T = torch.randn(64, 2, 4, 4)
    exact = _gaussian_flow_endpoint(SCHEDULE, mu, std, z_T)
    model = _gaussian_denoiser(SCHEDULE, mu, std)

    def error(solver: str, spacing: str) -> float:
        out = sample(model, SCHEDULE, tuple(z_T.shape), solver=solver, steps=steps_for_evaluations(solver, 16),
                     spacing=spacing, z_T=z_T)
        return float(((out - exact) ** 2).mean().sqrt())

    spacings = ("uniform", "logsnr", "karras")
    ddim_error = min(error("ddim", spacing) for spacing in spacings)
    assert min(error("dpmpp_2m", spacing) for spacing in spacings) < 0.2 * ddim_error
    assert min(error("heun", spacing) for spacing in spacings) < ddim_error


def _toy_ensemble_std(solver: str, steps: int, spacing: str = "uniform", eta: float = 0.0,
                      std: float = 0.4) -> tuple[float, float]:
    """Mean and std of 4000 samples of the Gaussian toy N(1.5, std^2) (one element each)."""
    mu = torch.tensor(1.5).double()
    torch.manual_seed(4)
    out = sample(_gaussian_denoiser(SCHEDULE, mu, torch.tensor(std).double()), SCHEDULE, (4000, 1, 1, 1),
                 solver=solver, steps=steps, eta=eta, spacing=spacing)
    return float(out.mean()), float(out.std())


def test_stochastic_ddim_with_every_timestep_samples_the_gaussian_toy() -> None:
    mean, std = _toy_ensemble_std("ddim", 1000, eta=1.0)
    assert mean == pytest.approx(1.5, abs=0.03)
    assert std == pytest.approx(0.4, rel=0.05)


def test_few_step_ddim_shrinks_the_spread_and_dpm_solver_keeps_it() -> None:
    # Euler's step over the bend of the flow near sigma ~ std pulls every sample towards the mean:
    # with a perfect denoiser, 20 DDIM steps on t-uniform timesteps give a std a fifth too small
    # for data of std 0.2 (in units of the noise), the second-order solver at 16 evaluations does not.
    assert _toy_ensemble_std("ddim", 20, std=0.2)[1] < 0.8 * 0.2
    assert _toy_ensemble_std("dpmpp_2m", 16, "logsnr", std=0.2)[1] == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize(("solver", "eta"), [("ddim", 0.0), ("ddim", 1.0), ("dpmpp_2m", 0.0), ("heun", 0.0)])
def test_a_solver_with_fixed_noise_gives_identical_output_twice(solver: str, eta: float) -> None:
    torch.manual_seed(3)
    net = LatentDenoiser(2, 3, 1, {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                                   "cond_channels": 4, "middle_attention": False}, downsample=2).eval()
    cond = net.condition(torch.randn(2, 3, 4, 4), torch.randn(2, 1, 8, 8), (4, 4))

    def run() -> torch.Tensor:
        gens = [torch.Generator().manual_seed(10 + i) for i in range(2)]
        return sample(lambda z, t: net(z, t, cond=cond), SCHEDULE, (2, 2, 4, 4), solver=solver, steps=6, eta=eta,
                      noise=per_sample_noise(gens, "cpu"))

    first, second = run(), run()
    assert torch.equal(first, second)
    assert torch.isfinite(first).all()


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps", [1, 2, 8])
def test_denoiser_evaluations_are_counted_as_documented(solver: str, steps: int) -> None:
    x0 = torch.zeros(1, 1, 2, 2)
    counter = CountingModel(_point_mass_denoiser(SCHEDULE, x0))
    sample(counter, SCHEDULE, (1, 1, 2, 2), solver=solver, steps=steps)
    assert counter.calls == evaluations(solver, steps)
    assert evaluations(solver, steps_for_evaluations(solver, 16)) <= 16


@pytest.mark.parametrize("spacing", ["uniform", "logsnr", "karras"])
@pytest.mark.parametrize("steps", [1, 2, 5, 100, 1000])
def test_timestep_grids_are_distinct_and_descend_from_the_last_timestep(spacing: str, steps: int) -> None:
    grid = timestep_grid(SCHEDULE, steps, spacing)
    assert len(grid) == steps and len(set(grid)) == steps
    assert grid[0] == 999 and grid == sorted(grid, reverse=True) and grid[-1] >= 0


def test_bad_solver_settings_are_refused_with_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="ddim, dpmpp_2m, heun"):
        check_solver("euler")
    with pytest.raises(ValueError, match="uniform, logsnr, karras"):
        check_solver("ddim", spacing="quadratic")
    with pytest.raises(ValueError, match="needs the ddim solver"):
        check_solver("heun", eta=0.5)
