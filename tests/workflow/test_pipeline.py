"""The tiny CI workflow runs for real, end to end, through the Snakemake CLI.

One module-scoped run (config/ci.yaml: a 64x64 region, three months) is shared by the tests:
outputs exist and metrics are finite; a second dry run has nothing to do; touching one model's
config block reruns only that model and what depends on it; the HTML report builds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from ci_workflow import job_counts

from pdeldm.config import load_config
from pdeldm.experiments import run_models

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
BASE_MODELS = ["interpolation", "unet", "gan", "ldm"]
RUNS = ["ldm_control", "pde_ldm_flux", "pde_ldm_adv"]

pytestmark = pytest.mark.slow


def _snakemake(workdir: Path, *args: str, overlays: list[Path] | None = None,
               timeout: int = 600) -> subprocess.CompletedProcess[str]:
    configfiles = [ROOT / "config" / "config.yaml", ROOT / "config" / "ci.yaml", workdir / "paths.yaml"]
    configfiles += overlays or []
    command = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", *map(str, configfiles), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def finished_run(ci_workflow_run: Path) -> Path:
    """The session's run of the CI workflow (tests/workflow/conftest.py)."""
    return ci_workflow_run


def test_ci_workflow_produces_tables_figures_and_finite_metrics(finished_run: Path):
    results = finished_run / "results"
    for name in ["summary.csv", "summary.md", "summary.tex", "robustness.csv", "robustness.md"]:
        assert (results / "tables" / name).stat().st_size > 0
    ci = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    # the robustness check takes each fine-tuning run's first seed (rows named by the run)
    robustness = pd.read_csv(results / "tables" / "robustness.csv")
    assert sorted(robustness["model"]) == sorted(BASE_MODELS + RUNS)
    assert np.isfinite(robustness[["rmse_store", "rmse_perfect"]].to_numpy()).all()
    for figure in ["metric_boxplots.png", "maps.png", "spectra.png", "calibration.png"]:
        assert (results / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    models = BASE_MODELS + [f"{run}/seed{seed}" for run in RUNS for seed in ci["finetune"]["seeds"]]
    for model in ["truth", *models]:
        metrics = pd.read_csv(results / "metrics" / f"{model}.csv")
        assert len(metrics) > 0
        numeric = metrics[["rmse", "mae", "bias", "r2", "pcc", "ssim", "pde_residual", "pde_residual_identified",
                           "spectral_slope_diff", "spectral_lsd", "grad_w1", "study_flux_ratio"]]
        assert np.isfinite(numeric.to_numpy()).all(), model
    # The fine-tuning runs carry their seed; the summary pools the seeds, the paired table compares
    # every run with the control and the control with the LDM.
    summary = pd.read_csv(results / "tables" / "summary.csv").set_index("model")
    assert summary.loc["pde_ldm_adv", "n_seeds"] == len(ci["finetune"]["seeds"])
    assert summary.loc["truth", "rmse_mean"] == 0.0
    paired = pd.read_csv(results / "tables" / "paired_differences.csv")
    assert set(zip(paired["model"], paired["reference"])) == {("pde_ldm_flux", "ldm_control"),
                                                              ("pde_ldm_adv", "ldm_control"), ("ldm_control", "ldm")}
    # the equation identified on the CI twin's training targets finds the twin's relaxation time
    fit = yaml.safe_load((results / "physics" / "pde_coefficients.json").read_text())
    twin = load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "ci.yaml")["twin"]["params"]
    assert fit["derived"]["tau_hours"] == pytest.approx(twin["tau_hours"], rel=0.1)


