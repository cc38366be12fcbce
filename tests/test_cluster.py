"""SLURM site settings (pdeldm.cluster) and the `slurm` profile that reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pdeldm.cluster import SlurmSite, slurm_site
from pdeldm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_environment_wins_over_the_user_file(tmp_path):
    site_file = tmp_path / "slurm.yaml"
    site_file.write_text(yaml.safe_dump({"partition": "cpu-file", "account": "proj-file", "gpu_model": "a100"}))
    site = slurm_site({"PDELDM_SLURM_SITE": str(site_file), "PDELDM_SLURM_PARTITION": "cpu-env"})
    assert site == SlurmSite(partition="cpu-env", account="proj-file", gpu_model="a100")


def test_nothing_set_leaves_everything_to_the_cluster(tmp_path):
    site = slurm_site({"HOME": str(tmp_path)})  # no ~/.config/pdeldm/slurm.yaml there
    assert site == SlurmSite()
    assert site.resources(mem_mb=4000) == {"mem_mb": 4000}
    assert site.gpu_resources() == {}


def test_resources_quote_names_so_snakemake_keeps_them_as_strings():
    site = SlurmSite(partition="cpu", gpu_partition="gpu", account="open", gpu_model="h100")
    assert site.resources(runtime=60) == {"runtime": 60, "slurm_partition": "'cpu'", "slurm_account": "'open'"}
    assert site.gpu_resources() == {"slurm_partition": "'gpu'", "slurm_account": "'open'", "gpu_model": "h100"}


def test_gpus_off_submits_gpu_rules_without_gpus():
    site = slurm_site({"PDELDM_SLURM_GPUS": "false", "PDELDM_SLURM_PARTITION": "batch", "HOME": "/nonexistent"})
    assert site.gpu_resources() == {"slurm_partition": "'batch'", "gpu": 0}


def test_bad_site_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"PDELDM_SLURM_SITE=.*missing.yaml: no such file"):
        slurm_site({"PDELDM_SLURM_SITE": str(tmp_path / "missing.yaml")})
    site_file = tmp_path / "slurm.yaml"
    site_file.write_text("partiton: cpu\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) partiton"):
        slurm_site({"PDELDM_SLURM_SITE": str(site_file)})
    with pytest.raises(ConfigError, match=r"PDELDM_SLURM_GPUS: 'maybe' is not a yes/no value"):
        slurm_site({"PDELDM_SLURM_GPUS": "maybe", "HOME": str(tmp_path)})


def test_slurm_profile_resolves_site_settings(monkeypatch, tmp_path):
    """The profile as Snakemake parses it: YTE definitions call slurm_site()."""
    from snakemake.profiles import ProfileConfigFileParser

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PDELDM_SLURM_PARTITION", "short")
    monkeypatch.setenv("PDELDM_SLURM_GPU_PARTITION", "gpu")
    monkeypatch.setenv("PDELDM_SLURM_ACCOUNT", "climate")
    profile = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
    with profile.open() as stream:
        parsed = ProfileConfigFileParser().parse(stream)
    assert parsed["executor"] == "slurm"
    assert int(parsed["retries"]) >= 1 and int(parsed["latency-wait"]) >= 30
    assert "slurm_partition='short'" in parsed["default-resources"]
    assert "slurm_account='climate'" in parsed["default-resources"]
    assert "train:slurm_partition='gpu'" in parsed["set-resources"]
    assert "predict:slurm_partition='gpu'" in parsed["set-resources"]
    assert "store:slurm_partition='short'" in parsed["set-resources"]
