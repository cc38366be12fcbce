"""Helpers to run Snakemake on the tiny CI configuration (config/ci.yaml) in a working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CI_CONFIGS = [ROOT / "config" / "config.yaml", ROOT / "config" / "ci.yaml"]


def write_paths_overlay(workdir: Path, root: Path = ROOT) -> Path:
    """The overlay every CI run needs: the committed static fields, by absolute path."""
    paths = workdir / "paths.yaml"
    paths.write_text(yaml.safe_dump({"paths": {"static_source": str(root / "data" / "static" / "eur11_static.nc")}}))
    return paths


def run_ci_snakemake(workdir: Path, *args: str, snakefile: Path = ROOT / "Snakefile", timeout: int = 900,
                     env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Snakemake on the CI configuration in ``workdir`` (which holds paths.yaml)."""
    configfiles = [*CI_CONFIGS, workdir / "paths.yaml"]
    # ``args`` before --configfile, which takes every following word: targets may lead ``args``.
    command = [*SNAKEMAKE, "--snakefile", str(snakefile), "--directory", str(workdir), *args,
               "--configfile", *map(str, configfiles)]
    environment = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=environment)


def job_counts(output: str) -> dict[str, int]:
    """A dry run's "Job stats" table: rule -> number of jobs."""
    counts = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "jobid:"):
            counts[parts[0]] = int(parts[1])
    return counts
