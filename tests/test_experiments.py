"""Fine-tuning runs from the config: the named comparison and the lambda ablation, without duplicates."""

from __future__ import annotations

import pytest

from pdeldm.config import load_config
from pdeldm.errors import ConfigError
from pdeldm.experiments import ablation_run_name, fine_tuning_runs, run_for, run_models


def _cfg(**experiments):
    cfg = load_config()
    cfg["experiments"].update(experiments)
    return cfg


def test_named_runs_are_reused_and_the_grid_adds_the_rest():
    cfg = _cfg(lambdas=[0.0, 0.001, 0.01, 0.1], forms=["flux_ratio", "advection_diffusion_matched"], seeds=[7])
    runs = fine_tuning_runs(cfg)
    named = ["ldm_control", "pde_ldm_flux", "pde_ldm_adv"]
    assert list(runs)[:3] == named and all(runs[n].named for n in named)
    generated = [r for r in runs.values() if not r.named]
    # lambda 0 is the control and 0.01 is trained by the named runs: 2 forms x {0.001, 0.1}
    assert sorted(r.name for r in generated) == sorted(
        ablation_run_name(f, lam) for f in ("flux_ratio", "advection_diffusion_matched") for lam in (0.001, 0.1))
    assert all(r.seeds == (7,) for r in generated) and runs["pde_ldm_adv"].seeds == (1, 2, 3)
    assert run_for(cfg, "flux_ratio", 0.01) == "pde_ldm_flux"
    assert run_for(cfg, "advection_diffusion_matched", 0.0) == "ldm_control"
    assert run_for(cfg, "flux_ratio", 0.1) == "ablation_flux_l0p1"
    assert len(run_models(cfg)) == 3 * 3 + 4 * 1
    with pytest.raises(ConfigError, match="no fine-tuning run trains"):
        run_for(cfg, "advection_diffusion", 0.5)


def test_removing_a_lambda_removes_only_its_runs():
    full = fine_tuning_runs(_cfg(lambdas=[0.0, 0.001, 0.1]))
    fewer = fine_tuning_runs(_cfg(lambdas=[0.0, 0.1]))
    assert set(full) - set(fewer) == {ablation_run_name(f, 0.001) for f in ("flux_ratio", "advection_diffusion_matched")}
    assert all(full[name] == fewer[name] for name in fewer)
