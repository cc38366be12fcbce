"""Site settings of a SLURM cluster, read by the `slurm` Snakemake profile.

Partitions, account and GPU model differ between clusters and must not be committed, so the
profile (``workflow/profiles/slurm/config.yaml``) asks :func:`slurm_site` for them. Each setting
comes from an environment variable, else from a user file, else stays unset:

==================  ==============================  ================================================
setting             environment variable            unset means
==================  ==============================  ================================================
``partition``       ``PDELDM_SLURM_PARTITION``      the cluster's default partition
``gpu_partition``   ``PDELDM_SLURM_GPU_PARTITION``  ``partition``
``account``         ``PDELDM_SLURM_ACCOUNT``        the plugin guesses one (or submits without)
``gpu_model``       ``PDELDM_SLURM_GPU_MODEL``      any GPU (``--gpus=N``, else ``--gpus=MODEL:N``)
``gpus``            ``PDELDM_SLURM_GPUS``           true; false submits GPU rules without GPUs
==================  ==============================  ================================================

The user file is YAML with the same keys, at ``$PDELDM_SLURM_SITE`` or else
``~/.config/pdeldm/slurm.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from pdeldm.errors import ConfigError

SITE_FILE_VARIABLE = "PDELDM_SLURM_SITE"
DEFAULT_SITE_FILE = Path("~/.config/pdeldm/slurm.yaml")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SlurmSite:
    """Where and as whom jobs are submitted; see the module docstring for each field."""

    partition: str | None = None
    gpu_partition: str | None = None
    account: str | None = None
    gpu_model: str | None = None
    gpus: bool = True

    def resources(self, **extra: Any) -> dict[str, Any]:
        """Default resources of CPU jobs: ``extra`` plus the partition and account, if set."""
        return self._with_site(extra, self.partition)

    def gpu_resources(self, **extra: Any) -> dict[str, Any]:
        """Resources of jobs that train or sample a network: the GPU partition, model and ``extra``.

        The number of GPUs stays with the rule (its ``gpu`` resource), unless ``gpus`` is false.
        """
        resources = self._with_site(extra, self.gpu_partition or self.partition)
        if not self.gpus:
            resources["gpu"] = 0
        elif self.gpu_model:
            resources["gpu_model"] = self.gpu_model
        return resources

    def _with_site(self, extra: Mapping[str, Any], partition: str | None) -> dict[str, Any]:
        resources = dict(extra)
        # repr(): Snakemake evaluates resource strings as Python; a quoted name stays a name.
        if partition:
            resources["slurm_partition"] = repr(partition)
        if self.account:
            resources["slurm_account"] = repr(self.account)
        return resources


def _variable(name: str) -> str:
    return f"PDELDM_SLURM_{name.upper()}"


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{where}: '{value}' is not a yes/no value (use true or false)")


def site_file(environ: Mapping[str, str] | None = None) -> Path:
    """The user file with site settings: ``$PDELDM_SLURM_SITE`` or ``~/.config/pdeldm/slurm.yaml``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(SITE_FILE_VARIABLE) or DEFAULT_SITE_FILE).expanduser()


def slurm_site(environ: Mapping[str, str] | None = None) -> SlurmSite:
    """Site settings from the environment, else the user file, else unset.

    Raises:
        ConfigError: if ``$PDELDM_SLURM_SITE`` names a missing file, or the file has unknown keys
            or is not a YAML mapping.
    """
    environ = os.environ if environ is None else environ
    path = site_file(environ)
    from_file: dict[str, Any] = {}
    if path.is_file():
        from_file = yaml.safe_load(path.read_text()) or {}
        if not isinstance(from_file, dict):
            raise ConfigError(f"SLURM site file {path}: expected a mapping of settings, got {type(from_file).__name__}")
    elif environ.get(SITE_FILE_VARIABLE):
        raise ConfigError(f"{SITE_FILE_VARIABLE}={environ[SITE_FILE_VARIABLE]}: no such file "
                          f"(unset it, or write the file with keys {', '.join(f.name for f in fields(SlurmSite))})")
    known = {f.name for f in fields(SlurmSite)}
    unknown = sorted(set(from_file) - known)
    if unknown:
        raise ConfigError(f"SLURM site file {path}: unknown key(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    settings: dict[str, Any] = {}
    for name in known:
        value = environ.get(_variable(name)) or from_file.get(name)
        if value is None or value == "":
            continue
        where = _variable(name) if environ.get(_variable(name)) else f"SLURM site file {path}, key '{name}'"
        settings[name] = _parse_bool(value, where) if name == "gpus" else str(value)
    return SlurmSite(**settings)
