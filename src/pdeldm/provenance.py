"""What produced a result: software versions and the git commit, for the report and releases."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: The distributions whose versions decide the numbers (and the tools that run the workflow).
PACKAGES = ("pdeldm", "torch", "lightning", "numpy", "scipy", "xarray", "pandas", "zarr", "netCDF4",
            "xarray-regrid", "pysteps", "xskillscore", "scikit-image", "matplotlib", "snakemake",
            "snakemake-executor-plugin-slurm", "dvc")


def software_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python and the installed version of each package ("not installed" where absent)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(directory: str | Path = ".") -> str:
    """The commit checked out in ``directory`` (with ``-dirty`` for uncommitted changes), or "unknown"."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=directory,
                                   capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return described.stdout.strip() if described.returncode == 0 and described.stdout.strip() else "unknown"