def test_experiment_tables_are_means_of_the_per_time_metrics(finished_run: Path):
    results = finished_run / "results"
    for figure in ["ablation_lambda.png", "ablation_tradeoff.png", "pde_forms.png"]:
        assert (results / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(results / "tables" / "ablation_lambda.csv", dtype={"seed": str})
    for _, row in table.iterrows():
        seeds = sorted((results / "metrics" / row["run"]).glob("seed*[0-9].csv"))
        per_seed = {p.stem.removeprefix("seed"): pd.read_csv(p)["rmse"].mean() for p in seeds}
        expected = np.mean(list(per_seed.values())) if row["seed"] == "mean" else per_seed[row["seed"]]
        assert row["rmse"] == pytest.approx(expected, rel=1e-5), row.to_dict()
    conditions = pd.read_csv(results / "experiments" / "wind_contrast_conditions.csv")
    forms = pd.read_csv(results / "tables" / "pde_forms.csv")
    assert set(forms["times"]) == {"all", "strong wind, weak contrast"} or not conditions["subset"].any()
    diagnostics = yaml.safe_load((results / "twin" / "italy_ci_diagnostics.json").read_text())
    predictability = diagnostics["predictability"]
    assert 0.0 < predictability["predictable_share_fine"] < 1.0
    # The truth satisfies the twin's PDE far better than an interpolated coarse field.
    assert predictability["pde_residual_rms_truth_K_per_h"] < 0.3 * predictability["pde_residual_rms_interpolated_K_per_h"]


def test_transfer_table_is_the_mean_of_each_cases_per_time_metrics(finished_run: Path):
    """Every row of the transfer table recomputed from its per-time CSV (seeds averaged per time),
    each region's interpolation as the reference; the figures and the paired table exist."""
    results = finished_run / "results"
    for figure in ["transfer_matrix.png", "transfer_models.png", "transfer_region_maps.png"]:
        assert (results / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(results / "tables" / "transfer_regions.csv")
    assert set(table["test"]) == {"italy_ci", "iberia_ci"} and set(table["train"]) == {"italy_ci", "iberia_ci"}

    def metrics_of(train: str, test: str, model: str) -> pd.DataFrame:
        if train == test == "italy_ci":
            folder = results / "metrics"
        else:
            folder = results / "transfer" / train / test / "metrics"
        # fine-tuning runs: the seeds of experiments.transfer.seeds (CI: seed 1)
        path = folder / f"{model}.csv" if (folder / f"{model}.csv").exists() else folder / model / "seed1.csv"
        return pd.read_csv(path)

    for _, row in table.iterrows():
        frame = metrics_of(row["train"], row["test"], row["model"])
        assert row["rmse"] == pytest.approx(frame.groupby("time")["rmse"].mean().mean(), rel=1e-5), row.to_dict()
        reference = metrics_of("italy_ci", row["test"], "interpolation")["rmse"].mean()
        assert row["rmse_vs_interpolation"] == pytest.approx(row["rmse"] - reference, abs=1e-4)  # CSV: 6 digits
    paired = pd.read_csv(results / "tables" / "transfer_paired.csv")
    assert {"unet@iberia_ci", "pde_ldm_adv@italy_ci"} <= set(paired["model"])
    assert (paired["ci95_low"] <= paired["ci95_high"]).all()


def test_ci_workflow_compares_the_twin_with_the_real_cosmo_clm_file(finished_run: Path):
    """The realism rule read the Debian-installed reference (skipped, saying so, where absent)."""
    from pdeldm.config import load_config
    from pdeldm.data.static import region_static
    from pdeldm.data.twin.realism import fine_scale_regression, reference_cells, reference_month

    reference = Path(load_config(ROOT / "config" / "config.yaml")["twin"]["realism"]["reference_file"])
    if not reference.is_file():
        pytest.skip(f"{reference} absent: apt-get install libncarg-data (.ci/run does)")
    results = finished_run / "results" / "twin"
    table = pd.read_csv(results / "realism.csv")
    assert sorted(table["source"]) == ["real", "twin"] and set(table["region"]) == {"italy_ci"}
    static = region_static(ROOT / "data" / "static" / "eur11_static.nc", {"rlat0": -9.405, "rlon0": -8.245,
                                                                             "ny": 64, "nx": 64})
    real = fine_scale_regression(reference_cells(reference_month(reference), static), static["HSURF"].values,
                                 static["FR_LAND"].values, 8)
    row = table[table["source"] == "real"].iloc[0]
    assert row["land_sea_K"] == pytest.approx(real["land_sea_K"], rel=1e-5)
    assert row["lapse_rate_K_per_km"] == pytest.approx(real["lapse_rate_K_per_km"], rel=1e-5)
    assert "| italy_ci |" in (results / "realism.md").read_text()
    assert (results / "realism.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ci_workflow_compares_ensembles_samplers_and_extremes(finished_run: Path):
    results = finished_run / "results"
    for figure in ["ensembles.png", "extremes_maps.png", "extremes_scores.png", "sampler_study.png"]:
        assert (results / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ci = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    ensembles = pd.read_csv(results / "tables" / "ensembles.csv").set_index("model")
    assert set(ensembles.index) == {"unet", "ldm", *RUNS, "perfect_model"}
    assert ensembles.loc["ldm_control", "n_seeds"] == len(ci["finetune"]["seeds"])
    assert ensembles.loc["ldm", "members"] == ci["evaluation"]["members"]
    # The UNet is the zero-spread reference: its CRPS is its MAE.
    assert ensembles.loc["unet", "spread"] == 0.0
    assert ensembles.loc["unet", "crps"] == pytest.approx(ensembles.loc["unet", "mae_member0"], rel=1e-9)
    for model in ["ldm", *RUNS]:
        row = ensembles.loc[model]
        assert 0.0 < row["spread_skill"] < 3.0 and row["spread_skill_ci95_low"] <= row["spread_skill_ci95_high"]
        counts = json.loads((results / "ensembles" / f"{model if model == 'ldm' else model + '/seed1'}_counts.json")
                            .read_text())
        # every grid point of every test time is ranked once
        times = pd.read_csv(results / "ensembles" / f"{model if model == 'ldm' else model + '/seed1'}_times.csv")
        assert sum(counts["rank_counts"]) == times["n_points"].sum()
    extremes = pd.read_csv(results / "tables" / "extremes.csv")
    assert {"event:hot", "event:cold", "times:hottest", "times:coldest", "times:all"} <= set(extremes["scope"])
    cases = json.loads((results / "extremes" / "cases.json").read_text())
    assert cases["hottest_case"] in cases["hottest_times"] and cases["coldest_case"] in cases["coldest_times"]
    study = pd.read_csv(results / "sampler_study" / "sampler_study.csv")
    assert {"ddim", "dpmpp_2m"} <= set(study["solver"]) and 100 in set(study["evaluations"])
    assert np.isfinite(study[["crps", "rmse", "spectral_lsd", "spread_skill"]].to_numpy()).all()
    sampler = load_config(ROOT / "config" / "ci.yaml")["models"]["ldm"]["sampler"]
    with xr.open_dataset(results / "predictions" / "ldm.nc") as ds:
        assert ds["T_2M"].dims == ("realization", "time", "rlat", "rlon")
        assert (ds.attrs["sampler_solver"], int(ds.attrs["sampler_steps"])) == (sampler["solver"], sampler["steps"])


def test_second_dry_run_has_nothing_to_do(finished_run: Path):
    result = _snakemake(finished_run, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def _job_messages(output: str) -> list[str]:
    """The `message:` of every planned job ("Job 12: Training gan")."""
    return [m.group(1) for m in re.finditer(r"^Job \d+: (.+)$", output, flags=re.MULTILINE)]


def test_touching_one_model_block_reruns_only_that_model_and_its_dependants(finished_run: Path):
    overlay = finished_run / "gan_changed.yaml"
    ci = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    gan = dict(ci.get("models", {}).get("gan", {}))
    gan["content_weight"] = float(gan.get("content_weight", 1.0)) * 2 + 1
    overlay.write_text(yaml.safe_dump({"models": {"gan": gan}}))
    result = _snakemake(finished_run, "--dry-run", overlays=[overlay])
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    counts = job_counts(output)
    assert counts == {"train": 1, "predict": 1, "evaluate": 1, "summary_table": 1, "figure_boxplots": 1,
                      "figure_maps": 1, "figure_spectra": 1, "figure_calibration": 1, "figure_training": 1,
                      "experiment_page": 1, "predict_perfect_input": 1, "evaluate_perfect_input": 1,
                      "robustness_table": 1, "job_costs": 1, "figure_job_costs": 1, "all": 1}, counts
    messages = _job_messages(output)
    assert "Training gan" in messages and "Scoring gan on the test period" in messages, messages
    for other in ["interpolation", "unet", "autoencoder", "ldm", *RUNS]:
        assert not any(message.endswith(f" {other}") or f" {other} " in message for message in messages), messages


@pytest.mark.parametrize("target", ["ablation_lambda", "pde_forms", "transfer_regions"])
def test_each_experiment_reruns_alone(finished_run: Path, target: str):
    """`--forcerun T --until T` on a finished run redoes the experiment's own job and nothing else."""
    result = _snakemake(finished_run, "--dry-run", "--forcerun", target, "--until", target)
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result.stdout + result.stderr) == {target: 1}


def test_every_job_of_the_run_has_a_cost_record(finished_run: Path):
    """results/benchmarks/jobs.csv: one row per job that ran (the collection and its figure run after it)."""
    jobs = pd.read_csv(finished_run / "results" / "benchmarks" / "jobs.csv")
    # the named runs with every seed, and the lambda ablation's runs that are not named runs
    n_runs = len(run_models(load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "ci.yaml")))
    counts = jobs["rule"].value_counts().to_dict()
    assert counts["train"] == 5 and counts["finetune"] == n_runs
    assert counts["predict"] == counts["evaluate"] == len(BASE_MODELS) + n_runs
    for rule in ["identify_pde", "evaluate_truth", "summary_table", "paired_differences", "figure_maps",
                 "data_page", "experiment_page", "transfer_regions"]:
        assert counts.get(rule) == 1, (rule, counts)
    for rule in ["static_region", "twin", "store"]:  # the CI region and the transfer experiment's other one
        assert counts.get(rule) == 2, (rule, counts)
    assert len(jobs) == len(jobs[["rule", "job"]].drop_duplicates())
    assert (jobs["wall_s"] > 0).all()
    # every job ran its stage through workflow/scripts/stage.py, which timed it
    assert jobs["stage_s"].notna().all() and (jobs["stage_s"] <= jobs["wall_s"] + 1.0).all()
    trainings = jobs[jobs["rule"].isin(["train", "finetune"]) & (jobs["job"] != "interpolation")]
    assert (trainings["cpu_s"] > 0).all() and (trainings["threads_max"] >= 1).all()
    summary = yaml.safe_load((finished_run / "results" / "benchmarks" / "jobs_summary.json").read_text())
    assert summary["jobs"] == len(jobs) and summary["cores"] == 2
    assert 0.0 < summary["outside_stage_share"] < 1.0 and 0.0 < summary["core_utilisation"] <= 1.05
    page = (finished_run / "results" / "report" / "costs.html").read_text()
    assert "Where the time goes" in page and "finetune" in page
    assert (finished_run / "results" / "figures" / "job_costs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_report_builds(finished_run: Path):
    result = _snakemake(finished_run, "--report", "results/report.html", "--cores", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (finished_run / "results" / "report.html").read_text(errors="ignore")
    assert "<html" in html.lower() and len(html) > 50_000


def test_pdeldm_downscale_reproduces_the_workflow_predictions(finished_run: Path):
    """The console script on the twin's ERA5 files gives the workflow's test predictions of the
    ensemble models, the LDM and a fine-tuning run (trained with its own seed, sampled with the
    workflow's): same times, same members, same fields."""
    script = Path(sys.executable).with_name("pdeldm")
    era5 = sorted((finished_run / "resources" / "twin" / "italy_ci" / "era5").glob("era5_2001_03.nc"))
    for model in ["ldm", "pde_ldm_adv/seed1"]:
        out = finished_run / "downscaled" / f"{model}.nc"
        command = [str(script), "downscale", "--checkpoint", str(finished_run / "results" / "models" / model / "model.ckpt"),
                   "--era5", *map(str, era5), "--static", str(finished_run / "resources" / "static" / "italy_ci.nc"),
                   "--out", str(out), "--start", "2001-03-01", "--end", "2001-03-31", "--stride", "24",
                   "--members", "3"]  # evaluation.members of config/ci.yaml
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        with xr.open_dataset(out) as got, xr.open_dataset(finished_run / "results" / "predictions" / f"{model}.nc") as want:
            assert got.sizes["realization"] == want.sizes["realization"] == 3
            np.testing.assert_array_equal(got["time"].values, want["time"].values)
            # equal up to float32 rounding of the remap (another number of times per call)
            np.testing.assert_allclose(got["T_2M"].values, want["T_2M"].values, atol=1e-3, rtol=0)
