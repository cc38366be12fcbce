"""One real run of the tiny CI workflow (config/ci.yaml), shared by every workflow test module.

It is the expensive part (a minute or more), so it runs once per session; tests that change
files work on copies of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ci_workflow import run_ci_snakemake, write_paths_overlay


@pytest.fixture(scope="session")
def ci_workflow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of a finished local run of the CI configuration."""
    workdir = tmp_path_factory.mktemp("ci_workflow")
    write_paths_overlay(workdir)
    # Torch threads pinned to the rules' own (no core sharing, pdeldm.cores): the SLURM profile test
    # compares this run's metrics byte for byte with a cluster run, and the results of a training
    # depend on its number of threads.
    result = run_ci_snakemake(workdir, "--cores", "2", "--show-failed-logs", "--set-resources",
                              *(f"{rule}:shared_cores=0" for rule in ("train", "finetune", "predict")))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return workdir
