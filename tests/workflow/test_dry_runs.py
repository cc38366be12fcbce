"""Dry runs of the real Snakefile: what a user sees before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from ci_workflow import job_counts

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(tmp_path: Path, *overlays: Path, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    paths = tmp_path / "paths.yaml"
    paths.write_text(yaml.safe_dump({"paths": {"static_source": str(ROOT / "data" / "static" / "eur11_static.nc")}}))
    configfiles = [ROOT / "config" / "config.yaml", paths, *overlays]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDSAPI")}
    env["HOME"] = str(tmp_path)  # no ~/.cdsapirc
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
               str(tmp_path), "--dry-run", "--configfile", *map(str, configfiles), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def test_default_dry_run_plans_the_whole_dag(tmp_path):
    result = _dry_run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for rule in ["static_region", "twin", "store", "train", "predict", "evaluate", "summary_table",
                 "figure_boxplots", "figure_maps", "figure_spectra", "figure_calibration", "identify_pde",
                 "paired_differences", "ablation_lambda", "pde_forms"]:
        assert f"rule {rule}:" in out or f"{rule} " in out, rule


def test_experiments_plan_one_fine_tune_per_lambda_form_and_seed_and_no_more(tmp_path):
    """Named runs x finetune.seeds, plus the ablation's (form, lambda) pairs that no named run
    trains x experiments.seeds; one prediction and evaluation per model; removing a lambda from
    the config removes exactly its jobs."""
    from pdeldm.config import load_config
    from pdeldm.experiments import run_models

    cfg = load_config()
    expected = run_models(cfg)
    counts = job_counts(_dry_run(tmp_path).stdout)
    assert counts["finetune"] == len(expected) == 3 * len(cfg["finetune"]["seeds"]) + 2
    assert counts["predict"] == counts["evaluate"] == 4 + len(expected)  # + interpolation, unet, gan, ldm
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(yaml.safe_dump({"experiments": {"lambdas": [0.0, 0.01]}}))
    reduced = job_counts(_dry_run(tmp_path, fewer).stdout)
    assert counts["finetune"] - reduced["finetune"] == 2  # lambda 0.1 of the two forms, one seed each


def test_transfer_plans_one_evaluation_per_model_and_region_and_no_more(tmp_path):
    """Models trained on data.region: one prediction and evaluation on each other region; the
    matrix models: trained once per other region and evaluated on every region; (data.region,
    data.region) is the main run's own evaluation. Removing a region removes exactly its jobs."""
    from pdeldm.config import load_config
    from pdeldm.experiments import fine_tuning_runs

    cfg = load_config()
    transfer, main = cfg["experiments"]["transfer"], cfg["data"]["region"]
    others = [r for r in transfer["regions"] if r != main]
    named = [name for name, run in fine_tuning_runs(cfg).items() if run.named]
    from_main = len({"interpolation", *transfer["evaluate"]}) + len(named) * len(transfer["seeds"])
    matrix = len(transfer["models"]) * len(others) * len(transfer["regions"])
    counts = job_counts(_dry_run(tmp_path).stdout)
    assert len(others) >= 2 and transfer["models"] == ["unet"]  # the default is a real matrix
    assert counts["predict_transfer"] == counts["evaluate_transfer"] == from_main * len(others) + matrix
    assert counts["train_in_region"] == len(others)  # the UNet needs no other model
    assert counts["twin"] == counts["store"] == len(transfer["regions"])
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(yaml.safe_dump({"experiments": {"transfer": {"regions": transfer["regions"][:-1]}}}))
    reduced = job_counts(_dry_run(tmp_path, fewer).stdout)
    n = len(transfer["regions"])
    # on the removed region: the models from data.region, and the UNets of the other n - 2 regions;
    # the UNet trained on the removed region, on all n regions
    assert counts["evaluate_transfer"] - reduced["evaluate_transfer"] == from_main + (n - 2) + n
    assert (counts["train_in_region"] - reduced["train_in_region"], counts["twin"] - reduced["twin"]) == (1, 1)


def test_realism_check_is_planned_from_the_reference_file_or_skipped_with_a_message(tmp_path):
    reference = tmp_path / "tas_rotated_grid_EUR11.nc"
    reference.write_bytes((ROOT / "tests" / "data" / "files" / "tas_rotated_grid_EUR11.nc").read_bytes())
    present = tmp_path / "present.yaml"
    present.write_text(yaml.safe_dump({"twin": {"realism": {"reference_file": str(reference)}}}))
    result = _dry_run(tmp_path, present)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "twin_realism" in result.stdout and f"Comparing the twin with real COSMO-CLM ({reference})" in result.stdout
    absent = tmp_path / "absent.yaml"
    absent.write_text(yaml.safe_dump({"twin": {"realism": {"reference_file": str(tmp_path / "nowhere.nc")}}}))
    result = _dry_run(tmp_path, absent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "twin_realism" not in result.stdout
    assert (f"Skipping the twin realism check: the real COSMO-CLM reference {tmp_path / 'nowhere.nc'} is absent "
            "(Debian: apt-get install libncarg-data") in result.stderr


def test_mistyped_config_key_stops_with_a_message_naming_it(tmp_path):
    overlay = tmp_path / "typo.yaml"
    overlay.write_text(yaml.safe_dump({"models": {"unet": {"base_chanels": 32}}}))
    result = _dry_run(tmp_path, overlay)
    assert result.returncode != 0
    assert "unknown config key 'models.unet.base_chanels' (did you mean 'base_channels'?)" in (
        result.stdout + result.stderr
    )


def test_paper_config_plans_one_fetch_job_per_group_and_month_without_credentials(tmp_path):
    # The user's own COSMO-CLM and static files (placeholders: a dry run only checks they exist).
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    for name in ("orography", "land_fraction", "land_cover"):
        (tmp_path / paper["static_inputs"][name]["file"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / paper["static_inputs"][name]["file"]).touch()
    cosmo = tmp_path / paper["cosmo"]["files"].replace("*", "200001")
    cosmo.parent.mkdir(parents=True, exist_ok=True)
    cosmo.touch()
    result = _dry_run(tmp_path, ROOT / "config" / "paper.yaml", extra=("--until", "merge_era5_month"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    months = 21 * 12
    groups = 3
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts.get("fetch_era5") == months * groups, counts
    assert counts.get("merge_era5_month") == months, counts
